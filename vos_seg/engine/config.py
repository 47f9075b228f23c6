"""Typed training configuration loaded from YAML.

A config file has five sections, each a dataclass below: ``model``, ``data``, ``vos``, ``optim`` and
``run``. Every key is checked when the file is read: an unknown key, a value of the wrong type or a
path that does not exist raises one error naming the key (and, for a typo, the closest valid key),
so a run never starts on a silently ignored setting.

Example:
    >>> cfg = load_config("configs/demo.yaml", ["optim.lr=0.01", "run.output_dir=runs/try"])
    >>> cfg.optim.lr
    0.01
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

__all__ = [
    "ModelConfig",
    "AnomalySplitConfig",
    "DataConfig",
    "VOSConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "save_config",
]


@dataclass
class ModelConfig:
    """The SMP model: ``smp.create_model(arch, encoder_name, encoder_weights, classes=num_classes, **options)``."""

    arch: str = "Unet"
    encoder_name: str = "resnet18"
    encoder_weights: str | None = None  # null: random init (no download); "imagenet" only if cached
    num_classes: int = 19
    class_names: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # extra create_model keywords


@dataclass
class AnomalySplitConfig:
    """An anomaly benchmark split read by ``vos_seg.data.benchmarks.open_anomaly_dataset(name, root)``."""

    name: str = "synthetic"
    root: str = ""
    max_images: int | None = None  # validate on the first N frames only (None: all)


@dataclass
class DataConfig:
    """Training and validation data.

    ``dataset``: ``cityscapes`` (``root/leftImg8bit/<split>``, ``root/gtFine/<split>``), ``synthetic`` (the
    same layout, written by ``tools/make_synthetic.py``) or ``folder`` (``root/images/<split>`` and
    ``root/masks/<split>``).
    """

    dataset: Literal["cityscapes", "folder", "synthetic"] = "cityscapes"
    root: str = ""
    train_split: str = "train"
    val_split: str | None = "val"  # None: no mIoU validation
    label_source: Literal["trainIds", "labelIds"] = "trainIds"  # cityscapes only
    crop_size: list[int] = field(default_factory=lambda: [512, 1024])  # (height, width)
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    batch_size: int = 8
    val_batch_size: int = 1
    num_workers: int = 4
    ignore_index: int = 255
    outlier_value: int | None = None  # label value mapped to -1 (outlier exposure), e.g. 254
    val_max_images: int | None = None
    anomaly: AnomalySplitConfig | None = None  # energy AUROC/AP/FPR95 during validation


@dataclass
class VOSConfig:
    """The VOS plugin (``vos_seg.plugin.VOS``); ``enabled: false`` trains a plain cross-entropy baseline."""

    enabled: bool = True
    alpha: float = 0.1
    queue_size: int = 1000
    pixels_per_class: int = 10
    sample_from: int = 10000
    select: int = 1
    start_fraction: float | None = 0.4  # synthesis starts at this fraction of optim.iterations
    start_iter: int | None = None  # overrides start_fraction when set
    cov_eps: float = 1e-4
    balanced: bool = True
    phi: Literal["linear", "monotone"] = "linear"  # logistic regression on the energy (vos_seg.loss.make_phi)


@dataclass
class OptimConfig:
    """Optimizer, schedule and numerics."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    head_lr_mult: float = 1.0  # lr multiplier for the decoder and head (the encoder runs at lr)
    plugin_lr_mult: float = 1.0  # lr multiplier for the VOS plugin's phi and energy weights
    schedule: Literal["poly", "cosine"] = "poly"
    poly_power: float = 0.9
    warmup_iters: int = 0
    iterations: int = 1000
    grad_clip: float | None = None  # max global grad norm; None: no clipping
    amp: bool = True  # bf16 autocast, on CUDA only
    channels_last: bool = True  # on CUDA only


@dataclass
class RunConfig:
    """Outputs, logging and bookkeeping."""

    output_dir: str = "runs/train"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_format: Literal["csv", "jsonl"] = "csv"
    log_every: int = 10
    val_every: int = 0  # 0: validate only at the end
    checkpoint_every: int = 0  # 0: checkpoint only at validation and at the end
    best_metric: Literal["miou", "auroc", "ap", "fpr95"] = "miou"
    progress: bool = True


@dataclass
class TrainConfig:
    """A whole training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    vos: VOSConfig = field(default_factory=VOSConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


# Paths that must exist when a config is loaded for training.
_REQUIRED_PATHS = ("data.root", "data.anomaly.root")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it converted (int -> float, list -> tuple)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, source)
            except (TypeError, ValueError) as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else TypeError(
            f"'{key}' in {source} must be {_type_name(tp)}, got {value!r}"
        )
    if origin is Literal:
        if value not in args:
            raise ValueError(f"'{key}' in {source} must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TypeError(f"'{key}' in {source} must be a mapping of {tp.__name__} keys, got {value!r}")
        return _build(tp, value, key, source)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"'{key}' in {source} must be a list, got {type(value).__name__} {value!r}")
        item_tp = args[0] if args else Any
        return [_convert(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise TypeError(f"'{key}' in {source} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"'{key}' in {source} must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"'{key}' in {source} must be an integer, got {type(value).__name__} {value!r}")
        return value
    if tp in (bool, str):
        if not isinstance(value, tp):
            raise TypeError(f"'{key}' in {source} must be {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for '{key}'")  # a bug in this module, not user input


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        keys.append(name)
        inner = [a for a in typing.get_args(hints[f.name]) if dataclasses.is_dataclass(a)]
        if dataclasses.is_dataclass(hints[f.name]) or inner:
            keys += _all_keys(inner[0] if inner else hints[f.name], name + ".")
    return keys


def _unknown_key_error(key: str, source: str) -> ValueError:
    close = difflib.get_close_matches(key, _all_keys(TrainConfig), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ValueError(f"unknown key '{key}' in {source}{hint}")


def _build(cls: type, data: dict, prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            raise _unknown_key_error(f"{prefix}.{k}" if prefix else str(k), source)
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        kwargs[k] = _convert(v, hints[k], key, source)
    return cls(**kwargs)


def _set_override(data: dict, override: str) -> None:
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like 'section.key=value'")
    key, raw = override.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    known = _all_keys(TrainConfig)
    if key not in known:
        raise _unknown_key_error(key, "--set")
    node = data
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None


def _check_paths(cfg: TrainConfig, source: str) -> None:
    for key in _REQUIRED_PATHS:
        obj: Any = cfg
        for part in key.split("."):
            obj = getattr(obj, part, None) if obj is not None else None
        if obj is None and key != "data.root":
            continue
        if not obj or not os.path.exists(obj):
            raise FileNotFoundError(f"'{key}' in {source}: path {obj!r} does not exist")


def config_from_dict(data: dict, *, source: str = "config", check_paths: bool = False) -> TrainConfig:
    """Build a :class:`TrainConfig` from a nested dict (for instance one saved in a checkpoint).

    Raises:
        ValueError: unknown key (with the closest valid key) or a value outside a fixed choice.
        TypeError: a value of the wrong type, naming the key.
        FileNotFoundError: ``check_paths`` and ``data.root`` / ``data.anomaly.root`` does not exist.
    """
    if not isinstance(data, dict):
        raise TypeError(f"{source} must be a mapping of sections, got {type(data).__name__}")
    cfg = _build(TrainConfig, data, "", source)
    _validate(cfg, source)
    if check_paths:
        _check_paths(cfg, source)
    return cfg


def _validate(cfg: TrainConfig, source: str) -> None:
    checks = [
        ("model.num_classes", cfg.model.num_classes >= 1),
        ("data.crop_size", len(cfg.data.crop_size) == 2 and min(cfg.data.crop_size) > 0),
        ("data.scale_range", len(cfg.data.scale_range) == 2 and 0 < cfg.data.scale_range[0] <= cfg.data.scale_range[1]),
        ("data.batch_size", cfg.data.batch_size >= 1),
        ("optim.iterations", cfg.optim.iterations >= 1),
        ("optim.lr", cfg.optim.lr > 0),
        ("vos.start_fraction", cfg.vos.start_fraction is None or 0 <= cfg.vos.start_fraction <= 1),
    ]
    names = cfg.model.class_names
    checks.append(("model.class_names", names is None or len(names) == cfg.model.num_classes))
    for key, ok in checks:
        if not ok:
            obj: Any = cfg
            for part in key.split("."):
                obj = getattr(obj, part)
            raise ValueError(f"invalid value for '{key}' in {source}: {obj!r}")


def load_config(path: str | os.PathLike, overrides: list[str] | None = None, *, check_paths: bool = True) -> TrainConfig:
    """Read a YAML config, apply ``key=value`` overrides and check every key, type and path.

    Args:
        path: the YAML file.
        overrides: ``["optim.lr=0.01", "vos.enabled=false"]``; values are parsed as YAML.
        check_paths: require ``data.root`` (and ``data.anomaly.root`` when set) to exist.

    Returns:
        The :class:`TrainConfig`.

    Raises:
        FileNotFoundError: the config file or a configured path does not exist (names the key).
        ValueError: unknown key (e.g. "unknown key 'optim.lrr' in configs/x.yaml (did you mean 'optim.lr'?)"),
            a malformed override, or a value outside its allowed set.
        TypeError: a value of the wrong type, naming the key.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    with open(path) as fh:
        try:
            data = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {path!r} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file {path!r} must hold a mapping of sections, got {type(data).__name__}")
    for override in overrides or []:
        _set_override(data, override)
    return config_from_dict(data, source=path, check_paths=check_paths)


def config_to_dict(cfg: TrainConfig) -> dict:
    """The config as plain nested dicts/lists/scalars (YAML- and ``torch.load(weights_only=True)``-safe)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML (the file ``load_config`` reads back to the same config)."""
    with open(path, "w") as fh:
        yaml.safe_dump(config_to_dict(cfg), fh, sort_keys=False)
