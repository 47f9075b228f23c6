"""The real readers on a generated synthetic world: what `make demo` trains and evaluates on."""

import numpy as np
import pytest
import torch

from vos_seg.data.benchmarks import open_anomaly_dataset
from vos_seg.data.cityscapes import CityscapesSegmentation
from vos_seg.data.io import read_label
from vos_seg.data.synthetic import NUM_CLASSES, OUTLIER_EXPOSURE_VALUE, generate_world
from vos_seg.data.transforms import train_transform


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    generate_world(root, num_train=3, num_val=1, num_anomaly=2, height=48, width=96, seed=1, outlier_exposure=True)
    return root


def test_cityscapes_reader_on_world(world):
    ds = CityscapesSegmentation(world, "train", num_classes=NUM_CLASSES, outlier_value=OUTLIER_EXPOSURE_VALUE,
                                transform=train_transform((32, 32), seed=0))
    assert len(ds) == 3
    seen = set()
    for i in range(len(ds)):
        raw = ds.read_target(i)
        image, target = ds[i]
        assert image.shape == (3, 32, 32) and target.dtype == torch.int64
        seen |= set(np.unique(raw).tolist())
    assert seen <= set(range(NUM_CLASSES)) | {255, -1}
    in_files = any((read_label(label) == OUTLIER_EXPOSURE_VALUE).any() for _, label in ds.files)
    assert (-1 in seen) == in_files, "outlier-exposure pixels (254 in the files) must reach the targets as -1"
    assert len(CityscapesSegmentation(world, "val", num_classes=NUM_CLASSES, outlier_value=OUTLIER_EXPOSURE_VALUE)) == 1


def test_anomaly_reader_on_world(world):
    ds = open_anomaly_dataset("synthetic", world)
    assert len(ds) == 2
    for frame in ds:
        assert frame.image.shape == (48, 96, 3) and frame.labels.shape == (48, 96)
        assert set(np.unique(frame.labels).tolist()) <= {0, 1, 255} and (frame.labels == 1).any()
