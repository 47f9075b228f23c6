"""Validation during training: mIoU on the val split and energy AUROC/AP/FPR95 on an anomaly split.

These helpers synchronise with the device (they read results back to the host); they run between
training steps, never inside one.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from .inference import predict_logits, preprocess

__all__ = ["confusion_matrix", "miou_from_confusion", "evaluate_segmentation", "evaluate_anomaly"]


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``cm[t, p]`` over pixels whose target is a known class (void and outliers skipped).

    Shape:
        pred, target: (N, H, W) integer -> (num_classes, num_classes) int64.
    """
    valid = (target >= 0) & (target < num_classes)
    idx = target[valid] * num_classes + pred[valid]
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou_from_confusion(cm: torch.Tensor) -> tuple[float, list[float], float]:
    """(mean IoU over classes that occur in target or prediction, per-class IoU (nan if absent), pixel acc)."""
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    iou = tp / union.clamp_min(1)
    present = union > 0
    miou = float(iou[present].mean()) if bool(present.any()) else float("nan")
    per_class = [float(v) if p else float("nan") for v, p in zip(iou.tolist(), present.tolist())]
    acc = float(tp.sum() / cm.sum().clamp_min(1))
    return miou, per_class, acc


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, dataset: Dataset, *, num_classes: int, device: torch.device,
                          batch_size: int = 1, num_workers: int = 0, amp: bool = False,
                          max_images: int | None = None, channels_last: bool = False) -> dict[str, Any]:
    """mIoU of ``model`` (eval mode is set and restored by the caller) on a segmentation dataset.

    Items are (image (3, H, W) normalised, target (H, W)); images are padded internally
    (:func:`predict_logits`), so any size works with ``batch_size=1``.

    Returns:
        dict with ``miou``, ``pixel_acc`` and ``iou`` (per class list).
    """
    if max_images is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(max_images, len(dataset))))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    for images, target in loader:
        images, target = images.to(device), target.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = predict_logits(model, images, amp=amp)
        cm += confusion_matrix(logits.argmax(1), target, num_classes)
    miou, iou, acc = miou_from_confusion(cm.cpu())
    return {"miou": miou, "pixel_acc": acc, "iou": iou}


@torch.no_grad()
def evaluate_anomaly(model: nn.Module, frames: Sequence[Any], *, device: torch.device, amp: bool = False,
                     max_images: int | None = None) -> dict[str, float]:
    """AUROC / AP / FPR95 of the free energy ``-logsumexp(logits)`` on anomaly frames.

    Args:
        frames: a Sequence of ``AnomalyFrame`` (``image`` uint8 (H, W, 3), ``labels`` uint8 0/1/255),
            e.g. ``vos_seg.data.benchmarks.open_anomaly_dataset(name, root)``.

    Returns:
        dict with ``auroc``, ``ap``, ``fpr95``.
    """
    from vos_seg.metrics import PixelMetrics
    from vos_seg.scores import energy

    metrics = PixelMetrics(void_label=255, per_image=bool(getattr(frames, "per_image_metrics", False)))
    count = len(frames) if max_images is None else min(max_images, len(frames))
    for i in range(count):
        frame = frames[i]
        x = preprocess(frame.image).unsqueeze(0).to(device)
        scores = energy(predict_logits(model, x, amp=amp))[0]
        metrics.update(scores, torch.as_tensor(frame.labels).to(device))
    out = metrics.compute()
    return {"auroc": float(out["auroc"]), "ap": float(out["ap"]), "fpr95": float(out["fpr95"])}
