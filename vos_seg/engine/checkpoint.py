"""The vos-seg checkpoint format: one place that writes, reads and turns checkpoints into models.

A checkpoint is a ``torch.save`` of a plain dict that ``torch.load(weights_only=True)`` can read back
(tensors, numbers, strings, lists, dicts and None only; no pickled objects):

=================  ============================================================================
``format_version``  int, :data:`FORMAT_VERSION`
``config``          the resolved training config as plain nested dicts (``config_to_dict``)
``model``           the SMP model's ``state_dict`` (unwrapped from DDP)
``vos``             the VOS plugin's ``state_dict`` (``loss.*`` keys hold phi and the energy
                    weights) or None for a cross-entropy baseline
``optimizer``       ``optimizer.state_dict()`` (or None)
``scheduler``       ``scheduler.state_dict()`` (or None)
``scaler``          ``GradScaler.state_dict()`` (or None)
``rng``             :func:`capture_rng_state` output: torch, cuda, numpy, python and named generators
``iteration``       int, the number of optimizer steps taken
``best_metric``     float or None, the best validation value so far
=================  ============================================================================

Writes are atomic: the dict goes to a temporary file in the same folder, which then replaces the
target with ``os.replace``, so a crash or kill mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from vos_seg.plugin import loss_from_state_dict

__all__ = [
    "FORMAT_VERSION",
    "CHECKPOINT_KEYS",
    "InferenceModel",
    "save_checkpoint",
    "load_checkpoint",
    "load_inference_model",
    "capture_rng_state",
    "restore_rng_state",
]

FORMAT_VERSION = 1
CHECKPOINT_KEYS = (
    "format_version", "config", "model", "vos", "optimizer", "scheduler", "scaler", "rng", "iteration",
    "best_metric",
)


@dataclass
class InferenceModel:
    """A trained model ready for inference, as returned by :func:`load_inference_model`.

    Attributes:
        model: the SMP model in ``eval()`` mode on the requested device.
        vos_loss: the trained ``VOSSegLoss`` (phi and energy weights, for ``weighted_energy`` and
            ``vos_posterior`` scores), on the same device, or None for a baseline run without VOS.
        num_classes: number of known classes.
        class_names: one name per class (``class_0``... when the config named none).
        ignore_index: the void label used in training.
        config: the resolved training config (plain dict).
    """

    model: nn.Module
    vos_loss: nn.Module | None
    num_classes: int
    class_names: list[str]
    ignore_index: int
    config: dict


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        path: the target file; its folder is created if needed.
        state: the checkpoint dict (see the module docstring); ``format_version`` is filled in if absent.

    Raises:
        ValueError: ``state`` misses a checkpoint key.
        Whatever ``torch.save`` raises; the previous file at ``path`` is then left untouched.
    """
    path = Path(path)
    state = {"format_version": FORMAT_VERSION, **state}
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state for {str(path)!r} misses keys {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check it is one of ours.

    Raises:
        FileNotFoundError: ``path`` does not exist (named).
        ValueError: the file is not a vos-seg checkpoint (unreadable, not a dict, missing keys, or a
            newer ``format_version``), naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{path!r} is not a readable vos-seg checkpoint: {exc}") from exc
    if not isinstance(state, dict) or "format_version" not in state:
        raise ValueError(f"{path!r} is not a vos-seg checkpoint (no 'format_version' key)")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f"{path!r} is not a complete vos-seg checkpoint: missing keys {missing}")
    if state["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} has checkpoint format {state['format_version']}, newer than this vos-seg "
            f"({FORMAT_VERSION}); upgrade vos-seg"
        )
    return state


def load_inference_model(path: str | os.PathLike, device: str | torch.device | None = None) -> InferenceModel:
    """Load a checkpoint into a ready model (eval mode, on ``device``) for evaluation and heatmaps.

    Args:
        path: a checkpoint written by the training tool (``last.pt`` or ``best.pt``).
        device: where to put the model; None picks CUDA when available, else the CPU.

    Returns:
        An :class:`InferenceModel`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a vos-seg checkpoint, or its weights do not fit its config.
    """
    from vos_seg.engine.model import build_model

    state = load_checkpoint(path)
    cfg = state["config"]
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise ValueError(f"checkpoint {os.fspath(path)!r} holds no model config")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model_cfg = dict(cfg["model"])
    model_cfg["encoder_weights"] = None  # the checkpoint has the weights; never download
    model = build_model(model_cfg)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {os.fspath(path)!r}: weights do not fit its model config: {exc}") from exc
    model.to(device).eval()
    num_classes = int(model_cfg["num_classes"])
    vos_loss = None
    if state["vos"] is not None:
        vos_loss = loss_from_state_dict(state["vos"], num_classes).to(device).eval()
    names = model_cfg.get("class_names") or [f"class_{i}" for i in range(num_classes)]
    return InferenceModel(
        model=model,
        vos_loss=vos_loss,
        num_classes=num_classes,
        class_names=list(names),
        ignore_index=int(cfg.get("data", {}).get("ignore_index", 255)),
        config=cfg,
    )


def capture_rng_state(generators: dict[str, torch.Generator] | None = None) -> dict:
    """Every random state a run depends on, as tensors and plain values (``weights_only``-loadable).

    Args:
        generators: extra named ``torch.Generator`` objects (the plugin's, the data loader's).

    Returns:
        dict with ``torch``, ``cuda`` (list, empty without CUDA), ``numpy``, ``python`` and ``generators``.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {
            "kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64), "gauss_next": gauss_next},
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }


def restore_rng_state(state: dict, generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured (the global RNGs and the named generators).

    Raises:
        ValueError: a named generator is missing from ``state``.
    """
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    npst = state["numpy"]
    np.random.set_state(
        (npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    for name, g in (generators or {}).items():
        if name not in state["generators"]:
            raise ValueError(f"checkpoint RNG state has no generator {name!r} (has {sorted(state['generators'])})")
        g.set_state(state["generators"][name])
