"""vos_seg.viz: normalisation modes, pixel tiles, and the annotated panel (determinism, layout, colorbar)."""

import subprocess
import sys

import cv2
import matplotlib
import numpy as np
import pytest
import torch

from vos_seg.viz import (
    ScoreNormalizer,
    apply_colormap,
    overlay,
    panel_layout,
    render_anomaly_map,
    render_panel,
    render_view,
    segmentation_to_color,
    view_layout,
)
from vos_seg.viz.render import DETECTION_COLOR, OUTLINE_COLOR

H, W = 48, 96


@pytest.fixture
def scene(rng):
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    score = rng.normal(-8.0, 0.5, (H, W)).astype(np.float32)
    labels = np.zeros((H, W), np.uint8)
    labels[20:34, 40:60] = 1
    labels[:4] = 255
    score[20:34, 40:60] += 4.0
    prediction = np.zeros((H, W), np.int64)
    prediction[: H // 2] = 2
    prediction[30:40, 5:30] = 1
    assert (labels == 1).sum() == 14 * 20 and set(np.unique(labels)) == {0, 1, 255}
    return image, score, labels, prediction


# ------------------------------------------------------------------------------------------ normaliser
def test_fixed_range_maps_clips_and_keeps_nan():
    norm = ScoreNormalizer.fixed(-10.0, -2.0)
    out = norm(np.array([[-12.0, -10.0, -6.0, -2.0, 5.0, np.nan]]))
    expected = np.array([[0.0, 0.0, 0.5, 1.0, 1.0, np.nan]], np.float32)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float32
    assert norm.describe() == "fixed range [-10, -2]" and norm.threshold is None
    assert norm.update(np.zeros((2, 2))) is norm  # no statistics in fixed mode


@pytest.mark.parametrize("vmin, vmax", [(1.0, 1.0), (2.0, 1.0), (0.0, float("inf")), (None, 1.0)])
def test_fixed_range_rejects_bad_bounds(vmin, vmax):
    with pytest.raises(ValueError, match="vmin < vmax"):
        ScoreNormalizer("fixed", vmin=vmin, vmax=vmax)


def test_bad_mode_percentiles_and_tpr_raise():
    with pytest.raises(ValueError, match="unknown normalisation mode 'global'"):
        ScoreNormalizer("global")
    with pytest.raises(ValueError, match=r"percentiles 0 <= low < high <= 100, got \(99, 1\)"):
        ScoreNormalizer.dataset_percentiles(99, 1)
    with pytest.raises(ValueError, match="0 < tpr < 1, got 95"):
        ScoreNormalizer.calibrated(tpr=95)


def test_dataset_percentiles_exact_when_everything_fits(rng):
    maps = [rng.normal(i, 1 + i, (16, 24)).astype(np.float32) for i in range(5)]
    maps[2][0, :3] = [np.nan, np.inf, -np.inf]  # never counted
    norm = ScoreNormalizer.dataset_percentiles(2, 97).fit(maps)
    pooled = np.concatenate([m[np.isfinite(m)] for m in maps]).astype(np.float64)
    expected = np.percentile(pooled, [2, 97])
    got = np.array(norm.value_range())
    assert np.abs(got - expected).max() < 1e-9, f"max diff {np.abs(got - expected).max()}"
    assert norm.num_samples == pooled.size
    assert "percentiles 2-97" in norm.describe()


def test_dataset_percentiles_bounded_memory_is_a_uniform_sample():
    gen = np.random.default_rng(1)
    norm = ScoreNormalizer.dataset_percentiles(1, 99, max_samples=4000, seed=3)
    # Maps of different sizes: a size-biased sample (e.g. a fixed count per map) would miss the 0.01 quantile.
    for size in (100_000, 50_000, 10_000, 40_000):
        norm.update(gen.random(size))
    assert norm._all.values.size == 4000 and norm.num_samples == 200_000
    lo, hi = norm.value_range()
    # Standard error of a 1% quantile from 4000 samples: sqrt(0.01 * 0.99 / 4000) ~ 0.0016.
    assert abs(lo - 0.01) < 0.006 and abs(hi - 0.99) < 0.006, (lo, hi)
    again = ScoreNormalizer.dataset_percentiles(1, 99, max_samples=4000, seed=3)
    gen = np.random.default_rng(1)
    for size in (100_000, 50_000, 10_000, 40_000):
        again.update(gen.random(size))
    assert again.value_range() == (lo, hi)  # seeded: reproducible


def test_unfitted_dataset_modes_raise():
    with pytest.raises(ValueError, match="has seen no finite, non-void score yet"):
        ScoreNormalizer.dataset_percentiles().value_range()
    with pytest.raises(ValueError, match="per-image normalisation needs the score map"):
        ScoreNormalizer.per_image().value_range()


def test_calibrated_threshold_on_a_known_distribution():
    gen = np.random.default_rng(2)
    inlier = gen.normal(0.0, 1.0, (400, 500)).astype(np.float32)
    labels = np.zeros(inlier.shape, np.uint8)
    labels[:50] = 1  # anomalies: far higher scores, must not move the in-distribution threshold
    inlier[:50] += 6.0
    labels[50:60] = 255  # void: huge scores, ignored everywhere
    inlier[50:60] = 1e6
    torch_labels = torch.from_numpy(labels)  # tensors are accepted too
    norm = ScoreNormalizer.calibrated(tpr=0.95).update(torch.from_numpy(inlier), torch_labels)
    id_scores = inlier[labels == 0].astype(np.float64)
    t = norm.threshold
    assert t == pytest.approx(np.quantile(id_scores, 0.95), abs=1e-9)
    assert abs(np.mean(id_scores <= t) - 0.95) < 1e-4
    assert abs(t - 1.6449) < 0.03, t  # the N(0, 1) 95% quantile
    vmin, vmax = norm.value_range()
    assert vmin <= t <= vmax < 1e5
    assert norm.describe().startswith("calibrated: 95% of in-distribution pixels <= t = 1.6")
    small = ScoreNormalizer.calibrated(max_samples=20_000, seed=0).update(inlier, labels)
    assert abs(small.threshold - t) < 0.05  # subsampled estimate


def test_calibrated_needs_labels_and_valid_labels():
    norm = ScoreNormalizer.calibrated()
    with pytest.raises(ValueError, match="needs anomaly labels"):
        norm.update(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"labels shape \(4, 5\) differs from score shape \(4, 4\)"):
        norm.update(np.zeros((4, 4)), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="7"):
        norm.update(np.zeros((4, 4)), np.full((4, 4), 7, np.uint8))
    with pytest.raises(ValueError, match="saw no in-distribution pixel"):
        norm.update(np.zeros((4, 4)), np.ones((4, 4), np.uint8)).threshold


def test_per_image_range_follows_the_image_and_is_labelled():
    norm = ScoreNormalizer.per_image()
    a = np.linspace(0, 1, 20).reshape(4, 5)
    assert norm.value_range(a) == (0.0, 1.0)
    assert norm.value_range(a * 10 - 3) == (-3.0, 7.0)
    assert norm.describe(a).startswith("per-image range [0, 1]") and "not comparable" in norm.describe(a)
    constant = np.full((3, 3), 2.0)
    lo, hi = norm.value_range(constant)
    assert lo == 2.0 and hi > lo and np.all(norm(constant) == 0)


# ------------------------------------------------------------------------------------------ pixel tiles
def test_render_anomaly_map_uses_the_colormap_lut(scene):
    image, score, _, _ = scene
    norm = ScoreNormalizer.fixed(float(score.min()), float(score.max()))
    out = render_anomaly_map(image, score, normalizer=norm, cmap="magma")
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    lut = matplotlib.colormaps["magma"](np.linspace(0, 1, 256), bytes=True)[:, :3]
    low, high = np.unravel_index(score.argmin(), score.shape), np.unravel_index(score.argmax(), score.shape)
    assert (out[low] == lut[0]).all() and (out[high] == lut[-1]).all()
    nan_map = apply_colormap(np.array([[np.nan, 0.5]]))
    assert tuple(nan_map[0, 0]) == (128, 128, 128)
    with pytest.raises(ValueError, match=r"score shape \(48, 95\) differs from image shape \(48, 96\)"):
        render_anomaly_map(image, score[:, :-1], normalizer=norm)


def test_overlay_alpha_blends(scene):
    image, score, _, _ = scene
    norm = ScoreNormalizer.fixed(-10, -2)
    colored = render_anomaly_map(image, score, normalizer=norm)
    assert np.array_equal(overlay(image, score, normalizer=norm, alpha=0.0), image)
    assert np.array_equal(overlay(image, score, normalizer=norm, alpha=1.0), colored)
    half = overlay(image, score, normalizer=norm, alpha=0.5).astype(int)
    assert np.abs(half - (image.astype(int) + colored) / 2).max() <= 0.5
    with pytest.raises(ValueError, match="0 <= alpha <= 1, got 1.5"):
        overlay(image, score, normalizer=norm, alpha=1.5)
    with pytest.raises(ValueError, match=r"expected `image` of shape \(H, W, 3\), got \(48, 96\)"):
        overlay(image[..., 0], score, normalizer=norm)


def test_segmentation_to_color():
    palette = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    pred = np.array([[0, 1], [255, 0]])
    out = segmentation_to_color(pred, palette)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 1].tolist() == [40, 50, 60] and out[1, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match=r"class ids \[2, 7\] \(2 pixels\) outside 0..1"):
        segmentation_to_color(np.array([[2, 7]]), palette)


# ------------------------------------------------------------------------------------------ the panel
def _panel(scene, **kwargs):
    image, score, labels, prediction = scene
    kwargs = {"normalizer": ScoreNormalizer.fixed(-10.0, -2.0), "prediction": prediction, "labels": labels,
              "class_names": ["road", "car", "sky"], "threshold": -6.0, "title": "frame: energy",
              "tile_width": 200, **kwargs}
    return render_panel(image, score, **kwargs)


def test_panel_is_deterministic_with_the_layout_size(scene):
    first, second = _panel(scene), _panel(scene)
    layout = panel_layout((H, W), tile_width=200, title=True)
    assert first.shape == (layout.height, layout.width, 3) and first.dtype == np.uint8
    assert np.array_equal(first, second)
    assert cv2.imencode(".png", first)[1].tobytes() == cv2.imencode(".png", second)[1].tobytes()


def test_panel_colorbar_gradient_and_threshold_mark(scene):
    panel = _panel(scene)
    bar = panel_layout((H, W), tile_width=200).colorbar
    column = panel[bar.y0 + 3: bar.y1 - 3, (bar.x0 + bar.x1) // 2].astype(int)
    lut = matplotlib.colormaps["inferno"](np.linspace(0, 1, 256), bytes=True)[:, :3].astype(int)
    dist = ((column[:, None, :] - lut[None]) ** 2).sum(-1)
    index, error = dist.argmin(1), dist.min(1)
    rows = np.arange(bar.y0 + 3, bar.y1 - 3)
    away_from_mark = np.abs(rows - (bar.y0 + bar.height / 2)) > 5  # the white/black threshold mark at t = -6
    assert (error[away_from_mark] < 30).all(), "colorbar pixels that are not colormap colours"
    idx = index[away_from_mark]
    assert idx[:3].min() > 240 and idx[-3:].max() < 15, (idx[:3], idx[-3:])  # vmax on top, vmin at the bottom
    assert np.all(np.diff(idx) <= 1), "colorbar colours do not fall monotonically from top to bottom"
    # The threshold -6 is the middle of [-10, -2]: a white mark crosses the bar there.
    middle = bar.y0 + bar.height // 2
    rows = panel[middle - 3: middle + 4, bar.x0 + 3: bar.x1 - 3]
    assert (rows.min(axis=-1) > 240).all(axis=-1).any(), "no white threshold mark at t"


def test_panel_tiles_show_map_detection_and_outline(scene):
    image, score, labels, _ = scene
    layout = panel_layout((H, W), tile_width=200)
    panel = _panel(scene)
    tile = layout.tiles["detection"]
    detection = panel[tile.y0: tile.y1, tile.x0: tile.x1].astype(int)
    assert (np.abs(detection - OUTLINE_COLOR).sum(-1) == 0).sum() > 50  # cyan ground-truth outline
    orange = (0.3 * 40 + 0.7 * np.array(DETECTION_COLOR))  # painted over the dimmed image
    assert (np.abs(detection - orange).max(-1) < 60).sum() > 1000  # the detected square (score -4 > t = -6)
    no_labels = _panel(scene, labels=None)
    quiet = no_labels[tile.y0: tile.y1, tile.x0: tile.x1].astype(int)
    assert (np.abs(quiet - OUTLINE_COLOR).sum(-1) == 0).sum() == 0
    anomaly = layout.tiles["anomaly"]
    expected = render_anomaly_map(None, cv2.resize(score, (anomaly.width, anomaly.height),
                                                   interpolation=cv2.INTER_LINEAR),
                                  normalizer=ScoreNormalizer.fixed(-10.0, -2.0))
    drawn = panel[anomaly.y0 + 1: anomaly.y1 - 1, anomaly.x0 + 1: anomaly.x1 - 1].astype(int)
    diff = np.abs(drawn - expected[1:-1, 1:-1]).max()
    assert diff <= 2, f"anomaly tile differs from render_anomaly_map by {diff}"


def test_per_image_rendering_is_labelled_differently(scene):
    """Same colours, different caption: the only difference between a fixed and a per-image panel with equal
    ranges lies in the text (caption, colorbar label), never in the tiles."""
    image, score, _, _ = scene
    per_image = ScoreNormalizer.per_image()
    fixed = ScoreNormalizer.fixed(*per_image.value_range(score))
    a, b = _panel(scene, normalizer=per_image), _panel(scene, normalizer=fixed)
    layout = panel_layout((H, W), tile_width=200)
    differs = np.any(a != b, axis=-1)
    assert differs.any()
    for box in layout.tiles.values():
        assert not differs[box.y0: box.y1, box.x0: box.x1].any()
    caption = layout.captions["anomaly"]
    assert differs[caption.y0: caption.y1, caption.x0: caption.x1].any()


@pytest.mark.parametrize("view", ["map", "overlay"])
def test_render_view_shape_and_determinism(scene, view):
    image, score, _, _ = scene
    norm = ScoreNormalizer.calibrated().update(score, scene[2])
    out = render_view(image, score, view=view, normalizer=norm, title="t")
    layout = view_layout((H, W))
    assert out.shape == (layout.height, layout.width, 3) and out.dtype == np.uint8
    assert np.array_equal(out, render_view(image, score, view=view, normalizer=norm, title="t"))
    with pytest.raises(ValueError, match="unknown view 'heat'"):
        render_view(image, score, view="heat", normalizer=norm)


def test_panel_rejects_mismatched_inputs(scene):
    image, score, labels, prediction = scene
    with pytest.raises(ValueError, match=r"prediction shape \(48, 10\) differs"):
        _panel(scene, prediction=prediction[:, :10])
    with pytest.raises(ValueError, match=r"labels shape \(10, 96\) differs"):
        _panel(scene, labels=labels[:10])
    with pytest.raises(ValueError, match="has seen no finite"):
        _panel(scene, normalizer=ScoreNormalizer.dataset_percentiles())


def test_rendering_neither_uses_pyplot_nor_leaks_rcparams():
    code = (
        "import sys, matplotlib, numpy as np\n"
        "from vos_seg.viz import ScoreNormalizer, render_panel\n"
        "matplotlib.rcParams['font.size'] = 31\n"
        "matplotlib.rcParams['image.cmap'] = 'jet'\n"
        "out = render_panel(np.zeros((16, 32, 3), np.uint8), np.zeros((16, 32)), tile_width=64,\n"
        "                   normalizer=ScoreNormalizer.fixed(0, 1))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert matplotlib.rcParams['font.size'] == 31 and matplotlib.rcParams['image.cmap'] == 'jet'\n"
        "np.save(sys.argv[1], out)\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", code, f"{tmp}/a.npy"], check=True)
        styled = np.load(f"{tmp}/a.npy")
    plain = render_panel(np.zeros((16, 32, 3), np.uint8), np.zeros((16, 32)), tile_width=64,
                         normalizer=ScoreNormalizer.fixed(0, 1))
    assert np.array_equal(styled, plain), "the user's rcParams changed the rendering"
