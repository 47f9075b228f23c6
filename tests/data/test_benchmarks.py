"""Anomaly benchmark readers on tiny fixture folders: SegmentMeIfYouCan, synthetic, Road Anomaly, StreetHazards,
the registry and the lazy sequence. Lost and Found and Fishyscapes are in test_benchmarks_laf.py."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vos_seg.data.benchmarks import ANOMALY_DATASETS, AnomalyFrame, open_anomaly_dataset

H, W = 10, 14


def write(path: Path, array: np.ndarray, params=()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array, list(params))
    return path


def rgb_image(rng) -> np.ndarray:
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def labels_01void(rng) -> np.ndarray:
    return rng.choice(np.array([0, 1, 255], np.uint8), size=(H, W))


def smiyc(root: Path, rng, ids=("validation0001", "validation0000"), ext=".png", labelled=None):
    data = {}
    for fid in ids:
        rgb, lab = rgb_image(rng), labels_01void(rng)
        params = (cv2.IMWRITE_WEBP_QUALITY, 101) if ext == ".webp" else ()
        write(root / "images" / f"{fid}{ext}", rgb[..., ::-1], params)
        if labelled is None or fid in labelled:
            write(root / "labels_masks" / f"{fid}_labels_semantic.png", lab)
        data[fid] = (rgb, lab)
    return data


def test_registry_names():
    assert ANOMALY_DATASETS == ("road_anomaly21", "road_obstacle21", "fishyscapes_laf", "lost_and_found",
                                "road_anomaly", "street_hazards", "synthetic")


@pytest.mark.parametrize("name, ext", [("road_anomaly21", ".png"), ("road_obstacle21", ".webp")])
def test_smiyc_layout(tmp_path, rng, name, ext):
    data = smiyc(tmp_path, rng, ext=ext)
    ds = open_anomaly_dataset(name, tmp_path)
    assert ds.frame_ids == ["validation0000", "validation0001"] and len(ds) == 2
    assert ds.per_image_metrics is False and ds.name == name
    for frame in ds:
        assert isinstance(frame, AnomalyFrame)
        rgb, lab = data[frame.frame_id]
        assert frame.image.dtype == np.uint8 and frame.labels.dtype == np.uint8
        np.testing.assert_array_equal(frame.image, rgb)
        np.testing.assert_array_equal(frame.labels, lab)
        np.testing.assert_array_equal(ds.read_labels(ds.frame_ids.index(frame.frame_id)), lab)


def test_smiyc_jpg_images(tmp_path, rng):
    smiyc(tmp_path, rng, ext=".jpg")
    frame = open_anomaly_dataset("road_anomaly21", tmp_path)[0]
    assert frame.image.shape == (H, W, 3) and frame.labels.shape == (H, W)


def test_road_obstacle21_scenes(tmp_path, rng):
    smiyc(tmp_path, rng, ids=("gravel_1", "snowstorm1_00_01", "validation_3"))
    ds = open_anomaly_dataset("road_obstacle21", tmp_path, scenes={"gravel", "validation"})
    assert ds.frame_ids == ["gravel_1", "validation_3"]
    with pytest.raises(FileNotFoundError, match=r"no frame of scenes \['motorway'\]"):
        open_anomaly_dataset("road_obstacle21", tmp_path, scenes=["motorway"])


def test_smiyc_frames_without_labels(tmp_path, rng):
    smiyc(tmp_path, rng, ids=("airplane0000", "validation0000"), labelled={"validation0000"})
    missing = r"1 of 2 frames have no label file, e.g. .*airplane0000_labels_semantic.png.*require_labels=False"
    with pytest.raises(FileNotFoundError, match=missing):
        open_anomaly_dataset("road_anomaly21", tmp_path)
    ds = open_anomaly_dataset("road_anomaly21", tmp_path, require_labels=False)
    assert ds[0].labels is None and ds[1].labels is not None and ds.read_labels(0) is None


def test_smiyc_malformed_labels_name_the_file(tmp_path, rng):
    smiyc(tmp_path, rng)
    bad = np.zeros((H, W), np.uint8)
    bad[0, :3] = 2
    write(tmp_path / "labels_masks" / "validation0000_labels_semantic.png", bad)
    ds = open_anomaly_dataset("road_anomaly21", tmp_path)
    with pytest.raises(ValueError, match=r"validation0000_labels_semantic.png.*2 \(3 pixels\)"):
        ds[0]
    write(tmp_path / "labels_masks" / "validation0000_labels_semantic.png", np.zeros((H + 1, W), np.uint8))
    with pytest.raises(ValueError, match=r"validation0000_labels_semantic.png' is 11x14 but image .*validation0000.png' is 10x14"):
        ds[0]
    write(tmp_path / "labels_masks" / "validation0000_labels_semantic.png", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match=r"validation0000_labels_semantic.png.*3 channels"):
        ds[0]
    (tmp_path / "images" / "validation0001.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"images/validation0001.png"):
        ds[1]
    (tmp_path / "images" / "validation0001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"images/validation0001.png"):
        ds[1]


def test_smiyc_layout_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="road_anomaly21 folder .*missing' does not exist"):
        open_anomaly_dataset("road_anomaly21", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="road_anomaly21 images folder .*images' does not exist"):
        open_anomaly_dataset("road_anomaly21", tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="road_anomaly21: no frames found"):
        open_anomaly_dataset("road_anomaly21", tmp_path)
    smiyc(tmp_path, rng, ids=("a",))
    write(tmp_path / "images" / "a.jpg", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="two images for frame 'a'"):
        open_anomaly_dataset("road_anomaly21", tmp_path)


def test_registry_errors(tmp_path, rng):
    with pytest.raises(ValueError, match="unknown anomaly dataset 'cityscapes'; expected one of road_anomaly21, "):
        open_anomaly_dataset("cityscapes", tmp_path)
    with pytest.raises(TypeError, match="'road_anomaly21' does not take option\\(s\\) scenes; it takes require_labels"):
        open_anomaly_dataset("road_anomaly21", tmp_path, scenes=["a"])


def test_sequence_behaviour(tmp_path, rng):
    smiyc(tmp_path, rng, ids=("a", "b", "c"))
    ds = open_anomaly_dataset("road_anomaly21", tmp_path)
    assert ds[-1].frame_id == "c" and ds[np.int64(1)].frame_id == "b"
    assert [f.frame_id for f in ds] == ["a", "b", "c"]
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(TypeError, match="indexed by int, got str"):
        ds["a"]
    assert "frames=3" in repr(ds)


def test_synthetic_split(tmp_path, rng):
    data = smiyc(tmp_path / "anomaly", rng, ids=("000000", "000001"))
    ds = open_anomaly_dataset("synthetic", tmp_path)
    assert ds.name == "synthetic" and ds.frame_ids == ["000000", "000001"]
    np.testing.assert_array_equal(ds[1].labels, data["000001"][1])
    with pytest.raises(FileNotFoundError, match="synthetic anomaly split folder"):
        open_anomaly_dataset("synthetic", tmp_path / "anomaly")


def road_anomaly(root: Path, rng, names=("cones01", "animals02")):
    raw = {}
    for name in names:
        write(root / "frames" / f"{name}.jpg", rgb_image(rng))
        lab = rng.choice(np.array([0, 1, 2, 3, 255], np.uint8), size=(H, W))
        write(root / "frames" / f"{name}.labels" / "labels_semantic.png", lab)
        raw[name] = lab
    return raw


def test_road_anomaly_labels_at_least_2_are_anomalies(tmp_path, rng):
    raw = road_anomaly(tmp_path, rng)
    ds = open_anomaly_dataset("road_anomaly", tmp_path)
    assert ds.frame_ids == ["animals02", "cones01"]
    frame = ds[1]
    lab = raw["cones01"]
    expected = np.where(lab == 255, 255, np.where(lab >= 2, 1, 0))
    np.testing.assert_array_equal(frame.labels, expected)
    assert set(np.unique(frame.labels)) == {0, 1, 255}


def test_road_anomaly_frame_list_and_missing_labels(tmp_path, rng):
    road_anomaly(tmp_path, rng, names=("b", "a", "c"))
    (tmp_path / "frame_list.json").write_text(json.dumps(["c.jpg", "a.jpg"]))
    assert open_anomaly_dataset("road_anomaly", tmp_path).frame_ids == ["c", "a"]
    (tmp_path / "frame_list.json").write_text(json.dumps(["zzz.jpg"]))
    with pytest.raises(FileNotFoundError, match=r"frames/zzz.jpg' listed in .*frame_list.json"):
        open_anomaly_dataset("road_anomaly", tmp_path)
    (tmp_path / "frame_list.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot parse .*frame_list.json"):
        open_anomaly_dataset("road_anomaly", tmp_path)
    (tmp_path / "frame_list.json").unlink()
    (tmp_path / "frames" / "a.labels" / "labels_semantic.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"a.labels/labels_semantic.png"):
        open_anomaly_dataset("road_anomaly", tmp_path)
    assert open_anomaly_dataset("road_anomaly", tmp_path, require_labels=False)[0].labels is None


def street_hazards(root: Path, rng, frames=(("t5", "10"), ("t5", "2"), ("t6", "300"))):
    raw = {}
    for town, n in frames:
        write(root / "images" / "test" / town / f"{n}.png", rgb_image(rng))
        ann = rng.integers(0, 15, (H, W)).astype(np.uint8)  # raw 0..14 = class + 1
        write(root / "annotations" / "test" / town / f"{n}.png", ann)
        raw[f"{town}_{n}"] = ann
    return raw


@pytest.mark.parametrize("nested", [False, True])
def test_street_hazards(tmp_path, rng, nested):
    raw = street_hazards(tmp_path / "test" if nested else tmp_path, rng)
    ds = open_anomaly_dataset("street_hazards", tmp_path)
    assert ds.per_image_metrics is True
    assert ds.frame_ids == ["t5_2", "t5_10", "t6_300"]  # numeric order within a town
    for frame in ds:
        expected = (raw[frame.frame_id].astype(int) - 1 == 13).astype(np.uint8)  # official: value - 1, class 13
        np.testing.assert_array_equal(frame.labels, expected)
    assert not (ds[0].labels == 255).any()  # the official evaluation has no void


def test_street_hazards_unknown_class_and_missing_annotation(tmp_path, rng):
    street_hazards(tmp_path, rng)
    bad = np.full((H, W), 15, np.uint8)
    write(tmp_path / "annotations" / "test" / "t6" / "300.png", bad)
    ds = open_anomaly_dataset("street_hazards", tmp_path)
    with pytest.raises(ValueError, match=r"annotations/test/t6/300.png.*0..14 \(class \+ 1\): 15 \(140 px\)"):
        ds[2]
    (tmp_path / "annotations" / "test" / "t5" / "2.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"annotations/test/t5/2.png"):
        open_anomaly_dataset("street_hazards", tmp_path)
