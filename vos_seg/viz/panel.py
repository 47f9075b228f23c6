"""Annotated figures drawn with matplotlib's Agg canvas: the four-tile panel and single annotated views.

No pyplot: each call builds its own ``Figure`` on a ``FigureCanvasAgg`` under matplotlib's default style
(inside ``rc_context``, so neither the user's rcParams change the output nor this module changes theirs), and
returns the pixels. The same inputs give the same bytes with the same matplotlib version.
"""

from __future__ import annotations

import textwrap
from contextlib import contextmanager

import cv2
import matplotlib
import matplotlib.style
import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from vos_seg.viz import render
from vos_seg.viz.layout import Box, FigureLayout, panel_layout, view_layout
from vos_seg.viz.normalize import ScoreNormalizer, to_numpy

__all__ = ["render_panel", "render_view", "SCORE_LABELS", "score_label"]

SCORE_LABELS = {
    "energy": "energy = −log Σ exp(logits)",
    "weighted_energy": "weighted energy (VOS)",
    "vos_posterior": "VOS outlier probability",
    "msp": "1 − max softmax probability",
    "max_logit": "−max logit",
    "entropy": "softmax entropy / log C",
    "sml": "standardized max logit",
}
_DPI = 100


def score_label(name: str) -> str:
    """Readable name of a score for titles (unknown names are shown as given)."""
    return SCORE_LABELS.get(name, name)


@contextmanager
def _figure(layout: FigureLayout):
    with matplotlib.rc_context():
        matplotlib.style.use("default")
        fig = Figure(figsize=(layout.width / _DPI, layout.height / _DPI), dpi=_DPI, facecolor="white")
        canvas = FigureCanvasAgg(fig)
        out = {"fig": fig}
        yield out
        canvas.draw()
        out["pixels"] = np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _rect(layout: FigureLayout, box: Box) -> list[float]:
    return [box.x0 / layout.width, 1 - box.y1 / layout.height, box.width / layout.width,
            box.height / layout.height]


def _text(fig, layout, box: Box, text: str, *, size=9.0, weight="normal", top=True, chars_per_px=1 / 6.6):
    lines = textwrap.wrap(text, width=max(10, int(box.width * chars_per_px))) if text else []
    y = box.y0 if top else box.y1 - 4
    fig.text(box.x0 / layout.width, 1 - y / layout.height, "\n".join(lines[:3]), fontsize=size,
             fontweight=weight, ha="left", va="top" if top else "bottom", linespacing=1.15)


def _tile(fig, layout, name: str, pixels: np.ndarray, head: str, caption: str) -> None:
    box = layout.tiles[name]
    assert pixels.shape[:2] == (box.height, box.width), (pixels.shape, box)  # tiles are resized beforehand
    # figimage pastes the pixels 1:1 at a pixel offset (from the bottom-left): no resampling, no axes.
    fig.figimage(pixels, xo=box.x0, yo=layout.height - box.y1, origin="upper")
    _text(fig, layout, layout.heads[name], head, size=10.5, weight="bold", top=False, chars_per_px=1 / 8.8)
    _text(fig, layout, layout.captions[name], caption)


def _resize(array: np.ndarray, box: Box, nearest: bool = False) -> np.ndarray:
    size = (box.width, box.height)
    if array.shape[1::-1] == size:
        return array
    shrink = box.width < array.shape[1]
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.resize(array, size, interpolation=interp)


def _colorbar(fig, layout, vmin, vmax, cmap, label, threshold, threshold_note) -> None:
    cax = fig.add_axes(_rect(layout, layout.colorbar))
    fig.colorbar(ScalarMappable(norm=Normalize(vmin, vmax), cmap=cmap), cax=cax)
    cax.tick_params(labelsize=8.5)
    cax.set_ylabel(label, fontsize=8.5, labelpad=3)
    if threshold is None:
        return
    shown = min(max(threshold, vmin), vmax)
    stroke = [patheffects.withStroke(linewidth=4, foreground="black")]
    cax.axhline(shown, color="white", linewidth=2, path_effects=stroke)
    off = " (off scale)" if shown != threshold else ""
    # Keep the three-line note inside the bar's height: hang it below the mark near the top, above it near
    # the bottom; the arrow always sits on the first or last line, level with the mark.
    position = (shown - vmin) / (vmax - vmin)
    lines = [f"◀ t = {threshold:.3g}{off}", *threshold_note.split("\n")]
    va = "center"
    if position > 0.8:
        va, dy = "top", 6
    elif position < 0.2:
        va, dy, lines = "bottom", -6, [*threshold_note.split("\n"), lines[0]]
    else:
        dy = 0
    cax.annotate("\n".join(lines), xy=(1, shown), xycoords=("axes fraction", "data"), xytext=(52, dy),
                 textcoords="offset points", fontsize=8, va=va, ha="left", fontweight="bold", linespacing=1.1)


def _legend(fig, layout, box: Box, entries: list[tuple[tuple[int, int, int], str]], line_h: int = 17) -> None:
    """Colour swatches and names in figure pixels (no axes: cheaper, and nothing to hide)."""
    fits = max(1, box.height // line_h)
    if len(entries) > fits:
        entries = entries[: fits - 1] + [((255, 255, 255), f"+ {len(entries) - fits + 1} more")]

    def at(x, y):  # top-left pixel coordinates -> figure fraction
        return (box.x0 + x) / layout.width, 1 - (box.y0 + y) / layout.height

    for row, (color, label) in enumerate(entries):
        y = row * line_h + 2
        rgb = np.array(color) / 255
        if "outline" in label:  # drawn as the outline it stands for
            patch = Rectangle(at(1, y + 11), 11 / layout.width, 10 / layout.height, facecolor="none",
                              edgecolor=rgb, linewidth=2, transform=fig.transFigure)
        else:
            patch = Rectangle(at(0, y + 12), 13 / layout.width, 12 / layout.height, facecolor=rgb,
                              edgecolor="black", linewidth=0.6, transform=fig.transFigure)
        fig.add_artist(patch)
        fig.text(*at(18, y + 6), label, fontsize=8.5, va="center", ha="left")


def _threshold(normalizer: ScoreNormalizer, threshold: float | None) -> tuple[float | None, str]:
    if threshold is not None:
        return float(threshold), "threshold\n(given)"
    if normalizer.mode == "calibrated":
        return normalizer.threshold, f"{normalizer.tpr:.0%} of in-dist.\npixels are below"
    return None, ""


def _bar_label(normalizer: ScoreNormalizer, score_name: str) -> str:
    return f"{score_name}, " + ("per-image range" if normalizer.mode == "per_image" else "shared range")


def _map_caption(normalizer: ScoreNormalizer, score: np.ndarray) -> str:
    caption = "Colours: " + normalizer.describe(score) + "."
    if not np.isfinite(score).all():
        caption += " Grey: score not finite."
    return caption


def render_panel(image, score, *, normalizer: ScoreNormalizer, prediction=None, palette=None, class_names=None,
                 labels=None, threshold: float | None = None, cmap: str = "inferno", title: str | None = None,
                 score_name: str = "energy", tile_width: int = 480) -> np.ndarray:
    """A self-explaining 2 x 2 panel: image | predicted segmentation / anomaly map + colorbar | detection.

    The anomaly map's colorbar has value ticks, the threshold marked, and a caption saying how colours were
    normalised; the detection tile paints pixels with ``score > threshold`` (``threshold`` if given, else the
    calibrated one) and outlines the ground-truth anomaly when ``labels`` are given.

    Args:
        image: uint8 (H, W, 3) RGB frame.
        score: (H, W) anomaly score, higher = more anomalous.
        normalizer: the shared :class:`ScoreNormalizer` (fitted when its mode needs it).
        prediction: optional (H, W) integer class map; ``palette`` (K, 3) uint8 colours it (default:
            :func:`vos_seg.viz.render.default_palette`), ``class_names`` label the legend.
        labels: optional uint8 (H, W) anomaly labels, 0 in-distribution, 1 anomaly, 255 void.
        threshold: detection threshold on the raw score; None uses the calibrated threshold if any.
        cmap: matplotlib colormap name. title: figure title. score_name: key of :data:`SCORE_LABELS`.
        tile_width: width of each tile in pixels.

    Returns:
        uint8 (H', W', 3) RGB figure; its geometry is :func:`vos_seg.viz.layout.panel_layout`.

    Raises:
        ValueError: mismatched shapes, class ids outside the palette, an unfitted normalizer.
    """
    image = render.check_image(image)
    score = to_numpy(score).astype(np.float32)
    if score.shape != image.shape[:2]:
        raise ValueError(f"score shape {score.shape} differs from image shape {image.shape[:2]}")
    layout = panel_layout(score.shape, tile_width=tile_width, title=title is not None)
    box = layout.tiles["image"]
    small_image = _resize(image, box)
    small_score = _resize(score, box)
    vmin, vmax = normalizer.value_range(score)
    t, t_note = _threshold(normalizer, threshold)
    height, width = score.shape
    with _figure(layout) as drawing:
        fig = drawing["fig"]
        if title is not None:
            _text(fig, layout, layout.title, title, size=13, weight="bold", chars_per_px=1 / 9)
        _tile(fig, layout, "image", small_image, "Input image", f"{width} × {height} pixels.")
        _segmentation(fig, layout, prediction, palette, class_names, score.shape)
        # The range comes from the full-resolution map (per-image mode included), then colours the tile.
        colors = render.apply_colormap(ScoreNormalizer.fixed(vmin, vmax)(small_score), cmap)
        head = f"Anomaly score: {score_label(score_name)} (higher = more anomalous)"
        _tile(fig, layout, "anomaly", colors, head, _map_caption(normalizer, score))
        _colorbar(fig, layout, vmin, vmax, cmap, _bar_label(normalizer, score_name), t, t_note)
        _detection(fig, layout, small_image, small_score, score, labels, t)
    return drawing["pixels"]


def _segmentation(fig, layout, prediction, palette, class_names, shape) -> None:
    box = layout.tiles["segmentation"]
    if prediction is None:
        _tile(fig, layout, "segmentation", np.full((box.height, box.width, 3), 230, np.uint8),
              "Predicted segmentation", "No prediction given.")
        return
    prediction = to_numpy(prediction, "prediction").astype(np.int64)
    if prediction.shape != shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from score shape {shape}")
    num_classes = int(prediction[prediction != 255].max(initial=-1)) + 1
    if class_names is not None:
        num_classes = max(num_classes, len(class_names))
    palette = render.default_palette(num_classes, class_names) if palette is None else np.asarray(palette, np.uint8)
    colored = render.segmentation_to_color(_resize(prediction.astype(np.int32), box, nearest=True), palette)
    _tile(fig, layout, "segmentation", colored, "Predicted segmentation",
          "Class with the highest logit at each pixel; legend lists the classes present, largest first.")
    ids, counts = np.unique(prediction[prediction != 255], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    names = [class_names[i] if class_names is not None and i < len(class_names) else f"class {i}" for i in order]
    _legend(fig, layout, layout.sides["segmentation"], [(tuple(palette[i]), n) for i, n in zip(order, names)])


def _detection(fig, layout, small_image, small_score, score, labels, threshold) -> None:
    box = layout.tiles["detection"]
    small_labels = None
    if labels is not None:
        labels = to_numpy(labels, "labels")
        if labels.shape != score.shape:
            raise ValueError(f"labels shape {labels.shape} differs from score shape {score.shape}")
        small_labels = _resize(labels.astype(np.uint8), box, nearest=True)
    if threshold is None:
        pixels = render.render_detection(small_image, small_score, np.inf, labels=small_labels)
        caption = "No threshold given: set one (threshold=, --threshold) or calibrate on labelled data."
        head = "Detection (no threshold set)"
    else:
        pixels = render.render_detection(small_image, small_score, threshold, labels=small_labels)
        flagged = float(np.mean(np.isfinite(score) & (score > threshold)))
        caption = f"Orange: pixels with score > t = {threshold:.3g} ({flagged:.1%} of the image)."
        head = "Detection: score above threshold t"
    entries = [] if threshold is None else [(render.DETECTION_COLOR, "score > t")]
    if labels is not None:
        caption += " Cyan: ground-truth anomaly outline."
        entries.append((render.OUTLINE_COLOR, "ground-truth\nanomaly outline"))
    elif threshold is not None:
        caption += " No ground truth given."
    _tile(fig, layout, "detection", pixels, head, caption)
    _legend(fig, layout, layout.sides["detection"], entries, line_h=30)


def render_view(image, score, *, view: str = "map", normalizer: ScoreNormalizer, alpha: float = 0.5,
                cmap: str = "inferno", title: str | None = None, score_name: str = "energy",
                threshold: float | None = None, max_width: int = 1024) -> np.ndarray:
    """One annotated view: the anomaly ``"map"`` or its ``"overlay"`` on the image, with title, colorbar and
    a caption saying how colours were normalised (threshold marked when given or calibrated).

    Args:
        image: uint8 (H, W, 3); score: (H, W); view: ``"map"`` or ``"overlay"``; the rest as
            :func:`render_panel`; ``max_width``: widest tile drawn (larger frames are shrunk).

    Returns:
        uint8 (H', W', 3) RGB figure; its geometry is :func:`vos_seg.viz.layout.view_layout`.
    """
    if view not in ("map", "overlay"):
        raise ValueError(f"unknown view {view!r}; expected 'map' or 'overlay'")
    image = render.check_image(image)
    score = to_numpy(score).astype(np.float32)
    if score.shape != image.shape[:2]:
        raise ValueError(f"score shape {score.shape} differs from image shape {image.shape[:2]}")
    layout = view_layout(score.shape, max_width=max_width, title=title is not None)
    vmin, vmax = normalizer.value_range(score)
    fixed = ScoreNormalizer.fixed(vmin, vmax)  # per-image range of the full-resolution map, applied to the tile
    box = layout.tiles["view"]
    small_score = _resize(score, box)
    if view == "map":
        pixels = render.render_anomaly_map(None, small_score, normalizer=fixed, cmap=cmap)
        head = f"Anomaly score: {score_label(score_name)} (higher = more anomalous)"
    else:
        pixels = render.overlay(_resize(image, box), small_score, normalizer=fixed, alpha=alpha, cmap=cmap)
        head = (f"Anomaly score over the image: {score_label(score_name)} (higher = more anomalous; "
                f"map opacity {alpha:g})")
    t, t_note = _threshold(normalizer, threshold)
    with _figure(layout) as drawing:
        fig = drawing["fig"]
        if title is not None:
            _text(fig, layout, layout.title, title, size=13, weight="bold", chars_per_px=1 / 9)
        _tile(fig, layout, "view", pixels, head, _map_caption(normalizer, score))
        _colorbar(fig, layout, vmin, vmax, cmap, _bar_label(normalizer, score_name), t, t_note)
    return drawing["pixels"]
