"""Benchmark section ``heatmaps``: rendering cost of vos_seg.viz figures and the normaliser's memory bound.

Rows: milliseconds per panel / annotated view / bare map for a Cityscapes-sized frame, and the shared
normaliser's update throughput and peak traced memory as the number of maps grows (it should stay flat: the
reservoir keeps at most ``max_samples`` values whatever the dataset size).
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc

import numpy as np

__all__ = ["run"]


def _ms(fn, repeats: int) -> float:
    fn()  # warm-up: font cache, colormap LUTs
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _frame(height: int, width: int, rng: np.random.Generator):
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    score = rng.normal(-8.0, 1.0, (height, width)).astype(np.float32)
    labels = np.zeros((height, width), np.uint8)
    labels[height // 2: height // 2 + height // 8, width // 3: width // 3 + width // 10] = 1
    prediction = rng.integers(0, 19, (height, width))
    return image, score, labels, prediction


def run(quick: bool) -> list[dict]:
    from vos_seg.viz import ScoreNormalizer, render_anomaly_map, render_panel, render_view

    rng = np.random.default_rng(0)
    height, width = (512, 1024) if quick else (1024, 2048)
    repeats = 2 if quick else 5
    image, score, labels, prediction = _frame(height, width, rng)
    norm = ScoreNormalizer.calibrated().update(score, labels)
    frame = f"{height}x{width}"
    rows = []
    cases = {
        "render_panel (4 tiles, 480 px wide)": lambda: render_panel(
            image, score, normalizer=norm, prediction=prediction, labels=labels, title="frame: energy"),
        "render_view map (annotated)": lambda: render_view(image, score, view="map", normalizer=norm, title="t"),
        "render_view overlay (annotated)": lambda: render_view(image, score, view="overlay", normalizer=norm),
        "render_anomaly_map (bare, full size)": lambda: render_anomaly_map(image, score, normalizer=norm),
    }
    for case, fn in cases.items():
        print(f"heatmaps: {case}", file=sys.stderr)
        rows.append({"case": case, "frame": frame, "ms_per_call": _ms(fn, repeats)})

    pixels = height * width
    for maps in ((4, 16) if quick else (10, 50)):
        norm = ScoreNormalizer.calibrated(max_samples=1_000_000)
        tracemalloc.start()
        start = time.perf_counter()
        for _ in range(maps):
            norm.update(score, labels)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        norm.threshold  # noqa: B018 - includes the quantile in nothing timed, but proves it computes
        rows.append({"case": f"ScoreNormalizer.calibrated update x{maps}", "frame": frame,
                     "ms_per_map": 1000 * seconds / maps, "mpx_per_s": maps * pixels / seconds / 1e6,
                     "peak_mib": peak / 2**20, "kept_samples": int(norm._all.values.size)})
    return rows
