"""Shared normalisation of anomaly score maps, so that a colour means the same score on every image.

A :class:`ScoreNormalizer` maps raw scores (higher = more anomalous) to colour positions in [0, 1] with one
range for a whole dataset: a fixed range, dataset percentiles, or a range calibrated on in-distribution
pixels with the threshold at 95% true-positive rate of in-distribution pixels (the score under which 95% of
them fall). Per-image normalisation exists for inspection but must be asked for, and says so in its label.

Dataset statistics are kept in bounded memory: a uniform random subsample of at most ``max_samples``
pixels (bottom-k reservoir: every pixel gets a random key, the ``max_samples`` smallest keys are kept), drawn
from a seeded numpy generator, so percentiles are exact when the dataset has at most ``max_samples`` valid
pixels and a uniform-sample estimate otherwise (standard error of a quantile q about
sqrt(q (1 - q) / max_samples) in probability).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["ScoreNormalizer", "NORMALIZER_MODES", "to_numpy"]

NORMALIZER_MODES = ("fixed", "percentiles", "calibrated", "per_image")


def to_numpy(array, name: str = "score") -> np.ndarray:
    """Return ``array`` (numpy array or torch tensor on any device) as a numpy array (host copy for tensors)."""
    if hasattr(array, "detach"):
        array = array.detach()
        if array.is_floating_point():
            array = array.float()
        array = array.cpu().numpy()
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected `{name}` as a numpy array or torch tensor, got {type(array).__name__}")
    return array


class _Reservoir:
    """Uniform subsample without replacement of at most ``capacity`` values seen over many updates.

    Bottom-k sampling: each value gets a uniform random key and the ``capacity`` smallest keys are kept. The
    buffer may grow to twice the capacity between compactions (amortised O(1) per value); values whose key is
    above the k-th smallest key at the last compaction can never be kept and are dropped on arrival.
    """

    def __init__(self, capacity: int, rng: np.random.Generator):
        self.capacity = capacity
        self.rng = rng
        self._values: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._size = 0
        self._cutoff = np.inf  # k-th smallest key at the last compaction (inf until the buffer was full)
        self.seen = 0

    def add(self, values: np.ndarray) -> None:
        values = values.ravel()
        self.seen += values.size
        keys = self.rng.random(values.size)
        if np.isfinite(self._cutoff):
            keep = keys < self._cutoff
            values, keys = values[keep], keys[keep]
        self._values.append(values.astype(np.float64))
        self._keys.append(keys)
        self._size += values.size
        if self._size > 2 * self.capacity:
            self._compact()

    def _compact(self) -> None:
        if not self._values:
            return
        values, keys = np.concatenate(self._values), np.concatenate(self._keys)
        if values.size > self.capacity:
            index = np.argpartition(keys, self.capacity - 1)[: self.capacity]
            values, keys = values[index], keys[index]
            self._cutoff = keys.max()
        self._values, self._keys, self._size = [values], [keys], values.size

    @property
    def values(self) -> np.ndarray:
        """The kept sample (at most ``capacity`` values, float64)."""
        self._compact()
        return self._values[0] if self._values else np.empty(0, np.float64)


class ScoreNormalizer:
    """Maps anomaly scores to [0, 1] with one range shared across images.

    Build one with a constructor per mode: :meth:`fixed`, :meth:`dataset_percentiles`, :meth:`calibrated`
    or :meth:`per_image`; feed dataset modes with :meth:`update` / :meth:`fit`, then call it on score maps.

    Args:
        mode: one of ``"fixed"``, ``"percentiles"``, ``"calibrated"``, ``"per_image"``.
        vmin, vmax: the range of ``"fixed"`` mode (``vmin < vmax``, finite).
        percentiles: (low, high) percentiles in [0, 100] giving the colour range in the data-driven modes
            (over all valid pixels of the dataset; of the image itself in ``"per_image"`` mode).
        tpr: in ``"calibrated"`` mode, the fraction of in-distribution pixels that fall at or below
            :attr:`threshold` (0.95: the score at 95% TPR of in-distribution pixels).
        max_samples: size of the random subsample kept for dataset statistics (memory: up to about 64 bytes
            per sample at peak, per reservoir; calibrated mode keeps two).
        seed: seed of the numpy generator drawing that subsample (no global RNG is touched).

    Shape:
        score: (H, W) or any shape, float; labels (same shape) uint8 0 in-distribution, 1 anomaly, 255 void.

    Raises:
        ValueError: unknown mode, bad range or percentiles, labels missing in calibrated mode, or asking for
            a range before any finite score was seen.
    """

    def __init__(self, mode: str = "percentiles", *, vmin: float | None = None, vmax: float | None = None,
                 percentiles: tuple[float, float] = (1.0, 99.0), tpr: float = 0.95,
                 max_samples: int = 1_000_000, seed: int = 0):
        if mode not in NORMALIZER_MODES:
            raise ValueError(f"unknown normalisation mode {mode!r}; expected one of {NORMALIZER_MODES}")
        if mode == "fixed":
            if vmin is None or vmax is None or not np.isfinite([vmin, vmax]).all() or not vmin < vmax:
                raise ValueError(f"fixed range needs finite vmin < vmax, got vmin={vmin}, vmax={vmax}")
        lo, hi = (float(p) for p in percentiles)
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"expected percentiles 0 <= low < high <= 100, got {percentiles}")
        if not 0.0 < tpr < 1.0:
            raise ValueError(f"expected 0 < tpr < 1, got {tpr}")
        if max_samples < 1:
            raise ValueError(f"expected max_samples >= 1, got {max_samples}")
        self.mode = mode
        self.vmin = None if vmin is None else float(vmin)
        self.vmax = None if vmax is None else float(vmax)
        self.percentiles = (lo, hi)
        self.tpr = float(tpr)
        rng = np.random.default_rng(seed)
        self._all = _Reservoir(max_samples, rng)
        self._inlier = _Reservoir(max_samples, rng)
        self._cache: tuple[float, float, float | None] | None = None

    # Constructors, one per mode -------------------------------------------------------------------------
    @classmethod
    def fixed(cls, vmin: float, vmax: float) -> "ScoreNormalizer":
        """The range [vmin, vmax] on every image (scores outside are clipped to the ends of the colormap)."""
        return cls("fixed", vmin=vmin, vmax=vmax)

    @classmethod
    def dataset_percentiles(cls, low: float = 1.0, high: float = 99.0, **kwargs) -> "ScoreNormalizer":
        """The [low, high] percentiles of all valid pixels seen by :meth:`update` (labels optional)."""
        return cls("percentiles", percentiles=(low, high), **kwargs)

    @classmethod
    def calibrated(cls, tpr: float = 0.95, percentiles: tuple[float, float] = (1.0, 99.0),
                   **kwargs) -> "ScoreNormalizer":
        """Threshold at ``tpr`` of in-distribution pixels (labels needed); range from dataset percentiles."""
        return cls("calibrated", tpr=tpr, percentiles=percentiles, **kwargs)

    @classmethod
    def per_image(cls, low: float = 0.0, high: float = 100.0) -> "ScoreNormalizer":
        """Each image stretched to its own [low, high] percentiles: colours are NOT comparable across images."""
        return cls("per_image", percentiles=(low, high))

    # Fitting ---------------------------------------------------------------------------------------------
    @property
    def needs_fit(self) -> bool:
        """Whether the mode takes dataset statistics (``"percentiles"`` and ``"calibrated"``)."""
        return self.mode in ("percentiles", "calibrated")

    @property
    def num_samples(self) -> int:
        """Number of valid pixels seen by :meth:`update` (all of them, not only the kept subsample)."""
        return self._all.seen

    def update(self, score, labels=None) -> "ScoreNormalizer":
        """Add one score map (and its anomaly labels) to the dataset statistics; a no-op in fixed/per-image modes.

        Non-finite scores and void pixels are left out. In ``"calibrated"`` mode labels are required and the
        in-distribution pixels (label 0) set the threshold.
        """
        if not self.needs_fit:
            return self
        score = to_numpy(score)
        valid = np.isfinite(score)
        if labels is None:
            if self.mode == "calibrated":
                raise ValueError("calibrated normalisation needs anomaly labels (0 in-distribution, 1 anomaly, "
                                 "255 void) to find the in-distribution threshold; got labels=None")
        else:
            labels = to_numpy(labels, "labels")
            if labels.shape != score.shape:
                raise ValueError(f"labels shape {labels.shape} differs from score shape {score.shape}")
            from vos_seg.labels import validate_anomaly_labels

            validate_anomaly_labels(labels)
            valid &= labels != 255
            self._inlier.add(score[valid & (labels == 0)])
        self._all.add(score[valid])
        self._cache = None
        return self

    def fit(self, scores: Iterable, labels: Iterable | None = None) -> "ScoreNormalizer":
        """Call :meth:`update` on every map of ``scores`` (paired with ``labels`` when given); returns self."""
        if labels is None:
            for score in scores:
                self.update(score)
        else:
            for score, label in zip(scores, labels, strict=True):
                self.update(score, label)
        return self

    # Results ---------------------------------------------------------------------------------------------
    def _dataset_stats(self) -> tuple[float, float, float | None]:
        if self._cache is None:
            if self._all.values.size == 0:
                raise ValueError(f"ScoreNormalizer(mode={self.mode!r}) has seen no finite, non-void score yet; "
                                 "call update() or fit() on score maps first")
            threshold = None
            if self.mode == "calibrated":
                if self._inlier.values.size == 0:
                    raise ValueError("calibrated normalisation saw no in-distribution pixel (label 0); "
                                     "cannot place the threshold")
                threshold = float(np.quantile(self._inlier.values, self.tpr))
            lo, hi = np.percentile(self._all.values, self.percentiles)
            if threshold is not None:  # the threshold must be visible on the colorbar
                lo, hi = min(lo, threshold), max(hi, threshold)
            self._cache = (*_widen(float(lo), float(hi)), threshold)
        return self._cache

    @property
    def threshold(self) -> float | None:
        """Calibrated mode: the score under which a fraction ``tpr`` of in-distribution pixels fall; else None."""
        return self._dataset_stats()[2] if self.mode == "calibrated" else None

    def value_range(self, score=None) -> tuple[float, float]:
        """The (vmin, vmax) mapped to the two ends of the colormap (per-image mode needs ``score``)."""
        if self.mode == "fixed":
            return self.vmin, self.vmax
        if self.mode == "per_image":
            if score is None:
                raise ValueError("per-image normalisation needs the score map to compute its range")
            values = to_numpy(score)
            values = values[np.isfinite(values)]
            if values.size == 0:
                return 0.0, 1.0
            lo, hi = np.percentile(values.astype(np.float64), self.percentiles)
            return _widen(float(lo), float(hi))
        return self._dataset_stats()[:2]

    def __call__(self, score) -> np.ndarray:
        """Map ``score`` to float32 in [0, 1] (clipped; non-finite scores stay NaN)."""
        score = to_numpy(score).astype(np.float64)
        vmin, vmax = self.value_range(score)
        with np.errstate(invalid="ignore"):
            out = np.clip((score - vmin) / (vmax - vmin), 0.0, 1.0)
        out[~np.isfinite(score)] = np.nan
        return out.astype(np.float32)

    def describe(self, score=None) -> str:
        """One line saying how colours were normalised, for colorbar captions."""
        vmin, vmax = self.value_range(score)
        rng = f"[{_fmt(vmin)}, {_fmt(vmax)}]"
        if self.mode == "fixed":
            return f"fixed range {rng}"
        lo, hi = (f"{p:g}" for p in self.percentiles)
        if self.mode == "per_image":
            return f"per-image range {rng} (percentiles {lo}-{hi} of this image; not comparable across images)"
        pct = f"percentiles {lo}-{hi} of {_count(self.num_samples)} dataset pixels: {rng}"
        if self.mode == "percentiles":
            return f"shared range, {pct}"
        return (f"calibrated: {self.tpr:.0%} of in-distribution pixels <= t = {_fmt(self.threshold)}; "
                f"range {rng}")

    def summary(self) -> dict:
        """JSON-ready record of the mode, range and threshold (per-image mode records no range)."""
        out = {"mode": self.mode, "percentiles": list(self.percentiles), "tpr": self.tpr,
               "num_samples": self.num_samples}
        if self.mode != "per_image":
            out["vmin"], out["vmax"] = self.value_range()
            out["threshold"] = self.threshold
        return out

    def __repr__(self) -> str:
        return f"ScoreNormalizer(mode={self.mode!r}, percentiles={self.percentiles}, samples={self.num_samples})"


def _widen(lo: float, hi: float) -> tuple[float, float]:
    """Give a constant map a non-empty range, so that it maps to the low end instead of dividing by zero."""
    if hi > lo:
        return lo, hi
    return lo, lo + max(abs(lo) * 1e-3, 1e-6)


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
