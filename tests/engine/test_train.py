"""End-to-end training on a tiny synthetic world: outputs, baseline, and exact resume."""

import math

import pytest
import torch
import yaml

from vos_seg.engine.checkpoint import load_checkpoint, load_inference_model
from vos_seg.engine.config import load_config
from vos_seg.engine.runlog import read_log
from vos_seg.engine.trainer import Trainer, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from vos_seg.data.synthetic import generate_world

    root = tmp_path_factory.mktemp("world")
    generate_world(root, num_train=6, num_val=2, num_anomaly=2, height=64, width=64, seed=0)
    return root


def _config(tmp_path, world, name="run", vos=True, **run):
    data = {
        "model": {"arch": "Unet", "encoder_name": "resnet18", "num_classes": 10,
                  "options": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}},
        "data": {"dataset": "synthetic", "root": str(world), "crop_size": [32, 32], "scale_range": [0.75, 1.25],
                 "batch_size": 2, "num_workers": 0, "val_max_images": 1},
        "vos": {"enabled": vos, "queue_size": 6, "pixels_per_class": 3, "sample_from": 50, "start_iter": 2},
        "optim": {"iterations": 6, "lr": 0.002, "warmup_iters": 2, "grad_clip": 1.0},
        "run": {"output_dir": str(tmp_path / name), "log_every": 2, "checkpoint_every": 3, "progress": False,
                **run},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def _loss_rows(path):
    return [{k: v for k, v in row.items() if k not in ("sec_per_iter", "cpu_sec_per_iter")} for row in read_log(path)]


def test_train_writes_outputs_and_loadable_checkpoint(tmp_path, world):
    cfg = _config(tmp_path, world, log_format="jsonl")
    summary = train(cfg)
    out = tmp_path / "run"
    assert summary["iteration"] == 6 and 0 <= summary["metrics"]["miou"] <= 1
    assert load_config(out / "config.yaml") == cfg
    rows = read_log(out / "train.jsonl")
    assert [r["iteration"] for r in rows] == [2, 3, 4, 6]
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert rows[0]["num_virtual"] == 0 and rows[-1]["num_virtual"] > 0  # synthesis starts at call 2
    assert [r["iteration"] for r in read_log(out / "val.jsonl")] == [6]
    state = load_checkpoint(out / "last.pt")
    assert state["iteration"] == 6 and state["vos"] is not None
    assert load_checkpoint(out / "best.pt")["best_metric"] == summary["best_metric"]
    inf = load_inference_model(out / "last.pt", device="cpu")
    assert inf.vos_loss is not None and inf.num_classes == 10
    for k, v in inf.vos_loss.state_dict().items():
        assert torch.equal(v, state["vos"][f"loss.{k}"]), k


def test_baseline_is_plain_cross_entropy(tmp_path, world):
    cfg = _config(tmp_path, world, vos=False)
    trainer = Trainer(cfg)
    assert trainer.plugin is None
    logits = torch.randn(2, 10, 8, 8)
    target = torch.randint(0, 10, (2, 8, 8))
    target[0, 0] = 255
    target[1, 1] = -1  # outlier pixels take no part in the baseline
    ref_target = target.clone()
    ref_target[ref_target < 0] = 255
    ref = torch.nn.CrossEntropyLoss(ignore_index=255)(logits, ref_target)
    assert torch.allclose(trainer.criterion(logits, target), ref, atol=1e-6)
    trainer.fit()
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["vos"] is None and load_inference_model(tmp_path / "run" / "last.pt").vos_loss is None


class _Interrupt(Exception):
    pass


def test_resume_equals_uninterrupted(tmp_path, world, monkeypatch):
    straight = _config(tmp_path, world, "straight")
    train(straight)

    cut = _config(tmp_path, world, "cut")
    trainer = Trainer(cut)
    real_step = trainer._step

    def step_then_die(images, target):
        if trainer.iteration == 4:  # after the checkpoint at 3 and one more logged step
            raise _Interrupt
        return real_step(images, target)

    trainer._step = step_then_die
    with pytest.raises(_Interrupt):
        trainer.fit()
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["iteration"] == 3
    train(cut, resume=tmp_path / "cut" / "last.pt")

    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "last.pt")
    for section in ("model", "vos"):
        for k, v in a[section].items():
            diff = (v.double() - b[section][k].double()).abs().max() if v.is_floating_point() else 0
            assert torch.equal(v, b[section][k]), f"{section}.{k} differs, max diff {diff}"
    assert _loss_rows(tmp_path / "straight" / "train.csv") == _loss_rows(tmp_path / "cut" / "train.csv")
    assert read_log(tmp_path / "straight" / "val.csv") == read_log(tmp_path / "cut" / "val.csv")


def test_cli_reports_config_errors_and_resumes_from_checkpoint_config(tmp_path, world, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("train_cli", Path(__file__).parents[2] / "tools" / "train.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cfg = _config(tmp_path, world, "cli")
    path = tmp_path / "cli.yaml"
    assert cli.main(["--config", str(path), "--set", "optim.lrr=1"]) == 2
    assert "unknown key 'optim.lrr' in --set (did you mean 'optim.lr'?)" in capsys.readouterr().err
    assert cli.main(["--config", str(path), "--set", "optim.iterations=2", "--set", "data.val_split=null"]) == 0
    last = Path(cfg.run.output_dir) / "last.pt"
    assert load_checkpoint(last)["iteration"] == 2
    # --resume alone takes the run's stored config; --set extends it
    assert cli.main(["--resume", str(last), "--set", "optim.iterations=3"]) == 0
    assert load_checkpoint(last)["iteration"] == 3
    assert [int(r["iteration"]) for r in read_log(Path(cfg.run.output_dir) / "train.csv")] == [2, 3]
