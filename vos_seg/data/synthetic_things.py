"""Foreground things of a synthetic street: cars, people, poles with signs, trees and the ego-vehicle hood.

Each ``plan_*`` function draws its random parameters and returns ``Plan(depth, screen box, paint)`` items; the
caller sorts all of them far to near and calls ``paint(canvas)`` (the painter's algorithm), so nearer things
occlude farther ones.
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from vos_seg.data.synthetic_render import Camera, Canvas, Plan, hsv_color
from vos_seg.data.synthetic_scene import CAR, PERSON, POLE, SIGN, VEGETATION, Layout, grass_color

__all__ = ["plan_cars", "plan_people", "plan_poles", "plan_trees", "draw_hood"]

_CAR_COLORS = [  # (hue, saturation, value) of common car paints
    (0.0, 0.0, 0.9), (0.0, 0.0, 0.12), (0.0, 0.0, 0.65), (0.0, 0.02, 0.45), (0.62, 0.6, 0.35), (0.0, 0.75, 0.6),
    (0.38, 0.5, 0.3), (0.1, 0.25, 0.75), (0.6, 0.7, 0.6), (0.13, 0.8, 0.85), (0.07, 0.85, 0.85), (0.3, 0.6, 0.55),
    (0.55, 0.6, 0.7), (0.85, 0.5, 0.45),
]


def _ellipse(cam: Camera, u: float, z: float, h: float, ru: float, rh: float, n: int = 16) -> np.ndarray:
    """Upright ellipse in the plane z = const, centred at (u, h)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return cam.project(u + ru * np.cos(t), z, h + rh * np.sin(t))


def _side_wheel(cam: Camera, u: float, z: float, r: float, n: int = 12) -> np.ndarray:
    """Wheel in the plane u = const (a car's side), centred at depth z."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return cam.project(u, z + r * np.cos(t), r + r * np.sin(t))


def _paint_car(cv: Canvas, cam: Camera, u: float, z: float, p: dict) -> None:
    w, length, hb, hr = p["w"], p["len"], p["body_h"], p["roof_h"]
    l, r = u - w / 2, u + w / 2
    body, dark = p["color"], p["color"] * 0.55
    foot = cam.ground_quad(l - 0.2, r + 0.2, z, z + length)
    cx, cy = foot[:, 0].mean(), foot[:, 1].mean()
    half = (foot.max(axis=0) - foot.min(axis=0)) / 2
    cv.shadow((cx, cy), (half[0], half[1] + 1), 0.55)
    su = l if u > 0 else r  # the side facing the camera
    tire = np.full(3, 25.0, np.float32)
    cv.poly(cam.project(su, [z, z + length, z + length, z], [0.25, 0.25, hb, hb]), dark, CAR, tex=(0.02, 0.02, 0.05))
    zc0, zc1 = z + length * 0.25, z + length * 0.8
    side_glass = cam.project(su, [zc0, zc1, zc1 - 0.4, zc0 + 0.2], [hb, hb, hr, hr])
    cv.poly(side_glass, p["glass"] * 0.8, CAR, tex=(0.02, 0.02, 0.1))
    wheels = [_side_wheel(cam, su, z + 0.8, 0.33), _side_wheel(cam, su, z + length - 0.8, 0.33),
              cam.project([l + 0.1, l + 0.35, l + 0.35, l + 0.1], z + 0.3, [0, 0, 0.4, 0.4]),
              cam.project([r - 0.35, r - 0.1, r - 0.1, r - 0.35], z + 0.3, [0, 0, 0.4, 0.4])]
    cv.poly(wheels, tire, CAR, tex=(0.05, 0, 0))
    cv.poly(cam.project([l, r, r, l], z, [0.25, 0.25, hb, hb]), body, CAR, tex=(0.02, 0.02, 0.05), shade=(1.1, 0.85))
    inset = w * 0.12
    cv.poly(cam.project([l + 0.05, r - 0.05, r - inset, l + inset], z + 0.3, [hb, hb, hr, hr]), body, CAR,
            tex=(0.02, 0.02, 0.05))
    cv.poly(cam.project([l + 0.15, r - 0.15, r - inset - 0.05, l + inset + 0.05], z + 0.3,
                        [hb + 0.05, hb + 0.05, hr - 0.08, hr - 0.08]), p["glass"], CAR, tex=(0.02, 0.02, 0.1),
            shade=(1.2, 0.8))
    cv.poly(cam.project([l, r, r, l], z, [0.25, 0.25, 0.45, 0.45]), dark * 0.6, CAR, tex=(0.02, 0, 0))
    lamp = p["lamp"]
    cv.poly([cam.project([l + 0.05, l + 0.35, l + 0.35, l + 0.05], z, [hb - 0.25, hb - 0.25, hb - 0.08, hb - 0.08]),
             cam.project([r - 0.35, r - 0.05, r - 0.05, r - 0.35], z, [hb - 0.25, hb - 0.25, hb - 0.08, hb - 0.08])],
            lamp, CAR, tex=(0.03, 0, 0))
    plate = cam.project([u - 0.25, u + 0.25, u + 0.25, u - 0.25], z, [0.5, 0.5, 0.62, 0.62])
    cv.poly(plate, np.full(3, 215.0, np.float32), CAR, tex=(0.03, 0, 0))


def plan_cars(rng: np.random.Generator, lay: Layout) -> list:
    """Moving cars in the lanes and cars parked along both kerbs."""
    cam, out = lay.cam, []
    bounds = [lay.road[0], *lay.lanes, lay.road[1]]
    spots = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        for _ in range(int(rng.choice([0, 1, 1, 2, 2, 3]))):
            spots.append(((a + b) / 2 + rng.uniform(-0.4, 0.4), rng.uniform(cam.z_bottom * 1.3, 70)))
    for side, sgn in ((0, 1), (1, -1)):
        if rng.random() < 0.45:
            z = rng.uniform(cam.z_bottom, 15)
            while z < 70:
                spots.append((lay.road[side] + sgn * 1.05, z))
                z += rng.uniform(5, 15)
    for u, z in spots:
        h, s, v = _CAR_COLORS[int(rng.integers(len(_CAR_COLORS)))]
        van = rng.random() < 0.2
        p = dict(w=rng.uniform(1.65, 2.0), len=rng.uniform(3.9, 4.9), body_h=rng.uniform(0.85, 1.05) + 0.4 * van,
                 roof_h=rng.uniform(1.35, 1.55) + 0.5 * van,
                 color=hsv_color(h + rng.uniform(-0.02, 0.02), np.clip(s + rng.uniform(-0.1, 0.1), 0, 1),
                                 np.clip(v + rng.uniform(-0.1, 0.1), 0.05, 1)),
                 glass=hsv_color(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.4), rng.uniform(0.12, 0.4)),
                 lamp=hsv_color(rng.uniform(0.97, 1.0), rng.uniform(0.7, 0.95), rng.uniform(0.55, 0.9)))
        box = cam.screen_box(u - p["w"] / 2, u + p["w"] / 2, z, z + p["len"], p["roof_h"])
        out.append(Plan(z, box, partial(_paint_car, cam=cam, u=u, z=z, p=p)))
    return out


def _paint_person(cv: Canvas, cam: Camera, u: float, z: float, p: dict) -> None:
    ht, sw = p["h"], p["h"] * 0.13
    leg_top, shoulder = ht * 0.48, ht * 0.82
    cv.shadow(tuple(cam.project(u, z + 0.2)), (cam.ppm(z) * 0.35, cam.ppm(z) * 0.08 + 1), 0.45)
    stride = p["stride"]
    legs = [cam.project([u + d - 0.07, u + d + 0.07, u + 0.06 * np.sign(d), u - 0.06 * np.sign(d) + d * 0.1], z,
                        [0, 0, leg_top, leg_top]) for d in (-stride, stride)]
    cv.poly(legs, p["trousers"], PERSON, tex=(0.04, 0.03, 0.05))
    cv.poly(cam.project([u - sw * 0.8, u + sw * 0.8, u + sw, u + sw * 0.7, u - sw * 0.7, u - sw], z,
                        [leg_top - 0.05, leg_top - 0.05, shoulder, shoulder + 0.04, shoulder + 0.04, shoulder]),
            p["shirt"], PERSON, tex=(0.04, 0.04, 0.05), shade=(1.1, 0.85))
    sg = p["swing"]
    arms = [cam.project([u + s * sw, u + s * (sw + 0.09), u + s * (sw + 0.05 + sg), u + s * (sw - 0.02 + sg)],
                        z, [shoulder, shoulder - 0.05, leg_top - 0.02, leg_top]) for s in (-1, 1)]
    cv.poly(arms, p["shirt"] * 0.85, PERSON, tex=(0.04, 0.02, 0.05))
    head_h = ht * 0.12
    face = _ellipse(cam, u, z, ht - head_h * 0.55, head_h * 0.4, head_h * 0.55)
    cv.poly(face, p["skin"], PERSON, tex=(0.03, 0.02, 0.05))
    hair = _ellipse(cam, u, z, ht - head_h * 0.3, head_h * 0.42, head_h * 0.32)
    cv.poly(hair, p["hair"], PERSON, tex=(0.04, 0.02, 0.02))


def plan_people(rng: np.random.Generator, lay: Layout) -> list:
    """Pedestrians on both sidewalks, and now and then one crossing the road."""
    cam, out = lay.cam, []
    spots = []
    for side in (0, 1):
        a, b = sorted((lay.walk[side], lay.road[side]))
        for _ in range(int(rng.integers(0, 5))):
            spots.append((rng.uniform(a + 0.3, b - 0.3), rng.uniform(cam.z_bottom * 1.1, 45)))
    if rng.random() < 0.15:
        spots.append((rng.uniform(*lay.road), rng.uniform(cam.z_bottom * 1.5, 25)))
    for u, z in spots:
        clothes = [hsv_color(rng.uniform(0, 1), rng.uniform(0, 0.7), rng.uniform(0.1, 0.8)) for _ in range(2)]
        p = dict(h=rng.uniform(1.5, 1.92), stride=rng.uniform(0.02, 0.2), swing=rng.uniform(0, 0.12),
                 shirt=clothes[0], trousers=clothes[1] if rng.random() < 0.5 else clothes[1] * 0.4,
                 skin=hsv_color(rng.uniform(0.03, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.9)),
                 hair=hsv_color(rng.uniform(0.02, 0.12), rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.5)))
        box = cam.screen_box(u - 0.4, u + 0.4, z, z, p["h"])
        out.append(Plan(z, box, partial(_paint_person, cam=cam, u=u, z=z, p=p)))
    return out


def _paint_pole(cv: Canvas, cam: Camera, u: float, z: float, p: dict) -> None:
    r, ht = p["r"], p["h"]
    cv.poly(cam.project([u - r, u + r, u + r * 0.7, u - r * 0.7], z, [0, 0, ht, ht]), p["color"], POLE,
            tex=(0.03, 0.02, 0.05), shade=(1.1, 0.9))
    if p["arm"]:
        arm = cam.project([u, u + p["arm"], u + p["arm"], u], z, [ht - 0.15, ht - 0.3, ht - 0.15, ht])
        cv.poly(arm, p["color"], POLE, tex=(0.03, 0.02, 0.05))
    if p["sign"] is None:
        return
    kind, hs, size, c_out, c_in = p["sign"]
    corners = {"circle": 20, "triangle": 3, "square": 4, "octagon": 8, "light": 4}[kind]
    t = np.linspace(0, 2 * np.pi, corners, endpoint=False)
    t = t + {"circle": 0, "triangle": np.pi / 2, "square": np.pi / 4, "octagon": np.pi / 8, "light": np.pi / 4}[kind]
    aspect = 2.5 if kind == "light" else 1.0
    outer = cam.project(u + size / 2 * np.cos(t), z - 0.05, hs + size / 2 * aspect * np.sin(t))
    inner = cam.project(u + size / 2 * 0.7 * np.cos(t), z - 0.06, hs + size / 2 * 0.7 * aspect * np.sin(t))
    cv.poly(outer, c_out, SIGN, tex=(0.03, 0.02, 0.05))
    if kind == "light":
        lamps = [_ellipse(cam, u, z - 0.07, hs + k * size * 0.75, size * 0.25, size * 0.25, 10) for k in (-1, 0, 1)]
        cv.poly(lamps[p["lamp"]], c_in, SIGN, tex=(0.03, 0, 0))
    else:
        cv.poly(inner, c_in, SIGN, tex=(0.03, 0.02, 0.05))


def plan_poles(rng: np.random.Generator, lay: Layout) -> list:
    """Lamp posts and sign posts along the kerbs."""
    cam, out = lay.cam, []
    signs = [("circle", (0.0, 0.85, 0.75), (0.0, 0.0, 0.95)), ("circle", (0.6, 0.85, 0.6), (0.6, 0.85, 0.6)),
             ("triangle", (0.0, 0.85, 0.75), (0.0, 0.0, 0.95)), ("square", (0.13, 0.9, 0.9), (0.13, 0.9, 0.9)),
             ("octagon", (0.0, 0.9, 0.7), (0.0, 0.85, 0.7)), ("light", (0.0, 0.0, 0.15), (0.33, 0.9, 0.9))]
    for side, sgn in ((0, -1), (1, 1)):
        z = rng.uniform(cam.z_bottom * 0.8, 20)
        gap = rng.uniform(10, 35)
        while z < 90:
            u = lay.road[side] + sgn * rng.uniform(0.4, 0.9)
            sign = None
            if rng.random() < 0.5:
                kind, c_out, c_in = signs[int(rng.integers(len(signs)))]
                sign = (kind, rng.uniform(2.2, 3.2), rng.uniform(0.5, 0.9), hsv_color(*c_out), hsv_color(*c_in))
            p = dict(r=rng.uniform(0.06, 0.15), h=rng.uniform(3.5, 9) if sign is None else rng.uniform(3.0, 4.0),
                     arm=-sgn * rng.uniform(1, 2.5) if sign is None and rng.random() < 0.5 else 0.0, sign=sign,
                     lamp=int(rng.integers(3)),
                     color=hsv_color(rng.uniform(0, 1), rng.uniform(0, 0.2), rng.uniform(0.2, 0.6)))
            reach = max(abs(p["arm"]), 0.5)
            box = cam.screen_box(u - reach, u + reach, z, z, p["h"])
            out.append(Plan(z, box, partial(_paint_pole, cam=cam, u=u, z=z, p=p)))
            z += gap * rng.uniform(0.7, 1.3)
    return out


def _paint_tree(cv: Canvas, cam: Camera, u: float, z: float, p: dict) -> None:
    tr, th = p["trunk_r"], p["trunk_h"]
    cv.poly(cam.project([u - tr, u + tr, u + tr * 0.7, u - tr * 0.7], z, [0, 0, th + p["crown"], th + p["crown"]]),
            p["bark"], VEGETATION, tex=(0.08, 0.05, 0.05))
    blobs = [_ellipse(cam, u + du, z, th + p["crown"] + dh, ru, rh, 18) for du, dh, ru, rh in p["blobs"]]
    cv.poly(blobs, p["leaves"], VEGETATION, tex=(0.15, 0.25, 0.1), shade=(1.15, 0.8))


def plan_trees(rng: np.random.Generator, lay: Layout) -> list:
    """Trees where ``draw_background`` planted them, plus street trees along the sidewalks."""
    spots = list(lay.trees)
    for side, sgn in ((0, -1), (1, 1)):
        if rng.random() < 0.4:
            spots += [(lay.walk[side] - sgn * 0.6, z) for z in np.arange(rng.uniform(2, 12), 80, rng.uniform(8, 20))]
    out = []
    for u, z in spots:
        if z < lay.cam.z_bottom * 0.8:
            continue
        crown = rng.uniform(1.2, 3.2)
        blobs = [(rng.uniform(-0.6, 0.6) * crown, rng.uniform(-0.4, 0.4) * crown, crown * rng.uniform(0.5, 0.8),
                  crown * rng.uniform(0.45, 0.75)) for _ in range(int(rng.integers(4, 8)))]
        p = dict(trunk_r=rng.uniform(0.1, 0.22), trunk_h=rng.uniform(1.5, 3.5), crown=crown, blobs=blobs,
                 bark=hsv_color(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.6), rng.uniform(0.15, 0.35)),
                 leaves=grass_color(rng) * rng.uniform(0.6, 0.95))
        box = lay.cam.screen_box(u - 1.5 * crown, u + 1.5 * crown, z, z, p["trunk_h"] + 2.2 * crown)
        out.append(Plan(z, box, partial(_paint_tree, cam=lay.cam, u=u, z=z, p=p)))
    return out


def draw_hood(cv: Canvas, rng: np.random.Generator, label: int) -> None:
    """The ego vehicle's bonnet along the bottom edge, labelled ``label`` (void in training)."""
    top = cv.h * rng.uniform(0.9, 0.96)
    centre = (int(cv.w * rng.uniform(0.4, 0.6)), int(cv.h + (cv.h - top) * 1.5))
    axes = (int(cv.w * rng.uniform(0.7, 1.0)), int((cv.h - top) * 2.5))
    pts = cv2.ellipse2Poly(centre, axes, 0, 180, 360, 6).astype(np.float64)
    cv.poly(pts, hsv_color(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.1, 0.7)), label,
            tex=(0.02, 0.02, 0.1), shade=(1.3, 0.7))
