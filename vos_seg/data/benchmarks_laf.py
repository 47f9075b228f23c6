"""Readers for Lost and Found (Pinggera et al., IROS 2016) and Fishyscapes Lost & Found.

Facts taken from the benchmarks' own code:

* SegmentMeIfYouCan's ``road_anomaly_benchmark/datasets/tracks.py`` (``DatasetLostAndFound``)
  maps ``gtCoarse_labelIds`` 0 -> void, 1 (free space / road) -> in-distribution, 2..200 ->
  anomaly, and starts from void everywhere (so any other value is void too). Its
  ``LostAndFound-test`` takes all 1203 test frames; ``LostAndFound-testNoKnown`` (1043 frames)
  drops the frames whose label map is all zeros ("invalid frames are those where
  ``np.count_nonzero(labels_source)`` is 0", listed there by index) and the sequences showing
  objects of known Cityscapes classes: ``15_Rechbergstr_Deckenpfronn`` (children),
  ``01_Hanns_Klemm_Str_45_000006``, ``01_Hanns_Klemm_Str_45_000007`` and
  ``10_Schlossberg_9_000004`` (bicycles).
* Fishyscapes distributes ``fishyscapes_lostandfound.zip``: files
  ``<NNNN>_<LAF frame id>_labels.png`` with 0 in-distribution, 1 anomaly, 255 void; the images are
  Lost and Found's own ``leftImg8bit/{train,test}/<city>/<LAF frame id>_leftImg8bit.png``
  (pytorch-ood 0.4 ``LostAndFound``, bdl-benchmark).
"""

from __future__ import annotations

import os
import re

import numpy as np

from .benchmarks_base import (
    VOID,
    AnomalyDataset,
    FrameFiles,
    attach_labels,
    convert_01void,
    existing_dir,
    images_by_stem,
    lut_converter,
)
from .io import read_label

__all__ = ["open_lost_and_found", "open_fishyscapes_laf", "LAF_SELECTIONS", "LAF_KNOWN_OBJECT_PREFIXES"]

#: Selections of :func:`open_lost_and_found`.
LAF_SELECTIONS = ("test", "testNoKnown", "train")

#: Frame-id prefixes of the test sequences with known objects, left out of ``testNoKnown``.
LAF_KNOWN_OBJECT_PREFIXES: tuple[str, ...] = (
    "15_Rechbergstr_Deckenpfronn",  # children
    "01_Hanns_Klemm_Str_45_000006",  # bicycle
    "01_Hanns_Klemm_Str_45_000007",  # bicycle
    "10_Schlossberg_9_000004",  # bicycle
)

_IMAGE_TAG = "_leftImg8bit"
_LABEL_SUFFIX = "_gtCoarse_labelIds.png"

_convert_laf = lut_converter(
    {0: VOID, 1: 0} | {v: 1 for v in range(2, 201)} | {v: VOID for v in range(201, 256)}, "0..255"
)


def open_lost_and_found(root: str | os.PathLike, *, selection: str = "test") -> AnomalyDataset:
    """Lost and Found with the SegmentMeIfYouCan label convention (road is the region of interest).

    Layout (the official download)::

        root/leftImg8bit/<split>/<city>/<id>_leftImg8bit.png   (or .jpg/.webp)
        root/gtCoarse/<split>/<city>/<id>_gtCoarse_labelIds.png

    Labels: 0 -> 255 (void), 1 (road) -> 0, 2..200 (objects) -> 1, 201..255 -> 255.

    Args:
        root: dataset root.
        selection: ``"test"`` (all test frames, 1203 in the release), ``"testNoKnown"`` (test
            minus all-void frames and the known-object sequences :data:`LAF_KNOWN_OBJECT_PREFIXES`;
            1043 in the release; reads every test label map once when opened to find the all-void
            frames) or ``"train"``.

    Raises:
        ValueError: unknown ``selection``.
        FileNotFoundError: missing folders, no images, or an image without its label file.
    """
    if selection not in LAF_SELECTIONS:
        raise ValueError(f"`selection` must be one of {LAF_SELECTIONS}, got {selection!r}")
    root = existing_dir(root, "lost_and_found")
    split = "train" if selection == "train" else "test"
    image_dir = existing_dir(root / "leftImg8bit" / split, "lost_and_found images")
    label_dir = root / "gtCoarse" / split
    candidates = []
    for city in sorted(p for p in image_dir.iterdir() if p.is_dir()):
        for frame_id, path in images_by_stem(city.iterdir(), strip=_IMAGE_TAG).items():
            candidates.append((frame_id, path, label_dir / city.name / f"{frame_id}{_LABEL_SUFFIX}"))
    candidates.sort(key=lambda c: c[0])
    files = attach_labels("lost_and_found", candidates, require_labels=True)
    if selection == "testNoKnown":
        files = [f for f in files if not f.frame_id.startswith(LAF_KNOWN_OBJECT_PREFIXES)]
        files = [f for f in files if np.any(read_label(f.labels))]
    return AnomalyDataset("lost_and_found", root, files, _convert_laf)


_INDEX_PREFIX = re.compile(r"^\d+_")


def open_fishyscapes_laf(
    root: str | os.PathLike,
    *,
    labels_dir: str | os.PathLike | None = None,
    images_root: str | os.PathLike | None = None,
) -> AnomalyDataset:
    """Fishyscapes Lost & Found: Fishyscapes label files with Lost and Found images.

    Labels: every ``*_labels.png`` in ``labels_dir`` (default ``root/fishyscapes_lostandfound``
    if it exists, else ``root`` itself), named ``<NNNN>_<LAF id>_labels.png``, values 0/1/255.
    Images: ``<LAF id>_leftImg8bit.png|jpg|webp`` found anywhere under ``images_root`` (default
    ``root``), so both the Lost and Found tree (``leftImg8bit/{train,test}/<city>/``) and a flat
    folder of its images work. Frame ids are the label names without ``_labels``
    (``<NNNN>_<LAF id>``), in label-file order.

    Raises:
        FileNotFoundError: missing folders, no label files, or a label without its image (named).
        ValueError: two images for one Lost and Found frame under ``images_root``.
    """
    root = existing_dir(root, "fishyscapes_laf")
    if labels_dir is None:
        labels_dir = root / "fishyscapes_lostandfound" if (root / "fishyscapes_lostandfound").is_dir() else root
    labels_dir = existing_dir(labels_dir, "fishyscapes_laf labels")
    images_root = existing_dir(images_root if images_root is not None else root, "fishyscapes_laf images")
    label_files = sorted(p for p in labels_dir.iterdir() if p.name.endswith("_labels.png") and p.is_file())
    if not label_files:
        raise FileNotFoundError(f"fishyscapes_laf: no '*_labels.png' files in {str(labels_dir)!r}")
    images = images_by_stem(images_root.rglob(f"*{_IMAGE_TAG}.*"), strip=_IMAGE_TAG)
    files = []
    for label in label_files:
        frame_id = label.name[: -len("_labels.png")]
        laf_id = frame_id if frame_id in images else _INDEX_PREFIX.sub("", frame_id, count=1)
        image = images.get(laf_id)
        if image is None:
            raise FileNotFoundError(
                f"label file {str(label)!r} has no image: no '{laf_id}{_IMAGE_TAG}.png' under {str(images_root)!r}"
            )
        files.append(FrameFiles(frame_id, image, label))
    return AnomalyDataset("fishyscapes_laf", root, files, convert_01void)
