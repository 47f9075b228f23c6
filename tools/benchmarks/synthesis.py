"""Benchmark section `synthesis`: the fast virtual-outlier sampler against the published one, and the statistics.

Cases (CPU unless a GPU is present, threads as set by tools/benchmark.py; medians over repeats):
  - sample_outliers at K=19 classes, D=256, sample_from S=10000, select=1 (the VOS defaults): the published
    per-class loop (`method="reference"`), the fast sampler given the covariance (includes the batched-jitter
    Cholesky), and the fast sampler given a precomputed Cholesky factor (what the plugin does per step);
  - fit_tied_gaussian on K=19 full queues of Q=1000 features of D=256 (float64 and float32 accumulation);
  - cholesky_with_jitter at D=256 in both modes (and the device's default mode at D=2048 without --quick).
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from vos_seg.synthesis import cholesky_with_jitter, fit_tied_gaussian, sample_outliers

__all__ = ["run"]


def _time_ms(fn, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """(median, best) wall time of fn() in milliseconds (synchronising CUDA around each call).

    The best time is reported beside the median because a shared CPU makes small multi-threaded ops bimodal:
    a call that waits for a descheduled OpenMP worker can take 1000x its compute time.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def _problem(num_classes: int, per_class: int, dim: int, device: torch.device, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    centres = 2.0 * torch.randn(num_classes, 1, dim, generator=g, device=device)
    mixing = torch.randn(dim, dim, generator=g, device=device) / dim**0.5
    features = torch.relu(centres + torch.randn(num_classes, per_class, dim, generator=g, device=device) @ mixing)
    return features


def run(quick: bool) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = f"{device.type}, {torch.get_num_threads()} threads" if device.type == "cpu" else device.type
    num_classes, per_class, dim, sample_from, select = 19, 1000, 256, 10000, 1
    features = _problem(num_classes, per_class, dim, device)
    valid = torch.ones(num_classes, dtype=torch.bool, device=device)
    means, cov = fit_tied_gaussian(features, valid, 1e-4)
    scale_tril = cholesky_with_jitter(cov)
    g = torch.Generator(device=device).manual_seed(1)
    rows = []

    def reference():
        return sample_outliers(means, cov, sample_from, select, method="reference", generator=g)

    def fast_given_cov():
        return sample_outliers(means, cov, sample_from, select, generator=g)

    def fast_given_factor():
        return sample_outliers(means, None, sample_from, select, generator=g, scale_tril=scale_tril)

    size = f"K={num_classes} D={dim} S={sample_from} select={select}"
    print(f"synthesis: reference sampler ({where}) ...", file=sys.stderr, flush=True)
    ref_ms, ref_best = _time_ms(reference, repeats=1 if quick else 3, warmup=0 if quick else 1)
    rows.append({"case": f"sample reference (published loop), {size}", "device": where, "ms_per_call": ref_ms,
                 "ms_best": ref_best, "speedup_vs_reference": 1.0, "speedup_best": 1.0})
    print("synthesis: fast sampler ...", file=sys.stderr, flush=True)
    repeats = 20 if quick else 200
    for label, fn, count in (("cov given (incl. Cholesky)", fast_given_cov, repeats // 4),
                             ("scale_tril given", fast_given_factor, repeats)):
        ms, best = _time_ms(fn, count, warmup=2)
        rows.append({"case": f"sample fast, {label}, {size}", "device": where, "ms_per_call": ms, "ms_best": best,
                     "speedup_vs_reference": ref_ms / ms, "speedup_best": ref_best / best})

    print("synthesis: statistics ...", file=sys.stderr, flush=True)
    stat_repeats = 5 if quick else 30
    for accumulate in (torch.float64, torch.float32):
        ms, best = _time_ms(lambda: fit_tied_gaussian(features, valid, 1e-4, accumulate_dtype=accumulate),
                            stat_repeats)
        rows.append({"case": f"fit_tied_gaussian K={num_classes} Q={per_class} D={dim}, "
                             f"{str(accumulate).replace('torch.', '')} accumulation", "device": where,
                     "ms_per_call": ms, "ms_best": best})
    for batched, label in ((False, "sequential (CPU default)"), (True, "batched 4 levels (GPU default, no sync)")):
        ms, best = _time_ms(lambda: cholesky_with_jitter(cov, check=False, batched=batched), stat_repeats)
        rows.append({"case": f"cholesky_with_jitter D={dim} float64, {label}", "device": where,
                     "ms_per_call": ms, "ms_best": best})
    if not quick:
        big = _problem(4, 400, 2048, device, seed=2)  # 1600 samples < 2048 dims: singular without the ridge
        _, big_cov = fit_tied_gaussian(big, torch.ones(4, dtype=torch.bool, device=device), 1e-4)
        ms, best = _time_ms(lambda: cholesky_with_jitter(big_cov, check=False), 3)
        rows.append({"case": "cholesky_with_jitter D=2048 float64, device default", "device": where,
                     "ms_per_call": ms, "ms_best": best})
    return rows
