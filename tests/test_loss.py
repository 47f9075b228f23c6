"""VOSSegLoss: hand-computed values, pytorch-ood equality, void/outlier handling, reductions, dtypes."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from vos_seg import VOSSegLoss
from vos_seg.scores import weighted_energy


def _reference_balanced(loss, logits, target, outlier_logits=None):
    """Straightforward per-pixel reference of the balanced mean loss (loops over pixels)."""
    n, c = logits.shape[:2]
    pixels = logits.permute(0, 2, 3, 1).reshape(-1, c).double()
    labels = target.reshape(-1)
    w = F.relu(loss.weights_energy.weight.detach().reshape(-1)).double()
    a, b = loss.phi.weight.detach().reshape(-1).double(), loss.phi.bias.detach().double()

    def e(f):
        return -math.log(sum(float(w[k]) * math.exp(float(f[k])) for k in range(c)))

    def nll(f, cls):
        z = a * e(f) + b
        return -float(torch.log_softmax(z, 0)[cls])

    ce, reg_in, reg_out, n_known, n_out = 0.0, 0.0, 0.0, 0, 0
    for f, y in zip(pixels, labels.tolist()):
        if y == loss.ignore_index:
            continue
        if y < 0:
            reg_out += nll(f, 0)
            n_out += 1
        else:
            ce += -float(torch.log_softmax(f, 0)[y])
            reg_in += nll(f, 1)
            n_known += 1
    for f in [] if outlier_logits is None else outlier_logits.double():
        reg_out += nll(f, 0)
        n_out += 1
    r = 0.0 if n_out == 0 else reg_in / max(n_known, 1) + reg_out / n_out
    return ce / max(n_known, 1) + loss.alpha * r


@pytest.fixture
def batch(generator):
    logits = torch.randn(2, 4, 5, 6, generator=generator) * 3
    target = torch.randint(0, 4, (2, 5, 6), generator=generator)
    target[0, 0, :4] = 255  # void
    target[1, 2, :3] = -1  # real outliers
    return logits, target


def test_balanced_mean_matches_hand_computed_reference(batch, generator):
    logits, target = batch
    loss = VOSSegLoss(4)
    virtual = torch.randn(3, 4, generator=generator)
    got = loss(logits, target, virtual)
    want = _reference_balanced(loss, logits, target, virtual)
    assert abs(got.item() - want) < 1e-5, f"max diff {abs(got.item() - want)}"
    assert loss.last_terms["num_known"].item() == (target >= 0).sum().item() - 4
    assert loss.last_terms["num_outlier"].item() == 3
    assert loss.last_terms["num_virtual"].item() == 3


def test_two_pixel_example_by_hand():
    # One known pixel (class 0) and one outlier pixel, weights 1, phi = identity-like map (E -> [-E, E]).
    loss = VOSSegLoss(2, alpha=0.5)
    with torch.no_grad():
        loss.weights_energy.weight.fill_(1.0)
        loss.phi.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        loss.phi.bias.zero_()
    logits = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    target = torch.tensor([0, -1])
    e0, e1 = -math.log(2.0), -math.log(math.e + math.e**2)
    ce = math.log(2.0)
    r_in = -math.log(1 / (1 + math.exp(-2 * e0)))  # softmax([-E, E])[1]
    r_out = -math.log(1 / (1 + math.exp(2 * e1)))  # softmax([-E, E])[0]
    assert loss(logits, target).item() == pytest.approx(ce + 0.5 * (r_in + r_out), abs=1e-6)


@pytest.mark.parametrize("shape", [(2, 5, 6, 7), (11, 5)])
def test_pooled_mean_equals_pytorch_ood(shape, generator):
    from pytorch_ood.loss import VOSRegLoss

    ours = VOSSegLoss(5, balanced=False)
    ref = VOSRegLoss(ours.phi, ours.weights_energy, alpha=0.1)
    logits = (torch.randn(*shape, generator=generator) * 4).requires_grad_()
    target_shape = (shape[0],) + shape[2:]
    target = torch.randint(0, 5, target_shape, generator=generator)
    target.view(-1)[:3] = -1
    got, want = ours(logits, target), ref(logits, target)
    assert abs(got.item() - want.item()) < 1e-5, f"max diff {abs(got.item() - want.item())}"
    inputs = [logits, ours.phi.weight, ours.phi.bias, ours.weights_energy.weight]
    g_ours = torch.autograd.grad(got, inputs)
    g_ref = torch.autograd.grad(want, inputs)
    for a, b in zip(g_ours, g_ref):
        diff = (a - b).abs().max().item()
        assert diff < 1e-5, f"gradient max diff {diff}"


def test_void_pixels_enter_no_term(batch):
    logits, target = batch
    loss = VOSSegLoss(4)
    base = loss(logits, target)
    changed = logits.clone()
    changed[0, :, 0, :4] = torch.tensor([100.0, -50.0, 3.0, 7.0])[:, None]  # only void pixels change
    assert loss(changed, target).item() == pytest.approx(base.item(), abs=1e-6)
    grad = torch.autograd.grad(loss(logits.requires_grad_(), target), logits)[0]
    assert grad[0, :, 0, :4].abs().max() == 0


def test_no_outliers_means_plain_cross_entropy(generator):
    logits = torch.randn(2, 3, 4, 4, generator=generator)
    target = torch.randint(0, 3, (2, 4, 4), generator=generator)
    target[0, 0] = 255
    loss = VOSSegLoss(3)
    want = F.cross_entropy(logits, target, ignore_index=255)
    assert loss(logits, target).item() == pytest.approx(want.item(), abs=1e-6)
    assert loss.last_terms["uncertainty"].item() == 0.0


def test_no_known_pixels_is_finite_and_differentiable(generator):
    logits = torch.randn(1, 3, 2, 2, generator=generator, requires_grad=True)
    target = torch.tensor([[[-1, 255], [-2, 255]]])
    loss = VOSSegLoss(3)
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    assert loss.last_terms["ce"].item() == 0.0 and loss.last_terms["uncertainty"].item() > 0
    all_void = torch.full((1, 2, 2), 255)
    assert VOSSegLoss(3)(logits, all_void).item() == 0.0


def test_balanced_outlier_side_does_not_drown(generator):
    # 10k known pixels, 4 outliers: balanced gives the outlier expectation the same weight as the ID one.
    logits = torch.randn(1, 3, 100, 100, generator=generator)
    target = torch.randint(0, 3, (1, 100, 100), generator=generator)
    target[0, 0, :4] = -1
    balanced, pooled = VOSSegLoss(3, alpha=1.0), VOSSegLoss(3, alpha=1.0, balanced=False)
    pooled.load_state_dict(balanced.state_dict())
    g_bal = torch.autograd.grad(balanced(logits.requires_grad_(), target), logits)[0]
    g_pool = torch.autograd.grad(pooled(logits, target), logits)[0]
    out_bal, out_pool = g_bal[0, :, 0, :4].abs().sum(), g_pool[0, :, 0, :4].abs().sum()
    assert out_bal > 100 * out_pool


@pytest.mark.parametrize("balanced", [True, False])
def test_reductions_are_consistent(batch, generator, balanced):
    logits, target = batch
    virtual = torch.randn(5, 4, generator=generator)
    losses = {r: VOSSegLoss(4, reduction=r, balanced=balanced) for r in ("mean", "sum", "none")}
    for module in losses.values():
        module.load_state_dict(losses["mean"].state_dict())
    mean = losses["mean"](logits, target, virtual)
    total = losses["sum"](logits, target, virtual)
    pixel_map = losses["none"](logits, target, virtual)
    num_known = losses["mean"].last_terms["num_known"]
    assert pixel_map.shape == target.shape
    assert (pixel_map[target == 255] == 0).all()
    assert total.item() == pytest.approx((mean * num_known).item(), rel=1e-5)
    assert (pixel_map.sum() + losses["none"].last_terms["virtual_sum"]).item() == pytest.approx(total.item(), rel=1e-5)


def test_weighted_energy_guard_when_no_weight_positive(generator):
    loss = VOSSegLoss(3)
    with torch.no_grad():
        loss.weights_energy.weight.fill_(-1.0)
    logits = torch.randn(1, 3, 4, 4, generator=generator, requires_grad=True)
    target = torch.randint(0, 3, (1, 4, 4), generator=generator)
    target[0, 0, 0] = -1
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(logits.grad).all() and torch.isfinite(loss.weights_energy.weight.grad).all()
    e = weighted_energy(logits.detach(), loss.weights_energy.weight)
    plain = -torch.logsumexp(logits.detach(), dim=1)
    assert torch.allclose(e, plain - math.log(torch.finfo(torch.float32).tiny), atol=1e-4)


def test_zero_weight_classes_drop_out_exactly():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    e = weighted_energy(logits, torch.tensor([0.0, 1.0, -2.0]))
    assert e.item() == pytest.approx(-2.0, abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_energies_stay_float32(dtype, generator):
    loss = VOSSegLoss(4)
    conv = torch.nn.Conv2d(3, 4, 1)
    x = torch.randn(2, 3, 6, 6, generator=generator)
    target = torch.randint(0, 4, (2, 6, 6), generator=generator)
    target[0, 0, 0] = -1
    with torch.autocast("cpu", dtype=dtype):
        logits = conv(x)
        assert logits.dtype == dtype
        value = loss(logits, target, torch.randn(3, 4, generator=generator).to(dtype))
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(conv.weight.grad).all()
    ref = loss(logits.float(), target, None)
    assert abs(ref.item() - loss(logits.float(), target).item()) < 1e-6


def test_huge_logits_stay_finite():
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]]).to(torch.float16)
    target = torch.tensor([0, -1])
    value = VOSSegLoss(3)(logits, target)
    assert torch.isfinite(value)


def test_bad_labels_name_values():
    loss = VOSSegLoss(19)
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 0, :2] = 300
    target[0, 1, 0] = 19
    with pytest.raises(ValueError, match=r"0\.\.18, 255 \(void\) or < 0 \(outlier\), got 19 \(1 pixel\), 300 \(2 pixels\)"):
        loss(torch.zeros(1, 19, 4, 4), target)
    VOSSegLoss(19, validate=False)  # the check can be switched off
    with pytest.raises(TypeError, match="integer `target`"):
        loss(torch.zeros(1, 19, 4, 4), target.float())


def test_shape_errors_state_both_shapes():
    loss = VOSSegLoss(3)
    with pytest.raises(ValueError, match=r"expected 3 channels.*\(2, 4, 5, 5\)"):
        loss(torch.zeros(2, 4, 5, 5), torch.zeros(2, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target shape \(2, 4, 5\) does not match logits shape \(2, 3, 5, 5\)"):
        loss(torch.zeros(2, 3, 5, 5), torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(N, C\), got \(2, 3, 5\)"):
        loss(torch.zeros(2, 3, 5), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"outlier_logits of shape \(M, 3\), got \(4, 2\)"):
        loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.zeros(4, 2))


@pytest.mark.parametrize("kwargs, message", [
    ({"ignore_index": 2}, "collides with class id 2"),
    ({"ignore_index": -100}, "negative labels mark outlier pixels"),
    ({"reduction": "avg"}, "reduction must be one of"),
    ({"alpha": -1.0}, "alpha must be >= 0"),
])
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VOSSegLoss(5, **kwargs)


def test_custom_phi_and_parameters_follow_to():
    phi = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    loss = VOSSegLoss(3, phi=phi).to(torch.float64)
    assert {name for name, _ in loss.named_parameters()} >= {"phi.0.weight", "weights_energy.weight"}
    value = loss(torch.randn(4, 3), torch.tensor([0, 1, -1, 2]))
    assert torch.isfinite(value)
    with pytest.raises(ValueError, match=r"phi must map \(M, 1\) energies to \(M, 2\) logits"):
        VOSSegLoss(3, phi=torch.nn.Linear(1, 3))(torch.randn(4, 3), torch.tensor([0, 1, -1, 2]))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 6),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]),
    seed=st.integers(0, 2**16),
    balanced=st.booleans(),
    num_virtual=st.integers(0, 3),
)
def test_property_loss_and_gradient_finite(n, c, h, w, scale, seed, balanced, num_virtual):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, h, w, generator=g) * scale).requires_grad_()
    # Labels drawn from every kind: known, void, outlier.
    choices = torch.tensor(list(range(c)) + [255, -1, -7])
    target = choices[torch.randint(0, len(choices), (n, h, w), generator=g)]
    loss = VOSSegLoss(c, balanced=balanced)
    virtual = torch.randn(num_virtual, c, generator=g) * scale
    value = loss(logits, target, virtual)
    value.backward()
    assert torch.isfinite(value), (value, target)
    assert torch.isfinite(logits.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in loss.parameters() if p.grad is not None)


def test_outlier_mask_equals_dropping_rows(batch, generator):
    logits, target = batch
    virtual = torch.randn(4, 4, generator=generator)
    mask = torch.tensor([True, False, True, False])
    loss = VOSSegLoss(4)
    masked = loss(logits, target, virtual, outlier_mask=mask)
    assert loss.last_terms["num_virtual"].item() == 2
    poisoned = virtual.clone()
    poisoned[1] = float("nan")  # a masked-out row never reaches the sum
    assert loss(logits, target, poisoned, outlier_mask=mask).item() == pytest.approx(masked.item(), abs=1e-6)
    assert loss(logits, target, virtual[mask]).item() == pytest.approx(masked.item(), abs=1e-6)
    with pytest.raises(ValueError, match=r"bool outlier_mask of shape \(4,\), got torch.int64 of shape \(4,\)"):
        loss(logits, target, virtual, outlier_mask=mask.long())
    with pytest.raises(ValueError, match="outlier_mask given without outlier_logits"):
        loss(logits, target, outlier_mask=mask)


def test_default_phi_calls_high_energy_outlier():
    loss = VOSSegLoss(3)
    confident = torch.tensor([[20.0, 0.0, 0.0]])  # low energy
    flat = torch.tensor([[-5.0, -5.0, -5.0]])  # high energy
    p = loss.outlier_probability(torch.cat([confident, flat]))
    assert p[0] < 0.01 and p[1] > 0.99


def test_monotone_phi_keeps_high_energy_outlier_after_training(generator):
    # Outliers with LOWER energy than inliers: a free linear phi learns that ordering, the monotone one cannot.
    inlier_energy = torch.randn(256, 1, generator=generator) - 2.0
    outlier_energy = torch.randn(256, 1, generator=generator) - 6.0
    energies = torch.cat([inlier_energy, outlier_energy])
    labels = torch.cat([torch.ones(256), torch.zeros(256)]).long()  # 1 in, 0 out
    fitted = {}
    for kind in ("linear", "monotone"):
        loss = VOSSegLoss(2, phi=kind)
        optimizer = torch.optim.SGD(loss.phi.parameters(), lr=0.5)
        for _ in range(200):
            optimizer.zero_grad()
            F.cross_entropy(loss.phi(energies), labels).backward()
            optimizer.step()
        with torch.no_grad():
            p = torch.softmax(loss.phi(torch.tensor([[-8.0], [0.0]])), dim=1)[:, 0]
        fitted[kind] = p
    assert fitted["linear"][0] > fitted["linear"][1]  # learned: low energy = outlier
    assert fitted["monotone"][0] <= fitted["monotone"][1]  # still: higher energy never less anomalous
    with pytest.raises(ValueError, match="unknown phi 'cubic'"):
        VOSSegLoss(2, phi="cubic")


def test_monotone_phi_round_trips_through_plugin_state():
    from vos_seg.plugin import loss_from_state_dict

    loss = VOSSegLoss(3, phi="monotone")
    with torch.no_grad():
        loss.phi.raw_slope.fill_(0.3)
    state = {f"loss.{key}": value for key, value in loss.state_dict().items()}
    rebuilt = loss_from_state_dict(state, 3)
    logits = torch.randn(2, 3, 4, 4)
    assert torch.equal(rebuilt.outlier_probability(logits), loss.outlier_probability(logits))
