"""vos-seg: Virtual Outlier Synthesis (VOS, Du et al., ICLR 2022) for semantic segmentation.

The public API a user reads first:

* :class:`VOSSegLoss`: cross-entropy plus the VOS energy regulariser, per pixel.
* :mod:`vos_seg.scores`: per-pixel anomaly scores (energy, weighted energy, VOS posterior, MSP, max logit,
  entropy, standardized max logit).
"""

from . import scores
from .labels import validate_anomaly_labels, validate_target
from .loss import VOSSegLoss

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "VOSSegLoss",
    "scores",
    "validate_anomaly_labels",
    "validate_target",
]
