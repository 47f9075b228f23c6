"""Label conventions and their validation, in one place.

Two label kinds flow through vos-seg:

* **Training targets** (``validate_target``): integer maps ``(N, H, W)`` (or ``(N,)``) with ``0..C-1`` for known
  classes, ``ignore_index`` (default 255) for void pixels that enter no term, and negative values for real outlier
  pixels (for instance pasted outlier-exposure objects), which enter the outlier side of the VOS regulariser.
* **Anomaly benchmark labels** (``validate_anomaly_labels``): ``0`` in-distribution, ``1`` anomaly, ``void_label``
  (default 255) ignored, as in SegmentMeIfYouCan and Fishyscapes.

Both checks synchronise with the device once (a single ``any()``); the detailed message is only built on failure.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_ignore_index", "validate_target", "validate_anomaly_labels"]


def check_ignore_index(num_classes: int, ignore_index: int) -> None:
    """Reject an ``ignore_index`` that collides with a class id or with the outlier convention (``< 0``).

    Raises:
        ValueError: if ``num_classes < 1`` or ``0 <= ignore_index < num_classes`` or ``ignore_index < 0``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if ignore_index < 0:
        raise ValueError(
            f"ignore_index must be >= num_classes ({num_classes}), got {ignore_index}: "
            "negative labels mark outlier pixels in vos-seg"
        )
    if ignore_index < num_classes:
        raise ValueError(
            f"ignore_index {ignore_index} collides with class id {ignore_index} (num_classes={num_classes}); "
            f"use a value >= {num_classes}, for instance 255"
        )


def _describe_values(values: torch.Tensor, limit: int = 10) -> str:
    unique, counts = torch.unique(values, return_counts=True)
    parts = [f"{int(v)} ({int(c)} pixel{'s' if int(c) != 1 else ''})" for v, c in zip(unique[:limit], counts[:limit])]
    more = f" and {len(unique) - limit} more" if len(unique) > limit else ""
    return ", ".join(parts) + more


def validate_target(target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> None:
    """Check that a training target holds only known classes, the ignore index or negative outlier labels.

    Args:
        target: integer tensor of any shape, usually ``(N, H, W)`` or ``(N,)``.
        num_classes: number of known classes ``C``.
        ignore_index: the void label (must be ``>= C``).

    Raises:
        TypeError: if ``target`` is not an integer tensor.
        ValueError: naming the offending values and their pixel counts, for instance
            ``expected target values in 0..18, 255 (void) or < 0 (outlier), got 300 (2 pixels)``.

    Note:
        One host-device synchronisation (the ``any()`` of the check); skip the call in CUDA loops whose data
        pipeline already validated the labels.
    """
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"expected `target` to be a torch.Tensor, got {type(target).__name__}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"expected an integer `target` (e.g. torch.long), got dtype {target.dtype}")
    bad = (target >= num_classes) & (target != ignore_index)
    if bool(bad.any()):
        raise ValueError(
            f"expected `target` values in 0..{num_classes - 1}, {ignore_index} (void) or < 0 (outlier), "
            f"got {_describe_values(target[bad])}"
        )


def validate_anomaly_labels(labels: np.ndarray | torch.Tensor, void_label: int = 255) -> None:
    """Check that anomaly labels hold only 0 (in-distribution), 1 (anomaly) and ``void_label``.

    Args:
        labels: integer numpy array or tensor of any shape.
        void_label: the label of ignored pixels.

    Raises:
        TypeError: if ``labels`` is floating point.
        ValueError: naming the offending values and their pixel counts.
    """
    if isinstance(labels, np.ndarray):
        if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
            raise TypeError(f"expected integer anomaly labels, got dtype {labels.dtype}")
        bad = (labels != 0) & (labels != 1) & (labels != void_label)
        if bad.any():
            values, counts = np.unique(labels[bad], return_counts=True)
            listed = ", ".join(f"{int(v)} ({int(c)} pixels)" for v, c in zip(values[:10], counts[:10]))
            raise ValueError(f"expected anomaly labels in {{0, 1, {void_label} (void)}}, got {listed}")
        return
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"expected anomaly labels as numpy array or torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point():
        raise TypeError(f"expected integer anomaly labels, got dtype {labels.dtype}")
    bad = (labels != 0) & (labels != 1) & (labels != void_label)
    if bool(bad.any()):
        raise ValueError(f"expected anomaly labels in {{0, 1, {void_label} (void)}}, got {_describe_values(labels[bad])}")
