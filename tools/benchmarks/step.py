"""Benchmark section `step`: a whole training step with the VOS plugin active versus plain cross-entropy.

Each case times forward, loss, backward and an AdamW step of an SMP model (resnet18 encoder, no pretrained
weights) on a 2x3x256x512 batch with 19 classes, once with ``F.cross_entropy`` and once with the plugin (queues
full, default ``sample_from``), interleaved repeat by repeat so that load from other processes hits both alike.
The plugin's parts are timed alone as well (enqueue, statistics
refresh, sampling + outlier logits), and the enqueue cost for several ``pixels_per_class``.

Figures: ``ratio`` is the median of per-repeat wall-time ratios (plugin / plain), ``ratio_best`` the ratio of the
fastest repeats, ``ratio_cpu`` the median ratio of the process's CPU time (robust to descheduling on a shared
machine); each includes the statistics refit's amortised share (``refresh_ms / refresh_every``), which
``ratio_refit_every_step`` charges in full to every step (``refresh_every=1``).

CPU cases use 2 threads; CUDA cases (when a GPU is present; also an 8x3x512x1024 batch) synchronise around each
timed region and construct the plugin with ``validate=False`` (no host sync in the step).
``VOS_STEP_DEVICES=cpu`` or ``cuda`` restricts the devices.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

NUM_CLASSES = 19
ARCHS = ("Unet", "DeepLabV3Plus")


def _devices() -> list[str]:
    wanted = os.environ.get("VOS_STEP_DEVICES", "cpu,cuda").split(",")
    return [d for d in wanted if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]


def _timer(device: str):
    """measure(fn) -> (wall ms, CPU ms of this process); on CUDA both are the wall time."""

    def measure(fn) -> tuple[float, float]:
        if device == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        wall, cpu = (time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0
        return wall, (wall if device == "cuda" else cpu)

    return measure


def _build(arch: str, device: str, shape: tuple[int, int, int, int], **options):
    import segmentation_models_pytorch as smp

    from vos_seg.plugin import VOS

    torch.manual_seed(0)
    model = smp.create_model(arch, "resnet18", encoder_weights=None, classes=NUM_CLASSES).to(device).train()
    vos = VOS(model, NUM_CLASSES, validate=(device == "cpu"), **options).to(device)
    with torch.no_grad():  # queues full from the start: the steady state of a long run
        vos.queue.normal_()
        vos.fill.fill_(vos.queue_size)
    data = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(shape, device=device, generator=data)
    target = torch.randint(0, NUM_CLASSES, (shape[0], *shape[2:]), device=device, generator=data)
    return model, vos, images, target


def _step_case(arch: str, device: str, shape, repeats: int, **options) -> dict:
    model, vos, images, target = _build(arch, device, shape, **options)
    plain_opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    vos_opt = torch.optim.AdamW([*model.parameters(), *vos.parameters()], lr=1e-4)

    def plain_step():
        loss = F.cross_entropy(model(images), target, ignore_index=255)
        plain_opt.zero_grad(set_to_none=True)
        loss.backward()
        plain_opt.step()

    def vos_step():
        loss = vos(model(images), target)
        vos_opt.zero_grad(set_to_none=True)
        loss.backward()
        vos_opt.step()

    measure = _timer(device)
    plain_step(), vos_step()  # warm-up (allocator, first-call overheads); the plugin's first step refits
    refresh_every, vos.refresh_every = vos.refresh_every, 10**9  # timed steps without refits: added below
    plain, plugin = [], []  # (wall ms, CPU ms) per repeat
    for repeat in range(repeats):
        order = (plain_step, vos_step) if repeat % 2 == 0 else (vos_step, plain_step)
        times = {fn: measure(fn) for fn in order}
        plain.append(times[plain_step])
        plugin.append(times[vos_step])
        print(f"  {arch} {device} repeat {repeat}: plain {plain[-1][0]:.0f} ms, vos {plugin[-1][0]:.0f} ms (wall)",
              file=sys.stderr)
    vos.refresh_every = refresh_every
    assert float(vos.last_terms["num_virtual"]) == NUM_CLASSES * vos.select, "synthesis was not active"
    parts = _parts(vos, model, images, target, measure, repeats)
    # the refit's amortised share is added to every timed plugin step
    refit_wall, refit_cpu = parts["refresh_ms"] / refresh_every, parts["refresh_cpu_ms"] / refresh_every
    return {
        "case": f"{arch}-r18 {device} {'x'.join(map(str, shape))}",
        "feature_dim": vos.adapter.feature_dim,
        "plain_ms": statistics.median(w for w, _ in plain),
        "vos_ms": statistics.median(w for w, _ in plugin) + refit_wall,
        "ratio": statistics.median((v[0] + refit_wall) / p[0] for v, p in zip(plugin, plain)),
        "ratio_best": (min(w for w, _ in plugin) + refit_wall) / min(w for w, _ in plain),
        "ratio_cpu": statistics.median((v[1] + refit_cpu) / p[1] for v, p in zip(plugin, plain)),
        "ratio_refit_every_step": statistics.median((v[0] + refit_wall * refresh_every) / p[0]
                                                    for v, p in zip(plugin, plain)),
        "refresh_every": refresh_every,
        **parts,
    }


def _parts(vos, model, images, target, measure, repeats) -> dict:
    """The plugin's own pieces, timed alone (no autograd)."""
    from vos_seg.synthesis import sample_outliers

    store = {}
    handle = vos.adapter.conv.register_forward_hook(lambda m, inp, out: store.update(x=inp[0].detach()))
    with torch.no_grad():
        logits = model(images)
    handle.remove()
    finite = torch.isfinite(logits).all()

    def enqueue():
        with torch.no_grad():
            vos._enqueue(store["x"], target, finite)

    def refresh():
        with torch.no_grad():
            vos._refresh()

    def sample():
        with torch.no_grad():
            out = sample_outliers(vos.means, None, vos.sample_from, vos.select, scale_tril=vos.scale_tril)
            vos.adapter.logits(out.reshape(-1, out.shape[-1]))

    figures = {}
    for name, fn in (("enqueue", enqueue), ("refresh", refresh), ("sample", sample)):
        fn()
        times = [measure(fn) for _ in range(max(repeats, 3))]
        figures[f"{name}_ms"] = statistics.median(w for w, _ in times)
        figures[f"{name}_cpu_ms"] = statistics.median(c for _, c in times)
    return figures


def _enqueue_sweep(device: str, shape, repeats: int) -> list[dict]:
    rows = []
    for per_class in (4, 8, 16, 32):
        model, vos, images, target = _build("Unet", device, shape, pixels_per_class=per_class)
        parts = _parts(vos, model, images, target, _timer(device), repeats)
        rows.append({"case": f"enqueue Unet-r18 {device} pixels_per_class={per_class}",
                     "enqueue_ms": parts["enqueue_ms"], "enqueue_cpu_ms": parts["enqueue_cpu_ms"]})
    return rows


def run(quick: bool) -> list[dict]:
    """Rows: per architecture and device, plain/VOS step times, their ratio and the plugin's parts."""
    torch.set_num_threads(2)
    shape = (2, 3, 64, 128) if quick else (2, 3, 256, 512)
    repeats = 2 if quick else 9
    rows = []
    for device in _devices():
        # on a GPU also a Cityscapes-like training batch, where the plugin's share is smallest
        shapes = [shape] if quick or device == "cpu" else [shape, (8, 3, 512, 1024)]
        for size in shapes:
            for arch in ARCHS:
                rows.append(_step_case(arch, device, size, repeats))
        if not quick:
            rows.extend(_enqueue_sweep(device, shape, repeats))
    return rows
