import random

import numpy as np
import pytest
import torch

from vos_seg.engine import checkpoint as ckpt_mod
from vos_seg.engine.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_inference_model,
    restore_rng_state,
    save_checkpoint,
)
from vos_seg.engine.model import build_model
from vos_seg.loss import VOSSegLoss


def _state(model_cfg, model, vos_state=None, iteration=3):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(1, 3, 32, 32)).mean().backward()
    opt.step()
    return {
        "config": {"model": model_cfg, "data": {"ignore_index": 250}, "vos": {"alpha": 0.1}},
        "model": model.state_dict(),
        "vos": vos_state,
        "optimizer": opt.state_dict(),
        "scheduler": None,
        "scaler": None,
        "rng": capture_rng_state({"data": torch.Generator().manual_seed(1)}),
        "iteration": iteration,
        "best_metric": 0.5,
    }


def test_round_trip_weights_only(tmp_path, tiny_model_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg)
    state = _state(tiny_model_cfg, model)
    path = tmp_path / "last.pt"
    save_checkpoint(path, state)
    # weights_only=True is what load_checkpoint uses; load directly too, to prove no pickled objects.
    raw = torch.load(path, weights_only=True)
    assert raw["iteration"] == 3 and raw["format_version"] == ckpt_mod.FORMAT_VERSION
    loaded = load_checkpoint(path)
    for k, v in state["model"].items():
        assert torch.equal(loaded["model"][k], v), k
    opt = torch.optim.AdamW(build_model(tiny_model_cfg).parameters(), lr=1e-3)
    opt.load_state_dict(loaded["optimizer"])
    assert loaded["best_metric"] == 0.5


def test_atomic_write_keeps_previous_file(tmp_path, tiny_model_cfg, monkeypatch):
    model = build_model(tiny_model_cfg)
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(tiny_model_cfg, model, iteration=1))
    before = path.read_bytes()
    real_save = torch.save

    def broken_save(obj, fh, *args, **kwargs):
        real_save({"partial": torch.zeros(1000)}, fh)  # some bytes land, then the "kill"
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _state(tiny_model_cfg, model, iteration=2))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "temporary file left behind"


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt.*not a readable vos-seg checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, other)
    with pytest.raises(ValueError, match="other.pt.*not a vos-seg checkpoint"):
        load_inference_model(other)
    with pytest.raises(ValueError, match="misses keys"):
        save_checkpoint(tmp_path / "x.pt", {"model": {}})


def test_load_inference_model_with_vos_loss(tmp_path, tiny_model_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg)
    loss = VOSSegLoss(3)
    with torch.no_grad():
        loss.weights_energy.weight.uniform_(0.2, 0.9)
        loss.phi.weight.fill_(0.7)
    vos_state = {f"loss.{k}": v for k, v in loss.state_dict().items()}
    vos_state["queue"] = torch.zeros(3, 4, 8)  # plugin buffers ride along and are ignored here
    save_checkpoint(tmp_path / "best.pt", _state(tiny_model_cfg, model, vos_state))
    inf = load_inference_model(tmp_path / "best.pt", device="cpu")
    assert not inf.model.training and inf.num_classes == 3 and inf.ignore_index == 250
    assert inf.class_names == ["road", "car", "sky"]
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        diff = (inf.model(x) - model(x)).abs().max()
    assert diff == 0, f"max diff {diff}"
    logits = torch.randn(5, 3)
    assert torch.equal(inf.vos_loss.weighted_energy(logits), loss.weighted_energy(logits))
    assert torch.equal(inf.vos_loss.phi.weight, loss.phi.weight)


def test_load_inference_model_baseline_has_no_vos_loss(tmp_path, tiny_model_cfg):
    model = build_model(tiny_model_cfg)
    cfg = dict(tiny_model_cfg, class_names=None)
    save_checkpoint(tmp_path / "b.pt", _state(cfg, model))
    inf = load_inference_model(tmp_path / "b.pt")
    assert inf.vos_loss is None and inf.class_names == ["class_0", "class_1", "class_2"]


def test_rng_state_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(5)
    state = capture_rng_state({"plugin": gen})
    save_checkpoint(tmp_path / "r.pt", {"config": {}, "model": {}, "vos": None, "optimizer": None,
                                        "scheduler": None, "scaler": None, "rng": state, "iteration": 0,
                                        "best_metric": None})
    expected = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    restore_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"], {"plugin": gen})
    got = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    assert expected[2] == got[2] and torch.equal(expected[3], got[3])
    with pytest.raises(ValueError, match="no generator 'data'"):
        restore_rng_state(state, {"data": torch.Generator()})
