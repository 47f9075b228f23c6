"""Input checks shared by the pixel and component metrics: one place, run before any state changes."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from vos_seg.labels import validate_anomaly_labels

__all__ = ["as_tensor", "check_void_label", "prepare_inputs"]


def as_tensor(value: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Wrap a numpy array (zero-copy when possible) or pass a tensor through.

    Raises:
        TypeError: for anything else.
    """
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous or not value.dtype.isnative:
            value = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("="))
        with warnings.catch_warnings():  # read-only arrays (memory maps, broadcasts) are fine: nothing writes to them
            warnings.filterwarnings("ignore", message=".*not writable.*")
            return torch.from_numpy(value)
    raise TypeError(f"expected `{name}` as numpy array or torch.Tensor, got {type(value).__name__}")


def check_void_label(void_label: int) -> int:
    """Reject a void label that is not an integer or collides with the classes 0 and 1."""
    if isinstance(void_label, bool) or not isinstance(void_label, (int, np.integer)):
        raise TypeError(f"expected an integer `void_label`, got {void_label!r}")
    if void_label in (0, 1):
        raise ValueError(f"`void_label` must differ from 0 (in-distribution) and 1 (anomaly), got {void_label}")
    return int(void_label)


def prepare_inputs(
    scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, void_label: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a (scores, labels) pair and return float32 scores and labels on the scores' device.

    Scores may be any real dtype (float16/bfloat16/float32/float64, integer or bool); they are compared as float32.
    Non-finite scores are rejected on non-void pixels only (void pixels never enter a metric).

    Raises:
        TypeError: for non-array inputs, complex scores or floating-point labels.
        ValueError: for a shape mismatch, labels outside {0, 1, void_label} (values and pixel counts), or NaN/inf
            scores on non-void pixels (how many of each).

    Note:
        Synchronises with the device (the checks read their results on the host).
    """
    scores_t = as_tensor(scores, "scores")
    labels_t = as_tensor(labels, "labels")
    if scores_t.is_complex():
        raise TypeError(f"expected real-valued `scores`, got dtype {scores_t.dtype}")
    if tuple(scores_t.shape) != tuple(labels_t.shape):
        raise ValueError(
            f"`scores` and `labels` must have the same shape, got scores {tuple(scores_t.shape)} "
            f"and labels {tuple(labels_t.shape)}"
        )
    validate_anomaly_labels(labels_t, void_label)
    labels_t = labels_t.to(scores_t.device)
    scores_f = scores_t if scores_t.dtype == torch.float32 else scores_t.to(torch.float32)
    if bool(torch.isfinite(scores_f).all()):  # the common case costs one pass
        return scores_f, labels_t
    bad = ~torch.isfinite(scores_f) & (labels_t != void_label)
    if bool(bad.any()):
        values = scores_f[bad]
        num_nan = int(torch.isnan(values).sum())
        num_pos = int((values == float("inf")).sum())
        num_neg = int((values == float("-inf")).sum())
        hint = " (after conversion to float32)" if scores_t.dtype == torch.float64 else ""
        raise ValueError(
            f"`scores` must be finite on non-void pixels, got {num_nan} NaN, {num_pos} +inf and {num_neg} -inf "
            f"values{hint} among {scores_f.numel()} pixels"
        )
    return scores_f, labels_t
