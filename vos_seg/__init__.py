"""vos-seg: Virtual Outlier Synthesis (VOS, Du et al., ICLR 2022) for semantic segmentation.

The public API, in the order of the data flow:

* :class:`VOS`: the plugin for a segmentation training loop: ``loss = vos(model(images), target)``. It hooks the
  head's final conv (:class:`HeadAdapter`), queues per-pixel features per class, fits class-conditional Gaussians
  with a tied covariance, samples virtual outliers in their tails (:func:`sample_outliers`) and adds the energy
  regulariser of :class:`VOSSegLoss`.
* :class:`VOSSegLoss`: cross-entropy plus the VOS energy regulariser, per pixel (void-aware, outlier labels < 0).
* :mod:`vos_seg.scores`: per-pixel anomaly scores (energy, weighted energy, VOS posterior, MSP, max logit,
  entropy, standardized max logit); higher = more anomalous.
* :mod:`vos_seg.metrics`: :class:`PixelMetrics` (AUROC, AP, FPR95 in fixed memory) and :class:`ComponentMetrics`
  (SegmentMeIfYouCan sIoU, PPV, mean F1).
* :mod:`vos_seg.data`: benchmark and training readers, augmentation, the synthetic road world.
* :mod:`vos_seg.evaluation`, :mod:`vos_seg.viz`, :mod:`vos_seg.engine`: benchmark evaluation, anomaly-map
  rendering, and the training engine behind ``tools/``.
"""

from . import scores
from .head import HeadAdapter
from .labels import validate_anomaly_labels, validate_target
from .loss import VOSSegLoss
from .metrics import ComponentMetrics, PixelMetrics
from .plugin import VOS, loss_from_state_dict
from .synthesis import cholesky_with_jitter, fit_tied_gaussian, sample_outliers

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "VOS",
    "VOSSegLoss",
    "HeadAdapter",
    "sample_outliers",
    "fit_tied_gaussian",
    "cholesky_with_jitter",
    "loss_from_state_dict",
    "scores",
    "PixelMetrics",
    "ComponentMetrics",
    "validate_anomaly_labels",
    "validate_target",
]
