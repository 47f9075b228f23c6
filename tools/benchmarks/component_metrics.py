"""Benchmark section: ComponentMetrics milliseconds per 1080x1920 frame on noisy score maps.

Noisy maps: blurred uniform noise thresholded near its median, so the prediction splits into thousands of
8-connected components (the case where the benchmark's per-component rescan takes seconds per frame), with a few
ground-truth objects and a void border. The ``rescan`` row times a per-component rescan written from the
definitions (the way the SegmentMeIfYouCan code loops), on one frame, for comparison (full mode only).
"""

from __future__ import annotations

import sys
import time

import cv2
import numpy as np

from vos_seg.metrics import ComponentMetrics

HEIGHT, WIDTH = 1080, 1920


def _frame(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = cv2.GaussianBlur(rng.random((HEIGHT, WIDTH), dtype=np.float32), (0, 0), 2.0)
    labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    for _ in range(8):
        y, x = rng.integers(100, HEIGHT - 100), rng.integers(100, WIDTH - 100)
        cv2.circle(labels, (int(x), int(y)), int(rng.integers(5, 60)), 1, -1)
    labels[:60] = 255
    scores += 0.2 * (labels == 1)
    return scores, labels


def _rescan(scores, labels, threshold, min_pred, min_gt):
    """Per-component full-image rescans, as the benchmark code does (for timing only)."""
    pred = ((scores > threshold) & (labels != 255)).astype(np.uint8)
    _, pred_cc = cv2.connectedComponents(pred, connectivity=8)
    _, gt_cc = cv2.connectedComponents((labels == 1).astype(np.uint8), connectivity=8)
    roi = labels != 255
    for c in range(1, pred_cc.max() + 1):
        if (pred_cc == c).sum() < min_pred:
            pred_cc[pred_cc == c] = 0
    for c in range(1, gt_cc.max() + 1):
        if (gt_cc == c).sum() < min_gt:
            roi[gt_cc == c] = False
    gt, pr = gt_cc[roi], pred_cc[roi]
    for c in np.unique(pr[pr > 0]):
        np.sum((pr == c) & (gt > 0)) / np.sum(pr == c)
    for a in np.unique(gt[gt > 0]):
        touching = np.isin(pr, np.unique(pr[(gt == a) & (pr > 0)]))
        np.sum((gt == a) & touching)


def run(quick: bool) -> list[dict]:
    frames = [_frame(seed) for seed in range(2 if quick else 5)]
    threshold = float(np.median(frames[0][0]))
    rows = []
    presets = (("anomaly_track", ComponentMetrics.anomaly_track), ("obstacle_track", ComponentMetrics.obstacle_track))
    for track, make in presets:
        print(f"component_metrics: {track}", file=sys.stderr)
        metric = make(threshold)
        times = []
        for scores, labels in frames:
            start = time.perf_counter()
            metric.update(scores, labels)
            times.append(time.perf_counter() - start)
        result = metric.compute()
        rows.append({"case": f"ComponentMetrics.{track} 1080x1920 noisy",
                     "ms_per_frame": 1000 * float(np.median(times)),
                     "pred_components_per_frame": result["num_pred_components"] / len(frames),
                     "gt_components_per_frame": result["num_gt_components"] / len(frames)})
        if not quick:
            print(f"component_metrics: rescan reference, {track}", file=sys.stderr)
            scores, labels = frames[0]
            start = time.perf_counter()
            _rescan(scores, labels, threshold, metric.min_pred_size, metric.min_gt_size)
            rows.append({"case": f"per-component rescan {track} (1 frame)",
                         "ms_per_frame": 1000 * (time.perf_counter() - start)})
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
