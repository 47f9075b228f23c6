"""Anomaly-map rendering for people: colour maps, overlays and self-explaining panels (numpy in, uint8 RGB out).

Colours mean the same score on every image through one shared :class:`ScoreNormalizer` (fixed range,
dataset percentiles, or calibrated on in-distribution pixels); per-image stretching must be asked for and is
labelled as such. Drawing uses matplotlib's Agg canvas only (no pyplot state).

Example:
    >>> import numpy as np
    >>> from vos_seg.viz import ScoreNormalizer, render_anomaly_map, render_panel
    >>> image = np.zeros((64, 128, 3), np.uint8)
    >>> score = np.linspace(-10, -2, 64 * 128, dtype=np.float32).reshape(64, 128)
    >>> norm = ScoreNormalizer.fixed(-10.0, -2.0)
    >>> render_anomaly_map(image, score, normalizer=norm).shape
    (64, 128, 3)
    >>> render_panel(image, score, normalizer=norm, threshold=-4.0).dtype
    dtype('uint8')
"""

from vos_seg.viz.layout import FigureLayout, panel_layout, view_layout
from vos_seg.viz.normalize import NORMALIZER_MODES, ScoreNormalizer
from vos_seg.viz.panel import SCORE_LABELS, render_panel, render_view, score_label
from vos_seg.viz.render import (
    CITYSCAPES_PALETTE,
    anomaly_outline,
    apply_colormap,
    default_palette,
    overlay,
    render_anomaly_map,
    render_detection,
    segmentation_to_color,
)

__all__ = [
    "ScoreNormalizer", "NORMALIZER_MODES",
    "render_anomaly_map", "overlay", "segmentation_to_color", "render_detection", "render_panel", "render_view",
    "apply_colormap", "default_palette", "anomaly_outline", "CITYSCAPES_PALETTE", "SCORE_LABELS", "score_label",
    "FigureLayout", "panel_layout", "view_layout",
]
