"""Pixel-exact tiles: colour-mapped anomaly maps, overlays, class-coloured segmentations, detections.

Every function takes numpy arrays (or torch tensors, copied to the host) and returns ``uint8`` RGB arrays of
the input's height and width; none draws text. :mod:`vos_seg.viz.panel` composes them into annotated figures.
"""

from __future__ import annotations

import cv2
import matplotlib
import numpy as np

from vos_seg.viz.normalize import ScoreNormalizer, to_numpy

__all__ = [
    "CITYSCAPES_PALETTE", "NAN_COLOR", "DETECTION_COLOR", "OUTLINE_COLOR",
    "apply_colormap", "render_anomaly_map", "overlay", "segmentation_to_color", "default_palette",
    "anomaly_outline", "render_detection", "check_image",
]

# The 19 Cityscapes train-id colours (cityscapesScripts labels.py), for checkpoints with 19 classes.
CITYSCAPES_PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
], dtype=np.uint8)
NAN_COLOR = (128, 128, 128)  # non-finite scores: mid grey, outside every perceptual colormap's range of use
DETECTION_COLOR = (255, 60, 0)  # pixels above the threshold
OUTLINE_COLOR = (0, 255, 255)  # ground-truth anomaly outline (cyan: distinct from the orange detection)


def check_image(image, name: str = "image") -> np.ndarray:
    """Return ``image`` as uint8 (H, W, 3); raises ValueError naming the shape or dtype otherwise."""
    image = to_numpy(image, name)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected `{name}` of shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected `{name}` as uint8 RGB, got dtype {image.dtype}")
    return image


def _check_score(score, image=None) -> np.ndarray:
    score = to_numpy(score)
    if score.ndim != 2:
        raise ValueError(f"expected a score map of shape (H, W), got {score.shape}")
    if image is not None and image.shape[:2] != score.shape:
        raise ValueError(f"score shape {score.shape} differs from image shape {image.shape[:2]}")
    return score


def apply_colormap(values, cmap: str = "inferno") -> np.ndarray:
    """Colour values in [0, 1] (NaN allowed) with a matplotlib colormap: (H, W) -> uint8 (H, W, 3).

    Non-finite values are drawn in :data:`NAN_COLOR`.
    """
    colormap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    out = colormap(np.where(finite, values, 0.0), bytes=True)[..., :3]
    out[~finite] = NAN_COLOR
    return np.ascontiguousarray(out)


def render_anomaly_map(image, score, *, normalizer: ScoreNormalizer, cmap: str = "inferno") -> np.ndarray:
    """The score map in a colormap, with the shared range of ``normalizer``.

    Args:
        image: the frame, uint8 (H, W, 3), only checked against the score's size; may be None.
        score: (H, W) float, higher = more anomalous.
        normalizer: a :class:`ScoreNormalizer` (per-image normalisation only when passed explicitly).
        cmap: a matplotlib colormap name; perceptually uniform ones (inferno, magma, viridis) read best.

    Returns:
        uint8 (H, W, 3) RGB.

    Raises:
        ValueError: shapes differ, or the normalizer has no range yet.
    """
    if image is not None:
        image = check_image(image)
    score = _check_score(score, image)
    return apply_colormap(normalizer(score), cmap)


def overlay(image, score, *, normalizer: ScoreNormalizer, alpha: float = 0.5, cmap: str = "inferno") -> np.ndarray:
    """Blend the coloured anomaly map over the image: ``(1 - alpha) * image + alpha * map``.

    Args:
        image: uint8 (H, W, 3). score: (H, W). alpha: weight of the map in [0, 1].

    Returns:
        uint8 (H, W, 3) RGB.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"expected 0 <= alpha <= 1, got {alpha}")
    image = check_image(image)
    colored = render_anomaly_map(image, score, normalizer=normalizer, cmap=cmap)
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * colored.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def default_palette(num_classes: int, class_names=None) -> np.ndarray:
    """A (num_classes, 3) uint8 palette: the synthetic world's or Cityscapes' colours when the classes match,
    otherwise distinct colours from matplotlib's tab20 (repeating after 20)."""
    if class_names is not None:
        from vos_seg.data.synthetic import CLASS_COLORS, CLASS_NAMES

        if tuple(class_names) == CLASS_NAMES and len(CLASS_COLORS) == num_classes:
            return np.asarray(CLASS_COLORS, dtype=np.uint8).reshape(num_classes, 3)
    if num_classes == len(CITYSCAPES_PALETTE):
        return CITYSCAPES_PALETTE.copy()
    tab20 = matplotlib.colormaps["tab20"]
    return np.array([tab20(i % 20, bytes=True)[:3] for i in range(num_classes)], dtype=np.uint8)


def segmentation_to_color(pred, palette, *, ignore_index: int = 255) -> np.ndarray:
    """Colour a class map: (H, W) integer class ids -> uint8 (H, W, 3); ``ignore_index`` is drawn black.

    Raises:
        ValueError: a class id outside 0..len(palette)-1 other than ``ignore_index`` (names the values).
    """
    pred = to_numpy(pred, "pred")
    palette = np.asarray(palette, dtype=np.uint8)
    if pred.ndim != 2:
        raise ValueError(f"expected a class map of shape (H, W), got {pred.shape}")
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"expected a palette of shape (K, 3), got {palette.shape}")
    pred = pred.astype(np.int64)
    void = pred == ignore_index
    bad = ~void & ((pred < 0) | (pred >= len(palette)))
    if bad.any():
        raise ValueError(f"class ids {np.unique(pred[bad])[:10].tolist()} ({int(bad.sum())} pixels) outside "
                         f"0..{len(palette) - 1} and not ignore_index={ignore_index}")
    out = palette[np.where(void, 0, pred)]
    out[void] = 0
    return out


def anomaly_outline(labels, thickness: int = 2) -> np.ndarray:
    """Boolean (H, W) mask of the boundary of the anomaly region (label 1), ``thickness`` pixels wide."""
    labels = to_numpy(labels, "labels")
    mask = (labels == 1).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    outer = cv2.dilate(mask, kernel, iterations=max(1, thickness // 2 + thickness % 2))
    inner = cv2.erode(mask, kernel, iterations=max(1, thickness // 2))
    return (outer - inner).astype(bool)


def render_detection(image, score, threshold: float, *, labels=None, outline_thickness: int = 2) -> np.ndarray:
    """The image dimmed to grey, pixels with ``score > threshold`` painted orange, the ground truth outlined.

    Args:
        image: uint8 (H, W, 3). score: (H, W). threshold: detection threshold on the raw score.
        labels: optional uint8 (H, W) anomaly labels (0/1/255); the outline of label 1 is drawn in cyan.

    Returns:
        uint8 (H, W, 3) RGB.
    """
    image = check_image(image)
    score = _check_score(score, image)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    out = np.repeat((0.35 * grey + 40.0)[..., None], 3, axis=2)
    detected = np.isfinite(score) & (score > threshold)
    out[detected] = 0.3 * out[detected] + 0.7 * np.array(DETECTION_COLOR, np.float32)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if labels is not None:
        labels = to_numpy(labels, "labels")
        if labels.shape != score.shape:
            raise ValueError(f"labels shape {labels.shape} differs from score shape {score.shape}")
        out[anomaly_outline(labels, outline_thickness)] = OUTLINE_COLOR
    return out
