"""The VOS plugin: ownership of parameters/state, queues, statistics, schedule, gradients, resume, bad input."""

import copy

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch

from vos_seg.head import HeadAdapter
from vos_seg.loss import VOSSegLoss
from vos_seg.plugin import VOS, loss_from_state_dict

K = 4  # classes


def tiny_unet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # SMP initialises from the global RNG; tests may seed it
    return smp.Unet("resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(16, 8, 8), classes=K)


def tiny_deeplab(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return smp.DeepLabV3Plus("resnet18", encoder_weights=None, decoder_channels=32, classes=K)


def batch(generator, size=32, n=2, classes=K):
    images = torch.randn(n, 3, size, size, generator=generator)
    target = torch.randint(0, classes, (n, size, size), generator=generator)
    return images, target


def capture_input(conv):
    store = {}
    handle = conv.register_forward_hook(lambda m, inp, out: store.update(x=inp[0].detach()))
    return store, handle


def test_parameters_buffers_and_state_dict():
    model = tiny_unet()
    vos = VOS(model, K, queue_size=8, pixels_per_class=4)
    loss_params = {id(p) for p in vos.loss.parameters()}
    assert {id(p) for p in vos.parameters()} == loss_params and len(loss_params) == 4
    assert not {id(p) for p in vos.parameters()} & {id(p) for p in model.parameters()}
    assert not any(m is model for m in vos.modules())
    dim = HeadAdapter.from_model(model).feature_dim
    assert dim == 8 * 9
    expected = {
        "queue": (K, 8, dim), "fill": (K,), "position": (K,), "step": (), "means": (K, dim),
        "scale_tril": (dim, dim), "ready": (K,),
        "loss.phi.weight": (2, 1), "loss.phi.bias": (2,), "loss.weights_energy.weight": (1, K),
        "loss.weights_energy.bias": (1,),
    }
    assert {k: tuple(v.shape) for k, v in vos.state_dict().items()} == expected
    optimizer = torch.optim.AdamW([*model.parameters(), *vos.parameters()])
    ids = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters())) + 4
    assert isinstance(vos.loss, VOSSegLoss)


def test_explicit_head_as_conv_or_adapter():
    model = tiny_unet()
    conv = model.segmentation_head[0]
    assert VOS(model, K, head=conv, queue_size=8, pixels_per_class=4).adapter.conv is conv
    adapter = HeadAdapter(conv)
    assert VOS(model, K, head=adapter, queue_size=8, pixels_per_class=4).adapter is adapter


@pytest.mark.parametrize("builder,stride", [(tiny_unet, 1), (tiny_deeplab, 4)], ids=["unet-3x3", "deeplab-1x1-s4"])
def test_enqueued_features_are_head_pixel_features_of_their_class(builder, stride, generator):
    model = builder()
    vos = VOS(model, K, queue_size=64, pixels_per_class=5, generator=generator)
    store, handle = capture_input(vos.adapter.conv)
    images, target = batch(generator, size=64)
    target[:, :8] = 255  # void rows
    target[:, 8:10] = -1  # outlier rows
    vos(model(images), target)
    handle.remove()
    feats = vos.adapter.pixel_features(store["x"])  # (N, D, h, w)
    assert feats.shape[-1] == 64 // stride
    labels = target[:, ::stride, ::stride]  # nearest sampling, computed independently of F.interpolate
    rows = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    flat_labels = labels.reshape(-1)
    for k in range(K):
        assert vos.fill[k] == 5, f"class {k} filled {vos.fill[k]}"
        stored = vos.queue[k, :5]
        dist = torch.cdist(stored, rows[flat_labels == k], compute_mode="donot_use_mm_for_euclid_dist").min(1).values
        assert dist.max() < 1e-5, f"class {k}: enqueued features are not its pixels' features ({dist.max():.3g})"
        assert torch.unique(stored, dim=0).shape[0] == 5, "a pixel was enqueued twice"
    assert (vos.queue[:, 5:] == 0).all()


def test_statistics_match_a_float64_reference(generator):
    model = tiny_unet()
    vos = VOS(model, K, queue_size=16, pixels_per_class=8, cov_eps=1e-3, refresh_every=1, generator=generator)
    for _ in range(3):
        images, target = batch(generator)
        target[target == 3] = 2  # class 3 never appears
        target[target == 1] = 0
        target[1, 5, 5] = 1  # class 1: one pixel per step
        vos(model(images), target)
    assert vos.fill.tolist() == [16, 3, 16, 0]
    assert vos.ready.tolist() == [True, False, True, False]
    assert float(vos.last_terms["num_virtual"]) == 2, "only full classes give virtual outliers"
    queue = vos.queue.double().numpy()
    full = [0, 2]
    means = queue.mean(axis=1)
    centred = np.concatenate([queue[k] - means[k] for k in full])
    cov = centred.T @ centred / centred.shape[0] + 1e-3 * np.eye(queue.shape[2])
    mean_diff = np.abs(vos.means.double().numpy()[full] - means[full]).max()
    assert mean_diff < 1e-5, f"means differ by {mean_diff:.3g}"
    ours = (vos.scale_tril.double() @ vos.scale_tril.double().T).numpy()
    cov_diff = np.abs(ours - cov).max() / np.abs(cov).max()
    assert cov_diff < 1e-5, f"covariance differs by {cov_diff:.3g} (relative)"


def test_no_virtual_outliers_until_a_queue_is_full(generator):
    model = tiny_unet()
    vos = VOS(model, K, queue_size=24, pixels_per_class=8, refresh_every=1, generator=generator)
    for call in range(4):
        images, target = batch(generator)
        logits = model(images)
        loss = vos(logits, target)
        expected_virtual = 0.0 if call < 2 else float(K)  # 8, 16 entries: not full; 24 at call 2
        assert float(vos.last_terms["num_virtual"]) == expected_virtual, f"call {call}"
        if call < 2:
            plain = VOSSegLoss(K)
            plain.load_state_dict(vos.loss.state_dict())
            assert torch.allclose(loss, plain(logits, target)), "without outliers the loss is plain CE"


def test_schedule_start_iter_and_eval_mode(generator):
    model = tiny_unet()
    vos = VOS(model, K, queue_size=8, pixels_per_class=8, start_iter=2, generator=generator)
    for call in range(3):
        vos(model(batch(generator)[0]), batch(generator)[1])
        assert float(vos.last_terms["num_virtual"]) == (K if call >= 2 else 0), f"call {call}"
    assert int(vos.step) == 3
    state = copy.deepcopy(vos.state_dict())
    for plugin_mode, model_mode in [(False, True), (True, False)]:
        vos.train(plugin_mode)
        model.train(model_mode)
        images, target = batch(generator)
        vos(model(images), target)
        assert float(vos.last_terms["num_virtual"]) == 0
        for key, value in vos.state_dict().items():
            assert torch.equal(value, state[key]), f"{key} changed in eval mode"


def test_gradient_reaches_head_weights_through_virtual_outliers(generator):
    model = tiny_unet()
    vos = VOS(model, K, queue_size=8, pixels_per_class=8, generator=generator)
    vos(model(batch(generator)[0]), batch(generator)[1])  # fills every queue
    images, target = batch(generator)
    loss = vos(model(images).detach(), target)  # the only path to the model: virtual outliers through the head
    loss.backward()
    conv = vos.adapter.conv
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert conv.bias.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("segmentation_head"))


def test_real_outliers_join_the_regulariser_and_are_never_enqueued(generator):
    model = tiny_unet()
    vos = VOS(model, K, queue_size=8, pixels_per_class=8, refresh_every=1, generator=generator)
    images, target = batch(generator)
    outliers_only = torch.where(target == 0, -1, 255)
    vos(model(images), outliers_only)
    assert (vos.fill == 0).all() and (vos.queue == 0).all()
    assert float(vos.last_terms["num_outlier"]) == float((target == 0).sum())
    vos(model(images), target)  # fills the queues
    target[:, :4] = -2
    vos(model(images), target)
    terms = vos.last_terms
    assert float(terms["num_outlier"]) == 2 * 4 * 32 and float(terms["num_virtual"]) == K


def test_non_finite_features_never_enter_the_queues(generator):
    model = tiny_unet()
    vos = VOS(model, K, queue_size=64, pixels_per_class=16, generator=generator)
    conv = vos.adapter.conv

    def poison(module, inputs):  # NaN / inf in the top half of the head's input
        x = inputs[0].clone()
        x[:, 0, :16] = float("nan")
        x[:, 1, :16] = float("inf")
        return (x,)

    handle = conv.register_forward_pre_hook(poison)
    images, target = batch(generator)
    logits = model(images)
    handle.remove()
    # finite logits from elsewhere: only the features are bad, the batch is not skipped
    vos(torch.randn(logits.shape, generator=generator), target)
    assert torch.isfinite(vos.queue).all()
    assert (vos.fill > 0).all() and (vos.fill < 16).all(), f"fill {vos.fill.tolist()}"
    # a 3x3 patch touching rows < 16 is non-finite; only pixels of rows >= 17 may enter
    store, handle = capture_input(conv)
    model(images)
    handle.remove()
    feats = vos.adapter.pixel_features(store["x"]).permute(0, 2, 3, 1)[:, 17:].reshape(-1, 72)
    for k in range(K):
        stored = vos.queue[k, : int(vos.fill[k])]
        dist = torch.cdist(stored, feats, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
        assert dist.max() < 1e-5, f"class {k}: an enqueued feature is not a finite pixel's ({dist.max():.3g})"


def test_non_finite_logits_skip_the_batch_and_give_a_non_finite_loss(generator):
    model = tiny_unet()
    vos = VOS(model, K, queue_size=8, pixels_per_class=8, generator=generator)
    vos(model(batch(generator)[0]), batch(generator)[1])  # queues full, statistics fitted
    state = copy.deepcopy(vos.state_dict())
    for bad in (float("nan"), float("inf")):
        images, target = batch(generator)
        logits = model(images)
        logits = logits.clone()
        logits[0, 1, 3, 3] = bad
        loss = vos(logits, target)
        assert not torch.isfinite(loss)
        for key in ("queue", "fill", "position", "means", "scale_tril", "ready"):
            assert torch.equal(vos.state_dict()[key], state[key]), f"{key} changed by a {bad} batch"
    vos(model(batch(generator)[0]), batch(generator)[1])  # training continues with finite statistics
    assert torch.isfinite(vos.means).all() and torch.isfinite(vos.scale_tril).all()


def run_steps(model, vos, optimizer, batches):
    losses = []
    for images, target in batches:
        loss = vos(model(images), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return losses


def test_resume_continues_with_exactly_the_same_losses():
    data_gen = torch.Generator().manual_seed(3)
    batches = [batch(data_gen) for _ in range(6)]
    options = dict(queue_size=16, pixels_per_class=8, start_iter=1, refresh_every=2)

    def fresh(seed):
        model = tiny_unet(seed)
        vos = VOS(model, K, generator=torch.Generator().manual_seed(seed), **options)
        return model, vos, torch.optim.AdamW([*model.parameters(), *vos.parameters()], lr=1e-3)

    model, vos, optimizer = fresh(0)
    uninterrupted = run_steps(model, vos, optimizer, batches)

    model, vos, optimizer = fresh(0)
    first = run_steps(model, vos, optimizer, batches[:3])
    checkpoint = copy.deepcopy(
        {"model": model.state_dict(), "vos": vos.state_dict(), "optimizer": optimizer.state_dict(),
         "generator": vos.generator.get_state()}
    )
    model, vos, optimizer = fresh(7)  # different weights and RNG: everything must come from the checkpoint
    model.load_state_dict(checkpoint["model"])
    vos.load_state_dict(checkpoint["vos"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    vos.generator.set_state(checkpoint["generator"])
    resumed = first + run_steps(model, vos, optimizer, batches[3:])
    assert float(vos.last_terms["num_virtual"]) > 0
    for step, (a, b) in enumerate(zip(uninterrupted, resumed)):
        assert torch.equal(a, b), f"step {step}: uninterrupted {a.item():.8f} vs resumed {b.item():.8f}"


def test_bad_input_raises_value_errors_and_changes_nothing(generator):
    model = tiny_unet()
    vos = VOS(model, K, queue_size=8, pixels_per_class=4, generator=generator)
    images, target = batch(generator)
    state = copy.deepcopy(vos.state_dict())
    with pytest.raises(ValueError, match=r"no head features captured"):
        vos(torch.randn(2, K, 32, 32), target)
    cases = [
        (lambda lg: lg[:, :3], target, r"expected logits of shape \(N, 4, H, W\), got \(2, 3, 32, 32\)"),
        (lambda lg: lg[0], target, r"expected logits of shape \(N, 4, H, W\), got \(4, 32, 32\)"),
        (lambda lg: lg, target[:, :16], r"target shape \(2, 16, 32\) does not match logits shape \(2, 4, 32, 32\)"),
        (lambda lg: lg[:1], target[:1], r"the head saw a batch of 2 .* but logits have shape \(1, 4, 32, 32\)"),
        (lambda lg: lg, torch.full_like(target, 300), r"300"),
    ]
    for make_logits, bad_target, message in cases:
        with pytest.raises(ValueError, match=message):
            vos(make_logits(model(images)), bad_target)
    for key, value in vos.state_dict().items():
        assert torch.equal(value, state[key]), f"{key} changed by a rejected call"


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(num_classes=3), r"num_classes=3 but the head conv has 4 output channels"),
        (dict(pixels_per_class=9, queue_size=8), r"pixels_per_class=9 exceeds queue_size=8"),
        (dict(select=3, sample_from=2), r"select=3 exceeds sample_from=2"),
        (dict(queue_size=0), r"queue_size must be a positive integer, got 0"),
        (dict(start_iter=-1), r"start_iter must be a non-negative integer, got -1"),
        (dict(cov_eps=0.0), r"cov_eps must be > 0, got 0.0"),
        (dict(refresh_every=1.5), r"refresh_every must be a positive integer, got 1.5"),
    ],
)
def test_bad_hyperparameters(options, message):
    options = {"num_classes": K, **options}
    with pytest.raises(ValueError, match=message):
        VOS(tiny_unet(), **options)


def test_loss_from_state_dict_rebuilds_the_trained_loss(generator):
    model = tiny_unet()
    vos = VOS(model, K, queue_size=8, pixels_per_class=8, generator=generator)
    with torch.no_grad():
        for p in vos.parameters():
            p.add_(torch.randn(p.shape, generator=generator))
    state = copy.deepcopy(vos.state_dict())
    logits = torch.randn(2, K, 5, 5, generator=generator)
    for saved in (state, {f"module.{k}": v for k, v in state.items()}):
        rebuilt = loss_from_state_dict(saved, K)
        assert torch.equal(rebuilt.outlier_probability(logits), vos.loss.outlier_probability(logits))
    with pytest.raises(ValueError, match=r"no 'loss\.' keys in the plugin state"):
        loss_from_state_dict({"queue": state["queue"]}, K)
    with pytest.raises(ValueError, match=r"does not fit num_classes=5"):
        loss_from_state_dict(state, 5)


def test_statistics_refit_every_refresh_every_calls(generator):
    model = tiny_unet()
    vos = VOS(model, K, queue_size=8, pixels_per_class=4, start_iter=1, refresh_every=3, generator=generator)
    refits = []
    for call in range(8):
        before = vos.means.clone()
        vos(model(batch(generator)[0]), batch(generator)[1])
        refits.append(not torch.equal(before, vos.means))
    # calls 1, 4, 7 refit (from start_iter, every 3); queues full from call 1 on
    assert refits == [False, True, False, False, True, False, False, True], refits
