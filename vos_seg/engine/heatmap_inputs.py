"""Inputs of the heatmap tool: image files (folders, globs, list files, paths) or an anomaly benchmark reader.

Each input is a :class:`HeatmapInput` that loads lazily, so that a missing or unreadable file fails alone,
naming itself, when the run reaches it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["HeatmapInput", "collect_images", "dataset_inputs", "IMAGE_SUFFIXES", "LIST_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
LIST_SUFFIXES = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class HeatmapInput:
    """One frame to render.

    Attributes:
        frame_id: output file name (without extension); unique within a run.
        source: what to name in messages (the image path, or ``dataset[index]``).
        load: returns ``(image uint8 (H, W, 3), labels uint8 (H, W) or None)``; raises on bad files.
        has_labels: whether ``load`` returns labels.
    """

    frame_id: str
    source: str
    load: Callable[[], tuple[np.ndarray, np.ndarray | None]]
    has_labels: bool = False


def _is_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


def _expand(spec: str, searched: list[str]) -> list[Path]:
    path = Path(spec)
    if _is_glob(spec):
        searched.append(f"glob {spec!r}")
        return sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
    if path.is_dir():
        searched.append(f"folder {spec!r} (recursively, {'/'.join(IMAGE_SUFFIXES)})")
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if path.suffix.lower() in LIST_SUFFIXES:
        searched.append(f"list file {spec!r}")
        if not path.is_file():
            raise FileNotFoundError(f"image list file {spec!r} does not exist")
        lines = [line.strip() for line in path.read_text().splitlines()]
        # Relative entries are relative to the list file, so lists travel with their images.
        return [Path(line) if Path(line).is_absolute() else path.parent / line
                for line in lines if line and not line.startswith("#")]
    searched.append(f"image path {spec!r}")
    return [path]  # kept even if missing: the run reports it by name and goes on with the others


def _frame_ids(paths: list[Path]) -> list[str]:
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    # Same file name in several folders: name frames by their path below the common folder.
    common = Path(os.path.commonpath([os.path.abspath(p) for p in paths]))
    return [str(Path(os.path.abspath(p)).relative_to(common).with_suffix("")).replace(os.sep, "__") for p in paths]


def collect_images(specs: Sequence[str | os.PathLike]) -> list[HeatmapInput]:
    """Expand image specs into inputs, in order, without reading any image.

    Args:
        specs: each a folder (searched recursively for image files), a glob pattern, a list file
            (``.txt``/``.lst``/``.list``: one image path per line, relative to the list file; blank lines and
            ``#`` comments skipped), or an image path.

    Returns:
        One :class:`HeatmapInput` per image (frame id: the file stem, or the relative path when stems clash).

    Raises:
        ValueError: nothing was found; the message lists what was searched.
        FileNotFoundError: a list file does not exist.
    """
    from vos_seg.data.io import read_rgb

    searched: list[str] = []
    paths = [p for spec in specs for p in _expand(os.fspath(spec), searched)]
    if not paths:
        raise ValueError("no input images found; searched " + ("; ".join(searched) if searched else "nothing "
                         "(no --images given)"))
    return [HeatmapInput(frame_id, str(path), lambda path=path: (read_rgb(path), None))
            for frame_id, path in zip(_frame_ids(paths), paths)]


def dataset_inputs(name: str, root: str | os.PathLike, **options) -> list[HeatmapInput]:
    """Inputs from an anomaly benchmark reader (``vos_seg.data.benchmarks.open_anomaly_dataset``), with labels.

    Raises:
        Whatever the reader raises for an unknown name or a missing folder (naming it).
    """
    from vos_seg.data.benchmarks import open_anomaly_dataset

    dataset = open_anomaly_dataset(name, root, **options)

    def loader(index: int):
        def load():
            frame = dataset[index]
            return frame.image, frame.labels
        return load

    files = getattr(dataset, "files", None)
    return [HeatmapInput(frame_id, str(files[i].image) if files is not None else f"{name}[{i}]", loader(i),
                         has_labels=True)
            for i, frame_id in enumerate(dataset.frame_ids)]
