"""Drawing primitives for the synthetic road world: a pinhole camera over a flat ground plane, a canvas that
paints textured polygons and sprites together with their labels, and the sensor model (lighting and noise).

Everything here is deterministic given the ``numpy.random.Generator`` passed in; nothing touches global RNGs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import cv2
import numpy as np

__all__ = ["Camera", "Canvas", "Plan", "smooth_noise", "hsv_color", "finish_image"]

_SHIFT = 4  # sub-pixel bits for cv2.fillPoly, so thin far-away shapes do not jitter by whole pixels
_LIMIT = 1e5  # projected points far off-screen are clamped so they stay inside int32 after the shift


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Zero-mean, unit-variance-ish value noise with features about ``cell`` pixels wide.

    Returns:
        float32 array (height, width).
    """
    gh, gw = int(height / cell) + 2, int(width / cell) + 2
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def hsv_color(hue: float, sat: float, val: float) -> np.ndarray:
    """RGB float32 (3,) in 0..255 from hue in [0, 1), saturation and value in [0, 1]."""
    pixel = np.array([[[hue * 180.0, sat * 255.0, val * 255.0]]], dtype=np.float32).clip(0, 255)
    return cv2.cvtColor(pixel.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


@dataclass
class Camera:
    """Pinhole camera at height ``cam_h`` metres above a flat ground, looking along the road (+z).

    A world point (u lateral metres, z depth metres, h height metres) projects to
    ``x = cx + f u / z`` and ``y = horizon + f (cam_h - h) / z``.
    """

    height: int
    width: int
    f: float
    horizon: float
    cx: float
    cam_h: float

    @property
    def z_bottom(self) -> float:
        """Depth of the ground at the bottom image row."""
        return self.f * self.cam_h / (self.height - self.horizon)

    def project(self, u, z, h=0.0) -> np.ndarray:
        """Project broadcastable arrays of (u, z, h) to pixel coordinates, shape (..., 2)."""
        z = np.asarray(z, np.float64)
        x = self.cx + self.f * np.asarray(u, np.float64) / z
        y = self.horizon + self.f * (self.cam_h - np.asarray(h, np.float64)) / z
        x, y = np.broadcast_arrays(x, y)
        return np.clip(np.stack([x, y], axis=-1), -_LIMIT, _LIMIT)

    def ground_quad(self, u0: float, u1: float, z0: float, z1: float) -> np.ndarray:
        """Ground-plane rectangle [u0, u1] x [z0, z1] as a (4, 2) polygon."""
        return self.project([u0, u1, u1, u0], [z0, z0, z1, z1])

    def wall_quad(self, u: float, z0: float, z1: float, h0: float, h1: float) -> np.ndarray:
        """Vertical rectangle in the plane u = const (a facade), as a (4, 2) polygon."""
        return self.project([u, u, u, u], [z0, z1, z1, z0], [h0, h0, h1, h1])

    def screen_box(self, u0: float, u1: float, z0: float, z1: float, h: float) -> tuple[float, float, float, float]:
        """Image bounding box (x0, y0, x1, y1) of the world box [u0, u1] x [z0, z1] x [0, h]."""
        pts = self.project([u0, u1, u0, u1, u0, u1, u0, u1], [z0, z0, z1, z1] * 2, [0.0] * 4 + [h] * 4)
        return (*pts.min(axis=0), *pts.max(axis=0))

    def ppm(self, z: float) -> float:
        """Pixels per metre at depth ``z``."""
        return self.f / z


class Plan(NamedTuple):
    """A thing to paint: its depth (for the painter's algorithm), its image bounding box and the painter."""

    z: float
    box: tuple[float, float, float, float]
    paint: Callable[["Canvas"], None]

    def overlaps(self, other: "Plan") -> bool:
        a, b = self.box, other.box
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class Canvas:
    """An RGB float32 image and its uint8 label map, painted together (painter's algorithm).

    ``noise`` holds three scene-wide noise fields (fine, smooth, coarse) that textures slice, so a textured
    fill costs one multiply-add over its bounding box instead of a fresh noise draw.
    """

    def __init__(self, rng: np.random.Generator, height: int, width: int, fill_label: int) -> None:
        self.h, self.w = height, width
        self.image = np.zeros((height, width, 3), np.float32)
        self.labels = np.full((height, width), fill_label, np.uint8)
        self.fine = rng.standard_normal((height, width)).astype(np.float32)
        self.smooth = smooth_noise(rng, height, width, 6.0)
        self.coarse = smooth_noise(rng, height, width, 40.0)

    def _box(self, pts: np.ndarray):
        x0, y0 = np.floor(pts.min(axis=0)).astype(int)
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.w), min(y1, self.h)
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def texture(self, box, fine: float, smooth: float, coarse: float) -> np.ndarray:
        """Multiplicative texture (h, w, 1) over a box: 1 + weighted scene noise."""
        x0, y0, x1, y1 = box
        tex = 1.0 + fine * self.fine[y0:y1, x0:x1]
        if smooth:
            tex += smooth * self.smooth[y0:y1, x0:x1]
        if coarse:
            tex += coarse * self.coarse[y0:y1, x0:x1]
        return tex[..., None]

    def poly(self, polys, color, label: int | None, tex=(0.03, 0.03, 0.05), shade=None) -> bool:
        """Fill one or more polygons with a textured colour and (unless ``label`` is None) their label.

        Args:
            polys: (N, 2) float pixel polygon or a list of them (filled together).
            color: RGB (3,) in 0..255.
            label: label value written under the polygon, or None to leave labels untouched.
            tex: (fine, smooth, coarse) noise amplitudes of the multiplicative texture.
            shade: optional (top_gain, bottom_gain) vertical gradient across the bounding box.

        Returns:
            False when the polygons lie entirely off-screen.
        """
        polys = [np.asarray(p, np.float64) for p in (polys if isinstance(polys, list) else [polys])]
        box = self._box(np.concatenate(polys))
        if box is None:
            return False
        x0, y0, x1, y1 = box
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for p in polys:  # one call per polygon: a single multi-contour fillPoly would XOR the overlaps
            pts = np.round((p - (x0, y0)) * (1 << _SHIFT)).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        self._apply(box, mask.astype(bool), color, label, tex, shade)
        return True

    def sprite(self, x0: int, y0: int, rgb: np.ndarray, mask: np.ndarray, label: int | None) -> bool:
        """Paste an (h, w, 3) sprite with boolean (h, w) mask at top-left (x0, y0), clipped to the image."""
        h, w = mask.shape
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, self.w), min(y0 + h, self.h)
        if cx1 <= cx0 or cy1 <= cy0:
            return False
        m = mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        region = self.image[cy0:cy1, cx0:cx1]
        region[m] = rgb[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0][m]
        if label is not None:
            self.labels[cy0:cy1, cx0:cx1][m] = label
        return True

    def shadow(self, center, axes, strength: float) -> None:
        """Darken an ellipse on whatever lies there (cast shadow); labels stay unchanged."""
        corners = np.array([[center[0] - axes[0], center[1] - axes[1]], [center[0] + axes[0], center[1] + axes[1]]])
        box = self._box(corners)
        if box is None or axes[0] < 1 or axes[1] < 0.5:
            return
        x0, y0, x1, y1 = box
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        c = (int(round(center[0] - x0)), int(round(center[1] - y0)))
        cv2.ellipse(mask, c, (int(axes[0]), max(int(axes[1]), 1)), 0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(axes[1] * 0.4, 0.8))
        self.image[y0:y1, x0:x1] *= (1.0 - strength * mask)[..., None]

    def _apply(self, box, mask, color, label, tex, shade) -> None:
        x0, y0, x1, y1 = box
        col = np.asarray(color, np.float32) * self.texture(box, *tex)
        if shade is not None:
            ramp = np.linspace(shade[0], shade[1], y1 - y0, dtype=np.float32)[:, None, None]
            col = col * ramp
        np.copyto(self.image[y0:y1, x0:x1], col, where=mask[..., None])
        if label is not None:
            np.copyto(self.labels[y0:y1, x0:x1], np.uint8(label), where=mask)


def finish_image(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera response: global gain, gamma and white balance, optional blur, then sensor noise; to uint8.

    Args:
        image: float32 (H, W, 3) scene radiance in 0..255.

    Returns:
        uint8 (H, W, 3) RGB.
    """
    gain = rng.uniform(0.65, 1.25)
    gamma = rng.uniform(0.75, 1.35)
    tint = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    x = np.clip(image / 255.0, 0.0, 1.0) ** gamma * (255.0 * gain) * tint
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (3, 3), 0.8)
    sigma = rng.uniform(1.0, 6.0)
    x += rng.standard_normal(x.shape[:2], dtype=np.float32)[..., None] * sigma
    x += rng.standard_normal(x.shape, dtype=np.float32) * (sigma * 0.4)
    return np.clip(x, 0, 255).astype(np.uint8)
