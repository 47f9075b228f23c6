"""A procedurally drawn road world to train and test on when no real dataset is at hand.

Street scenes (a road in perspective with lane marks, sidewalks and kerbs, facades with windows, hedges and trees,
sky, cars, people, poles and signs) are drawn with OpenCV under a random pinhole camera, with varied layout,
colours, textures, lighting and sensor noise. ``generate_world`` writes them in the layouts of the real datasets,
so the real readers are what a demo exercises::

    root/leftImg8bit/{train,val}/synth/<id>_leftImg8bit.png           RGB
    root/gtFine/{train,val}/synth/<id>_gtFine_labelTrainIds.png       0..NUM_CLASSES-1, 255 void, 254 OE
    root/anomaly/images/<id>.png                                       RGB (RoadAnomaly21 layout)
    root/anomaly/labels_masks/<id>_labels_semantic.png                 0 in-distribution, 1 anomaly, 255 void
    root/synthetic_world.json                                          parameters, class names and palette

Anomaly images hold 1-3 objects unlike anything in training (see ``synthetic_objects``) on or beside the road;
every anomaly pixel is labelled 1 and every other pixel 0: no void band around objects, since a band would cut
predicted components apart at the object boundary and inflate the component metrics (sIoU, F1). With outlier exposure, half
of the training images carry objects of a different family, labelled ``OUTLIER_EXPOSURE_VALUE``.

Every image has its own ``numpy.random.Generator`` seeded by (seed, split, index), so an image does not depend
on how many others are drawn, and splits can be drawn in parallel.

Example:
    >>> rng = np.random.default_rng(0)
    >>> image, train_ids, mask = draw_scene(rng, 128, 256, anomaly=True)
    >>> image.shape, train_ids.shape, sorted(np.unique(mask).tolist())
    ((128, 256, 3), (128, 256), [0, 1, 255])
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from vos_seg.data.synthetic_objects import plan_objects
from vos_seg.data.synthetic_render import Canvas, finish_image
from vos_seg.data.synthetic_scene import SKY, draw_background, make_layout
from vos_seg.data.synthetic_things import draw_hood, plan_cars, plan_people, plan_poles, plan_trees

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "CLASS_COLORS", "OUTLIER_EXPOSURE_VALUE", "VOID_VALUE", "MANIFEST_NAME",
           "draw_scene", "generate_world", "world_matches", "item_rng"]

CLASS_NAMES = ("road", "sidewalk", "building", "vegetation", "terrain", "sky", "pole", "traffic_sign", "person", "car")
NUM_CLASSES = len(CLASS_NAMES)
#: Visualisation palette (Cityscapes colours of the same classes), (NUM_CLASSES, 3) uint8 RGB.
CLASS_COLORS = np.array([(128, 64, 128), (244, 35, 232), (70, 70, 70), (107, 142, 35), (152, 251, 152),
                         (70, 130, 180), (153, 153, 153), (220, 220, 0), (220, 20, 60), (0, 0, 142)], np.uint8)
OUTLIER_EXPOSURE_VALUE = 254
VOID_VALUE = 255
MANIFEST_NAME = "synthetic_world.json"
_ANOMALY = 253  # label of anomaly pixels while drawing; void in the returned train ids
_MIN_ANOMALY_PIXELS = 40
_SPLITS = {"train": 0, "val": 1, "anomaly": 2}
_VERSION = 1


def item_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: independent of every other (seed, split, index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SPLITS[split], int(index)]))


def draw_scene(rng: np.random.Generator, height: int, width: int, *, anomaly: bool = False,
               outlier_exposure: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Draw one street scene.

    Args:
        rng: the image's random generator (consumed).
        height, width: image size in pixels (at least 32 each).
        anomaly: add 1-3 anomaly objects and return their mask; no ego-vehicle hood is drawn.
        outlier_exposure: with probability 1/2, add 1-2 outlier-exposure objects labelled
            ``OUTLIER_EXPOSURE_VALUE`` in ``train_ids``.

    Shape:
        image: (height, width, 3) uint8 RGB; train_ids and anomaly_mask: (height, width) uint8.

    Returns:
        ``(image, train_ids, anomaly_mask)``: train ids in 0..NUM_CLASSES-1, 255 void (the hood, anomaly pixels),
        254 OE; the anomaly mask (0 in-distribution, 1 anomaly), or None when
        ``anomaly`` is False.

    Raises:
        TypeError: ``rng`` is not a numpy Generator.
        ValueError: ``height`` or ``width`` below 32.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"expected `rng` to be a numpy.random.Generator, got {type(rng).__name__}")
    if int(height) < 32 or int(width) < 32:
        raise ValueError(f"expected `height` and `width` >= 32, got {height}x{width}")
    height, width = int(height), int(width)
    lay = make_layout(rng, height, width)
    cv = Canvas(rng, height, width, SKY)
    draw_background(cv, rng, lay)
    things = plan_cars(rng, lay) + plan_people(rng, lay) + plan_poles(rng, lay) + plan_trees(rng, lay)
    objects = []
    if anomaly:
        count = int(rng.choice([1, 1, 1, 2, 2, 3]))
        objects += plan_objects(rng, lay, count, _ANOMALY, outlier_exposure=False)
    if outlier_exposure and rng.random() < 0.5:
        objects += plan_objects(rng, lay, int(rng.integers(1, 3)), OUTLIER_EXPOSURE_VALUE, outlier_exposure=True,
                                on_road=0.6)
    # The view of each object is kept clear: nearer things that would overlap it on screen are left out, as a
    # benchmark frame shows its obstacle rather than the car in front of it.
    things = [t for t in things if not any(t.z < o.z and t.overlaps(o) for o in objects)]
    for plan in sorted(things + objects, key=lambda plan: -plan.z):  # far to near
        plan.paint(cv)
    extra = rng.integers(2**63)  # drawn always, so what follows does not depend on occlusion
    if anomaly and np.count_nonzero(cv.labels == _ANOMALY) < _MIN_ANOMALY_PIXELS:
        for plan in plan_objects(np.random.default_rng(extra), lay, 1, _ANOMALY, outlier_exposure=False):
            plan.paint(cv)  # the anomalies were hidden (by one another or off-screen): one more, on top
    if not anomaly and rng.random() < 0.25:
        draw_hood(cv, rng, VOID_VALUE)
    image = finish_image(rng, cv.image)
    train_ids = cv.labels
    if not anomaly:
        return image, train_ids, None
    inside = train_ids == _ANOMALY
    mask = inside.astype(np.uint8)
    train_ids[inside] = VOID_VALUE
    return image, train_ids, mask


def _paths(root: Path, split: str, index: int) -> tuple[Path, Path]:
    if split == "anomaly":
        name = f"anomaly_{index:05d}"
        folder = root / "anomaly"
        return folder / "images" / f"{name}.png", folder / "labels_masks" / f"{name}_labels_semantic.png"
    name = f"synth_{index:06d}_000019"
    return (root / "leftImg8bit" / split / "synth" / f"{name}_leftImg8bit.png",
            root / "gtFine" / split / "synth" / f"{name}_gtFine_labelTrainIds.png")


def _write_item(args: tuple) -> None:
    root, split, index, height, width, seed, oe = args
    rng = item_rng(seed, split, index)
    image, train_ids, mask = draw_scene(rng, height, width, anomaly=split == "anomaly",
                                        outlier_exposure=oe and split == "train")
    image_path, label_path = _paths(root, split, index)
    if not cv2.imwrite(str(image_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {image_path}")
    if not cv2.imwrite(str(label_path), mask if split == "anomaly" else train_ids):
        raise OSError(f"could not write {label_path}")


def _params(num_train, num_val, num_anomaly, height, width, seed, outlier_exposure) -> dict:
    return {"version": _VERSION, "num_train": int(num_train), "num_val": int(num_val), "num_anomaly": int(num_anomaly),
            "height": int(height), "width": int(width), "seed": int(seed), "outlier_exposure": bool(outlier_exposure)}


def world_matches(root: str | os.PathLike, *, num_train: int, num_val: int, num_anomaly: int, height: int, width: int,
                  seed: int = 0, outlier_exposure: bool = False) -> bool:
    """True when ``root`` holds a complete world generated with exactly these parameters (by this version)."""
    root = Path(root)
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return False
    if not manifest.get("complete") or manifest.get("params") != _params(
            num_train, num_val, num_anomaly, height, width, seed, outlier_exposure):
        return False
    counts = {"train": num_train, "val": num_val, "anomaly": num_anomaly}
    return all(p.is_file() for split, n in counts.items() for i in range(n) for p in _paths(root, split, i))


def generate_world(root: str | os.PathLike, *, num_train: int, num_val: int, num_anomaly: int, height: int,
                   width: int, seed: int = 0, outlier_exposure: bool = False, workers: int = 1) -> dict:
    """Draw the synthetic world and write it under ``root`` (layout in the module docstring).

    A previous world in ``root`` (recognised by its manifest) is replaced; the manifest is written first marked
    incomplete and completed last, so an interrupted run is never mistaken for a finished one.

    Args:
        root: output folder (created).
        num_train, num_val, num_anomaly: image counts per split (>= 0).
        height, width: image size (>= 32).
        seed: world seed; image i of a split is the same whatever the counts.
        outlier_exposure: paste outlier-exposure objects into half of the training images.
        workers: processes drawing in parallel (1 = in this process).

    Returns:
        The manifest dict (also written to ``root/synthetic_world.json``).

    Raises:
        ValueError: a negative count, a size below 32, ``workers`` < 1, or a ``root`` whose ``leftImg8bit``,
            ``gtFine`` or ``anomaly`` folder exists without a synthetic-world manifest (it is not ours to delete).
    """
    root = Path(root)
    for name, value in (("num_train", num_train), ("num_val", num_val), ("num_anomaly", num_anomaly)):
        if int(value) < 0:
            raise ValueError(f"expected `{name}` >= 0, got {value}")
    if int(height) < 32 or int(width) < 32:
        raise ValueError(f"expected `height` and `width` >= 32, got {height}x{width}")
    if int(workers) < 1:
        raise ValueError(f"expected `workers` >= 1, got {workers}")
    owned = [root / "leftImg8bit", root / "gtFine", root / "anomaly"]
    if not (root / MANIFEST_NAME).is_file() and any(p.exists() for p in owned):
        raise ValueError(f"{root} already holds dataset folders but no {MANIFEST_NAME}; refusing to overwrite them")
    for path in owned:
        shutil.rmtree(path, ignore_errors=True)
    params = _params(num_train, num_val, num_anomaly, height, width, seed, outlier_exposure)
    manifest = {"complete": False, "params": params, "class_names": list(CLASS_NAMES),
                "class_colors": CLASS_COLORS.tolist(), "outlier_exposure_value": OUTLIER_EXPOSURE_VALUE,
                "void_value": VOID_VALUE}
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    jobs = []
    for split, count in (("train", num_train), ("val", num_val), ("anomaly", num_anomaly)):
        for path in _paths(root, split, 0):
            path.parent.mkdir(parents=True, exist_ok=True)
        common = (int(height), int(width), int(seed), bool(outlier_exposure))
        jobs += [(root, split, i, *common) for i in range(int(count))]
    if int(workers) == 1:
        for job in jobs:
            _write_item(job)
    else:
        # One OpenCV thread per worker: the processes are the parallelism, more threads only oversubscribe.
        with ProcessPoolExecutor(max_workers=int(workers), initializer=cv2.setNumThreads, initargs=(1,)) as pool:
            list(pool.map(_write_item, jobs, chunksize=max(len(jobs) // (8 * int(workers)), 1)))
    manifest["complete"] = True
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    return manifest
