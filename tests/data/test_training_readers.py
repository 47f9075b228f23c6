"""CityscapesSegmentation and FolderSegmentation on tiny fixture folders in each layout."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vos_seg.data.cityscapes import CITYSCAPES_CLASSES, CityscapesSegmentation
from vos_seg.data.folder import FolderSegmentation
from vos_seg.data.transforms import image_to_tensor, train_transform

H, W = 12, 16

# cityscapesScripts labels.py, trainId of label ids 0..33 (255 = ignoreInEval), written out in id order.
OFFICIAL_TRAIN_IDS = [255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255,
                      6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18]


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _cityscapes(root: Path, rng, split="train", frames=(("aachen", "aachen_000000_000019"),
                                                       ("bonn", "bonn_000001_000019"),
                                                       ("aachen", "aachen_000002_000019"))):
    data = {}
    for city, name in frames:
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        train = rng.integers(0, 19, (H, W)).astype(np.uint8)
        train[0, :3] = 255
        ids = rng.integers(0, 34, (H, W)).astype(np.uint8)
        _write(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", rgb[..., ::-1])
        _write(root / "gtFine" / split / city / f"{name}_gtFine_labelTrainIds.png", train)
        _write(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", ids)
        data[name] = (rgb, train, ids)
    return data


def test_cityscapes_train_ids_items(tmp_path, rng):
    data = _cityscapes(tmp_path, rng)
    ds = CityscapesSegmentation(tmp_path, "train")
    assert len(ds) == 3 and len(CITYSCAPES_CLASSES) == 19
    assert ds.frame_ids == ["aachen_000000_000019", "aachen_000002_000019", "bonn_000001_000019"]
    for i, name in enumerate(ds.frame_ids):
        image, target = ds[i]
        assert image.dtype == torch.float32 and image.shape == (3, H, W)
        assert target.dtype == torch.int64 and target.shape == (H, W)
        torch.testing.assert_close(image, image_to_tensor(data[name][0]), rtol=0, atol=0)
        np.testing.assert_array_equal(target.numpy(), data[name][1])


def test_cityscapes_label_ids_mapped_with_official_table(tmp_path, rng):
    data = _cityscapes(tmp_path, rng)
    ids = np.arange(H * W, dtype=np.uint8).reshape(H, W)  # 0..191: every official id plus unknown ones
    _write(tmp_path / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png", ids)
    ds = CityscapesSegmentation(tmp_path, "train", label_source="labelIds", ignore_index=250)
    target = ds[0][1].numpy()
    expected = np.array([OFFICIAL_TRAIN_IDS[v] if v < 34 else 255 for v in ids.ravel()]).reshape(H, W)
    expected[expected == 255] = 250
    np.testing.assert_array_equal(target, expected)
    assert sorted(set(target.ravel()) - {250}) == list(range(19))
    assert ds.frame_ids[1] in data


def test_cityscapes_outlier_value_becomes_minus_one(tmp_path, rng):
    _cityscapes(tmp_path, rng)
    label = np.zeros((H, W), np.uint8)
    label[2:5, 3:7], label[0, 0] = 254, 255
    _write(tmp_path / "gtFine/train/bonn/bonn_000001_000019_gtFine_labelTrainIds.png", label)
    ds = CityscapesSegmentation(tmp_path, "train", num_classes=5, outlier_value=254)
    target = ds[2][1]
    assert (target == -1).sum() == 12 and target[0, 0] == 255 and (target == 0).sum() == H * W - 13
    with pytest.raises(ValueError, match=r"bonn_000001_000019_gtFine_labelTrainIds.png.*254 \(12 pixels\)"):
        CityscapesSegmentation(tmp_path, "train", num_classes=5)[2]


def test_cityscapes_bad_label_value_names_file_and_values(tmp_path, rng):
    _cityscapes(tmp_path, rng)
    label = np.zeros((H, W), np.uint8)
    label[0, :2] = 19
    label[1, 0] = 77
    _write(tmp_path / "gtFine/train/aachen/aachen_000002_000019_gtFine_labelTrainIds.png", label)
    ds = CityscapesSegmentation(tmp_path, "train")
    with pytest.raises(ValueError, match=r"aachen_000002_000019_gtFine_labelTrainIds.png.*19 \(2 pixels\), 77 \(1 pixel\)"):
        ds[1]


def test_cityscapes_with_train_transform_keeps_outliers(tmp_path, rng):
    _cityscapes(tmp_path, rng)
    label = np.full((H, W), 254, np.uint8)
    _write(tmp_path / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png", label)
    t = train_transform((8, 8), scale_range=(1.0, 1.0), seed=0)
    ds = CityscapesSegmentation(tmp_path, "train", transform=t, outlier_value=254)
    image, target = ds[0]
    assert image.shape == (3, 8, 8) and target.dtype == torch.int64 and (target == -1).all()
    images, targets = next(iter(DataLoader(ds, batch_size=3)))
    assert images.shape == (3, 3, 8, 8) and targets.shape == (3, 8, 8) and targets.dtype == torch.int64


def test_cityscapes_layout_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit/val"):
        CityscapesSegmentation(tmp_path, "val")
    _cityscapes(tmp_path, rng)
    (tmp_path / "gtFine/train/bonn/bonn_000001_000019_gtFine_labelTrainIds.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"bonn_000001_000019_leftImg8bit.png.*bonn_000001_000019_gtFine_labelTrainIds.png"):
        CityscapesSegmentation(tmp_path, "train")
    (tmp_path / "leftImg8bit/test").mkdir()
    (tmp_path / "gtFine/test").mkdir()
    with pytest.raises(FileNotFoundError, match="no '<city>/\\*_leftImg8bit.png' images"):
        CityscapesSegmentation(tmp_path, "test")


def test_cityscapes_argument_errors(tmp_path, rng):
    _cityscapes(tmp_path, rng)
    with pytest.raises(ValueError, match="label_source"):
        CityscapesSegmentation(tmp_path, "train", label_source="colors")
    with pytest.raises(ValueError, match="19 Cityscapes train ids; got num_classes=7"):
        CityscapesSegmentation(tmp_path, "train", label_source="labelIds", num_classes=7)
    with pytest.raises(ValueError, match="ignore_index 3 collides"):
        CityscapesSegmentation(tmp_path, "train", num_classes=7, ignore_index=3)
    with pytest.raises(ValueError, match="`outlier_value` 255 collides"):
        CityscapesSegmentation(tmp_path, "train", outlier_value=255)


def test_cityscapes_size_mismatch_names_label(tmp_path, rng):
    _cityscapes(tmp_path, rng)
    _write(tmp_path / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png", np.zeros((H, W + 1), np.uint8))
    with pytest.raises(ValueError, match=r"aachen_000000_000019_gtFine_labelTrainIds.png' is 12x17 but its image is 12x16"):
        CityscapesSegmentation(tmp_path, "train")[0]


def _folder(root: Path, rng, stems=("b", "a", "c"), suffix="_mask.png"):
    data = {}
    for stem in stems:
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        mask = rng.integers(0, 4, (H, W)).astype(np.uint8)
        mask[-1, -1] = 255
        _write(root / "images" / f"{stem}.jpg" if stem == "c" else root / "images" / f"{stem}.png", rgb[..., ::-1])
        _write(root / "masks" / f"{stem}{suffix}", mask)
        data[stem] = (rgb, mask)
    return data


def test_folder_pairs_by_stem(tmp_path, rng):
    data = _folder(tmp_path, rng)
    _write(tmp_path / "masks" / "orphan_mask.png", np.zeros((H, W), np.uint8))  # masks without images are ignored
    ds = FolderSegmentation(tmp_path / "images", tmp_path / "masks", num_classes=4, mask_suffix="_mask.png")
    assert ds.frame_ids == ["a", "b", "c"] and len(ds) == 3
    image, target = ds[0]
    torch.testing.assert_close(image, image_to_tensor(data["a"][0]), rtol=0, atol=0)
    np.testing.assert_array_equal(target.numpy(), data["a"][1])
    assert ds[2][0].shape == (3, H, W)  # the jpg


def test_folder_outliers_and_bad_values(tmp_path, rng):
    _folder(tmp_path, rng, stems=("a",), suffix=".png")
    mask = np.zeros((H, W), np.uint8)
    mask[0, :4] = 200
    _write(tmp_path / "masks" / "a.png", mask)
    ds = FolderSegmentation(tmp_path / "images", tmp_path / "masks", num_classes=4, outlier_value=200)
    assert (ds[0][1] == -1).sum() == 4
    with pytest.raises(ValueError, match=r"masks/a.png.*200 \(4 pixels\)"):
        FolderSegmentation(tmp_path / "images", tmp_path / "masks", num_classes=4)[0]


def test_folder_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="images' does not exist"):
        FolderSegmentation(tmp_path / "images", tmp_path / "masks", num_classes=4)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        FolderSegmentation(tmp_path / "images", tmp_path / "masks", num_classes=4)
    _folder(tmp_path, rng, stems=("a", "b"))
    (tmp_path / "masks" / "b_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"images/b.png' has no mask: .*b_mask.png"):
        FolderSegmentation(tmp_path / "images", tmp_path / "masks", num_classes=4, mask_suffix="_mask.png")
    _write(tmp_path / "images" / "a.webp", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="two images share the stem 'a'"):
        FolderSegmentation(tmp_path / "images", tmp_path / "masks", num_classes=4, mask_suffix="_mask.png")
