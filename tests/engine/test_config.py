import pytest

from vos_seg.engine.config import TrainConfig, config_from_dict, config_to_dict, load_config, save_config


@pytest.fixture
def base(tmp_path, tiny_model_cfg):
    (tmp_path / "world").mkdir()
    return {
        "model": tiny_model_cfg,
        "data": {"dataset": "synthetic", "root": str(tmp_path / "world"), "crop_size": [32, 48]},
        "vos": {"queue_size": 10},
        "optim": {"lr": 0.01, "iterations": 5},
        "run": {"output_dir": str(tmp_path / "run")},
    }


def test_load_and_round_trip(base, write_yaml, tmp_path):
    cfg = load_config(write_yaml(base), ["optim.lr=0.5", "vos.enabled=false", "data.anomaly.root=" + str(tmp_path)])
    assert isinstance(cfg, TrainConfig)
    assert cfg.optim.lr == 0.5 and cfg.vos.enabled is False and cfg.vos.queue_size == 10
    assert cfg.data.crop_size == [32, 48] and cfg.model.options["encoder_depth"] == 3
    assert cfg.data.anomaly.root == str(tmp_path) and cfg.data.anomaly.name == "synthetic"
    assert cfg.optim.weight_decay == 1e-4  # default kept
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_int_accepted_for_float(base, write_yaml):
    base["optim"]["lr"] = 1
    assert load_config(write_yaml(base)).optim.lr == 1.0


def test_unknown_key_names_it_and_suggests(base, write_yaml):
    base["optim"]["lrr"] = 0.1
    path = write_yaml(base, "x.yaml")
    with pytest.raises(ValueError, match=r"unknown key 'optim.lrr' in .*x.yaml \(did you mean 'optim.lr'\?\)"):
        load_config(path)
    base["optim"].pop("lrr")
    base["trainer"] = {}
    with pytest.raises(ValueError, match="unknown key 'trainer'"):
        load_config(write_yaml(base))


def test_unknown_override_key(base, write_yaml):
    with pytest.raises(ValueError, match=r"unknown key 'vos.alfa' in --set \(did you mean 'vos.alpha'\?\)"):
        load_config(write_yaml(base), ["vos.alfa=0.2"])
    with pytest.raises(ValueError, match="must look like 'section.key=value'"):
        load_config(write_yaml(base), ["vos.alpha"])


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("optim", "lr", "fast", r"'optim.lr' in .* must be a number, got str 'fast'"),
        ("optim", "iterations", 2.5, r"'optim.iterations' in .* must be an integer, got float 2.5"),
        ("vos", "enabled", "yes", r"'vos.enabled' in .* must be bool, got str 'yes'"),
        ("data", "crop_size", 32, r"'data.crop_size' in .* must be a list, got int 32"),
        ("data", "crop_size", [32, "a"], r"'data.crop_size\[1\]' in .* must be an integer"),
        ("model", "class_names", "road", r"'model.class_names' in .* must be a list"),
        ("run", "log_format", 1.0, None),
    ],
)
def test_wrong_type_names_key(base, write_yaml, section, key, value, message):
    base[section][key] = value
    with pytest.raises(TypeError, match=message) if message else pytest.raises(ValueError, match="'run.log_format'"):
        load_config(write_yaml(base))


def test_choice_and_value_errors(base, write_yaml):
    base["optim"]["schedule"] = "step"
    with pytest.raises(ValueError, match=r"'optim.schedule' in .* must be one of \['poly', 'cosine'\], got 'step'"):
        load_config(write_yaml(base))
    base["optim"]["schedule"] = "poly"
    base["model"]["class_names"] = ["a", "b"]
    with pytest.raises(ValueError, match=r"invalid value for 'model.class_names'"):
        load_config(write_yaml(base))


def test_missing_paths(base, write_yaml, tmp_path):
    base["data"]["root"] = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"'data.root' in .*: path '.*nowhere' does not exist"):
        load_config(write_yaml(base))
    assert load_config(write_yaml(base), check_paths=False).data.root.endswith("nowhere")
    base["data"]["root"] = str(tmp_path)
    base["data"]["anomaly"] = {"name": "synthetic", "root": str(tmp_path / "gone")}
    with pytest.raises(FileNotFoundError, match=r"'data.anomaly.root' in .*gone' does not exist"):
        load_config(write_yaml(base))
    with pytest.raises(FileNotFoundError, match="config file .*absent.yaml' does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_shipped_configs_parse():
    from pathlib import Path

    paths = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
    assert {p.name for p in paths} >= {"demo.yaml", "demo_baseline.yaml", "cityscapes_deeplabv3plus_r50.yaml",
                                       "cityscapes_unet_r34.yaml"}
    for path in paths:
        load_config(path, check_paths=False)
