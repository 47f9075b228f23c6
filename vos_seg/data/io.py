"""Image and label-map reading with one set of conversions and error messages for every reader.

Images come back as RGB ``uint8`` (H, W, 3) whatever is on disk (grayscale, BGRA, 16-bit PNG,
JPEG, WebP); label maps as single-channel integer arrays. A missing file raises
``FileNotFoundError`` and an undecodable one ``ValueError``, both naming the path, so that a
failure deep inside a ``DataLoader`` worker still says which file is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

__all__ = ["IMAGE_SUFFIXES", "read_rgb", "read_label"]

PathLike = str | os.PathLike

#: Image file extensions the readers pick up (lower case).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")


def _decode(path: PathLike) -> np.ndarray:
    """Decode ``path`` with ``cv2.IMREAD_UNCHANGED`` (no EXIF rotation, bit depth and alpha kept).

    The bytes are read by numpy and decoded by ``cv2.imdecode`` so that non-ASCII paths work.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not an image file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"image file {str(path)!r} {what}")
    data = np.fromfile(path, dtype=np.uint8)
    try:
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as exc:  # cv2 raises for some truncated files instead of returning None
        raise ValueError(f"cannot decode image file {str(path)!r}: {exc}") from exc
    if array is None:
        raise ValueError(
            f"cannot decode image file {str(path)!r} ({data.size} bytes): empty, truncated or not "
            "an image format OpenCV reads (png, jpg, webp, bmp, tiff)"
        )
    return array


def _to_uint8(array: np.ndarray, path: PathLike) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        # Full-range scaling 0..65535 -> 0..255 with rounding (x / 257 exactly maps 65535 to 255).
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise ValueError(
        f"image file {str(path)!r} has pixel type {array.dtype}; expected 8- or 16-bit unsigned integers"
    )


def read_rgb(path: PathLike) -> np.ndarray:
    """Read an image file as RGB ``uint8``.

    Grayscale becomes three equal channels, BGRA/RGBA loses its alpha channel, 16-bit images are
    scaled to 8 bits (``round(x / 257)``). EXIF orientation is *not* applied, so images stay
    aligned with label maps drawn on the stored pixels.

    Args:
        path: image file (png, jpg, webp, bmp, tiff: anything ``cv2.imdecode`` reads).

    Shape:
        returns (H, W, 3).

    Returns:
        ``np.uint8`` array in RGB channel order, C-contiguous.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ValueError: the file cannot be decoded, or has an unsupported pixel type or channel count.

    Example:
        >>> read_rgb("frames/cow.jpg").shape  # doctest: +SKIP
        (720, 1280, 3)
    """
    array = _to_uint8(_decode(path), path)
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    channels = array.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(array, 3, axis=2))
    if channels == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    raise ValueError(f"image file {str(path)!r} has {channels} channels; expected 1, 3 or 4")


def _palette_indices(path: PathLike) -> np.ndarray | None:
    """Indices of a palette ('P' mode) PNG, which OpenCV expands to colours; None otherwise."""
    from PIL import Image  # Pillow comes with torchvision; only needed for this rare case

    try:
        with Image.open(path) as img:
            if img.mode == "P":
                return np.asarray(img, dtype=np.uint8).copy()
    except OSError:
        return None
    return None


def read_label(path: PathLike) -> np.ndarray:
    """Read a single-channel label map (class ids, train ids, 0/1/255 anomaly masks).

    8- and 16-bit grayscale files come back unchanged; palette PNGs come back as their palette
    indices (OpenCV alone would return colours). A colour image is refused rather than guessed at.

    Args:
        path: label image file (normally a lossless png).

    Shape:
        returns (H, W).

    Returns:
        ``np.uint8`` or ``np.uint16`` array as stored.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded, is not single-channel, or is not 8/16-bit unsigned.
    """
    array = _decode(path)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3:
        indices = _palette_indices(path)
        if indices is not None:
            return indices
        raise ValueError(
            f"label file {str(path)!r} has {array.shape[2]} channels; expected a single-channel "
            "(grayscale or palette) label image"
        )
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"label file {str(path)!r} has pixel type {array.dtype}; expected uint8 or uint16"
        )
    return array
