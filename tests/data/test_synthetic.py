"""The synthetic road world: determinism, layout, label values, anomaly placement, variety, outlier exposure."""

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vos_seg.data.synthetic import (CLASS_COLORS, CLASS_NAMES, MANIFEST_NAME, NUM_CLASSES, OUTLIER_EXPOSURE_VALUE,
                                    draw_scene, generate_world, item_rng, world_matches)
from vos_seg.data.synthetic_objects import ANOMALY_SHAPES, ANOMALY_TEXTURES, OE_SHAPES, OE_TEXTURES

H, W = 64, 128
SMALL = dict(num_train=4, num_val=2, num_anomaly=3, height=H, width=W)
ROAD, SIDEWALK, CAR = CLASS_NAMES.index("road"), CLASS_NAMES.index("sidewalk"), CLASS_NAMES.index("car")
REPO = Path(__file__).resolve().parents[2]


def _read(path: Path) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert data is not None, f"unreadable {path}"
    return data


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    generate_world(root, **SMALL, seed=3)
    return root


@pytest.fixture(scope="module")
def anomaly_scenes():
    return [draw_scene(item_rng(0, "anomaly", i), 96, 192, anomaly=True) for i in range(16)]


def test_constants():
    assert NUM_CLASSES == len(CLASS_NAMES) == len(set(CLASS_NAMES)) == 10
    assert CLASS_COLORS.shape == (NUM_CLASSES, 3) and CLASS_COLORS.dtype == np.uint8
    assert len({tuple(c) for c in CLASS_COLORS.tolist()}) == NUM_CLASSES
    assert OUTLIER_EXPOSURE_VALUE == 254 and OUTLIER_EXPOSURE_VALUE >= NUM_CLASSES


def test_draw_scene_types_and_values():
    image, ids, mask = draw_scene(np.random.default_rng(1), H, W)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert ids.shape == (H, W) and ids.dtype == np.uint8 and mask is None
    assert set(np.unique(ids).tolist()) <= set(range(NUM_CLASSES)) | {255}
    image, ids, mask = draw_scene(np.random.default_rng(1), H, W, anomaly=True)
    assert mask.shape == (H, W) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= {0, 1, 255} and (mask == 1).any()
    assert (ids[mask == 1] == 255).all(), "anomaly pixels must be void in the train ids"
    assert not (ids == OUTLIER_EXPOSURE_VALUE).any()


def test_draw_scene_is_deterministic_and_seed_dependent():
    a = draw_scene(np.random.default_rng(7), H, W, anomaly=True)
    b = draw_scene(np.random.default_rng(7), H, W, anomaly=True)
    c = draw_scene(np.random.default_rng(8), H, W, anomaly=True)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert np.abs(a[0].astype(int) - c[0].astype(int)).mean() > 10, "different seeds should draw different scenes"


def test_draw_scene_errors():
    with pytest.raises(TypeError, match="numpy.random.Generator, got int"):
        draw_scene(0, H, W)
    with pytest.raises(ValueError, match=r">= 32, got 16x128"):
        draw_scene(np.random.default_rng(0), 16, W)


def test_world_layout_and_names(world):
    names = set(_files(world))
    expected = set()
    for split, n in (("train", 4), ("val", 2)):
        for i in range(n):
            stem = f"synth_{i:06d}_000019"
            expected |= {f"leftImg8bit/{split}/synth/{stem}_leftImg8bit.png",
                         f"gtFine/{split}/synth/{stem}_gtFine_labelTrainIds.png"}
    for i in range(3):
        expected |= {f"anomaly/images/anomaly_{i:05d}.png", f"anomaly/labels_masks/anomaly_{i:05d}_labels_semantic.png"}
    assert names == expected, f"missing {expected - names}, unexpected {names - expected}"
    manifest = json.loads((world / MANIFEST_NAME).read_text())
    assert manifest["complete"] and manifest["class_names"] == list(CLASS_NAMES)
    assert manifest["params"]["seed"] == 3 and manifest["params"]["num_train"] == 4


def test_world_label_values(world):
    for path in world.glob("gtFine/*/synth/*_gtFine_labelTrainIds.png"):
        ids = _read(path)
        assert ids.shape == (H, W) and ids.dtype == np.uint8
        assert set(np.unique(ids).tolist()) <= set(range(NUM_CLASSES)) | {255}, path.name
        assert (ids == ROAD).mean() > 0.05, f"{path.name}: no road"
    for path in world.glob("anomaly/labels_masks/*.png"):
        mask = _read(path)
        assert mask.shape == (H, W) and set(np.unique(mask).tolist()) <= {0, 1, 255}, path.name
        assert (mask == 1).sum() >= 10, f"{path.name}: no anomaly"
        assert (mask == 0).mean() > 0.8, f"{path.name}: most pixels should be labelled in-distribution"
    for path in world.glob("leftImg8bit/*/synth/*.png"):
        image = _read(path)
        assert image.shape == (H, W, 3) and image.std() > 10


def test_generate_world_is_deterministic_and_count_independent(tmp_path, world):
    generate_world(tmp_path / "again", **SMALL, seed=3)
    assert _files(tmp_path / "again") == _files(world)
    generate_world(tmp_path / "fewer", num_train=2, num_val=1, num_anomaly=1, height=H, width=W, seed=3)
    fewer = _files(tmp_path / "fewer")
    assert len(fewer) == 8 and all(fewer[k] == _files(world)[k] for k in fewer)
    generate_world(tmp_path / "other", **SMALL, seed=4)
    other, ref = _files(tmp_path / "other"), _files(world)
    assert all(other[k] != ref[k] for k in ref if "leftImg8bit" in k or "anomaly/images" in k)


def test_parallel_generation_matches_serial(tmp_path, world):
    generate_world(tmp_path / "par", **SMALL, seed=3, workers=2)
    assert _files(tmp_path / "par") == _files(world)


def test_anomalies_stand_on_or_near_the_road(anomaly_scenes):
    below = []
    for _, ids, mask in anomaly_scenes:
        inside = mask == 1
        for shift in (2, 4, 6):  # the ground just under each object
            under = np.zeros_like(inside)
            under[shift:] = inside[:-shift]
            below.append(ids[under & ~inside & (mask != 255)])
    below = np.concatenate(below)
    ground = np.isin(below, [ROAD, SIDEWALK, CAR]).mean()  # a parked car may stand between object and camera
    assert ground > 0.8, f"only {ground:.2f} of the pixels under anomalies are road, sidewalk or car"
    assert (below == ROAD).mean() > 0.5


def test_anomalies_are_not_one_colour_channel(anomaly_scenes):
    from sklearn.metrics import roc_auc_score

    pixels = np.concatenate([img[m != 255] for img, _, m in anomaly_scenes]).astype(np.float64)
    labels = np.concatenate([m[m != 255] == 1 for _, _, m in anomaly_scenes])
    for c, name in enumerate("RGB"):
        auc = roc_auc_score(labels, pixels[:, c])
        assert max(auc, 1 - auc) < 0.75, f"channel {name} alone separates anomalies (AUROC {auc:.3f})"


def test_variety_over_a_world():
    seen, images = np.zeros(NUM_CLASSES, int), []
    for i in range(12):
        image, ids, _ = draw_scene(item_rng(0, "train", i), 96, 192)
        seen += np.bincount(ids[ids < NUM_CLASSES], minlength=NUM_CLASSES) > 0
        images.append(image.reshape(-1, 3).mean(axis=0))
    assert (seen >= 3).all(), f"classes rarely drawn: {dict(zip(CLASS_NAMES, seen.tolist()))}"
    assert np.std(images, axis=0).min() > 5, "mean colours barely vary between scenes"


def test_outlier_exposure(tmp_path):
    assert not set(OE_SHAPES) & set(ANOMALY_SHAPES) and not set(OE_TEXTURES) & set(ANOMALY_TEXTURES)
    generate_world(tmp_path, num_train=8, num_val=4, num_anomaly=0, height=H, width=W, seed=0, outlier_exposure=True)
    with_oe = [(_read(p) == OUTLIER_EXPOSURE_VALUE).any() for p in tmp_path.glob("gtFine/train/synth/*.png")]
    assert 1 <= sum(with_oe) <= 7, f"expected some but not all training images with OE objects, got {with_oe}"
    for path in tmp_path.glob("gtFine/val/synth/*.png"):
        assert not (_read(path) == OUTLIER_EXPOSURE_VALUE).any(), f"OE object in validation image {path.name}"
    for path in tmp_path.glob("gtFine/train/synth/*.png"):
        assert set(np.unique(_read(path)).tolist()) <= set(range(NUM_CLASSES)) | {254, 255}


def test_world_matches_and_errors(tmp_path, world):
    assert world_matches(world, **SMALL, seed=3)
    assert not world_matches(world, **SMALL, seed=4)
    assert not world_matches(world, **{**SMALL, "num_train": 5}, seed=3)
    assert not world_matches(tmp_path / "missing", **SMALL)
    with pytest.raises(ValueError, match="`num_val` >= 0, got -1"):
        generate_world(tmp_path, **{**SMALL, "num_val": -1})
    with pytest.raises(ValueError, match="`workers` >= 1, got 0"):
        generate_world(tmp_path, **SMALL, workers=0)
    with pytest.raises(ValueError, match=r"`height` and `width` >= 32, got 64x8"):
        generate_world(tmp_path, **{**SMALL, "width": 8})
    (tmp_path / "foreign" / "gtFine").mkdir(parents=True)
    with pytest.raises(ValueError, match="no synthetic_world.json; refusing"):
        generate_world(tmp_path / "foreign", **SMALL)


def test_an_interrupted_world_does_not_match(tmp_path):
    generate_world(tmp_path, **SMALL)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({**manifest, "complete": False}))
    assert not world_matches(tmp_path, **SMALL)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert world_matches(tmp_path, **SMALL)
    (tmp_path / "anomaly" / "images" / "anomaly_00001.png").unlink()
    assert not world_matches(tmp_path, **SMALL), "a world with a missing image must not match"


def test_regenerating_replaces_the_old_world(tmp_path):
    generate_world(tmp_path, num_train=3, num_val=0, num_anomaly=0, height=H, width=W)
    generate_world(tmp_path, num_train=1, num_val=0, num_anomaly=0, height=H, width=W)
    assert len(list(tmp_path.rglob("*.png"))) == 2, "stale images of the previous world remain"


def test_cli_skips_a_matching_world(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_synthetic", REPO / "tools" / "make_synthetic.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    args = ["--out", str(tmp_path), "--train", "1", "--val", "1", "--anomaly", "1", "--height", "32", "--width", "64"]
    assert cli.main(args) == 0
    assert "3 images" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert cli.main([*args, "--force"]) == 0
    assert "3 images" in capsys.readouterr().out
    (tmp_path / "foreign" / "anomaly").mkdir(parents=True)
    assert cli.main([*args[:1], str(tmp_path / "foreign"), *args[2:]]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
