"""Fitting the standardized max logit for evaluation from the data a checkpoint was trained on.

Jung et al. (ICCV 2021) take the per-class max-logit statistics on the *training* set. A vos-seg checkpoint
records its training data in its config (``data.dataset``, ``data.root``, ``data.train_split``); when that
folder exists here, :func:`sml_from_config` fits on up to ``max_images`` of its images (evenly spaced over the
split, no augmentation, void and outlier-exposure pixels left out). Fitting on the benchmark's own images would
peek at the test data, so without training data the ``sml`` score is skipped instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch.nn as nn
from tqdm.auto import tqdm

from .sources import fit_sml
from ..scores import StandardizedMaxLogit

__all__ = ["sml_from_config", "training_reader_from_config"]


def training_reader_from_config(config: dict, num_classes: int, ignore_index: int = 255):
    """The training-split reader a checkpoint config names (no augmentation: normalised images only).

    Returns:
        A ``CityscapesSegmentation`` or ``FolderSegmentation`` yielding ``(image, target)``.

    Raises:
        FileNotFoundError: the data folder does not exist here (named).
        ValueError: the config names no training data.
    """
    data = (config or {}).get("data") or {}
    root, split = data.get("root"), data.get("train_split", "train")
    if not root:
        raise ValueError("the checkpoint config names no training data (data.root is empty)")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"training data folder {root!r} (data.root of the checkpoint config) does not exist")
    kind = data.get("dataset", "cityscapes")
    common = dict(num_classes=num_classes, ignore_index=ignore_index, outlier_value=data.get("outlier_value"))
    if kind in ("cityscapes", "synthetic"):
        from ..data.cityscapes import CityscapesSegmentation

        return CityscapesSegmentation(root, split, label_source=data.get("label_source", "trainIds"), **common)
    if kind == "folder":
        from ..data.folder import FolderSegmentation

        return FolderSegmentation(Path(root) / "images" / split, Path(root) / "masks" / split, **common)
    raise ValueError(f"unknown data.dataset {kind!r} in the checkpoint config")


def sml_from_config(
    model: nn.Module,
    config: dict | None,
    num_classes: int | None,
    ignore_index: int = 255,
    *,
    max_images: int = 500,
    mode: str = "whole",
    crop_size: tuple[int, int] = (512, 1024),
    amp: bool = False,
    progress: bool = True,
) -> tuple[StandardizedMaxLogit | None, str]:
    """Fit SML on the checkpoint's training split, or say why not.

    Args:
        model: the segmentation network.
        config: the checkpoint's resolved config (plain dict), or None for a bare model.
        num_classes: ``C`` (None for a bare model).
        max_images: at most this many training images, evenly spaced over the split.

    Returns:
        ``(fitted StandardizedMaxLogit, "")`` or ``(None, reason)``.
    """
    if config is None or num_classes is None:
        return None, (
            "'sml' needs in-distribution statistics: pass a fitted StandardizedMaxLogit (sml=...) or a checkpoint "
            "whose config names its training data"
        )
    if max_images < 1:
        return None, f"'sml' fitting disabled (sml_max_images={max_images})"
    try:
        reader = training_reader_from_config(config, num_classes, ignore_index)
    except (FileNotFoundError, ValueError) as exc:
        return None, f"'sml' needs the training data to fit its statistics: {exc}"
    count = min(len(reader), max_images)
    indices = np.unique(np.linspace(0, len(reader) - 1, count).round().astype(int))
    samples = (reader[int(i)] for i in tqdm(indices, desc="sml: fitting on training images", disable=not progress))
    return fit_sml(model, samples, num_classes, ignore_index=ignore_index, mode=mode, crop_size=crop_size, amp=amp), ""
