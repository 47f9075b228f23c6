"""Label validation: the one place where training targets and anomaly labels are checked."""

import numpy as np
import pytest
import torch

from vos_seg.labels import check_ignore_index, validate_anomaly_labels, validate_target


def test_valid_targets_pass():
    validate_target(torch.tensor([0, 18, 255, -1, -5]), num_classes=19)
    validate_target(torch.zeros(2, 3, 3, dtype=torch.uint8), num_classes=1)


def test_invalid_target_values_are_named_with_counts():
    with pytest.raises(ValueError, match=r"got 19 \(1 pixel\), 254 \(2 pixels\)"):
        validate_target(torch.tensor([0, 19, 254, 254, 255]), num_classes=19)


def test_target_type_errors():
    with pytest.raises(TypeError, match="integer `target`"):
        validate_target(torch.zeros(3), num_classes=2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        validate_target(np.zeros(3, dtype=np.int64), num_classes=2)


def test_ignore_index_rules():
    check_ignore_index(19, 255)
    with pytest.raises(ValueError, match="collides with class id 3"):
        check_ignore_index(19, 3)
    with pytest.raises(ValueError, match="negative labels mark outlier pixels"):
        check_ignore_index(19, -1)


@pytest.mark.parametrize("make", [np.asarray, torch.as_tensor])
def test_anomaly_labels(make):
    validate_anomaly_labels(make(np.array([0, 1, 255], dtype=np.uint8)))
    validate_anomaly_labels(make(np.array([0, 1, 7], dtype=np.int64)), void_label=7)
    with pytest.raises(ValueError, match=r"got 2 \(2 pixels\)"):
        validate_anomaly_labels(make(np.array([0, 2, 2, 255], dtype=np.uint8)))
    with pytest.raises(TypeError, match="integer anomaly labels"):
        validate_anomaly_labels(make(np.array([0.0, 1.0], dtype=np.float32)))
