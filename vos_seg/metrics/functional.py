"""Functional core of the pixel metrics: order-preserving score buckets and the curve metrics from counts.

Every metric here is computed from per-threshold counts of in-distribution (``neg``) and anomaly (``pos``) pixels,
listed from the highest threshold to the lowest; a pixel is predicted anomalous at threshold ``t`` iff
``score >= t`` (scikit-learn's convention). The counts come either from an exact sort of the scores
(:func:`exact_counts`, used for one image or a small set) or from the fixed-size histogram of
:class:`~vos_seg.metrics.PixelMetrics` (:func:`histogram_counts`).

Definitions (``tp``, ``fp`` cumulative from the top, ``P``/``N`` the anomaly/in-distribution totals):

* AUROC: trapezoidal area under (FPR, TPR), i.e. the Mann-Whitney statistic with ties counted 1/2
  (``sklearn.metrics.roc_auc_score``).
* AP: step sum ``sum_i (R_i - R_{i-1}) P_i`` (``sklearn.metrics.average_precision_score``).
* FPR95: ``fp / N`` at the first threshold, from the top, where ``tp / P >= 0.95``.
* best F1: ``max_i 2 tp_i / (tp_i + fp_i + P)``; the highest threshold wins ties.
"""

from __future__ import annotations

import numpy as np
import torch

from vos_seg.metrics._inputs import check_void_label, prepare_inputs

__all__ = [
    "FINE_BITS",
    "FINE_RANGE",
    "COARSE_BITS",
    "NUM_BUCKETS",
    "score_buckets",
    "bucket_lower_bounds",
    "exact_counts",
    "histogram_counts",
    "metrics_from_counts",
    "curves_from_counts",
    "pixel_metrics",
]

#: Mantissa bits kept for magnitudes in ``[2**FINE_RANGE[0], 2**FINE_RANGE[1])``, where most scores live
#: (probabilities, energies, logits): two such scores share a bucket only if closer than ``2**-16`` relative.
FINE_BITS = 16
FINE_RANGE = (-8, 16)
#: Mantissa bits kept for all other magnitudes (still more than float16's 10).
COARSE_BITS = 11
_FINE_DROP, _COARSE_DROP = 23 - FINE_BITS, 23 - COARSE_BITS
_L0, _L1 = (FINE_RANGE[0] + 127) << 23, (FINE_RANGE[1] + 127) << 23  # float32 bits of the fine range's ends
_C0 = _L0 >> _COARSE_DROP  # codes below the fine range
_C1 = (_L1 - _L0) >> _FINE_DROP  # codes in the fine range
_HALF = 1 << 21  # magnitude codes per sign (the largest finite float32 has code 2_045_951)
#: Buckets per class in the :class:`PixelMetrics` histogram (negative scores, then non-negative ones).
NUM_BUCKETS = 2 * _HALF
_MAX_FINITE = 0x7F7FFFFF


def score_buckets(scores: torch.Tensor) -> torch.Tensor:
    """Map float32 scores to int32 buckets in ``[0, NUM_BUCKETS)``, monotone non-decreasing in the score.

    The magnitude bits of a float32 (exponent and mantissa, read as an integer) are in the order of the
    magnitudes. Their top bits give a magnitude code: the top ``8 + FINE_BITS`` bits for magnitudes in
    ``[2**-8, 2**16)``, the top ``8 + COARSE_BITS`` bits elsewhere (a piecewise, monotone cut, so no float32 is
    clamped). Negative scores take the one's complement of the code, which puts them below all non-negative scores
    in reverse order; ``-0.0`` is first turned into ``+0.0`` so that the two tie. Scores share a bucket only if
    they have the same sign and exponent and differ by less than ``2**-16`` (fine range) or ``2**-11`` (elsewhere)
    relative to their exponent's power of two: every float16 value has a bucket of its own.

    Shape:
        scores: any shape, float32. Returns the same shape, int32.
    """
    if scores.dtype != torch.float32:
        raise TypeError(f"expected float32 scores, got dtype {scores.dtype}")
    bits = (scores + 0.0).view(torch.int32)  # a fresh tensor; +0.0 maps -0.0 to +0.0 so that the two tie
    sign = bits >> 31  # 0 or -1
    bits &= 0x7FFFFFFF
    code = bits.clamp(max=_L0) >> _COARSE_DROP
    code += (bits.clamp(_L0, _L1) - _L0) >> _FINE_DROP
    bits.clamp_(min=_L1)
    bits -= _L1
    bits >>= _COARSE_DROP
    code += bits
    code ^= sign  # negative scores: -code - 1
    code += _HALF
    return code


def _smallest_magnitude(code: np.ndarray) -> np.ndarray:
    return np.where(
        code < _C0,
        code << _COARSE_DROP,
        np.where(code < _C0 + _C1, _L0 + ((code - _C0) << _FINE_DROP), _L1 + ((code - _C0 - _C1) << _COARSE_DROP)),
    )


def bucket_lower_bounds(buckets: np.ndarray) -> np.ndarray:
    """The smallest float32 of each bucket: ``score >= bound[b]`` iff ``score_buckets(score) >= b`` (finite scores)."""
    key = np.asarray(buckets, dtype=np.int64) - _HALF
    negative = key < 0
    code = np.where(negative, ~key, key)
    largest = np.minimum(_smallest_magnitude(code + 1) - 1, _MAX_FINITE)
    bits = np.where(negative, largest | np.int64(0x80000000), _smallest_magnitude(code)).astype(np.uint32)
    return bits.view(np.float32)


def exact_counts(scores: torch.Tensor, is_anomaly: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact per-threshold counts by sorting: one threshold per distinct score.

    Shape:
        scores: (M,) float32, is_anomaly: (M,) bool. Returns ``(neg, pos, thresholds)``, each (U,), descending.

    Cost: a sort of the M scores (use it per image, not for a whole dataset).
    """
    values, inverse = torch.unique(scores, sorted=True, return_inverse=True)
    counts = torch.bincount(inverse * 2 + is_anomaly.long(), minlength=2 * values.numel())
    counts = counts.view(-1, 2).cpu().numpy()[::-1]
    return counts[:, 0].copy(), counts[:, 1].copy(), values.cpu().numpy()[::-1].copy()


def histogram_counts(hist: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-threshold counts from a (2, NUM_BUCKETS) histogram (row 0 in-distribution, row 1 anomaly).

    Only occupied buckets become thresholds; each threshold is its bucket's lower bound.
    """
    counts = hist.cpu().numpy()
    occupied = np.flatnonzero((counts[0] != 0) | (counts[1] != 0))[::-1]
    return counts[0, occupied], counts[1, occupied], bucket_lower_bounds(occupied)


def _check_counts(neg: np.ndarray, pos: np.ndarray) -> tuple[int, int]:
    num_anomaly, num_inlier = int(pos.sum()), int(neg.sum())
    if num_anomaly == 0:
        raise ValueError(
            f"no anomaly pixels (label 1) among {num_inlier} non-void pixels: AUROC, AP and FPR95 are undefined"
        )
    if num_inlier == 0:
        raise ValueError(
            f"no in-distribution pixels (label 0) among {num_anomaly} non-void pixels: "
            "AUROC, AP and FPR95 are undefined"
        )
    return num_anomaly, num_inlier


def metrics_from_counts(neg: np.ndarray, pos: np.ndarray, thresholds: np.ndarray) -> dict[str, float | int]:
    """AUROC, AP, FPR95 and the F1-optimal threshold from per-threshold counts (descending thresholds).

    Returns:
        dict with ``auroc``, ``ap``, ``fpr95``, ``best_f1``, ``f1_threshold`` (the largest float32 below the
        F1-optimal threshold, so that ``score > f1_threshold``, the SegmentMeIfYouCan rule, selects exactly the
        F1-optimal pixels), ``num_anomaly`` and ``num_inlier``.

    Raises:
        ValueError: if there is no anomaly or no in-distribution pixel.
    """
    num_anomaly, num_inlier = _check_counts(neg, pos)
    tp = np.cumsum(pos, dtype=np.float64)
    fp = np.cumsum(neg, dtype=np.float64)
    tp_prev = np.concatenate([[0.0], tp[:-1]])
    auroc = np.sum(neg.astype(np.float64) * (tp_prev + tp)) / (2.0 * num_anomaly * num_inlier)
    recall = tp / num_anomaly
    precision = tp / (tp + fp)
    ap = np.sum(np.diff(recall, prepend=0.0) * precision)
    fpr95 = fp[np.searchsorted(recall, 0.95, side="left")] / num_inlier
    f1 = 2.0 * tp / (tp + fp + num_anomaly)
    best = int(np.argmax(f1))
    f1_threshold = np.nextafter(np.float32(thresholds[best]), np.float32(-np.inf))
    return {
        "auroc": float(auroc),
        "ap": float(ap),
        "fpr95": float(fpr95),
        "f1_threshold": float(f1_threshold),
        "best_f1": float(f1[best]),
        "num_anomaly": num_anomaly,
        "num_inlier": num_inlier,
    }


def curves_from_counts(
    neg: np.ndarray, pos: np.ndarray, thresholds: np.ndarray, max_points: int | None = None
) -> dict[str, np.ndarray]:
    """ROC and PR curve points, one per threshold (descending), optionally thinned to ``max_points``.

    Returns:
        dict of float64 arrays ``fpr``, ``tpr``, ``precision``, ``recall`` and float32 ``thresholds``; point ``i``
        is the operating point ``score >= thresholds[i]``. Prepend (0, 0) to plot the ROC from the origin.
    """
    num_anomaly, num_inlier = _check_counts(neg, pos)
    tp = np.cumsum(pos, dtype=np.float64)
    fp = np.cumsum(neg, dtype=np.float64)
    index = np.arange(len(tp))
    if max_points is not None and len(tp) > max_points:
        if max_points < 2:
            raise ValueError(f"max_points must be >= 2, got {max_points}")
        index = np.unique(np.linspace(0, len(tp) - 1, max_points).round().astype(np.int64))
    tp, fp = tp[index], fp[index]
    return {
        "fpr": fp / num_inlier,
        "tpr": tp / num_anomaly,
        "precision": tp / (tp + fp),
        "recall": tp / num_anomaly,
        "thresholds": np.asarray(thresholds, dtype=np.float32)[index],
    }


def pixel_metrics(
    scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, void_label: int = 255
) -> dict[str, float | int]:
    """Exact pooled pixel metrics of one score map or batch, by sorting (no bucketing).

    Args:
        scores: anomaly scores, higher = more anomalous, any real dtype (compared as float32).
        labels: 0 in-distribution, 1 anomaly, ``void_label`` ignored.
        void_label: label of ignored pixels.

    Shape:
        scores, labels: any shape, equal.

    Returns:
        the dict of :func:`metrics_from_counts`.

    Raises:
        ValueError: bad labels, non-finite scores, shape mismatch, or a missing class.

    Cost: a sort of the non-void pixels; for streams of images use :class:`~vos_seg.metrics.PixelMetrics`.
    """
    void_label = check_void_label(void_label)
    scores_f, labels_t = prepare_inputs(scores, labels, void_label)
    keep = labels_t.reshape(-1) != void_label
    neg, pos, thresholds = exact_counts(scores_f.reshape(-1)[keep], labels_t.reshape(-1)[keep] == 1)
    return metrics_from_counts(neg, pos, thresholds)
