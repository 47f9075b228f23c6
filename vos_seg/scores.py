"""Per-pixel anomaly scores computed from segmentation logits.

Every score maps logits ``(N, C, H, W)`` (or classification logits ``(N, C)``) to a float32 map ``(N, H, W)``
(or ``(N,)``) where **higher means more anomalous**. All of them compute in float32 whatever the input dtype
(fp16/bf16 under autocast), so they stay finite for any finite input, including logits of magnitude 1e4.

This module is the one place where the (weighted) energy is computed; the loss and the tools call it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:  # pragma: no cover
    from .loss import VOSSegLoss

__all__ = [
    "SCORE_NAMES",
    "energy",
    "weighted_energy",
    "max_logit",
    "msp",
    "entropy",
    "vos_posterior",
    "StandardizedMaxLogit",
    "compute_scores",
]

SCORE_NAMES = ("energy", "weighted_energy", "vos_posterior", "msp", "max_logit", "entropy", "sml")

# log of the smallest normal float32: the weight every class gets when no energy weight is positive.
_LOG_TINY = math.log(torch.finfo(torch.float32).tiny)


def _check_logits(logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"expected logits as a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() not in (2, 4):
        raise ValueError(f"expected logits of shape (N, C, H, W) or (N, C), got {tuple(logits.shape)}")
    return logits.float()


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    r"""Free energy :math:`E(x) = -T \log \sum_c e^{f_c(x) / T}` (Liu et al., NeurIPS 2020).

    Args:
        logits: ``(N, C, H, W)`` or ``(N, C)``.
        temperature: ``T > 0``.

    Returns:
        float32 ``(N, H, W)`` or ``(N,)``; higher = more anomalous.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = _check_logits(logits)
    return -temperature * torch.logsumexp(logits / temperature, dim=1)


def weighted_energy(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""VOS weighted energy :math:`E(x) = -\log \sum_c \mathrm{relu}(w_c)\, e^{f_c(x)}` (Du et al., ICLR 2022).

    Computed as ``-logsumexp(f_c + log relu(w_c))`` in float32: the max-subtraction inside ``logsumexp`` keeps it
    from overflowing, and classes with ``w_c <= 0`` drop out of the sum exactly.

    Guard: if no weight is positive the sum would be 0 and the energy infinite; every class then counts with
    the smallest normal float32 weight instead, giving ``energy(logits) - log(tiny)`` (about ``energy + 87.3``),
    finite, with zero gradient towards the weights (as through ``relu``).

    Args:
        logits: ``(N, C, H, W)`` or ``(N, C)``.
        weights: ``(C,)`` raw energy weights (``relu`` is applied here), e.g. ``nn.Linear(C, 1).weight``
            (any shape with ``C`` elements).

    Returns:
        float32 ``(N, H, W)`` or ``(N,)``; higher = more anomalous.
    """
    logits = _check_logits(logits)
    num_classes = logits.shape[1]
    if weights.numel() != num_classes:
        raise ValueError(
            f"expected {num_classes} energy weights for logits of shape {tuple(logits.shape)}, "
            f"got weights of shape {tuple(weights.shape)}"
        )
    w = F.relu(weights.reshape(-1).float())
    positive = w > 0
    # log only where positive: the unused branch must not produce NaN gradients at w == 0.
    log_w = torch.where(positive, torch.log(torch.where(positive, w, torch.ones_like(w))), float("-inf"))
    log_w = torch.where(positive.any(), log_w, torch.full_like(log_w, _LOG_TINY))
    shape = (1, num_classes) + (1,) * (logits.dim() - 2)
    return -torch.logsumexp(logits + log_w.view(shape), dim=1)


def max_logit(logits: torch.Tensor) -> torch.Tensor:
    """Negative maximum logit ``-max_c f_c`` (Hendrycks et al., ICML 2022). Shapes as :func:`energy`."""
    return -_check_logits(logits).amax(dim=1)


def msp(logits: torch.Tensor) -> torch.Tensor:
    """One minus the maximum softmax probability (Hendrycks & Gimpel, ICLR 2017). Values in [0, 1)."""
    return 1.0 - torch.softmax(_check_logits(logits), dim=1).amax(dim=1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    r"""Softmax entropy normalised by :math:`\log C`, in [0, 1]. Needs ``C >= 2``."""
    logits = _check_logits(logits)
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ValueError(f"entropy needs at least 2 classes, got logits of shape {tuple(logits.shape)}")
    log_p = torch.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1) / math.log(num_classes)


def vos_posterior(logits: torch.Tensor, loss: "VOSSegLoss") -> torch.Tensor:
    """Outlier probability from the trained VOS logistic regression ``phi`` on the weighted energy.

    ``phi`` maps the weighted energy to two logits (class 0 outlier, class 1 in-distribution); this returns
    ``softmax(phi(E))[0]``, in [0, 1].

    Args:
        logits: ``(N, C, H, W)`` or ``(N, C)``.
        loss: a trained :class:`vos_seg.VOSSegLoss` (its ``weights_energy`` and ``phi`` are used).
    """
    return loss.outlier_probability(logits)


class StandardizedMaxLogit(nn.Module):
    r"""Standardized max logit (Jung et al., ICCV 2021), negated so that higher = more anomalous.

    .. math::
        s(x) = -\frac{\max_c f_c(x) - \mu_{\hat c}}{\sigma_{\hat c}}, \qquad \hat c = \arg\max_c f_c(x)

    where :math:`\mu_c, \sigma_c` are the mean and standard deviation of the max logit over the pixels
    predicted as class ``c`` on in-distribution (training) data. Statistics accumulate in float64 over any
    number of :meth:`fit` calls (state: three ``(C,)`` buffers). A class seen fewer than two times falls back to
    the statistics pooled over all classes.

    Paper: https://arxiv.org/abs/2107.11264

    Example:
        >>> sml = StandardizedMaxLogit(num_classes=3)
        >>> sml.fit(torch.randn(2, 3, 8, 8))
        >>> sml(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("total", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("total_sq", torch.zeros(num_classes, dtype=torch.float64))

    def reset(self) -> None:
        self.count.zero_()
        self.total.zero_()
        self.total_sq.zero_()

    @torch.no_grad()
    def fit(self, logits: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Accumulate max-logit statistics per predicted class.

        Args:
            logits: ``(N, C, H, W)`` or ``(N, C)`` in-distribution logits.
            valid: optional bool mask ``(N, H, W)`` / ``(N,)`` of the pixels to use (e.g. non-void).
        """
        logits = _check_logits(logits)
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} channels, got logits of shape {tuple(logits.shape)}")
        top, pred = logits.max(dim=1)
        weight = torch.ones_like(top, dtype=torch.float64)
        if valid is not None:
            if valid.shape != top.shape:
                raise ValueError(f"valid mask shape {tuple(valid.shape)} does not match {tuple(top.shape)}")
            weight = weight * valid.to(weight.device, torch.float64)
        top = top.double().reshape(-1)
        pred = pred.reshape(-1).to(self.count.device)
        weight = weight.reshape(-1).to(self.count.device)
        self.count.index_add_(0, pred, weight)
        self.total.index_add_(0, pred, weight * top.to(self.count.device))
        self.total_sq.index_add_(0, pred, weight * top.to(self.count.device) ** 2)

    def statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class mean and standard deviation ``(C,)`` each (float64), with the pooled fallback."""
        n_all = self.count.sum()
        if not bool(n_all >= 2):
            raise ValueError("StandardizedMaxLogit is not fitted: call fit() on in-distribution logits first")
        mean_all = self.total.sum() / n_all
        var_all = (self.total_sq.sum() / n_all - mean_all**2).clamp_min(0)
        enough = self.count >= 2
        n = self.count.clamp_min(1)
        mean = torch.where(enough, self.total / n, mean_all)
        var = torch.where(enough, (self.total_sq / n - mean**2).clamp_min(0), var_all)
        std = var.sqrt().clamp_min(1e-6)
        return mean, std

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """Score logits ``(N, C, H, W)`` or ``(N, C)``; returns float32 ``(N, H, W)`` or ``(N,)``."""
        logits = _check_logits(logits)
        mean, std = self.statistics()
        top, pred = logits.max(dim=1)
        mean, std = mean.to(top.device), std.to(top.device)
        return (-(top.double() - mean[pred]) / std[pred]).float()


def compute_scores(
    logits: torch.Tensor,
    names: Iterable[str],
    *,
    vos_loss: "VOSSegLoss | None" = None,
    sml: StandardizedMaxLogit | None = None,
) -> dict[str, torch.Tensor]:
    """Compute several scores from the same logits.

    Args:
        logits: ``(N, C, H, W)`` or ``(N, C)``.
        names: any of :data:`SCORE_NAMES`.
        vos_loss: the trained :class:`vos_seg.VOSSegLoss`, needed by ``weighted_energy`` and ``vos_posterior``.
        sml: a fitted :class:`StandardizedMaxLogit`, needed by ``sml``.

    Returns:
        ``{name: float32 (N, H, W)}``, higher = more anomalous.

    Raises:
        ValueError: for an unknown name, or a score whose model part (``vos_loss``, ``sml``) is missing.
    """
    scores: dict[str, torch.Tensor] = {}
    for name in names:
        if name not in SCORE_NAMES:
            raise ValueError(f"unknown score {name!r}; choose from {', '.join(SCORE_NAMES)}")
        if name in ("weighted_energy", "vos_posterior") and vos_loss is None:
            raise ValueError(f"score {name!r} needs the trained VOS loss (a checkpoint trained with the VOS plugin)")
        if name == "sml" and sml is None:
            raise ValueError("score 'sml' needs a fitted StandardizedMaxLogit")
        if name == "energy":
            scores[name] = energy(logits)
        elif name == "weighted_energy":
            scores[name] = vos_loss.weighted_energy(logits)
        elif name == "vos_posterior":
            scores[name] = vos_posterior(logits, vos_loss)
        elif name == "msp":
            scores[name] = msp(logits)
        elif name == "max_logit":
            scores[name] = max_logit(logits)
        elif name == "entropy":
            scores[name] = entropy(logits)
        else:
            scores[name] = sml(logits)
    return scores
