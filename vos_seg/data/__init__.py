"""Data: image/label reading, augmentation, training readers, anomaly-benchmark readers and the synthetic world.

* Reading: :func:`read_rgb`, :func:`read_label` (grayscale, RGBA and 16-bit images converted).
* Augmentation (albumentations 2.0): :func:`train_transform`, :func:`eval_transform`, :func:`image_to_tensor`.
* Training readers: :class:`CityscapesSegmentation`, :class:`FolderSegmentation` -> (image (3, H, W), target (H, W)).
* Anomaly benchmarks: :func:`open_anomaly_dataset` (SegmentMeIfYouCan, Fishyscapes, Lost and Found, Road Anomaly,
  StreetHazards, synthetic) -> :class:`AnomalyFrame` (frame id, RGB uint8 image, labels 0/1/255).
* Synthetic road world: :func:`generate_world` (module :mod:`vos_seg.data.synthetic`).
"""

from .benchmarks import ANOMALY_DATASETS, AnomalyDataset, AnomalyFrame, open_anomaly_dataset
from .cityscapes import CITYSCAPES_CLASSES, LABEL_ID_TO_TRAIN_ID, CityscapesSegmentation
from .folder import FolderSegmentation
from .io import IMAGE_SUFFIXES, read_label, read_rgb
from .synthetic import generate_world
from .transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, image_to_tensor, train_transform

__all__ = [
    "ANOMALY_DATASETS",
    "AnomalyDataset",
    "AnomalyFrame",
    "open_anomaly_dataset",
    "CITYSCAPES_CLASSES",
    "LABEL_ID_TO_TRAIN_ID",
    "CityscapesSegmentation",
    "FolderSegmentation",
    "IMAGE_SUFFIXES",
    "read_label",
    "read_rgb",
    "generate_world",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "eval_transform",
    "image_to_tensor",
    "train_transform",
]
