"""Component-level anomaly metrics of SegmentMeIfYouCan (Chan et al., NeurIPS 2021 Datasets and Benchmarks).

Per frame (``road_anomaly_benchmark/metrics/instance_segmentation.py``, ``default_instancer`` and
``segment_metrics``):

* prediction = ``score > threshold`` on non-void pixels; ground truth = label 1;
* both split into 8-connected components; predicted components smaller than ``min_pred_size`` pixels are
  dropped; ground-truth components smaller than ``min_gt_size`` become void (region of interest shrinks);
* every count below is taken inside the region of interest (non-void, not a small ground-truth component);
* ground-truth component ``A`` with the set ``P(A)`` of predicted components that touch it:
  ``sIoU(A) = |A ∩ P(A)| / (|P(A)| + |A| - |A ∩ P(A)| - |P(A) ∩ A'|)``, ``A'`` the other ground-truth components
  (the adjusted union leaves out what the touching predictions cover of other objects);
* predicted component ``P``: ``PPV(P) = |P ∩ GT| / |P|``.

Over the dataset: ``siou`` = mean sIoU over all ground-truth components, ``ppv`` = mean PPV over all predicted
components; at each ``t`` in 0.25, 0.30, ..., 0.75: TP = #GT with sIoU >= t, FN = #GT with sIoU < t,
FP = #pred with PPV < t, ``F1_t = 2TP / (2TP + FN + FP)``; ``f1`` is the mean of the eleven ``F1_t``.

Cost: two ``cv2.connectedComponents`` passes and a few elementwise passes per frame, plus a bincount
over the pixels where ground truth and prediction overlap; no per-component rescan of the image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from vos_seg.metrics._inputs import check_void_label, prepare_inputs
from vos_seg.metrics._state import AdditiveState

__all__ = ["SIOU_THRESHOLDS", "ComponentMetrics", "frame_components"]

#: The eleven sIoU / PPV thresholds, computed as the benchmark does (``np.linspace(0.25, 0.75, 11)``).
SIOU_THRESHOLDS = np.linspace(0.25, 0.75, 11, endpoint=True)
_DENSE_PAIRS = 1 << 24  # largest (gt x pred) table bincounted densely; beyond it the pairs are np.unique'd


def _float32_floor(threshold: float) -> np.float32:
    """The largest float32 <= threshold, so that ``x > result`` equals ``x > threshold`` for every float32 x."""
    value = np.float32(threshold)
    return np.nextafter(value, np.float32(-np.inf)) if float(value) > threshold else value


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Labels only, areas by torch.bincount: OpenCV's WithStats variant and np.bincount are several times slower.
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return labels, torch.bincount(torch.from_numpy(labels).view(-1), minlength=count).numpy()


def frame_components(
    scores: np.ndarray, labels: np.ndarray, threshold: float, min_pred_size: int, min_gt_size: int, void_label: int
) -> tuple[np.ndarray, np.ndarray]:
    """sIoU of every ground-truth component and PPV of every predicted component of one frame.

    Args:
        scores: (H, W) float32 anomaly scores (validated).
        labels: (H, W) integer labels 0 / 1 / ``void_label`` (validated).
        threshold: a pixel is predicted anomalous iff ``score > threshold``.
        min_pred_size: predicted components with fewer pixels are dropped.
        min_gt_size: ground-truth components with fewer pixels become void.
        void_label: label of ignored pixels.

    Returns:
        ``(siou, ppv)``: float64 arrays, one entry per kept ground-truth / predicted component.
    """
    valid = labels != void_label
    gt_labels, gt_area = _components(labels == 1)
    pred_labels, pred_area = _components((scores > _float32_floor(threshold)) & valid)

    # Renumber: kept GT components 1..G, small GT components G+1 (outside the region of interest), 0 background.
    kept_gt = gt_area >= min_gt_size
    kept_gt[0] = False
    num_gt = int(kept_gt.sum())
    gt_map = np.full(len(gt_area), num_gt + 1, dtype=np.int64)
    gt_map[0] = 0
    gt_map[kept_gt] = np.arange(1, num_gt + 1)
    kept_pred = pred_area >= min_pred_size
    kept_pred[0] = False
    num_pred = int(kept_pred.sum())
    pred_map = np.zeros(len(pred_area), dtype=np.int64)
    pred_map[kept_pred] = np.arange(1, num_pred + 1)

    # Pixel counts of every (gt, pred) pair where a GT component meets a predicted one.
    overlap = np.flatnonzero((gt_labels > 0) & (pred_labels > 0))
    g = gt_map[gt_labels.reshape(-1)[overlap]]
    p = pred_map[pred_labels.reshape(-1)[overlap]]
    code = g * (num_pred + 1) + p
    size = (num_gt + 2) * (num_pred + 1)
    if size <= _DENSE_PAIRS:
        pair_count = np.bincount(code, minlength=size)
        code = np.flatnonzero(pair_count)
        pair_count = pair_count[code]
    else:
        code, pair_count = np.unique(code, return_counts=True)
    g, p = np.divmod(code, num_pred + 1)
    live = p > 0  # pairs with a kept predicted component
    g, p, pair_count = g[live], p[live], pair_count[live]
    inside = g <= num_gt  # pairs inside a kept GT component; the others lie in small (void) GT components

    # Predicted components, counted inside the region of interest.
    pred_size = pred_area[kept_pred] - np.bincount(p[~inside] - 1, pair_count[~inside], minlength=num_pred)
    pred_in_gt = np.bincount(p[inside] - 1, pair_count[inside], minlength=num_pred)
    present = pred_size > 0  # a component lying wholly in small GT components vanishes with them
    ppv = pred_in_gt[present] / pred_size[present]

    # Ground-truth components: intersection, touching predictions' size, their share of other GT components.
    g, p, pair_count = g[inside] - 1, p[inside] - 1, pair_count[inside].astype(np.float64)
    intersection = np.bincount(g, pair_count, minlength=num_gt)
    touching_size = np.bincount(g, pred_size[p], minlength=num_gt)
    elsewhere = np.bincount(g, pred_in_gt[p] - pair_count, minlength=num_gt)
    union = touching_size + gt_area[kept_gt] - intersection - elsewhere
    siou = intersection.astype(np.int64) / union.astype(np.int64)
    return siou, ppv


class ComponentMetrics(AdditiveState):
    """SegmentMeIfYouCan component metrics (sIoU, PPV, mean F1) accumulated over frames.

    Args:
        threshold: a pixel is predicted anomalous iff ``score > threshold``; use the pixel F1-optimal one,
            ``PixelMetrics.compute()["f1_threshold"]``, as the benchmark does.
        min_pred_size: predicted components below this many pixels are dropped (AnomalyTrack 500).
        min_gt_size: ground-truth components below this many pixels become void (AnomalyTrack 100).
        void_label: label of ignored pixels.

    Shape:
        scores, labels: ``(H, W)`` or ``(N, H, W)``, numpy or torch on any device (copied to host memory: the
        connected components run on the CPU with OpenCV).

    State (summed across shards): ``sums`` (2,) float64 = (sum of sIoU, sum of PPV); ``counts`` (2,) int64 =
    (ground-truth components, predicted components); ``tp``, ``fp``: (11,) int64 per sIoU threshold;
    ``num_frames`` () int64.

    Example:
        >>> import numpy as np
        >>> labels = np.zeros((20, 20), dtype=np.uint8); labels[5:15, 5:15] = 1
        >>> scores = np.zeros((20, 20), dtype=np.float32); scores[5:15, 5:10] = 1.0
        >>> metric = ComponentMetrics(0.5, min_pred_size=1, min_gt_size=1)
        >>> metric.update(scores, labels)
        >>> metric.compute()["siou"]
        0.5

    Raises:
        ValueError: for a non-finite threshold or negative sizes; in ``update``, for bad inputs as
            :class:`PixelMetrics`; in ``compute``, before any frame.
    """

    _state_names = ("sums", "counts", "tp", "fp", "num_frames")

    def __init__(self, threshold: float, min_pred_size: int = 500, min_gt_size: int = 100, void_label: int = 255):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
            raise TypeError(f"expected a number for `threshold`, got {threshold!r}")
        if not math.isfinite(float(threshold)):
            raise ValueError(f"`threshold` must be finite, got {threshold}")
        for name, value in (("min_pred_size", min_pred_size), ("min_gt_size", min_gt_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}")
        self.threshold = float(threshold)
        self.min_pred_size = int(min_pred_size)
        self.min_gt_size = int(min_gt_size)
        self.void_label = check_void_label(void_label)
        self.reset()

    @classmethod
    def anomaly_track(cls, threshold: float, void_label: int = 255) -> "ComponentMetrics":
        """SegmentMeIfYouCan RoadAnomaly21 settings: predicted >= 500 pixels, ground truth >= 100 pixels."""
        return cls(threshold, min_pred_size=500, min_gt_size=100, void_label=void_label)

    @classmethod
    def obstacle_track(cls, threshold: float, void_label: int = 255) -> "ComponentMetrics":
        """SegmentMeIfYouCan RoadObstacle21 settings: predicted >= 50 pixels, ground truth >= 10 pixels."""
        return cls(threshold, min_pred_size=50, min_gt_size=10, void_label=void_label)

    def _config(self) -> dict:
        return {
            "threshold": self.threshold,
            "min_pred_size": self.min_pred_size,
            "min_gt_size": self.min_gt_size,
            "void_label": self.void_label,
        }

    def reset(self) -> None:
        """Clear the state (on the CPU)."""
        self.sums = torch.zeros(2, dtype=torch.float64)
        self.counts = torch.zeros(2, dtype=torch.int64)
        self.tp = torch.zeros(len(SIOU_THRESHOLDS), dtype=torch.int64)
        self.fp = torch.zeros(len(SIOU_THRESHOLDS), dtype=torch.int64)
        self.num_frames = torch.zeros((), dtype=torch.int64)

    def update(self, scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> None:
        """Add one frame ``(H, W)`` or a batch ``(N, H, W)``; inputs are validated before the state changes."""
        scores_f, labels_t = prepare_inputs(scores, labels, self.void_label)
        if scores_f.dim() not in (2, 3):
            raise ValueError(f"expected (H, W) or (N, H, W) maps, got shape {tuple(scores_f.shape)}")
        scores_np = scores_f.detach().cpu().numpy().reshape(-1, *scores_f.shape[-2:])
        labels_np = labels_t.cpu().numpy().reshape(-1, *labels_t.shape[-2:])
        sums, counts = np.zeros(2), np.zeros(2, dtype=np.int64)
        tp, fp = np.zeros(len(SIOU_THRESHOLDS), dtype=np.int64), np.zeros(len(SIOU_THRESHOLDS), dtype=np.int64)
        for frame_scores, frame_labels in zip(scores_np, labels_np):
            siou, ppv = frame_components(
                frame_scores, frame_labels, self.threshold, self.min_pred_size, self.min_gt_size, self.void_label
            )
            sums += (siou.sum(), ppv.sum())
            counts += (len(siou), len(ppv))
            tp += (siou[None, :] >= SIOU_THRESHOLDS[:, None]).sum(axis=1)
            fp += (ppv[None, :] < SIOU_THRESHOLDS[:, None]).sum(axis=1)
        device = self.sums.device
        self.sums += torch.from_numpy(sums).to(device)
        self.counts += torch.from_numpy(counts).to(device)
        self.tp += torch.from_numpy(tp).to(device)
        self.fp += torch.from_numpy(fp).to(device)
        self.num_frames += len(scores_np)

    def compute(self) -> dict[str, float | int]:
        """The dataset-level metrics.

        Returns:
            dict with ``siou`` (mean over ground-truth components; NaN if there is none), ``ppv`` (mean over
            predicted components; NaN if there is none), ``f1`` (mean F1 over the eleven thresholds; NaN if there
            is no component at all), ``f1_25``, ``f1_50``, ``f1_75``, ``num_gt_components``,
            ``num_pred_components`` and ``num_frames``.

        Raises:
            ValueError: if no frame was added.
        """
        if int(self.num_frames) == 0:
            raise ValueError("ComponentMetrics.compute() called before any update")
        sums = self.sums.cpu().numpy()
        num_gt, num_pred = (int(c) for c in self.counts.cpu())
        tp, fp = self.tp.cpu().numpy(), self.fp.cpu().numpy()
        fn = num_gt - tp
        denominator = 2 * tp + fn + fp
        f1 = np.divide(2.0 * tp, denominator, out=np.full(len(tp), np.nan), where=denominator > 0)
        return {
            "siou": float(sums[0] / num_gt) if num_gt else float("nan"),
            "ppv": float(sums[1] / num_pred) if num_pred else float("nan"),
            "f1": float(f1.mean()),
            "f1_25": float(f1[0]),
            "f1_50": float(f1[5]),
            "f1_75": float(f1[10]),
            "num_gt_components": num_gt,
            "num_pred_components": num_pred,
            "num_frames": int(self.num_frames),
        }

    def __repr__(self) -> str:
        return (
            f"ComponentMetrics(threshold={self.threshold}, min_pred_size={self.min_pred_size}, "
            f"min_gt_size={self.min_gt_size}, void_label={self.void_label})"
        )
