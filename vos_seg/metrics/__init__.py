"""Road-anomaly benchmark metrics: streaming pixel metrics and SegmentMeIfYouCan component metrics.

* :class:`PixelMetrics`: AUROC, AP, FPR95 and the F1-optimal threshold, pooled (or per image) in fixed memory.
* :class:`ComponentMetrics`: sIoU, PPV and mean F1 of connected components (SegmentMeIfYouCan).
* :func:`pixel_metrics`: exact one-shot pixel metrics by sorting, for a single map or a small set.
"""

from vos_seg.metrics.component import SIOU_THRESHOLDS, ComponentMetrics, frame_components
from vos_seg.metrics.functional import pixel_metrics
from vos_seg.metrics.pixel import PixelMetrics

__all__ = ["PixelMetrics", "ComponentMetrics", "pixel_metrics", "frame_components", "SIOU_THRESHOLDS"]
