"""Build the SMP segmentation model described by a :class:`~vos_seg.engine.config.ModelConfig`."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

__all__ = ["build_model"]


def build_model(model_cfg: Any) -> nn.Module:
    """``smp.create_model(arch, encoder_name, encoder_weights, classes=num_classes, **options)``.

    ``encoder_weights`` stays ``None`` (random initialisation, nothing downloaded) unless the config
    asks for pretrained weights, which then must already be in the local cache when offline.

    Args:
        model_cfg: a ``ModelConfig`` or a dict with the same keys (as stored in checkpoints).

    Returns:
        The ``nn.Module`` (in train mode, on the CPU).

    Raises:
        ValueError: unknown architecture / encoder (SMP's message lists the valid names).
    """
    import segmentation_models_pytorch as smp

    get = model_cfg.get if isinstance(model_cfg, dict) else lambda k, d=None: getattr(model_cfg, k, d)
    options = dict(get("options", None) or {})
    reserved = {"arch": "arch", "encoder_name": "encoder_name", "encoder_weights": "encoder_weights", "classes": "num_classes"}
    for key, own in reserved.items():
        if key in options:
            raise ValueError(f"model.options must not set '{key}'; set model.{own} instead")
    try:
        return smp.create_model(
            arch=get("arch"),
            encoder_name=get("encoder_name"),
            encoder_weights=get("encoder_weights", None),
            classes=get("num_classes"),
            **options,
        )
    except KeyError as exc:  # older SMP raises KeyError for unknown names
        raise ValueError(f"cannot build model {get('arch')!r} with encoder {get('encoder_name')!r}: {exc}") from exc
