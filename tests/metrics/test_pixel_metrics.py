"""PixelMetrics against scikit-learn on hard inputs; streaming, sharding, dtypes, per-image mode and errors."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from vos_seg.metrics import PixelMetrics, pixel_metrics
from vos_seg.metrics.functional import NUM_BUCKETS, bucket_lower_bounds, score_buckets

N = 200_000


def sklearn_metrics(labels, scores):
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-300)
    best = int(np.argmax(f1[:-1]))
    return {
        "auroc": roc_auc_score(labels, scores),
        "ap": average_precision_score(labels, scores),
        "fpr95": fpr[np.searchsorted(tpr, 0.95, side="left")],
        "best_f1": f1[best],
        "threshold": thresholds[best],
    }


def make_case(name, rng, n=N):
    """(scores, labels with void) for each hard case; scores are float32 and the claimed property is asserted."""
    labels = (rng.random(n) < 0.1).astype(np.uint8)
    shift = labels.astype(np.float32)
    if name == "negative_energy":
        scores = -np.logaddexp.reduce(rng.normal(0, 3, (n, 5)), axis=1) + 2 * shift  # -logsumexp of logits
    elif name == "energy_far_from_zero":
        scores = rng.normal(-30, 1, n) + shift
    elif name == "probabilities":
        scores = 1 / (1 + np.exp(-rng.normal(-1 + 2 * shift, 2)))
    elif name == "many_ties":
        scores = np.round(rng.normal(shift, 1), 1)
    elif name == "binary":
        scores = (rng.random(n) < 0.3 + 0.4 * shift).astype(np.float32)
    elif name == "float16_values":
        scores = rng.normal(-5 + shift, 2).astype(np.float16)
    elif name == "void_heavy":
        scores = rng.normal(shift, 1)
        labels[rng.random(n) < 0.95] = 255
    elif name == "signed_zeros":
        scores = np.where(rng.random(n) < 0.5, 0.0, -0.0) + (rng.random(n) < 0.2) * (shift - 0.5)
    scores = np.asarray(scores, dtype=np.float32)
    if name in ("many_ties", "binary", "signed_zeros"):
        assert len(np.unique(scores)) < n / 100
    if name == "negative_energy":
        assert (scores < 0).mean() > 0.9
    if name == "void_heavy":
        assert (labels == 255).mean() > 0.9
    return scores, labels


CASES = [
    "negative_energy",
    "energy_far_from_zero",
    "probabilities",
    "many_ties",
    "binary",
    "float16_values",
    "void_heavy",
    "signed_zeros",
]
EXACT = {"many_ties", "binary", "float16_values", "signed_zeros"}  # each distinct score has a bucket of its own


@pytest.mark.parametrize("case", CASES)
def test_matches_sklearn_on_hard_inputs(case, rng):
    scores, labels = make_case(case, rng)
    metric = PixelMetrics()
    for chunk in np.array_split(np.arange(len(scores)), 3):
        metric.update(scores[chunk], labels[chunk])
    got = metric.compute()
    keep = labels != 255
    expected = sklearn_metrics(labels[keep], scores[keep])
    tolerance = 1e-9 if case in EXACT else 1e-4
    for key in ("auroc", "ap", "fpr95", "best_f1"):
        diff = abs(got[key] - expected[key])
        assert diff <= tolerance, f"{case} {key}: ours {got[key]} sklearn {expected[key]} diff {diff:.3g}"
    assert (got["num_anomaly"], got["num_inlier"]) == (int((labels == 1).sum()), int((labels == 0).sum()))
    if case in EXACT:  # `score > f1_threshold` is exactly sklearn's F1-optimal `score >= threshold`
        np.testing.assert_array_equal(scores > got["f1_threshold"], scores >= expected["threshold"])
    exact = pixel_metrics(scores, labels)
    for key in ("auroc", "ap", "fpr95", "best_f1"):
        assert exact[key] == pytest.approx(expected[key], abs=1e-12), f"functional {key}"


def test_narrow_band_limit_and_shift_remedy(rng):
    labels = (rng.random(N) < 0.3).astype(np.uint8)
    scores = (5.0001 + 1e-4 * rng.random(N) * (0.6 + 0.4 * labels)).astype(np.float32)
    assert scores.min() >= 5.0001 and scores.max() <= 5.0002
    expected = sklearn_metrics(labels, scores)
    metric = PixelMetrics()
    metric.update(scores, labels)
    assert abs(metric.compute()["auroc"] - expected["auroc"]) > 1e-2  # the documented limit is real
    shifted = PixelMetrics()
    shifted.update(scores - np.float32(5.0), labels)  # exact in float32; differences become relative ones
    got = shifted.compute()
    for key in ("auroc", "ap", "fpr95", "best_f1"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key


def test_bucket_order_and_bounds(rng):
    finite16 = np.arange(0, 2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite16 = finite16[np.isfinite(finite16)].astype(np.float32)
    wide = (rng.standard_normal(200_000) * 10.0 ** rng.uniform(-44, 38, 200_000)).astype(np.float32)
    extremes = np.array([0.0, -0.0, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38, 2.0**-8, 2.0**16], np.float32)
    values = np.sort(np.concatenate([finite16, wide[np.isfinite(wide)], extremes]))
    buckets = score_buckets(torch.from_numpy(values)).numpy()
    assert buckets.min() >= 0 and buckets.max() < NUM_BUCKETS
    assert (np.diff(buckets) >= 0).all(), "buckets must follow the score order"
    assert (bucket_lower_bounds(buckets) <= values).all()
    upper = buckets + 1 < NUM_BUCKETS
    assert (values[upper] < bucket_lower_bounds(buckets[upper] + 1)).all()
    distinct16 = np.unique(finite16)  # -0.0 == 0.0 collapse here as in the buckets
    assert len(np.unique(score_buckets(torch.from_numpy(distinct16)).numpy())) == len(distinct16)


def test_streaming_sharding_and_state(rng):
    scores, labels = make_case("negative_energy", rng)
    scores, labels = scores.reshape(20, 100, 100), labels.reshape(20, 100, 100)
    one_pass = PixelMetrics()
    one_pass.update(scores, labels)
    batched, shard_a, shard_b = PixelMetrics(), PixelMetrics(), PixelMetrics()
    for i in range(20):
        batched.update(scores[i], labels[i])
        (shard_a if i % 3 else shard_b).update(torch.from_numpy(scores[i]), torch.from_numpy(labels[i]))
    shard_a.merge(shard_b)
    for other in (batched, shard_a):
        for name, value in one_pass.state_dict().items():
            assert torch.equal(other.state_dict()[name], value), name
    restored = PixelMetrics()
    restored.load_state_dict({k: v.clone() for k, v in one_pass.state_dict().items()})
    assert restored.compute() == one_pass.compute()
    assert int(one_pass.num_void) == int((labels == 255).sum()) and one_pass.counts.shape == (2, NUM_BUCKETS)
    assert one_pass.sync() is one_pass  # no process group: a no-op
    with pytest.raises(ValueError, match="different settings"):
        one_pass.merge(PixelMetrics(per_image=True))
    one_pass.reset()
    assert int(one_pass.hist.sum()) == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_torch_dtypes_match_numpy_float32(dtype, rng):
    scores, labels = make_case("probabilities", rng, n=50_000)
    tensor = torch.from_numpy(scores).to(dtype)
    from_torch, from_numpy = PixelMetrics(), PixelMetrics()
    from_torch.update(tensor, torch.from_numpy(labels))
    from_numpy.update(tensor.float().numpy(), labels)
    assert from_torch.compute() == from_numpy.compute()


def test_per_image_streethazards_convention(rng):
    scores = rng.normal(size=(6, 30, 40)).astype(np.float32)
    labels = (rng.random((6, 30, 40)) < 0.1).astype(np.uint8)
    labels[:, :3] = 255
    scores += labels == 1
    labels[2][labels[2] == 1] = 0  # no anomaly: skipped
    metric = PixelMetrics(per_image=True)
    metric.update(scores[:4], labels[:4])
    metric.update(torch.from_numpy(scores[4]), torch.from_numpy(labels[4]))
    metric.update(scores[5], labels[5])
    got = metric.compute()
    per_image = [sklearn_metrics(l[l != 255], s[l != 255]) for s, l in zip(scores, labels) if (l == 1).any()]
    assert got["num_images"] == 5 and got["num_skipped_images"] == 1
    for key in ("auroc", "ap", "fpr95"):
        expected = np.mean([m[key] for m in per_image])
        assert got[key] == pytest.approx(expected, abs=1e-12), key
    pooled = PixelMetrics()
    pooled.update(scores, labels)
    assert got["best_f1"] == pooled.compute()["best_f1"] and got["f1_threshold"] == pooled.compute()["f1_threshold"]
    with pytest.raises(ValueError, match=r"per_image=True expects \(H, W\) or \(N, H, W\)"):
        metric.update(scores.reshape(-1), labels.reshape(-1))
    empty = PixelMetrics(per_image=True)
    empty.update(scores[2], labels[2])
    with pytest.raises(ValueError, match="no image held both"):
        empty.compute()


def test_curves_match_sklearn(rng):
    scores, labels = make_case("many_ties", rng, n=20_000)
    metric = PixelMetrics()
    metric.update(scores, labels)
    curves = metric.curves()
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(curves["fpr"], fpr[1:], atol=1e-12)
    np.testing.assert_allclose(curves["tpr"], tpr[1:], atol=1e-12)
    assert (curves["thresholds"] <= thresholds[1:]).all() and (np.diff(curves["thresholds"]) < 0).all()
    precision, recall, _ = precision_recall_curve(labels, scores)
    np.testing.assert_allclose(curves["precision"], precision[:-1][::-1], atol=1e-12)
    np.testing.assert_allclose(curves["recall"], recall[:-1][::-1], atol=1e-12)
    thin = metric.curves(max_points=10)
    assert len(thin["fpr"]) <= 10 and thin["fpr"][-1] == 1.0 and thin["tpr"][-1] == 1.0


def test_errors_name_the_problem_and_keep_state(rng):
    metric = PixelMetrics()
    scores = rng.normal(size=(8, 8)).astype(np.float32)
    labels = (rng.random((8, 8)) < 0.5).astype(np.uint8)
    metric.update(scores, labels)
    before = metric.hist.clone()
    bad = scores.copy()
    bad[0, :3] = [np.nan, np.inf, -np.inf]
    with pytest.raises(ValueError, match=r"1 NaN, 1 \+inf and 1 -inf"):
        metric.update(bad, labels)
    bad_labels = labels.copy()
    bad_labels[1, :2] = 3
    with pytest.raises(ValueError, match=r"3 \(2 pixels\)"):
        metric.update(scores, bad_labels)
    with pytest.raises(ValueError, match=r"same shape, got scores \(8, 8\) and labels \(8, 7\)"):
        metric.update(scores, labels[:, :7])
    with pytest.raises(TypeError, match="integer anomaly labels"):
        metric.update(scores, scores)
    with pytest.raises(TypeError, match="numpy array or torch.Tensor"):
        metric.update(scores.tolist(), labels)
    assert torch.equal(metric.hist, before), "a rejected update changed the state"
    void_nan = labels.copy()
    void_nan[0, :3] = 255
    metric.update(bad, void_nan)  # non-finite scores on void pixels are ignored
    assert int(metric.num_void) == 3 and int(metric.counts.sum()) == 64 + 61
    with pytest.raises(ValueError, match="must differ from 0"):
        PixelMetrics(void_label=1)
    only_inliers = PixelMetrics()
    only_inliers.update(scores, np.zeros_like(labels))
    with pytest.raises(ValueError, match="no anomaly pixels"):
        only_inliers.compute()
    only_anomalies = PixelMetrics()
    only_anomalies.update(scores, np.ones_like(labels))
    with pytest.raises(ValueError, match="no in-distribution pixels"):
        only_anomalies.compute()


@pytest.mark.cuda
def test_cuda_inputs_keep_state_on_device(rng):
    scores, labels = make_case("negative_energy", rng, n=100_000)
    on_gpu, on_cpu = PixelMetrics(), PixelMetrics()
    on_gpu.update(torch.from_numpy(scores).cuda().half(), torch.from_numpy(labels).cuda())
    on_cpu.update(torch.from_numpy(scores).half(), labels)
    assert on_gpu.device.type == "cuda"
    assert on_gpu.compute() == on_cpu.compute()


def test_read_only_and_strided_numpy_inputs(rng):
    scores, labels = make_case("binary", rng, n=4_000)
    scores, labels = scores.reshape(40, 100), labels.reshape(40, 100)
    expected = PixelMetrics()
    expected.update(scores[:, ::2].copy(), labels[:, ::2].copy())
    read_only = scores.copy()
    read_only.setflags(write=False)
    metric = PixelMetrics()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable array" warning from torch
        metric.update(read_only[:, ::2], labels[:, ::2])
    assert metric.compute() == expected.compute()
