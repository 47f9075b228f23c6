"""The common core of the anomaly benchmark readers: frames, the lazy dataset, file discovery and
value-checked label conversion. The per-benchmark layouts live in ``benchmarks_*.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..labels import validate_anomaly_labels
from .io import IMAGE_SUFFIXES, read_label, read_rgb

__all__ = ["AnomalyFrame", "AnomalyDataset", "FrameFiles", "LabelConverter", "lut_converter"]

VOID = 255


@dataclass(frozen=True)
class AnomalyFrame:
    """One benchmark frame.

    Attributes:
        frame_id: identifier unique within the dataset, without path separators.
        image: RGB ``np.uint8`` (H, W, 3).
        labels: ``np.uint8`` (H, W): 0 in-distribution, 1 anomaly, 255 void; None only for frames
            without a label file opened with ``require_labels=False``.
    """

    frame_id: str
    image: np.ndarray
    labels: np.ndarray | None


@dataclass(frozen=True)
class FrameFiles:
    """Where a frame lives: image file and label file (None when it has none)."""

    frame_id: str
    image: Path
    labels: Path | None


#: ``convert(raw_label_map, path) -> uint8 labels in {0, 1, 255}``; raises ValueError naming path.
LabelConverter = Callable[[np.ndarray, Path], np.ndarray]


def lut_converter(table: dict[int, int] | Sequence[int], expected: str) -> LabelConverter:
    """A converter from raw 8-bit label values through a 256-entry lookup table.

    Args:
        table: raw value -> 0/1/255; raw values absent from a dict are invalid.
        expected: description of the valid raw values, for the error message.

    Returns:
        ``convert(raw, path)``, raising ValueError naming ``path`` and each invalid value with its
        pixel count (one ``bincount`` pass, then one lookup).
    """
    lut = np.full(256, -1, dtype=np.int16)
    items = table.items() if isinstance(table, dict) else enumerate(table)
    for raw_value, out in items:
        lut[raw_value] = out
    valid = lut >= 0

    def convert(raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim != 2:
            raise ValueError(f"label file {str(path)!r} has shape {raw.shape}; expected (H, W)")
        if raw.dtype != np.uint8:
            high = int(raw.max()) if raw.size else 0
            if high > 255:
                bad = np.unique(raw[raw > 255])
                raise ValueError(
                    f"label file {str(path)!r} has values above 255 (e.g. {bad[:5].tolist()}); expected {expected}"
                )
            raw = raw.astype(np.uint8)
        counts = np.bincount(raw.ravel(), minlength=256)
        bad = np.flatnonzero((counts > 0) & ~valid)
        if bad.size:
            listed = ", ".join(f"{int(v)} ({int(counts[v])} px)" for v in bad[:10])
            raise ValueError(f"label file {str(path)!r} has values outside {expected}: {listed}")
        return lut[raw].astype(np.uint8)

    return convert


def convert_01void(raw: np.ndarray, path: Path) -> np.ndarray:
    """SegmentMeIfYouCan / Fishyscapes files already hold 0/1/255: check them and pass them on.

    Raises:
        ValueError: naming ``path``, from ``vos_seg.labels.validate_anomaly_labels``.
    """
    if raw.ndim != 2:
        raise ValueError(f"label file {str(path)!r} has shape {raw.shape}; expected (H, W)")
    try:
        validate_anomaly_labels(raw, void_label=VOID)
    except ValueError as exc:
        raise ValueError(f"label file {str(path)!r}: {exc}") from exc
    return raw.astype(np.uint8, copy=False)


class AnomalyDataset(Sequence):
    """A benchmark as a lazy sequence of :class:`AnomalyFrame`; files are read on indexing.

    Args:
        name: dataset name (one of ``ANOMALY_DATASETS``).
        root: the folder it was opened from.
        files: frames in order.
        convert: raw label map -> 0/1/255 labels.
        per_image_metrics: whether the benchmark averages metrics per image (StreetHazards)
            rather than pooling pixels.

    Raises:
        FileNotFoundError: ``files`` is empty.
    """

    def __init__(
        self,
        name: str,
        root: Path,
        files: Sequence[FrameFiles],
        convert: LabelConverter,
        *,
        per_image_metrics: bool = False,
    ) -> None:
        if not files:
            raise FileNotFoundError(f"{name}: no frames found under {str(root)!r}")
        self.name, self.root, self.files = name, Path(root), tuple(files)
        self.per_image_metrics = per_image_metrics
        self._convert = convert

    @property
    def frame_ids(self) -> list[str]:
        return [f.frame_id for f in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def read_labels(self, index: int) -> np.ndarray | None:
        """Labels of frame ``index`` (uint8 0/1/255, or None) without decoding its image."""
        path = self.files[index].labels
        return None if path is None else self._convert(read_label(path), path)

    def __getitem__(self, index: int) -> AnomalyFrame:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"{self.name} frames are indexed by int, got {type(index).__name__}")
        files = self.files[index]  # IndexError for out-of-range, negative indices allowed
        image = read_rgb(files.image)
        labels = self.read_labels(int(index) % len(self.files))
        if labels is not None and labels.shape != image.shape[:2]:
            raise ValueError(
                f"label file {str(files.labels)!r} is {labels.shape[0]}x{labels.shape[1]} but image "
                f"{str(files.image)!r} is {image.shape[0]}x{image.shape[1]}"
            )
        return AnomalyFrame(files.frame_id, image, labels)

    def __repr__(self) -> str:
        return (
            f"AnomalyDataset({self.name!r}, root={str(self.root)!r}, frames={len(self)}, "
            f"per_image_metrics={self.per_image_metrics})"
        )


# ----------------------------------------------------------------------------- discovery helpers


def existing_dir(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder {str(path)!r} does not exist")
    return path


def images_by_stem(paths: Iterable[Path], strip: str = "") -> dict[str, Path]:
    """Map stem (minus the ``strip`` suffix) to image path, for image suffixes only, sorted.

    Raises:
        ValueError: two images share a stem (e.g. ``a.jpg`` and ``a.png``), naming both.
    """
    found: dict[str, Path] = {}
    for path in sorted(paths):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        stem = path.stem
        if strip:
            if not stem.endswith(strip):
                continue
            stem = stem[: -len(strip)]
        if stem in found:
            raise ValueError(f"two images for frame {stem!r}: {str(found[stem])!r} and {str(path)!r}")
        found[stem] = path
    return dict(sorted(found.items()))


def attach_labels(
    name: str, candidates: Iterable[tuple[str, Path, Path]], *, require_labels: bool
) -> list[FrameFiles]:
    """Turn (frame_id, image, expected label path) into FrameFiles, enforcing ``require_labels``.

    Raises:
        FileNotFoundError: a label file is missing and ``require_labels`` (first path and count named).
    """
    files, missing = [], []
    for frame_id, image, label in candidates:
        has_label = label.is_file()
        if not has_label:
            missing.append(label)
        files.append(FrameFiles(frame_id, image, label if has_label else None))
    if missing and require_labels:
        raise FileNotFoundError(
            f"{name}: {len(missing)} of {len(files)} frames have no label file, e.g. {str(missing[0])!r} "
            "does not exist (pass require_labels=False to read them with labels=None)"
        )
    return files
