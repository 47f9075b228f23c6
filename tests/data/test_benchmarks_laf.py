"""Lost and Found (test / testNoKnown / train) and Fishyscapes Lost & Found on tiny fixture folders."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from vos_seg.data.benchmarks import open_anomaly_dataset
from vos_seg.data.benchmarks_laf import LAF_KNOWN_OBJECT_PREFIXES

H, W = 8, 12

TEST_FRAMES = (
    ("01_Hanns_Klemm_Str_45", "01_Hanns_Klemm_Str_45_000006_000100"),  # bicycle sequence: not in testNoKnown
    ("01_Hanns_Klemm_Str_45", "01_Hanns_Klemm_Str_45_000010_000050"),
    ("04_Maurener_Weg_8", "04_Maurener_Weg_8_000000_000030"),
    ("04_Maurener_Weg_8", "04_Maurener_Weg_8_000001_000090"),  # written all-zero below: not in testNoKnown
    ("15_Rechbergstr_Deckenpfronn", "15_Rechbergstr_Deckenpfronn_000000_000200"),  # children: not in testNoKnown
)


def write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def lost_and_found(root: Path, rng, split="test", frames=TEST_FRAMES):
    data = {}
    for city, fid in frames:
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        raw = rng.choice(np.array([0, 1, 2, 7, 43, 200, 201, 255], np.uint8), size=(H, W))
        if fid == "04_Maurener_Weg_8_000001_000090":
            raw[:] = 0
        write(root / "leftImg8bit" / split / city / f"{fid}_leftImg8bit.png", rgb[..., ::-1])
        write(root / "gtCoarse" / split / city / f"{fid}_gtCoarse_labelIds.png", raw)
        data[fid] = (rgb, raw)
    return data


def smiyc_reference(raw: np.ndarray) -> np.ndarray:
    """road_anomaly_benchmark DatasetRA.get_frame: start from 255, usual (1) -> 0, anomaly range [2, 200] -> 1."""
    label = np.full(raw.shape, 255, np.uint8)
    label[raw == 1] = 0
    label[(raw >= 2) & (raw <= 200)] = 1
    return label


def test_lost_and_found_test_selection(tmp_path, rng):
    data = lost_and_found(tmp_path, rng)
    ds = open_anomaly_dataset("lost_and_found", tmp_path)
    assert ds.frame_ids == sorted(fid for _, fid in TEST_FRAMES)
    for frame in ds:
        rgb, raw = data[frame.frame_id]
        np.testing.assert_array_equal(frame.image, rgb)
        np.testing.assert_array_equal(frame.labels, smiyc_reference(raw))


def test_lost_and_found_test_no_known(tmp_path, rng):
    lost_and_found(tmp_path, rng)
    ds = open_anomaly_dataset("lost_and_found", tmp_path, selection="testNoKnown")
    assert ds.frame_ids == ["01_Hanns_Klemm_Str_45_000010_000050", "04_Maurener_Weg_8_000000_000030"]
    assert "15_Rechbergstr_Deckenpfronn" in LAF_KNOWN_OBJECT_PREFIXES and len(LAF_KNOWN_OBJECT_PREFIXES) == 4


def test_lost_and_found_train_and_errors(tmp_path, rng):
    lost_and_found(tmp_path, rng, split="train", frames=(("02_Hanns_Klemm_Str_44", "02_Hanns_Klemm_Str_44_000000_000010"),))
    assert open_anomaly_dataset("lost_and_found", tmp_path, selection="train").frame_ids == ["02_Hanns_Klemm_Str_44_000000_000010"]
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit/test' does not exist"):
        open_anomaly_dataset("lost_and_found", tmp_path)
    with pytest.raises(ValueError, match="`selection` must be one of"):
        open_anomaly_dataset("lost_and_found", tmp_path, selection="val")
    (tmp_path / "gtCoarse/train/02_Hanns_Klemm_Str_44/02_Hanns_Klemm_Str_44_000000_000010_gtCoarse_labelIds.png").unlink()
    label = "gtCoarse/train/02_Hanns_Klemm_Str_44/02_Hanns_Klemm_Str_44_000000_000010_gtCoarse_labelIds.png"
    with pytest.raises(FileNotFoundError, match=label):
        open_anomaly_dataset("lost_and_found", tmp_path, selection="train")


def fishyscapes(root: Path, laf_root: Path, rng, flat: bool = False):
    data = lost_and_found(laf_root, rng, frames=TEST_FRAMES[1:3])
    train = lost_and_found(laf_root, rng, split="train", frames=(("02_Hanns_Klemm_Str_44", "02_Hanns_Klemm_Str_44_000000_000010"),))
    data.update(train)
    if flat:  # images moved into one folder, as several public loaders expect
        (root / "laf_images").mkdir(parents=True)
        for path in list(laf_root.rglob("*_leftImg8bit.png")):
            path.rename(root / "laf_images" / path.name)
    labels = {}
    for i, fid in enumerate(sorted(data)):
        lab = rng.choice(np.array([0, 1, 255], np.uint8), size=(H, W))
        write(root / "fishyscapes_lostandfound" / f"{i:04d}_{fid}_labels.png", lab)
        labels[f"{i:04d}_{fid}"] = (data[fid][0], lab)
    return labels


@pytest.mark.parametrize("flat", [False, True])
def test_fishyscapes_laf(tmp_path, rng, flat):
    labels = fishyscapes(tmp_path, tmp_path / "lostandfound", rng, flat=flat)
    ds = open_anomaly_dataset("fishyscapes_laf", tmp_path)
    assert ds.frame_ids == sorted(labels) and len(ds) == 3
    assert ds.frame_ids[0] == "0000_01_Hanns_Klemm_Str_45_000010_000050"
    for frame in ds:
        rgb, lab = labels[frame.frame_id]
        np.testing.assert_array_equal(frame.image, rgb)
        np.testing.assert_array_equal(frame.labels, lab)


def test_fishyscapes_laf_separate_folders_and_errors(tmp_path, rng):
    labels = fishyscapes(tmp_path / "fs", tmp_path / "laf", rng)
    ds = open_anomaly_dataset("fishyscapes_laf", tmp_path / "fs", images_root=tmp_path / "laf")
    assert len(ds) == len(labels)
    ds = open_anomaly_dataset("fishyscapes_laf", tmp_path / "fs" / "fishyscapes_lostandfound", images_root=tmp_path / "laf")
    assert len(ds) == len(labels)  # labels directly in root
    no_image = (r"0000_01_Hanns_Klemm_Str_45_000010_000050_labels.png' has no image: "
                r"no '01_Hanns_Klemm_Str_45_000010_000050_leftImg8bit.png'")
    with pytest.raises(FileNotFoundError, match=no_image):
        open_anomaly_dataset("fishyscapes_laf", tmp_path / "fs")
    with pytest.raises(FileNotFoundError, match="no '\\*_labels.png' files"):
        open_anomaly_dataset("fishyscapes_laf", tmp_path / "laf")
    bad = np.full((H, W), 1, np.uint8)
    bad[0, 0] = 3
    write(tmp_path / "fs" / "fishyscapes_lostandfound" / "0001_02_Hanns_Klemm_Str_44_000000_000010_labels.png", bad)
    ds = open_anomaly_dataset("fishyscapes_laf", tmp_path / "fs", images_root=tmp_path / "laf")
    with pytest.raises(ValueError, match=r"0001_02_Hanns_Klemm_Str_44_000000_000010_labels.png.*3 \(1 pixels\)"):
        ds[1]
