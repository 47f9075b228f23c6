"""Optimizer over model and plugin parameters, and the learning-rate schedule with warm-up."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

__all__ = ["lr_factor", "build_optimizer", "build_scheduler"]


def lr_factor(iteration: int, *, iterations: int, warmup_iters: int = 0, schedule: str = "poly",
              poly_power: float = 0.9) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based).

    Warm-up: linear from ``1 / warmup_iters`` to 1 over the first ``warmup_iters`` steps. Then
    ``poly``: ``(1 - t) ** poly_power`` or ``cosine``: ``(1 + cos(pi t)) / 2``, with ``t`` the fraction
    of the post-warm-up steps done.

    Raises:
        ValueError: unknown schedule.
    """
    if iteration < warmup_iters:
        return (iteration + 1) / warmup_iters
    t = min(1.0, (iteration - warmup_iters) / max(1, iterations - warmup_iters))
    if schedule == "poly":
        return (1.0 - t) ** poly_power
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"unknown schedule {schedule!r}; expected 'poly' or 'cosine'")


def build_optimizer(model: nn.Module, plugin: nn.Module | None, optim_cfg: Any) -> torch.optim.Optimizer:
    """AdamW or SGD over the model's and the plugin's parameters.

    Groups: encoder weights at ``lr``; decoder and head at ``lr * head_lr_mult``; the plugin's
    (phi and the energy weights) at ``lr * plugin_lr_mult`` without weight decay (decay would pull
    the energy weights towards 0, where the weighted energy degenerates); biases and normalisation
    parameters (1-D tensors) without weight decay.

    Raises:
        ValueError: unknown optimizer name, or a parameter listed twice (model and plugin overlap).
    """
    encoder = getattr(model, "encoder", None)
    enc_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    named = [("model", n, p) for n, p in model.named_parameters()]
    if plugin is not None:
        named += [("plugin", f"vos.{n}", p) for n, p in plugin.named_parameters()]
    seen: set[int] = set()
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for owner, name, p in named:
        if id(p) in seen:
            raise ValueError(f"parameter {name!r} is listed twice (model and plugin share it)")
        seen.add(id(p))
        if not p.requires_grad:
            continue
        kind = "plugin" if owner == "plugin" else "encoder" if id(p) in enc_ids else "decoder"
        groups.setdefault((kind, p.ndim <= 1 or kind == "plugin"), []).append(p)
    mult = {"encoder": 1.0, "decoder": optim_cfg.head_lr_mult, "plugin": optim_cfg.plugin_lr_mult}
    param_groups = [
        {"params": params, "lr": optim_cfg.lr * mult[kind], "weight_decay": 0.0 if no_decay else optim_cfg.weight_decay}
        for (kind, no_decay), params in sorted(groups.items())
    ]
    if optim_cfg.name == "adamw":
        return torch.optim.AdamW(param_groups, lr=optim_cfg.lr)
    if optim_cfg.name == "sgd":
        return torch.optim.SGD(param_groups, lr=optim_cfg.lr, momentum=optim_cfg.momentum)
    raise ValueError(f"unknown optimizer {optim_cfg.name!r}; expected 'adamw' or 'sgd'")


def build_scheduler(optimizer: torch.optim.Optimizer, optim_cfg: Any) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor`; its ``state_dict`` is plain data (checkpoint-safe)."""

    def factor(it: int) -> float:
        return lr_factor(it, iterations=optim_cfg.iterations, warmup_iters=optim_cfg.warmup_iters,
                         schedule=optim_cfg.schedule, poly_power=optim_cfg.poly_power)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
