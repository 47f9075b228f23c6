"""Fixtures for the engine tests: tiny SMP model configs and configs written to tmp_path."""

import pytest
import yaml

TINY_MODEL = {
    "arch": "Unet",
    "encoder_name": "resnet18",
    "encoder_weights": None,
    "num_classes": 3,
    "class_names": ["road", "car", "sky"],
    "options": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
}


@pytest.fixture
def tiny_model_cfg() -> dict:
    return {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in TINY_MODEL.items()}


@pytest.fixture
def write_yaml(tmp_path):
    def _write(data, name="cfg.yaml"):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return _write
