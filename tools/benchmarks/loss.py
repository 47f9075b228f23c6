"""Benchmark section `loss`: VOSSegLoss forward + backward against plain cross-entropy.

A 2x19x256x512 logit batch (void rows, a block of real outlier pixels, 19 virtual outliers) on the CPU, 1 and 2
threads; medians and best of repeats, in milliseconds.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F


def _time(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().backward()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times), min(times)


def run(quick: bool) -> list[dict]:
    """Rows per thread count: cross-entropy and VOSSegLoss ms (median, best) and their ratio."""
    from vos_seg.loss import VOSSegLoss

    shape = (2, 19, 64, 128) if quick else (2, 19, 256, 512)
    repeats = 3 if quick else 15
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=g, requires_grad=True)
    target = torch.randint(0, 19, (shape[0], *shape[2:]), generator=g)
    target[:, :10] = 255
    target[0, 50:60, 50:80] = -1
    virtual = torch.randn(19, 19, generator=g, requires_grad=True)
    ce_target = target.masked_fill(target < 0, 255)
    loss = VOSSegLoss(19, validate=False)
    rows = []
    previous = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ce = _time(lambda: F.cross_entropy(logits, ce_target, ignore_index=255), repeats)
        vos = _time(lambda: loss(logits, target, virtual), repeats)
        rows.append({
            "case": f"{'x'.join(map(str, shape))}, {threads} thread(s)",
            "ce_ms": ce[0], "ce_best_ms": ce[1], "vos_loss_ms": vos[0], "vos_loss_best_ms": vos[1],
            "ratio": vos[0] / ce[0],
        })
    torch.set_num_threads(previous)
    return rows
