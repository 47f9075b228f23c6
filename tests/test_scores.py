"""Anomaly scores: hand-computed values, sign convention, dtypes, extreme logits, SML, compute_scores."""

import math

import numpy as np
import pytest
import torch

from vos_seg import VOSSegLoss, scores

SIMPLE = ("energy", "msp", "max_logit", "entropy")


def test_hand_computed_values():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [0.25, 0.75]
    assert scores.energy(logits).item() == pytest.approx(-math.log(4.0), abs=1e-6)
    assert scores.energy(logits, temperature=2.0).item() == pytest.approx(
        -2 * math.log(1 + math.sqrt(3.0)), abs=1e-6
    )
    assert scores.max_logit(logits).item() == pytest.approx(-math.log(3.0), abs=1e-6)
    assert scores.msp(logits).item() == pytest.approx(0.25, abs=1e-6)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) / math.log(2)
    assert scores.entropy(logits).item() == pytest.approx(h, abs=1e-6)
    w = torch.tensor([2.0, 0.5])
    assert scores.weighted_energy(logits, w).item() == pytest.approx(-math.log(2 + 1.5), abs=1e-6)


@pytest.mark.parametrize("name", SIMPLE)
def test_higher_means_more_anomalous(name):
    confident = torch.tensor([[10.0, 0.0, 0.0]])
    unsure = torch.tensor([[1.0, 1.0, 1.0]])
    fn = getattr(scores, name)
    assert fn(unsure).item() > fn(confident).item()


@pytest.mark.parametrize("name", SIMPLE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("magnitude", [1.0, 1e4])
def test_shapes_dtype_and_finiteness(name, dtype, magnitude, generator):
    logits = (torch.randn(2, 5, 3, 4, generator=generator) * magnitude).to(dtype)
    out = getattr(scores, name)(logits)
    assert out.shape == (2, 3, 4) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    flat = getattr(scores, name)(logits[:, :, 0, 0])
    assert flat.shape == (2,)
    assert torch.allclose(flat, out[:, 0, 0])


def test_weighted_energy_and_posterior_with_extreme_logits(generator):
    loss = VOSSegLoss(4)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        logits = (torch.randn(2, 4, 3, 3, generator=generator) * 1e4).to(dtype)
        e = scores.weighted_energy(logits, loss.weights_energy.weight)
        p = scores.vos_posterior(logits, loss)
        assert e.dtype == p.dtype == torch.float32 and e.shape == p.shape == (2, 3, 3)
        assert torch.isfinite(e).all() and ((p >= 0) & (p <= 1)).all()


def test_weighted_energy_with_unit_weights_is_energy(generator):
    logits = torch.randn(2, 6, 4, 4, generator=generator)
    assert torch.allclose(scores.weighted_energy(logits, torch.ones(6)), scores.energy(logits), atol=1e-6)
    with pytest.raises(ValueError, match=r"expected 6 energy weights.*got weights of shape \(5,\)"):
        scores.weighted_energy(logits, torch.ones(5))


def test_vos_posterior_matches_phi_by_hand():
    loss = VOSSegLoss(2)
    with torch.no_grad():
        loss.weights_energy.weight.fill_(1.0)
        loss.phi.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        loss.phi.bias.zero_()
    logits = torch.tensor([[0.0, 0.0]])
    e = -math.log(2.0)
    want = 1.0 / (1.0 + math.exp(-2 * e))  # softmax([e, -e])[0]
    assert scores.vos_posterior(logits, loss).item() == pytest.approx(want, abs=1e-6)


def test_standardized_max_logit_against_numpy(generator):
    sml = scores.StandardizedMaxLogit(3)
    fit_batches = [torch.randn(2, 3, 5, 5, generator=generator) * 2 for _ in range(3)]
    for batch in fit_batches:
        sml.fit(batch)
    everything = torch.cat([b.permute(0, 2, 3, 1).reshape(-1, 3) for b in fit_batches]).double().numpy()
    top, pred = everything.max(1), everything.argmax(1)
    test = torch.randn(1, 3, 4, 4, generator=generator)
    got = sml(test)
    t_top, t_pred = test.max(1)
    want = np.empty(t_top.shape)
    for idx in np.ndindex(*t_top.shape):
        c = int(t_pred[idx])
        mu, sd = top[pred == c].mean(), top[pred == c].std()
        want[idx] = -(float(t_top[idx]) - mu) / sd
    assert np.abs(got.numpy() - want).max() < 1e-4
    assert sml.state_dict().keys() == {"count", "total", "total_sq"}


def test_standardized_max_logit_needs_fit_and_falls_back_for_unseen_class():
    sml = scores.StandardizedMaxLogit(3)
    with pytest.raises(ValueError, match="not fitted"):
        sml(torch.zeros(1, 3))
    sml.fit(torch.tensor([[5.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 2.0, 0.0]]))
    out = sml(torch.tensor([[0.0, 0.0, 9.0]]))  # class 2 never seen: pooled statistics
    assert out.item() == pytest.approx(-(9.0 - 3.5) / math.sqrt(1.25), abs=1e-5)


def test_compute_scores_dispatch_and_errors(generator):
    logits = torch.randn(1, 3, 2, 2, generator=generator)
    loss = VOSSegLoss(3)
    sml = scores.StandardizedMaxLogit(3)
    sml.fit(torch.randn(2, 3, 4, 4, generator=generator))
    out = scores.compute_scores(logits, scores.SCORE_NAMES, vos_loss=loss, sml=sml)
    assert set(out) == set(scores.SCORE_NAMES)
    assert torch.equal(out["energy"], scores.energy(logits))
    assert torch.equal(out["weighted_energy"], scores.weighted_energy(logits, loss.weights_energy.weight))
    with pytest.raises(ValueError, match="unknown score 'energi'"):
        scores.compute_scores(logits, ["energi"])
    with pytest.raises(ValueError, match="'vos_posterior' needs the trained VOS loss"):
        scores.compute_scores(logits, ["vos_posterior"])
    with pytest.raises(ValueError, match="'sml' needs a fitted"):
        scores.compute_scores(logits, ["sml"])


def test_input_errors():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(N, C\), got \(3,\)"):
        scores.energy(torch.zeros(3))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        scores.energy(torch.zeros(1, 2), temperature=0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        scores.entropy(torch.zeros(1, 1))
