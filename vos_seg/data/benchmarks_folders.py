"""Readers for SegmentMeIfYouCan (RoadAnomaly21, RoadObstacle21), the synthetic world's anomaly
split, Road Anomaly (Lis et al.) and StreetHazards. Layouts are documented on each opener.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path

from .benchmarks_base import (
    VOID,
    AnomalyDataset,
    attach_labels,
    convert_01void,
    existing_dir,
    images_by_stem,
    lut_converter,
)

__all__ = [
    "open_road_anomaly21",
    "open_road_obstacle21",
    "open_synthetic_anomaly",
    "open_road_anomaly",
    "open_street_hazards",
]


def _open_smiyc(
    name: str, root: Path, *, require_labels: bool, scenes: Collection[str] | None = None
) -> AnomalyDataset:
    images = images_by_stem(existing_dir(root / "images", f"{name} images").iterdir())
    if scenes is not None:
        wanted = set(scenes)
        images = {k: v for k, v in images.items() if k.split("_")[0] in wanted}
        if not images:
            raise FileNotFoundError(f"{name}: no frame of scenes {sorted(wanted)} under {str(root / 'images')!r}")
    labels_dir = root / "labels_masks"
    candidates = ((stem, path, labels_dir / f"{stem}_labels_semantic.png") for stem, path in images.items())
    return AnomalyDataset(name, root, attach_labels(name, candidates, require_labels=require_labels), convert_01void)


def open_road_anomaly21(root: str | os.PathLike, *, require_labels: bool = True) -> AnomalyDataset:
    """SegmentMeIfYouCan RoadAnomaly21 (``dataset_AnomalyTrack``).

    Layout: ``root/images/<id>.jpg|jpeg|png|webp`` and
    ``root/labels_masks/<id>_labels_semantic.png`` holding 0 (in-distribution), 1 (anomaly),
    255 (void). The public download labels only the ``validation*`` frames; its test labels are
    withheld, so by default a frame without a label file is an error. With
    ``require_labels=False`` such frames are yielded with ``labels=None`` (for inference only).
    """
    root = existing_dir(root, "road_anomaly21")
    return _open_smiyc("road_anomaly21", root, require_labels=require_labels)


def open_road_obstacle21(
    root: str | os.PathLike, *, require_labels: bool = True, scenes: Collection[str] | None = None
) -> AnomalyDataset:
    """SegmentMeIfYouCan RoadObstacle21 (``dataset_ObstacleTrack``): same layout and labels as
    :func:`open_road_anomaly21`, images usually ``.webp``.

    ``scenes`` keeps frames whose id starts with ``<scene>_`` (e.g. the benchmark's
    ObstacleTrack-test leaves out ``snowstorm1``, ``snowstorm2``, ``driveway`` (night) and
    ``validation``); None keeps all.
    """
    root = existing_dir(root, "road_obstacle21")
    return _open_smiyc("road_obstacle21", root, require_labels=require_labels, scenes=scenes)


def open_synthetic_anomaly(root: str | os.PathLike, *, require_labels: bool = True) -> AnomalyDataset:
    """The synthetic world's anomaly split: ``root/anomaly/images/<id>.png`` and
    ``root/anomaly/labels_masks/<id>_labels_semantic.png`` (0/1/255), the RoadAnomaly21 layout.

    ``root`` is the world's root (the folder holding ``leftImg8bit/`` and ``anomaly/``).
    """
    root = existing_dir(root, "synthetic world")
    return _open_smiyc("synthetic", existing_dir(root / "anomaly", "synthetic anomaly split"),
                       require_labels=require_labels)


# Lis et al. label the frames with LabelGrab: 0 background, 1 road, 2 anomaly. Their evaluation
# counts `labels >= 2` as anomaly and everything else as in-distribution (no region of interest);
# 255 is kept as void in case an edited frame carries it.
_convert_road_anomaly = lut_converter(
    {v: (0 if v < 2 else 1) for v in range(255)} | {VOID: VOID}, "0..255"
)


def open_road_anomaly(root: str | os.PathLike, *, require_labels: bool = True) -> AnomalyDataset:
    """Road Anomaly of Lis et al. (ICCV 2019), 60 frames.

    Layout: ``root/frames/<name>.jpg`` (or png/webp) with
    ``root/frames/<name>.labels/labels_semantic.png``. If ``root/frame_list.json`` (a JSON list of
    image file names) exists it fixes the frames and their order, otherwise every image in
    ``frames/`` is taken, sorted. Labels: values >= 2 (anomaly) -> 1, 0 and 1 (background, road)
    -> 0, 255 -> void.
    """
    root = existing_dir(root, "road_anomaly")
    frames = existing_dir(root / "frames", "road_anomaly frames")
    list_file = root / "frame_list.json"
    if list_file.is_file():
        try:
            names = json.loads(list_file.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot parse {str(list_file)!r}: {exc}") from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{str(list_file)!r} must hold a JSON list of image file names")
        paths = [frames / n for n in names]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"image {str(path)!r} listed in {str(list_file)!r} does not exist")
        images = {p.stem: p for p in paths}
    else:
        images = images_by_stem(frames.iterdir())
    candidates = ((stem, path, frames / f"{stem}.labels" / "labels_semantic.png") for stem, path in images.items())
    files = attach_labels("road_anomaly", candidates, require_labels=require_labels)
    return AnomalyDataset("road_anomaly", root, files, _convert_road_anomaly)


# StreetHazards (Hendrycks et al.): annotation files hold class + 1 (semantic-segmentation-pytorch
# convention, read as `value - 1`); after subtracting 1, class 13 is the anomaly. The official
# eval_ood.py masks nothing: every other pixel, including 'unlabeled' (class 0) and raw 0 (-1 after
# the shift), counts as in-distribution. We follow it, so these labels contain no void.
_convert_street_hazards = lut_converter({v: (1 if v == 14 else 0) for v in range(15)}, "0..14 (class + 1)")


def open_street_hazards(root: str | os.PathLike, *, require_labels: bool = True) -> AnomalyDataset:
    """StreetHazards test set (1500 CARLA frames, anomaly class 13), evaluated per image.

    Layout (as extracted from ``streethazards_test.tar``): ``root/images/test/<town>/<n>.png`` and
    ``root/annotations/test/<town>/<n>.png`` (same file name); ``root`` may also be the folder
    holding ``test/``. Frame ids are ``<town>_<n>``. ``per_image_metrics`` is True: the benchmark
    averages AUROC/AP/FPR95 over images.
    """
    root = existing_dir(root, "street_hazards")
    if not (root / "images" / "test").is_dir() and (root / "test" / "images" / "test").is_dir():
        root = root / "test"
    image_dir = existing_dir(root / "images" / "test", "street_hazards images")
    ann_dir = root / "annotations" / "test"
    candidates = []
    for town in sorted(p for p in image_dir.iterdir() if p.is_dir()):
        for stem, path in images_by_stem(town.iterdir()).items():
            candidates.append((f"{town.name}_{stem}", path, ann_dir / town.name / path.name))
    # Numeric file names in numeric order (2.png before 10.png), others after them by name.
    def order(c: tuple[str, Path, Path]) -> tuple:
        town, stem = c[1].parent.name, c[1].stem
        return (town, not stem.isdigit(), int(stem) if stem.isdigit() else 0, stem)

    candidates.sort(key=order)
    files = attach_labels("street_hazards", candidates, require_labels=require_labels)
    return AnomalyDataset("street_hazards", root, files, _convert_street_hazards, per_image_metrics=True)
