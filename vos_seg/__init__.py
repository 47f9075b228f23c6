"""vos-seg: Virtual Outlier Synthesis (VOS, Du et al., ICLR 2022) for semantic segmentation."""

__version__ = "0.1.0"

__all__ = ["__version__"]
