"""Training and evaluation augmentation (albumentations 2.0.x) that keeps label values intact.

Masks travel through the pipeline as ``int32`` (OpenCV cannot warp ``int64``) with nearest
interpolation, so that void (``ignore_index``), outlier pixels (negative values) and any class id
survive scaling, padding, cropping and flipping unchanged; they leave as ``int64`` tensors.
Padded mask pixels get ``ignore_index`` and padded image pixels the ImageNet mean (zero after
normalisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SegmentationTransform",
    "train_transform",
    "eval_transform",
    "image_to_tensor",
]

#: ImageNet channel means (RGB, 0..1), the statistics every SMP/timm ImageNet encoder expects.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: ImageNet channel standard deviations (RGB, 0..1).
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Padding colour for uint8 images: the mean, so that padded pixels are ~0 after normalisation.
_MEAN_UINT8 = tuple(round(255 * m) for m in IMAGENET_MEAN)


def _check_image(image: Any) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise TypeError(f"expected `image` as np.uint8 array (H, W, 3) RGB, got {desc.strip()}")


class SegmentationTransform:
    """An ``A.Compose`` pipeline with the mask dtype handling and DataLoader-worker seeding.

    Call it as ``transform(image=image, mask=mask)``; it returns a dict with ``image`` a float32
    tensor (3, H, W) and, when a mask was given, ``mask`` an int64 tensor (H, W).

    albumentations 2.0.8 gives each ``Compose`` its own random generator, which forked
    ``DataLoader`` workers would copy, so that every worker repeats the same augmentations. In a
    worker, this wrapper reseeds the pipeline once from ``torch.utils.data.get_worker_info().seed``
    (distinct per worker and epoch, reproducible when the DataLoader has a seeded ``generator``).

    Args:
        compose: the albumentations pipeline; ends with ``ToTensorV2``.

    Attributes:
        compose: the wrapped ``A.Compose``.
    """

    def __init__(self, compose: A.Compose) -> None:
        self.compose = compose
        self._worker_seed: int | None = None

    def set_random_seed(self, seed: int | None) -> None:
        """Reseed the pipeline's own generator (``None``: fresh OS entropy)."""
        self.compose.set_random_seed(seed)

    def _maybe_reseed_for_worker(self) -> None:
        info = torch.utils.data.get_worker_info()
        if info is not None and self._worker_seed != info.seed:
            self._worker_seed = info.seed
            self.compose.set_random_seed(int(info.seed % 2**32))

    def __call__(self, *, image: np.ndarray, mask: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Apply the pipeline.

        Args:
            image: RGB ``uint8`` (H, W, 3).
            mask: integer labels (H, W) or None; any values (negative, 255, > 255) are preserved.

        Returns:
            ``{"image": float32 (3, H', W'), "mask": int64 (H', W')}`` (``mask`` only if given).

        Raises:
            TypeError: ``image`` is not uint8 (H, W, 3) or ``mask`` is not an integer array.
            ValueError: ``mask`` and ``image`` differ in height/width.
        """
        _check_image(image)
        self._maybe_reseed_for_worker()
        if mask is None:
            return {"image": self.compose(image=image)["image"]}
        mask = np.asarray(mask)
        if not np.issubdtype(mask.dtype, np.integer):
            raise TypeError(f"expected an integer `mask`, got dtype {mask.dtype}")
        if mask.shape != image.shape[:2]:
            raise ValueError(f"`mask` shape {mask.shape} differs from image size {image.shape[:2]}")
        if mask.dtype.itemsize > 4 or mask.dtype == np.uint32:
            lo, hi = int(mask.min()), int(mask.max())
            if lo < np.iinfo(np.int32).min or hi > np.iinfo(np.int32).max:
                raise ValueError(f"`mask` values {lo}..{hi} do not fit int32")
        out = self.compose(image=image, mask=mask.astype(np.int32, copy=False))
        return {"image": out["image"], "mask": out["mask"].long()}

    def __repr__(self) -> str:
        return f"SegmentationTransform({self.compose!r})"


def _normalise_and_tensor() -> list[A.BasicTransform]:
    return [A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0), ToTensorV2()]


def train_transform(
    crop_size: int | Sequence[int],
    *,
    scale_range: tuple[float, float] = (0.5, 2.0),
    ignore_index: int = 255,
    hflip: bool = True,
    color_jitter: bool = True,
    seed: int | None = None,
) -> SegmentationTransform:
    """Training augmentation: random scale, pad, random crop, flip, colour jitter, normalise.

    Steps: ``RandomScale`` by a factor uniform in ``scale_range`` (linear for the image, nearest
    for the mask) -> ``PadIfNeeded`` to the crop size (image filled with the ImageNet mean, mask
    with ``ignore_index``) -> ``RandomCrop`` -> ``HorizontalFlip`` (p=0.5) -> ``ColorJitter``
    (brightness/contrast/saturation 0.25, hue 0.05, p=0.8) -> ``Normalize`` (ImageNet) -> tensor.
    Built with ``A.Compose(..., strict=True)``.

    Args:
        crop_size: output (height, width), or one int for a square crop.
        scale_range: (min, max) scale factors, 0 < min <= max.
        ignore_index: label written into padded mask pixels.
        hflip: random horizontal flips.
        color_jitter: random photometric jitter.
        seed: seed of the pipeline's own generator (None: OS entropy). The global RNGs are
            neither used nor touched; DataLoader workers reseed per worker (see
            :class:`SegmentationTransform`).

    Returns:
        a :class:`SegmentationTransform`; output image float32 (3, crop_h, crop_w), mask int64.

    Raises:
        ValueError: non-positive crop size or an invalid ``scale_range``.

    Example:
        >>> t = train_transform((64, 128), seed=0)
        >>> out = t(image=np.zeros((50, 80, 3), np.uint8), mask=np.zeros((50, 80), np.uint8))
        >>> tuple(out["image"].shape), out["mask"].dtype
        ((3, 64, 128), torch.int64)
    """
    crop_h, crop_w = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    if crop_h <= 0 or crop_w <= 0:
        raise ValueError(f"`crop_size` must be positive, got {crop_size!r}")
    lo, hi = (float(s) for s in scale_range)
    if not 0 < lo <= hi:
        raise ValueError(f"`scale_range` must satisfy 0 < min <= max, got {scale_range!r}")
    steps: list[A.BasicTransform] = [
        # albumentations biases scale_limit by 1: factor = 1 + uniform(limit).
        A.RandomScale(
            scale_limit=(lo - 1.0, hi - 1.0),
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST,
            p=1.0,
        ),
        A.PadIfNeeded(
            min_height=crop_h,
            min_width=crop_w,
            position="random",
            border_mode=cv2.BORDER_CONSTANT,
            fill=_MEAN_UINT8,
            fill_mask=ignore_index,
        ),
        A.RandomCrop(height=crop_h, width=crop_w),
    ]
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    if color_jitter:
        steps.append(A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.05, p=0.8))
    steps += _normalise_and_tensor()
    return SegmentationTransform(A.Compose(steps, strict=True, seed=seed))


def eval_transform(*, pad_multiple: int = 32, ignore_index: int = 255) -> SegmentationTransform:
    """Evaluation preprocessing: normalise, pad bottom/right to a multiple of ``pad_multiple``.

    Padding goes at the bottom and right (``position="top_left"``), so the original frame is
    ``out[..., :H, :W]``; padded image pixels are 0 (the mean after normalisation), padded mask
    pixels ``ignore_index``. ``pad_multiple=1`` disables padding.

    Args:
        pad_multiple: output height and width are rounded up to a multiple of this (>= 1).
        ignore_index: label written into padded mask pixels.

    Returns:
        a :class:`SegmentationTransform` (deterministic).

    Raises:
        ValueError: ``pad_multiple < 1``.
    """
    if pad_multiple < 1:
        raise ValueError(f"`pad_multiple` must be >= 1, got {pad_multiple}")
    steps: list[A.BasicTransform] = [A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0)]
    if pad_multiple > 1:
        steps.append(
            A.PadIfNeeded(
                min_height=None,
                min_width=None,
                pad_height_divisor=pad_multiple,
                pad_width_divisor=pad_multiple,
                position="top_left",
                border_mode=cv2.BORDER_CONSTANT,
                fill=0.0,
                fill_mask=ignore_index,
            )
        )
    steps.append(ToTensorV2())
    return SegmentationTransform(A.Compose(steps, strict=True, seed=0))


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """Normalise an RGB ``uint8`` image with the ImageNet statistics, for inference.

    Same arithmetic as ``A.Normalize`` in the pipelines above: ``(x / 255 - mean) / std``.

    Args:
        image: RGB ``np.uint8`` (H, W, 3).

    Shape:
        returns (3, H, W).

    Returns:
        float32 CPU tensor.

    Raises:
        TypeError: ``image`` is not a uint8 (H, W, 3) array.
    """
    _check_image(image)
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32).div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return x.sub_(mean).div_(std)
