import math
from types import SimpleNamespace

import pytest
import torch

from vos_seg.engine.model import build_model
from vos_seg.engine.schedule import build_optimizer, build_scheduler, lr_factor
from vos_seg.loss import VOSSegLoss


def _cfg(**kw):
    base = dict(name="adamw", lr=0.01, weight_decay=0.1, momentum=0.9, head_lr_mult=2.0, plugin_lr_mult=5.0,
                schedule="poly", poly_power=0.9, warmup_iters=4, iterations=20)
    return SimpleNamespace(**{**base, **kw})


def test_lr_factor_values():
    assert [lr_factor(i, iterations=20, warmup_iters=4) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(12, iterations=20, warmup_iters=4) == pytest.approx(0.5**0.9)
    assert lr_factor(12, iterations=20, warmup_iters=4, schedule="cosine") == pytest.approx(0.5)
    assert lr_factor(20, iterations=20) == 0.0
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_factor(0, iterations=5, schedule="step")


def test_optimizer_groups_and_scheduler(tiny_model_cfg):
    model = build_model(tiny_model_cfg)
    plugin = torch.nn.Module()
    plugin.loss = VOSSegLoss(3)
    opt = build_optimizer(model, plugin, _cfg())
    by_id = {id(p): g for g in opt.param_groups for p in g["params"]}
    trainable = [p for p in [*model.parameters(), *plugin.parameters()] if p.requires_grad]
    assert len(by_id) == len(trainable)  # frozen parameters (e.g. an unused bias) stay out
    enc_w = model.encoder.conv1.weight
    assert by_id[id(enc_w)]["lr"] == 0.01 and by_id[id(enc_w)]["weight_decay"] == 0.1
    head_w = model.segmentation_head[0].weight
    assert by_id[id(head_w)]["lr"] == 0.02 and by_id[id(head_w)]["weight_decay"] == 0.1
    assert by_id[id(model.segmentation_head[0].bias)]["weight_decay"] == 0.0
    for p in (p for p in plugin.parameters() if p.requires_grad):
        assert by_id[id(p)]["lr"] == 0.05 and by_id[id(p)]["weight_decay"] == 0.0
    sched = build_scheduler(opt, _cfg())
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"] / opt.param_groups[0]["initial_lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0]) and lrs[5] == pytest.approx((1 - 1 / 16) ** 0.9)
    with pytest.raises(ValueError, match="listed twice"):
        build_optimizer(model, model, _cfg())
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'"):
        build_optimizer(model, None, _cfg(name="lamb"))
    assert isinstance(build_optimizer(model, None, _cfg(name="sgd")), torch.optim.SGD)
    assert not math.isnan(lrs[-1])
