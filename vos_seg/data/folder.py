"""Training reader for a generic pair of folders (images, masks) and the item logic shared with
the Cityscapes reader: label-value validation at read time, outlier mapping, transform, dtypes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..labels import check_ignore_index, validate_target
from .io import IMAGE_SUFFIXES, read_label, read_rgb
from .transforms import image_to_tensor

__all__ = ["FolderSegmentation"]

Transform = Callable[..., dict]


def load_target(
    path: Path, *, num_classes: int, ignore_index: int, outlier_value: int | None
) -> np.ndarray:
    """Read a train-id label file as an int32 target, ``outlier_value`` pixels set to -1, validated.

    The values are checked where they are read (``vos_seg.labels.validate_target``) so that the
    error names the file.

    Raises:
        FileNotFoundError / ValueError: from :func:`~vos_seg.data.io.read_label`.
        ValueError: a value outside 0..num_classes-1, ``ignore_index`` and ``outlier_value``,
            naming ``path``, the values and their pixel counts.
    """
    raw = read_label(path)
    target = raw.astype(np.int32)
    if outlier_value is not None:
        target[raw == outlier_value] = -1
    try:
        validate_target(torch.from_numpy(target), num_classes, ignore_index)
    except ValueError as exc:
        raise ValueError(f"label file {str(path)!r} (outlier_value={outlier_value}): {exc}") from exc
    return target


def check_reader_args(num_classes: int, ignore_index: int, outlier_value: int | None) -> None:
    """Reject an ignore index or outlier value that collides with the class ids or each other."""
    check_ignore_index(num_classes, ignore_index)
    if outlier_value is not None and (outlier_value == ignore_index or 0 <= outlier_value < num_classes):
        raise ValueError(
            f"`outlier_value` {outlier_value} collides with the class ids 0..{num_classes - 1} "
            f"or `ignore_index` {ignore_index}"
        )


def make_item(
    image: np.ndarray, target: np.ndarray, transform: Transform | None, label_path: Path
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` to an RGB image and an int32 target; return (float32 image, int64 target).

    ``transform`` is called as ``transform(image=uint8 (H, W, 3), mask=int32 (H, W))`` and must
    return a dict with ``image`` and ``mask`` (numpy or torch); None means normalise only.
    """
    if image.shape[:2] != target.shape:
        raise ValueError(
            f"label file {str(label_path)!r} is {target.shape[0]}x{target.shape[1]} but its image "
            f"is {image.shape[0]}x{image.shape[1]}"
        )
    if transform is None:
        return image_to_tensor(image), torch.from_numpy(target.astype(np.int64))
    out = transform(image=image, mask=target)
    img, mask = out["image"], out["mask"]
    if isinstance(img, np.ndarray):
        img = image_to_tensor(img) if img.dtype == np.uint8 else torch.from_numpy(img.transpose(2, 0, 1).copy())
    mask = torch.as_tensor(mask)
    return img.to(torch.float32), mask.to(torch.int64)


class FolderSegmentation(Dataset):
    """Images and label masks in two folders, paired by file stem.

    ``images_dir/<stem>.<png|jpg|jpeg|webp>`` pairs with ``masks_dir/<stem><mask_suffix>``. Mask
    values are train ids 0..num_classes-1, ``ignore_index`` (void), and optionally
    ``outlier_value`` (outlier-exposure pixels, returned as -1 for the VOS loss); any other value
    raises when the item is read, naming the file. Masks without an image are ignored.

    Args:
        images_dir: folder of RGB images (not searched recursively).
        masks_dir: folder of single-channel mask images.
        num_classes: number of known classes.
        transform: ``transform(image=, mask=) -> {"image", "mask"}`` such as
            :func:`~vos_seg.data.transforms.train_transform`; None normalises only.
        ignore_index: void label value, kept as is.
        outlier_value: file value marking outlier pixels (mapped to -1), or None.
        mask_suffix: what follows the stem in a mask's file name, e.g. ``"_mask.png"``.

    Shape:
        item: (image float32 (3, H, W), target int64 (H, W)).

    Raises:
        FileNotFoundError: a folder is missing, holds no images, or an image has no mask (named).
        ValueError: bad arguments; at item time, a label value outside the allowed set or a
            mask/image size mismatch (the file is named).
    """

    def __init__(
        self,
        images_dir: str | os.PathLike,
        masks_dir: str | os.PathLike,
        *,
        num_classes: int,
        transform: Transform | None = None,
        ignore_index: int = 255,
        outlier_value: int | None = None,
        mask_suffix: str = ".png",
    ) -> None:
        check_reader_args(num_classes, ignore_index, outlier_value)
        self.images_dir, self.masks_dir = Path(images_dir), Path(masks_dir)
        for folder in (self.images_dir, self.masks_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"folder {str(folder)!r} does not exist")
        self.num_classes, self.ignore_index, self.outlier_value = num_classes, ignore_index, outlier_value
        self.transform = transform
        images = sorted(p for p in self.images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(self.images_dir)!r}")
        stems: dict[str, Path] = {}
        for path in images:
            if path.stem in stems:
                raise ValueError(f"two images share the stem {path.stem!r}: {str(stems[path.stem])!r}, {str(path)!r}")
            stems[path.stem] = path
        self.files: list[tuple[Path, Path]] = []
        for stem, image in stems.items():
            mask = self.masks_dir / f"{stem}{mask_suffix}"
            if not mask.is_file():
                raise FileNotFoundError(f"image {str(image)!r} has no mask: {str(mask)!r} does not exist")
            self.files.append((image, mask))

    @property
    def frame_ids(self) -> list[str]:
        """Image stems, in item order."""
        return [image.stem for image, _ in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.files[index]
        target = load_target(
            mask_path, num_classes=self.num_classes, ignore_index=self.ignore_index,
            outlier_value=self.outlier_value,
        )
        return make_item(read_rgb(image_path), target, self.transform, mask_path)
