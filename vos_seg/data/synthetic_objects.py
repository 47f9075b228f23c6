"""Objects that do not belong to the street: test anomalies and outlier-exposure (OE) objects.

The two come from DISJOINT families, so a model trained with outlier exposure has never seen the test anomalies:

=========  ==============================================  ==================================================
           anomaly split (test)                            outlier exposure (training)
=========  ==============================================  ==================================================
shapes     smooth blobs, stars, rings, irregular           letters/digits, crosses, crescents, thick zigzags
           polygons, four-legged animal silhouettes
textures   checkerboard, stripes, polka dots, spots,       marble veins, cross-hatching, radial gradient,
           plain (shaded)                                  linear two-colour gradient
=========  ==============================================  ==================================================

Colours of both are drawn from the whole HSV cube, mostly moderately saturated (a third greyish or brownish), so
no single colour channel separates them from the street. Objects are 0.5-3.5 m tall (log-uniform), stand between
the bottom edge of the view and 22 m ahead, and are never shorter than 1/16 of the image height.
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from vos_seg.data.synthetic_render import Camera, Canvas, Plan, hsv_color, smooth_noise
from vos_seg.data.synthetic_scene import Layout

__all__ = ["ANOMALY_SHAPES", "ANOMALY_TEXTURES", "OE_SHAPES", "OE_TEXTURES", "make_sprite", "plan_objects"]

ANOMALY_SHAPES = ("blob", "star", "ring", "polygon", "animal")
ANOMALY_TEXTURES = ("checker", "stripes", "dots", "spots", "plain")
OE_SHAPES = ("glyph", "cross", "crescent", "zigzag")
OE_TEXTURES = ("marble", "hatch", "radial", "gradient")


def _fit(pts: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale points so their bounding box fills an (h, w) sprite; returns int32 (N, 2) pixel coordinates."""
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    scaled = (pts - lo) / np.maximum(hi - lo, 1e-6) * (w - 1, h - 1)
    return np.round(scaled).astype(np.int32)


def _radial(rng: np.random.Generator, radii_fn, n: int) -> np.ndarray:
    t = np.sort(rng.uniform(0, 2 * np.pi, n)) if radii_fn is None else np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = rng.uniform(0.4, 1.0, n) if radii_fn is None else radii_fn(t)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _shape_mask(rng: np.random.Generator, shape: str, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    if shape == "blob":
        a, ph = rng.uniform(0, 0.12, 4), rng.uniform(0, 2 * np.pi, 4)
        pts = _radial(rng, lambda t: 1 + sum(a[k] * np.cos((k + 2) * t + ph[k]) for k in range(4)), 48)
        cv2.fillPoly(m, [_fit(pts, h, w)], 1)
    elif shape == "star":
        n, inner = int(rng.integers(4, 10)), rng.uniform(0.3, 0.6)
        pts = _radial(rng, lambda t: np.where(np.arange(t.size) % 2 == 0, 1.0, inner), 2 * n)
        cv2.fillPoly(m, [_fit(pts, h, w)], 1)
    elif shape == "ring":
        cv2.ellipse(m, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)), 0, 0, 360, 1, -1)
        k = rng.uniform(0.4, 0.7)
        cv2.ellipse(m, (w // 2, h // 2), (max(int(w / 2 * k), 1), max(int(h / 2 * k), 1)), 0, 0, 360, 0, -1)
    elif shape == "polygon":
        cv2.fillPoly(m, [_fit(_radial(rng, None, int(rng.integers(5, 12))), h, w)], 1)
    elif shape == "animal":
        _animal(rng, m)
    elif shape == "glyph":
        text = chr(int(rng.choice([rng.integers(65, 91), rng.integers(48, 58)])))
        big = np.zeros((64, 64), np.uint8)
        cv2.putText(big, text, (6, 56), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 1, int(rng.integers(7, 13)))
        ys, xs = np.nonzero(big)
        big = big[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        m = cv2.resize(big, (w, h), interpolation=cv2.INTER_NEAREST)
    elif shape == "cross":
        t = rng.uniform(0.25, 0.45)
        m[int(h * (0.5 - t / 2)) : int(np.ceil(h * (0.5 + t / 2))), :] = 1
        m[:, int(w * (0.5 - t / 2)) : int(np.ceil(w * (0.5 + t / 2)))] = 1
    elif shape == "crescent":
        cv2.ellipse(m, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)), 0, 0, 360, 1, -1)
        dx = int(w * rng.uniform(0.25, 0.45)) * int(rng.choice([-1, 1]))
        cv2.ellipse(m, (w // 2 + dx, h // 2 - int(h * 0.1)), (w // 2, h // 2), 0, 0, 360, 0, -1)
    else:  # zigzag
        n = int(rng.integers(3, 6))
        pts = np.stack([np.linspace(0, 1, n), np.arange(n) % 2 + rng.uniform(-0.2, 0.2, n)], axis=1)
        thick = max(int(min(h, w) * rng.uniform(0.15, 0.3)), 2)
        pad = thick // 2 + 1
        pts = _fit(pts, h - 2 * pad, w - 2 * pad) + pad
        cv2.polylines(m, [pts], False, 1, thick)
    return m.astype(bool)


def _animal(rng: np.random.Generator, m: np.ndarray) -> None:
    """Four-legged silhouette (body, neck and head, legs, tail, ears) filling the sprite."""
    h, w = m.shape
    flip = rng.random() < 0.5
    body_y, leg_top = 0.45 * h, 0.6 * h
    cv2.ellipse(m, (int(0.45 * w), int(body_y)), (int(0.3 * w), max(int(0.17 * h), 1)), 0, 0, 360, 1, -1)
    head = (int(0.85 * w), int(rng.uniform(0.12, 0.3) * h))
    cv2.line(m, (int(0.65 * w), int(body_y)), head, 1, max(int(0.12 * h), 1))
    cv2.ellipse(m, head, (max(int(0.1 * w), 1), max(int(0.09 * h), 1)), rng.uniform(-30, 30), 0, 360, 1, -1)
    cv2.fillPoly(m, [np.array([[head[0] - 0.06 * w, head[1]], [head[0] - 0.02 * w, head[1] - 0.16 * h],
                               [head[0] + 0.02 * w, head[1]]], np.int32)], 1)
    leg_w = max(int(0.05 * w), 1)
    for x in (0.22, 0.32, 0.58, 0.68):
        x0 = int((x + rng.uniform(-0.04, 0.04)) * w)
        cv2.rectangle(m, (x0, int(leg_top)), (x0 + leg_w, h - 1), 1, -1)
    cv2.line(m, (int(0.15 * w), int(body_y - 0.05 * h)), (int(0.03 * w), int(rng.uniform(0.3, 0.6) * h)), 1,
             max(int(0.03 * h), 1))
    if flip:
        m[:] = m[:, ::-1].copy()


def _colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() < 0.35:  # natural-looking: greys and browns
        return (hsv_color(rng.uniform(0.02, 0.12), rng.uniform(0, 0.5), rng.uniform(0.15, 0.9)),
                hsv_color(rng.uniform(0.02, 0.12), rng.uniform(0, 0.5), rng.uniform(0.15, 0.9)))
    c1 = hsv_color(rng.uniform(0, 1), rng.uniform(0.15, 0.85), rng.uniform(0.3, 1.0))
    c2 = hsv_color(rng.uniform(0, 1), rng.uniform(0.0, 0.8), rng.uniform(0.1, 1.0))
    return c1, c2


def _texture(rng: np.random.Generator, texture: str, h: int, w: int) -> np.ndarray:
    """Blend weight (h, w) in [0, 1] between the sprite's two colours."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, np.pi)
    a = xx * np.cos(ang) + yy * np.sin(ang)
    b = -xx * np.sin(ang) + yy * np.cos(ang)
    period = max(min(h, w) * rng.uniform(0.12, 0.35), 3.0)
    if texture == "checker":
        return ((np.floor(a / period) + np.floor(b / period)) % 2).astype(np.float32)
    if texture == "stripes":
        return ((a / period) % 1.0 < rng.uniform(0.3, 0.7)).astype(np.float32)
    if texture == "dots":
        fa, fb = (a / period) % 1.0 - 0.5, (b / period) % 1.0 - 0.5
        return (fa * fa + fb * fb < rng.uniform(0.04, 0.12)).astype(np.float32)
    if texture == "spots":
        return (smooth_noise(rng, h, w, period * 0.6) > rng.uniform(-0.3, 0.5)).astype(np.float32)
    if texture == "plain":
        return np.zeros((h, w), np.float32)
    if texture == "marble":
        return 0.5 + 0.5 * np.sin(a / period * 2 + 2.5 * smooth_noise(rng, h, w, period))
    if texture == "hatch":
        return np.maximum((a / period * 2) % 1.0 < 0.2, (b / period * 2) % 1.0 < 0.2).astype(np.float32)
    if texture == "radial":
        r = np.hypot(xx - w * rng.uniform(0.2, 0.8), yy - h * rng.uniform(0.2, 0.8))
        return np.clip(r / max(h, w), 0, 1)
    return np.clip(a / max(np.abs(a).max(), 1.0), 0, 1)  # gradient


def make_sprite(rng: np.random.Generator, h: int, w: int, *, outlier_exposure: bool) -> tuple[np.ndarray, np.ndarray]:
    """A random object sprite of the anomaly family (or the OE family).

    Returns:
        rgb float32 (h, w, 3) in 0..255 and mask bool (h, w) (non-empty).
    """
    shapes, textures = (OE_SHAPES, OE_TEXTURES) if outlier_exposure else (ANOMALY_SHAPES, ANOMALY_TEXTURES)
    mask = _shape_mask(rng, shapes[int(rng.integers(len(shapes)))], h, w)
    if not mask.any():
        mask[h // 2, w // 2] = True
    weight = _texture(rng, textures[int(rng.integers(len(textures)))], h, w)[..., None]
    c1, c2 = _colors(rng)
    rgb = c1 * (1 - weight) + c2 * weight
    light = np.linspace(1.15, 0.8, h, dtype=np.float32)[:, None, None] * np.linspace(
        rng.uniform(0.85, 1.1), rng.uniform(0.85, 1.1), w, dtype=np.float32)[None, :, None]
    rgb = rgb * light * (1 + 0.04 * rng.standard_normal((h, w, 1), dtype=np.float32))
    return rgb.astype(np.float32), mask


def _paint_object(cv: Canvas, cam: Camera, u: float, z: float, size: tuple[float, float], oe: bool, label: int,
                  rng: np.random.Generator) -> None:
    ph = max(int(round(size[0] * cam.ppm(z))), 6)
    pw = max(int(round(size[1] * cam.ppm(z))), 6)
    rgb, mask = make_sprite(rng, ph, pw, outlier_exposure=oe)
    x, y = cam.project(u, z)
    rows = np.nonzero(mask.any(axis=1))[0]
    bottom = rows.max()  # stand on the lowest filled row
    cv.shadow((x, y), (pw * 0.55, max(pw * 0.08, 1.0)), 0.5)
    cv.sprite(int(round(x - pw / 2)), int(round(y - bottom - 1)), rgb, mask, label)


def plan_objects(rng: np.random.Generator, lay: Layout, count: int, label: int, *, outlier_exposure: bool,
                 on_road: float = 0.85) -> list:
    """Place ``count`` anomaly (or OE) objects on the road (probability ``on_road``) or beside it.

    Returns:
        ``Plan`` items as the ``plan_*`` functions of ``synthetic_things``.
    """
    cam, out = lay.cam, []
    for _ in range(count):
        if rng.random() < on_road:
            u = rng.uniform(lay.road[0] + 0.3, lay.road[1] - 0.3)
        else:
            side = int(rng.integers(2))
            u = rng.uniform(*sorted((lay.walk[side], lay.road[side])))
        z = float(np.exp(rng.uniform(np.log(cam.z_bottom * 1.15), np.log(22.0))))
        height = float(np.exp(rng.uniform(np.log(0.5), np.log(3.5))))
        width = min(height * rng.uniform(0.7, 2.2), 5.0)
        z = min(z, cam.f * height / (cam.height / 16))  # at least 1/16 of the image tall: no specks
        z = max(z, cam.z_bottom * 1.05)
        sub = np.random.default_rng(rng.integers(2**63))
        box = cam.screen_box(u - width / 2, u + width / 2, z, z, height)
        out.append(Plan(z, box, partial(_paint_object, cam=cam, u=u, z=z, size=(height, width), oe=outlier_exposure,
                               label=label, rng=sub)))
    return out
