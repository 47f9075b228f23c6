"""Cityscapes-layout training reader (also reads the synthetic world, which uses the same layout)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .folder import check_reader_args, load_target, make_item
from .io import IMAGE_SUFFIXES, read_label, read_rgb

__all__ = ["CityscapesSegmentation", "CITYSCAPES_CLASSES", "LABEL_ID_TO_TRAIN_ID"]

#: The 19 Cityscapes evaluation classes, in train-id order.
CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)

#: Official cityscapesScripts ``labels.py`` mapping of label ids with a train id (0..18); every
#: other id (0-6 void/static/dynamic/ground, 9 parking, 10 rail track, 14 guard rail, 15 bridge,
#: 16 tunnel, 18 polegroup, 29 caravan, 30 trailer, and anything unknown) is ignored.
LABEL_ID_TO_TRAIN_ID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}

_LABEL_SUFFIX = {"trainIds": "_gtFine_labelTrainIds.png", "labelIds": "_gtFine_labelIds.png"}
_IMAGE_TAG = "_leftImg8bit"


def _label_id_lut(ignore_index: int) -> np.ndarray:
    lut = np.full(256, ignore_index, dtype=np.int32)
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut


class CityscapesSegmentation(Dataset):
    """Cityscapes ``leftImg8bit`` images with ``gtFine`` labels.

    Layout::

        root/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
        root/gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png   (label_source="trainIds")
        root/gtFine/<split>/<city>/<name>_gtFine_labelIds.png        (label_source="labelIds")

    ``trainIds`` files hold 0..num_classes-1 and ``ignore_index`` (and ``outlier_value`` if set;
    the synthetic world writes its outlier-exposure pixels as 254); any other value raises when the
    item is read. ``labelIds`` files are mapped to the 19 train ids with the official table
    (:data:`LABEL_ID_TO_TRAIN_ID`); ids without a train id become ``ignore_index``.

    Args:
        root: dataset root holding ``leftImg8bit/`` and ``gtFine/``.
        split: sub-folder, e.g. ``"train"`` or ``"val"``.
        transform: ``transform(image=, mask=) -> {"image", "mask"}``; None normalises only.
        label_source: ``"trainIds"`` or ``"labelIds"``.
        num_classes: number of train ids (must be 19 with ``"labelIds"``).
        ignore_index: void label value.
        outlier_value: file value marking outlier pixels (returned as -1); ``"trainIds"`` only.

    Shape:
        item: (image float32 (3, H, W), target int64 (H, W)).

    Raises:
        FileNotFoundError: a folder is missing, the split has no images, or an image has no
            label file (the expected path is named).
        ValueError: bad arguments; at item time, bad label values or sizes (the file is named).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        transform: Callable[..., dict] | None = None,
        label_source: str = "trainIds",
        num_classes: int = 19,
        ignore_index: int = 255,
        outlier_value: int | None = None,
    ) -> None:
        if label_source not in _LABEL_SUFFIX:
            raise ValueError(f"`label_source` must be 'trainIds' or 'labelIds', got {label_source!r}")
        if label_source == "labelIds":
            if num_classes != 19:
                raise ValueError(
                    f"label_source='labelIds' maps to the 19 Cityscapes train ids; got num_classes={num_classes}"
                )
            if outlier_value is not None:
                raise ValueError("`outlier_value` is only supported with label_source='trainIds'")
        check_reader_args(num_classes, ignore_index, outlier_value)
        self.root, self.split, self.label_source = Path(root), split, label_source
        self.num_classes, self.ignore_index, self.outlier_value = num_classes, ignore_index, outlier_value
        self.transform = transform
        self._lut = _label_id_lut(ignore_index) if label_source == "labelIds" else None

        image_dir = self.root / "leftImg8bit" / split
        label_dir = self.root / "gtFine" / split
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"Cityscapes folder {str(folder)!r} does not exist")
        images = sorted(
            p for p in image_dir.glob(f"*/*{_IMAGE_TAG}.*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not images:
            raise FileNotFoundError(f"no '<city>/*{_IMAGE_TAG}.png' images under {str(image_dir)!r}")
        self.files: list[tuple[Path, Path]] = []
        for image in images:
            name = image.stem[: -len(_IMAGE_TAG)]
            label = label_dir / image.parent.name / f"{name}{_LABEL_SUFFIX[label_source]}"
            if not label.is_file():
                raise FileNotFoundError(f"image {str(image)!r} has no label file: {str(label)!r} does not exist")
            self.files.append((image, label))

    @property
    def frame_ids(self) -> list[str]:
        """``<name>`` of each ``<name>_leftImg8bit.png``, in item order."""
        return [image.stem[: -len(_IMAGE_TAG)] for image, _ in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def read_target(self, index: int) -> np.ndarray:
        """The validated int32 target (H, W) of item ``index``, before any transform."""
        label_path = self.files[index][1]
        if self._lut is None:
            return load_target(
                label_path, num_classes=self.num_classes, ignore_index=self.ignore_index,
                outlier_value=self.outlier_value,
            )
        raw = read_label(label_path)
        if raw.dtype != np.uint8:
            raise ValueError(f"label file {str(label_path)!r} is {raw.dtype}; Cityscapes labelIds are uint8")
        return self._lut[raw]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.files[index]
        return make_item(read_rgb(image_path), self.read_target(index), self.transform, label_path)
