"""ComponentMetrics against hand-computed maps and a brute-force, per-component-rescan reference."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from vos_seg.metrics import SIOU_THRESHOLDS, ComponentMetrics, frame_components

EIGHT = np.ones((3, 3), dtype=int)


def reference_frame(scores, labels, threshold, min_pred, min_gt, void=255):
    """Straight from the SegmentMeIfYouCan definitions: one full-image rescan per component (scipy labelling)."""
    pred_cc, n_pred = ndimage.label((scores > threshold) & (labels != void), EIGHT)
    gt_cc, n_gt = ndimage.label(labels == 1, EIGHT)
    roi = labels != void
    for c in range(1, n_pred + 1):
        if (pred_cc == c).sum() < min_pred:
            pred_cc[pred_cc == c] = 0
    for c in range(1, n_gt + 1):
        if (gt_cc == c).sum() < min_gt:
            roi[gt_cc == c] = False
    gt, pred = gt_cc[roi], pred_cc[roi]
    siou = []
    for a in np.unique(gt[gt > 0]):
        touching = np.unique(pred[(gt == a) & (pred > 0)])
        in_touching = np.isin(pred, touching)
        inter = np.sum((gt == a) & in_touching)
        other = np.sum((gt > 0) & (gt != a) & in_touching)
        siou.append(inter / (in_touching.sum() + (gt == a).sum() - inter - other))
    ppv = [np.sum((pred == c) & (gt > 0)) / np.sum(pred == c) for c in np.unique(pred[pred > 0])]
    return np.array(siou, dtype=np.float64), np.array(ppv, dtype=np.float64)


def reference_dataset(frames, threshold, min_pred, min_gt):
    per_frame = [reference_frame(s, l, threshold, min_pred, min_gt) for s, l in frames]
    siou, ppv = (np.concatenate(x) for x in zip(*per_frame))
    tp = np.array([(siou >= t).sum() for t in SIOU_THRESHOLDS])
    fp = np.array([(ppv < t).sum() for t in SIOU_THRESHOLDS])
    f1 = 2 * tp / (2 * tp + (len(siou) - tp) + fp)
    return {"siou": siou.mean(), "ppv": ppv.mean(), "f1": f1.mean(), "num_gt": len(siou), "num_pred": len(ppv)}


def test_hand_built_map():
    # Two GT objects (4x4 = 16 px each); one prediction covers half of A and spills 4 px onto B and 8 px onto road.
    labels = np.zeros((12, 20), dtype=np.uint8)
    labels[2:6, 2:6] = 1  # A
    labels[2:6, 8:12] = 1  # B
    scores = np.zeros((12, 20), dtype=np.float32)
    scores[2:6, 4:9] = 1.0  # 8 px on A, 8 px on road (columns 6-7), 4 px on B (column 8)
    scores[9:11, 14:18] = 1.0  # 8 px false positive elsewhere
    siou, ppv = frame_components(scores, labels, 0.5, min_pred_size=1, min_gt_size=1, void_label=255)
    # A: inter 8, |P(A)| = 20, adjusted union = 20 + 16 - 8 - 4 = 24.  B: inter 4, union = 20 + 16 - 4 - 8 = 24.
    np.testing.assert_allclose(siou, [8 / 24, 4 / 24])
    np.testing.assert_allclose(sorted(ppv), [0.0, 12 / 20])
    metric = ComponentMetrics(0.5, min_pred_size=1, min_gt_size=1)
    metric.update(scores, labels)
    result = metric.compute()
    # t <= 1/3: TP = 1 (A), FN = 1 (B), FP = 1 (the PPV-0 blob) -> F1 = 2/4; larger t: TP = 0 -> F1 = 0.
    f1 = [0.5 if t <= 1 / 3 else 0.0 for t in SIOU_THRESHOLDS]
    assert result["f1"] == pytest.approx(np.mean(f1))
    assert result["siou"] == pytest.approx(6 / 24) and result["ppv"] == pytest.approx(0.3)
    assert (result["num_gt_components"], result["num_pred_components"]) == (2, 2)


def test_size_filters_void_and_diagonal_connectivity():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[1, 1] = labels[2, 2] = labels[3, 3] = 1  # one diagonal 3-px GT object (8-connected)
    labels[7:9, 7:9] = 1  # a 4-px GT object
    labels[:, 5] = 255
    scores = np.zeros((10, 10), dtype=np.float32)
    scores[1:4, 1:4] = 1.0  # 9 px covering the diagonal object
    scores[:, 5] = 1.0  # void: never predicted
    scores[7:9, 7:9] = 1.0
    siou, ppv = frame_components(scores, labels, 0.5, min_pred_size=5, min_gt_size=4, void_label=255)
    # The diagonal object (3 px) becomes void; the 4-px prediction on the other object is dropped (< 5 px).
    np.testing.assert_allclose(siou, [0.0])
    np.testing.assert_allclose(ppv, [0.0])  # 9 px minus the 3 px now void, none inside a kept GT object
    siou, ppv = frame_components(scores, labels, 0.5, min_pred_size=1, min_gt_size=1, void_label=255)
    np.testing.assert_allclose(sorted(siou), [3 / 9, 1.0])


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(3):
        labels = (ndimage.uniform_filter(rng.random((48, 64)), 5) > 0.55).astype(np.uint8)
        labels[rng.random((48, 64)) < 0.05] = 255
        scores = (ndimage.uniform_filter(rng.random((48, 64)), 3) + 0.3 * (labels == 1)).astype(np.float32)
        frames.append((scores, labels))
    min_pred, min_gt = [(1, 1), (5, 3), (20, 10)][seed % 3]
    threshold = float(np.float32(np.quantile(frames[0][0], 0.6)))  # float32-exact: scipy side compares in float32
    expected = reference_dataset(frames, threshold, min_pred, min_gt)
    metric = ComponentMetrics(threshold, min_pred, min_gt)
    for scores, labels in frames:
        metric.update(torch.from_numpy(scores), labels)
    got = metric.compute()
    assert (got["num_gt_components"], got["num_pred_components"]) == (expected["num_gt"], expected["num_pred"])
    assert expected["num_gt"] > 0 and expected["num_pred"] > 0
    for key in ("siou", "ppv", "f1"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), f"{key}: {got[key]} vs {expected[key]}"


def test_batch_equals_frames_and_merge():
    rng = np.random.default_rng(7)
    labels = (ndimage.uniform_filter(rng.random((4, 40, 40)), (1, 5, 5)) > 0.55).astype(np.uint8)
    scores = (rng.random((4, 40, 40)) * 0.5 + 0.6 * labels).astype(np.float32)
    whole = ComponentMetrics.obstacle_track(0.5)
    whole.update(scores, labels)
    first, second = ComponentMetrics.obstacle_track(0.5), ComponentMetrics.obstacle_track(0.5)
    first.update(scores[:1], labels[:1])
    for i in range(1, 4):
        second.update(scores[i], labels[i])
    first.merge(second)
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(first.state_dict()[name], value)
    assert whole.compute()["num_frames"] == 4
    with pytest.raises(ValueError, match="different settings"):
        first.merge(ComponentMetrics.anomaly_track(0.5))


def test_presets_threshold_semantics_and_errors():
    track = ComponentMetrics.anomaly_track(0.3)
    assert (track.min_pred_size, track.min_gt_size) == (500, 100)
    obstacle = ComponentMetrics.obstacle_track(0.3)
    assert (obstacle.min_pred_size, obstacle.min_gt_size) == (50, 10)
    labels = np.ones((4, 4), dtype=np.uint8)
    scores = np.full((4, 4), np.float32(0.1))  # float32(0.1) > 0.1 in float64: strict comparison in exact arithmetic
    siou, _ = frame_components(scores, labels, 0.1, 1, 1, 255)
    np.testing.assert_allclose(siou, [1.0])
    siou, _ = frame_components(scores, labels, float(np.float32(0.1)), 1, 1, 255)
    np.testing.assert_allclose(siou, [0.0])
    with pytest.raises(ValueError, match="threshold` must be finite"):
        ComponentMetrics(float("nan"))
    with pytest.raises(ValueError, match="min_pred_size"):
        ComponentMetrics(0.5, min_pred_size=-1)
    with pytest.raises(ValueError, match="before any update"):
        ComponentMetrics(0.5).compute()
    metric = ComponentMetrics(0.5, 1, 1)
    bad_labels = labels.copy()
    bad_labels[0, 0] = 7
    with pytest.raises(ValueError, match=r"got 7 \(1 pixel"):
        metric.update(scores, bad_labels)
    bad_scores = scores.copy()
    bad_scores[1, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        metric.update(bad_scores, labels)
    with pytest.raises(ValueError, match="expected \\(H, W\\) or \\(N, H, W\\)"):
        metric.update(np.zeros(5, np.float32), np.zeros(5, np.uint8))
    assert int(metric.num_frames) == 0
    metric.update(scores, np.zeros((4, 4), dtype=np.uint8))  # no GT, no prediction above 0.5
    result = metric.compute()
    assert np.isnan(result["siou"]) and np.isnan(result["ppv"]) and np.isnan(result["f1"])
