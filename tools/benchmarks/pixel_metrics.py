"""Benchmark section: PixelMetrics throughput and peak memory against scikit-learn, and streamed 1e8 / 1e9 pixels.

Rows: ``sklearn`` (roc_auc_score + average_precision_score + roc_curve on all pixels at once) and ``PixelMetrics``
on 2e7 pixels fed as 1080x1920-sized frames; then PixelMetrics streamed over 1e8 and 1e9 pixels (chunks of 1e7,
cycled over four pre-drawn chunks so that data generation is not timed). Peak memory is the growth of the resident
set over the case (``VmHWM`` after resetting it through ``/proc/self/clear_refs``), which also counts torch
allocations that tracemalloc does not see.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from vos_seg.metrics import PixelMetrics

FRAME = 1080 * 1920
CHUNK = 10_000_000


def _rss_mib(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def _measure(fn):
    """Run fn(), returning (result, seconds, peak RSS growth in MiB)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    base = _rss_mib("VmRSS")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, _rss_mib("VmHWM") - base


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Energy-like float32 scores (anomalies shifted up) and uint8 labels with 5% anomaly and 10% void."""
    rng = np.random.default_rng(seed)
    draw = rng.random(n, dtype=np.float32)
    labels = (draw < 0.05).astype(np.uint8)
    labels[draw > 0.9] = 255
    scores = rng.standard_normal(n, dtype=np.float32)
    scores *= 3.0
    scores -= 10.0
    scores += 2.5 * (labels == 1)
    return scores, labels


def _sklearn(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    keep = labels != 255
    y, s = labels[keep], scores[keep]
    auroc = roc_auc_score(y, s)
    average_precision_score(y, s)
    roc_curve(y, s)
    return float(auroc)


def _stream(chunks, total: int, step: int) -> float:
    metric = PixelMetrics()
    done = 0
    while done < total:
        scores, labels = chunks[(done // step) % len(chunks)]
        for start in range(0, step, FRAME):
            metric.update(scores[start : start + FRAME], labels[start : start + FRAME])
        done += step
    return metric.compute()["auroc"]


def run(quick: bool) -> list[dict]:
    rows = []
    n = 20_000_000
    scores, labels = _data(n, seed=0)
    print(f"pixel_metrics: sklearn on {n:.0e} pixels", file=sys.stderr)
    auroc_sk, seconds_sk, peak_sk = _measure(lambda: _sklearn(scores, labels))
    rows.append({"case": "sklearn 2e7 (all at once)", "pixels": float(n), "seconds": seconds_sk,
                 "mpix_per_s": n / seconds_sk / 1e6, "peak_mib": peak_sk, "speedup": 1.0, "auroc": auroc_sk})
    print(f"pixel_metrics: PixelMetrics on {n:.0e} pixels", file=sys.stderr)
    auroc, seconds, peak = _measure(lambda: _stream([(scores, labels)], n, n))
    rows.append({"case": "PixelMetrics 2e7 (1080x1920 frames)", "pixels": float(n), "seconds": seconds,
                 "mpix_per_s": n / seconds / 1e6, "peak_mib": peak, "speedup": seconds_sk / seconds,
                 "auroc": auroc, "abs_diff_auroc": abs(auroc - auroc_sk)})
    del scores, labels
    chunks = [_data(CHUNK, seed=1 + i) for i in range(4)]
    for total in (10**8,) if quick else (10**8, 10**9):
        print(f"pixel_metrics: PixelMetrics streamed over {total:.0e} pixels", file=sys.stderr)
        auroc, seconds, peak = _measure(lambda: _stream(chunks, total, CHUNK))
        rows.append({"case": f"PixelMetrics {total:.0e} streamed", "pixels": float(total), "seconds": seconds,
                     "mpix_per_s": total / seconds / 1e6, "peak_mib": peak, "auroc": auroc})
    return rows


if __name__ == "__main__":
    torch.set_num_threads(2)
    for row in run(quick="--quick" in sys.argv):
        print(row)
