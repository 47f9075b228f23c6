"""Road-anomaly benchmark readers behind one entry point, :func:`open_anomaly_dataset`.

Every reader yields :class:`AnomalyFrame` (frame id, RGB uint8 image, uint8 labels with 0
in-distribution, 1 anomaly, 255 void), reading files only when a frame is indexed. A missing,
unreadable or malformed file (wrong channel count, label size different from the image, a label
value the benchmark does not define) raises an error naming the path.

==================  ==========================================================================
name                layout under ``root`` (details on each opener)
==================  ==========================================================================
road_anomaly21      ``images/<id>.jpg``, ``labels_masks/<id>_labels_semantic.png`` (0/1/255)
road_obstacle21     same as road_anomaly21 (images ``.webp``); option ``scenes``
fishyscapes_laf     ``fishyscapes_lostandfound/<NNNN>_<id>_labels.png`` + Lost and Found images
lost_and_found      ``leftImg8bit/<split>/<city>/``, ``gtCoarse/<split>/<city>/*_labelIds.png``
road_anomaly        ``frames/<name>.jpg``, ``frames/<name>.labels/labels_semantic.png``
street_hazards      ``images/test/<town>/<n>.png``, ``annotations/test/<town>/<n>.png``
synthetic           ``anomaly/images/<id>.png``, ``anomaly/labels_masks/<id>_labels_semantic.png``
==================  ==========================================================================
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from .benchmarks_base import AnomalyDataset, AnomalyFrame, FrameFiles
from .benchmarks_folders import (
    open_road_anomaly,
    open_road_anomaly21,
    open_road_obstacle21,
    open_street_hazards,
    open_synthetic_anomaly,
)
from .benchmarks_laf import open_fishyscapes_laf, open_lost_and_found

__all__ = ["ANOMALY_DATASETS", "AnomalyDataset", "AnomalyFrame", "FrameFiles", "open_anomaly_dataset"]

_OPENERS: dict[str, Callable[..., AnomalyDataset]] = {
    "road_anomaly21": open_road_anomaly21,
    "road_obstacle21": open_road_obstacle21,
    "fishyscapes_laf": open_fishyscapes_laf,
    "lost_and_found": open_lost_and_found,
    "road_anomaly": open_road_anomaly,
    "street_hazards": open_street_hazards,
    "synthetic": open_synthetic_anomaly,
}

#: Names accepted by :func:`open_anomaly_dataset`.
ANOMALY_DATASETS: tuple[str, ...] = tuple(_OPENERS)


def _options_of(opener: Callable[..., AnomalyDataset]) -> list[str]:
    params = inspect.signature(opener).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def open_anomaly_dataset(name: str, root: str | os.PathLike, **options: Any) -> AnomalyDataset:
    """Open a road-anomaly benchmark folder as a lazy sequence of :class:`AnomalyFrame`.

    Args:
        name: one of :data:`ANOMALY_DATASETS`.
        root: the benchmark's folder as distributed (see the table in this module's docstring).
        **options: per-dataset options: ``require_labels`` (road_anomaly21, road_obstacle21,
            road_anomaly, street_hazards, synthetic; default True: a frame without a label file
            is an error, False yields it with ``labels=None``), ``scenes`` (road_obstacle21),
            ``selection`` (lost_and_found: "test", "testNoKnown", "train"), ``labels_dir`` and
            ``images_root`` (fishyscapes_laf).

    Returns:
        an :class:`AnomalyDataset` (``len``, indexing, iteration, ``frame_ids``, ``files``,
        ``per_image_metrics``: True for street_hazards, whose benchmark averages per image).

    Raises:
        ValueError: unknown ``name`` (the valid names are listed).
        TypeError: an option the dataset does not take (its options are listed).
        FileNotFoundError: the folder, an expected sub-folder, any frame, or a required label
            file is missing (the path is named).

    Example:
        >>> ds = open_anomaly_dataset("road_anomaly21", "data/dataset_AnomalyTrack")  # doctest: +SKIP
        >>> frame = ds[0]; frame.image.shape, frame.labels.dtype  # doctest: +SKIP
        ((720, 1280, 3), dtype('uint8'))
    """
    opener = _OPENERS.get(name)
    if opener is None:
        raise ValueError(f"unknown anomaly dataset {name!r}; expected one of {', '.join(ANOMALY_DATASETS)}")
    allowed = _options_of(opener)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"anomaly dataset {name!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes {', '.join(allowed) if allowed else 'no options'}"
        )
    return opener(root, **options)
