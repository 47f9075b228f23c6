"""Inference helpers shared by validation, ``tools/evaluate.py`` and ``tools/heatmap.py``.

SMP encoders need inputs whose sides are multiples of 32 (``2**encoder_depth``); ``predict_logits``
pads any size (reflect padding, so borders look like image content) and crops the logits back, so
callers always get logits at the input resolution. Large frames can be run by sliding window,
averaging the logits where windows overlap.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["predict_logits", "preprocess", "pad_to_multiple"]


def pad_to_multiple(images: torch.Tensor, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (N, C, H, W) at the bottom/right to sides divisible by ``multiple``.

    Reflect padding where the image is large enough, replicate otherwise (reflect needs pad < side).

    Returns:
        The padded tensor and the original (H, W).
    """
    h, w = images.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return images, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(images, (0, pw, 0, ph), mode=mode), (h, w)


def _forward(model: nn.Module, images: torch.Tensor, amp: bool, multiple: int) -> torch.Tensor:
    padded, (h, w) = pad_to_multiple(images, multiple)
    ctx = torch.autocast(images.device.type, dtype=torch.bfloat16) if amp else nullcontext()
    with ctx:
        out = model(padded)
    return out[..., :h, :w].float()


def _starts(size: int, window: int, stride: int) -> list[int]:
    if size <= window:
        return [0]
    n = math.ceil((size - window) / stride) + 1
    return [min(i * stride, size - window) for i in range(n)]


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mode: str = "whole",
    crop_size: tuple[int, int] = (512, 1024),
    stride: tuple[int, int] | None = None,
    amp: bool = False,
    multiple: int = 32,
) -> torch.Tensor:
    """Logits of a segmentation model at the input resolution, whole-image or by sliding window.

    The model is used as it is (call ``model.eval()`` first); nothing is moved between devices: the
    images must be on the model's device.

    Args:
        model: maps (N, 3, H', W') with H', W' multiples of ``multiple`` to (N, C, H', W') logits.
        images: normalised images.
        mode: ``"whole"`` runs each image at once; ``"slide"`` runs ``crop_size`` windows with ``stride``
            and averages the logits of overlapping windows.
        crop_size: (height, width) of a sliding window (clipped to the image).
        stride: (height, width) step between windows; default two thirds of ``crop_size``.
        amp: run the model under bf16 autocast (logits are returned in float32 anyway).
        multiple: pad sides to a multiple of this (32 for 5-stage SMP encoders).

    Shape:
        images: (N, 3, H, W) -> logits (N, C, H, W), float32.

    Raises:
        ValueError: ``images`` is not (N, 3, H, W) floating point, or an unknown ``mode`` / bad window.
    """
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"expected normalised float images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if mode == "whole":
        return _forward(model, images, amp, multiple)
    if mode != "slide":
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    ch, cw = (int(v) for v in crop_size)
    if stride is None:
        stride = (max(1, ch * 2 // 3), max(1, cw * 2 // 3))
    sh, sw = (int(v) for v in stride)
    if min(ch, cw, sh, sw) <= 0:
        raise ValueError(f"crop_size and stride must be positive, got {crop_size} and {stride}")
    n, _, h, w = images.shape
    ch, cw = min(ch, h), min(cw, w)
    total = None
    count = torch.zeros((1, 1, h, w), dtype=torch.float32, device=images.device)
    for y in _starts(h, ch, sh):
        for x in _starts(w, cw, sw):
            logits = _forward(model, images[:, :, y : y + ch, x : x + cw], amp, multiple)
            if total is None:
                total = torch.zeros((n, logits.shape[1], h, w), dtype=torch.float32, device=images.device)
            total[:, :, y : y + ch, x : x + cw] += logits
            count[:, :, y : y + ch, x : x + cw] += 1
    return total / count


def preprocess(image: np.ndarray, scale: float = 1.0) -> torch.Tensor:
    """An RGB uint8 image as a normalised float32 tensor (ImageNet mean/std), optionally rescaled.

    Args:
        image: RGB ``uint8`` array.
        scale: resize factor (bilinear) applied before normalising; the output size is rounded.

    Shape:
        image: (H, W, 3) -> (3, round(H*scale), round(W*scale)).

    Raises:
        ValueError: not an (H, W, 3) uint8 array, or ``scale <= 0``.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {desc}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if scale != 1.0:
        import cv2

        h, w = image.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    from vos_seg.data.transforms import image_to_tensor  # lazy: the data package imports albumentations

    return image_to_tensor(np.ascontiguousarray(image))
