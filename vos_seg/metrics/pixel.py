"""Streaming pixel-level anomaly metrics (AUROC, AP, FPR95, best F1) in fixed memory, mergeable by addition."""

from __future__ import annotations

import numpy as np
import torch

from vos_seg.metrics._inputs import check_void_label, prepare_inputs
from vos_seg.metrics._state import AdditiveState
from vos_seg.metrics.functional import (
    NUM_BUCKETS,
    curves_from_counts,
    exact_counts,
    histogram_counts,
    metrics_from_counts,
    score_buckets,
)

__all__ = ["PixelMetrics"]

_CHUNK = 1 << 22  # pixels per accumulation step: bounds the temporaries to ~50 MB whatever the update size
_PER_IMAGE = ("auroc", "ap", "fpr95")


class PixelMetrics(AdditiveState):
    """Pixel-level anomaly segmentation metrics pooled over a dataset, as SegmentMeIfYouCan and Fishyscapes report.

    Scores are higher for more anomalous pixels; labels are 0 (in-distribution), 1 (anomaly) or ``void_label``
    (ignored). Each ``update`` adds the non-void pixels to two histograms (in-distribution, anomaly) over
    :data:`~vos_seg.metrics.functional.NUM_BUCKETS` order-preserving buckets of the float32 score
    (see :func:`~vos_seg.metrics.functional.score_buckets`); ``compute`` reads AUROC
    (``sklearn.metrics.roc_auc_score``), AP (``average_precision_score``, the step sum), FPR95 (the false-positive
    rate at the first threshold, from the top, where TPR >= 0.95) and the pixel F1-optimal threshold off them.

    Exactness: scores are compared as float32. Two scores in the same bucket count as tied; all other pairs are
    ordered exactly. Scores share a bucket only if they have the same sign and exponent and differ by less than
    ``2**-16`` of their power of two for magnitudes in ``[2**-8, 2**16)`` (probabilities, energies, logits), or
    ``2**-11`` elsewhere. Scores stored as float16 (SegmentMeIfYouCan submissions) are therefore evaluated exactly,
    and float32 scores of continuous distributions agree with scikit-learn to ~1e-5 or better (tests measure it:
    energies centred at -30 with unit spread, the hardest realistic case there, stay below 1e-4). The limit: scores
    that all lie in a band much narrower than ``2**-16`` of their magnitude (for instance all in
    ``5.0001 .. 5.0002``, about 200 distinct float32 values) collapse into a few buckets. Shift such scores before
    the update (``score - 5.0`` is exact in float32 by Sterbenz's lemma), which turns the differences into
    relative ones.

    ``per_image=True`` follows StreetHazards (Hendrycks et al., 2022): AUROC, AP and FPR95 are computed exactly
    per image and averaged over the images that contain both anomaly and in-distribution pixels (images with one
    class are skipped and counted); ``best_f1`` and ``f1_threshold`` stay pooled, as one threshold serves the
    whole dataset. FPR95 keeps the definition above; the StreetHazards code (``anom_utils.fpr_and_fdr_at_recall``)
    takes the threshold whose recall is closest to 0.95, which can differ by one threshold step.

    Args:
        void_label: label of ignored pixels (any integer but 0 and 1).
        per_image: average per image (StreetHazards) instead of pooling all pixels.

    Shape:
        scores, labels: any equal shapes for pooling; ``(H, W)`` or ``(N, H, W)`` with ``per_image=True``.
        numpy arrays or tensors on any device; scores of any real dtype (float16/bfloat16/float32/float64).

    State (all summed across shards, see :meth:`merge` and :meth:`sync`):
        ``hist``: (2 * NUM_BUCKETS + 1,) int64, in-distribution buckets, anomaly buckets, then the void count
        (32 MiB per class); ``image_sums``: (3,) float64 sums of per-image AUROC, AP, FPR95; ``num_images``,
        ``num_skipped_images``: () int64. The state lives on the device of the first update.

    Example:
        >>> import numpy as np
        >>> metric = PixelMetrics()
        >>> labels = np.array([[0, 0, 1], [255, 0, 1]], dtype=np.uint8)
        >>> metric.update(np.array([[0.1, 0.4, 0.35], [9.0, 0.2, 0.8]], dtype=np.float32), labels)
        >>> round(metric.compute()["auroc"], 4)
        0.8333

    Note:
        ``update`` validates its inputs (labels, NaN/inf, shapes) before touching the state, so a rejected batch
        leaves the metric unchanged; the checks synchronise with the device once per call.
    """

    _state_names = ("hist", "image_sums", "num_images", "num_skipped_images")

    def __init__(self, void_label: int = 255, per_image: bool = False) -> None:
        self.void_label = check_void_label(void_label)
        self.per_image = bool(per_image)
        self.reset()

    def _config(self) -> dict:
        return {"void_label": self.void_label, "per_image": self.per_image, "num_buckets": NUM_BUCKETS}

    def reset(self, device: torch.device | str | None = None) -> None:
        """Clear the state (kept on its current device, or on ``device``)."""
        device = device if device is not None else (self.device if hasattr(self, "hist") else "cpu")
        self.hist = torch.zeros(2 * NUM_BUCKETS + 1, dtype=torch.int64, device=device)
        self.image_sums = torch.zeros(len(_PER_IMAGE), dtype=torch.float64, device=device)
        self.num_images = torch.zeros((), dtype=torch.int64, device=device)
        self.num_skipped_images = torch.zeros((), dtype=torch.int64, device=device)
        self._empty = True

    @property
    def counts(self) -> torch.Tensor:
        """(2, NUM_BUCKETS) view of the histograms: row 0 in-distribution, row 1 anomaly."""
        return self.hist[: 2 * NUM_BUCKETS].view(2, NUM_BUCKETS)

    @property
    def num_void(self) -> torch.Tensor:
        """Number of void pixels seen (a 0-d view into ``hist``)."""
        return self.hist[2 * NUM_BUCKETS]

    def update(self, scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> None:
        """Add a score map or batch and its labels.

        Raises:
            TypeError: non-array inputs, complex scores, floating-point labels.
            ValueError: shape mismatch, labels outside {0, 1, void_label} (values and counts), NaN/inf scores on
                non-void pixels (how many), or a rank other than 2 or 3 with ``per_image=True``.
        """
        scores_f, labels_t = prepare_inputs(scores, labels, self.void_label)
        if self.per_image and scores_f.dim() not in (2, 3):
            raise ValueError(f"per_image=True expects (H, W) or (N, H, W) maps, got shape {tuple(scores_f.shape)}")
        if self._empty and scores_f.device != self.device:
            self.to(scores_f.device)
        scores_f, labels_t = scores_f.to(self.device), labels_t.to(self.device)
        if self.per_image:
            image_sums, used, skipped = self._per_image_sums(scores_f, labels_t)
        self._accumulate(scores_f.reshape(-1), labels_t.reshape(-1))
        if self.per_image:
            self.image_sums += image_sums.to(self.device)
            self.num_images += used
            self.num_skipped_images += skipped
        self._empty = False

    def _accumulate(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        ones = torch.ones(1, dtype=torch.int64, device=scores.device)
        for start in range(0, scores.numel(), _CHUNK):
            chunk_labels = labels[start : start + _CHUNK]
            index = score_buckets(scores[start : start + _CHUNK])
            index.add_(chunk_labels == 1, alpha=NUM_BUCKETS)
            index.masked_fill_(chunk_labels == self.void_label, 2 * NUM_BUCKETS)  # the void slot
            self.hist.index_add_(0, index, ones.expand(index.numel()))

    def _per_image_sums(self, scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        sums = np.zeros(len(_PER_IMAGE), dtype=np.float64)
        used = skipped = 0
        images = zip(scores.reshape(-1, *scores.shape[-2:]), labels.reshape(-1, *labels.shape[-2:]))
        for image_scores, image_labels in images:
            keep = image_labels.reshape(-1) != self.void_label
            neg, pos, thresholds = exact_counts(image_scores.reshape(-1)[keep], image_labels.reshape(-1)[keep] == 1)
            if neg.sum() == 0 or pos.sum() == 0:
                skipped += 1
                continue
            values = metrics_from_counts(neg, pos, thresholds)
            sums += [values[name] for name in _PER_IMAGE]
            used += 1
        return torch.from_numpy(sums), used, skipped

    def compute(self) -> dict[str, float | int]:
        """The metrics so far.

        Returns:
            dict with ``auroc``, ``ap``, ``fpr95``, ``f1_threshold`` (``score > f1_threshold`` is the pixel
            F1-optimal prediction; pass it to :class:`ComponentMetrics`), ``best_f1``, ``num_anomaly`` and
            ``num_inlier``; with ``per_image=True`` also ``num_images`` (averaged over) and ``num_skipped_images``.

        Raises:
            ValueError: if no anomaly or no in-distribution pixel was seen (with ``per_image=True``: if no image
                held both).
        """
        if self.per_image and int(self.num_images) == 0:
            raise ValueError(
                f"per_image=True: no image held both anomaly and in-distribution pixels "
                f"({int(self.num_skipped_images)} images skipped)"
            )
        result = metrics_from_counts(*histogram_counts(self.counts))
        if self.per_image:
            means = (self.image_sums / self.num_images).cpu().tolist()
            result.update(dict(zip(_PER_IMAGE, means)))
            result["num_images"] = int(self.num_images)
            result["num_skipped_images"] = int(self.num_skipped_images)
        return result

    def curves(self, max_points: int | None = None) -> dict[str, np.ndarray]:
        """Pooled ROC and PR curves for plotting (see :func:`~vos_seg.metrics.functional.curves_from_counts`).

        Args:
            max_points: thin the curves to about this many evenly spaced thresholds (None: every occupied bucket).

        Returns:
            dict of numpy arrays ``fpr``, ``tpr``, ``precision``, ``recall``, ``thresholds`` (descending; point
            ``i`` is ``score >= thresholds[i]``, each threshold the lower bound of its score bucket).
        """
        return curves_from_counts(*histogram_counts(self.counts), max_points=max_points)

    def __repr__(self) -> str:
        return f"PixelMetrics(void_label={self.void_label}, per_image={self.per_image})"
