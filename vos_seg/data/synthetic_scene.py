"""Background of a synthetic street: camera and layout, sky, ground (terrain, sidewalks, road, lane marks) and
the two street sides (facades with windows, hedges, open ground) plus a distant skyline.

Label ids follow ``vos_seg.data.synthetic.CLASS_NAMES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vos_seg.data.synthetic_render import Camera, Canvas, hsv_color

__all__ = ["ROAD", "SIDEWALK", "BUILDING", "VEGETATION", "TERRAIN", "SKY", "POLE", "SIGN", "PERSON", "CAR",
           "Layout", "make_layout", "draw_background", "grass_color", "Z_FAR"]

ROAD, SIDEWALK, BUILDING, VEGETATION, TERRAIN, SKY, POLE, SIGN, PERSON, CAR = range(10)
Z_FAR = 3000.0  # "infinity" for ground polygons; projects a pixel or so below the horizon


@dataclass
class Layout:
    """Where things are, in metres: lateral u (camera at 0, +u right) and depth z along the road."""

    cam: Camera
    road: tuple[float, float]  # road edges (left < 0 < right, usually)
    walk: tuple[float, float]  # outer sidewalk edges
    front: tuple[float, float]  # building lines (facades stand at or beyond these)
    lanes: list[float] = field(default_factory=list)  # lane boundaries inside the road
    trees: list[tuple[float, float]] = field(default_factory=list)  # (u, z) of trees planted by draw_sides


def make_layout(rng: np.random.Generator, height: int, width: int) -> Layout:
    """Draw a random camera (focal length, horizon, vanishing point, height) and street cross-section."""
    cam = Camera(height, width, f=width * rng.uniform(0.8, 1.15), horizon=height * rng.uniform(0.36, 0.5),
                 cx=width * rng.uniform(0.38, 0.62), cam_h=rng.uniform(1.25, 1.7))
    lane_w = rng.uniform(2.8, 3.6)
    n_lanes = int(rng.choice([1, 2, 2, 2, 3, 4]))
    ego = rng.uniform(0.3, n_lanes - 0.3)  # camera position across the road, in lanes from the left edge
    left = -ego * lane_w
    road = (left, left + n_lanes * lane_w)
    walk = (road[0] - rng.uniform(1.5, 4.5), road[1] + rng.uniform(1.5, 4.5))
    front = (walk[0] - rng.choice([0.0, rng.uniform(0.5, 4.0)]), walk[1] + rng.choice([0.0, rng.uniform(0.5, 4.0)]))
    lanes = [left + k * lane_w for k in range(1, n_lanes)]
    return Layout(cam, road, walk, front, lanes)


def _sky(cv: Canvas, rng: np.random.Generator, cam: Camera) -> np.ndarray:
    kind = rng.choice(["clear", "clear", "overcast", "dusk"])
    if kind == "clear":
        top = hsv_color(rng.uniform(0.54, 0.63), rng.uniform(0.35, 0.75), rng.uniform(0.6, 0.95))
        low = hsv_color(rng.uniform(0.52, 0.6), rng.uniform(0.05, 0.3), rng.uniform(0.8, 1.0))
    elif kind == "overcast":
        top = hsv_color(rng.uniform(0.5, 0.65), rng.uniform(0.0, 0.12), rng.uniform(0.55, 0.85))
        low = hsv_color(rng.uniform(0.5, 0.65), rng.uniform(0.0, 0.08), rng.uniform(0.75, 0.95))
    else:
        top = hsv_color(rng.uniform(0.58, 0.7), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.6))
        low = hsv_color(rng.uniform(0.04, 0.11), rng.uniform(0.3, 0.6), rng.uniform(0.75, 0.95))
    t = np.clip(np.arange(cv.h, dtype=np.float32) / max(cam.horizon, 1.0), 0, 1)[:, None, None]
    cv.image[:] = top * (1 - t) + low * t
    cloud = np.zeros((cv.h, cv.w), np.float32)
    for _ in range(int(rng.integers(0, 7))):
        c = (int(rng.uniform(0, cv.w)), int(rng.uniform(0, cam.horizon * 0.9)))
        axes = (int(rng.uniform(0.05, 0.25) * cv.w), int(rng.uniform(0.02, 0.08) * cv.h) + 1)
        cv2.ellipse(cloud, c, axes, 0, 0, 360, float(rng.uniform(0.4, 0.9)), -1)
    if cloud.any():
        cloud = cv2.GaussianBlur(cloud, (0, 0), cv.h * 0.03) * np.clip(1 + 0.6 * cv.smooth, 0, 2)
        cv.image[:] += (np.clip(cloud, 0, 1)[..., None]) * (np.float32(235) - cv.image)
    return low


def grass_color(rng: np.random.Generator) -> np.ndarray:
    """Green to dry-olive ground cover."""
    return hsv_color(rng.uniform(0.15, 0.3), rng.uniform(0.3, 0.65), rng.uniform(0.3, 0.6))


def _ground(cv: Canvas, rng: np.random.Generator, lay: Layout) -> None:
    cam, zn = lay.cam, lay.cam.z_bottom * 0.5
    cv.poly(cam.ground_quad(-500, 500, zn, Z_FAR), grass_color(rng), TERRAIN, tex=(0.1, 0.12, 0.15))
    paving = hsv_color(rng.uniform(0.0, 0.12), rng.uniform(0.0, 0.3), rng.uniform(0.45, 0.8))
    kerb = paving * rng.uniform(0.75, 1.25)
    tile = rng.uniform(0.4, 1.2)
    for side in (0, 1):
        outer, inner = lay.walk[side], lay.road[side]
        cv.poly(cam.ground_quad(outer, inner, zn, Z_FAR), paving, SIDEWALK, tex=(0.05, 0.05, 0.1))
        lines = [cam.ground_quad(outer, inner, z, z + 0.05) for z in np.arange(zn, 80.0, tile)]
        lines += [cam.ground_quad(u, u + 0.04, zn, Z_FAR) for u in np.arange(min(outer, inner), max(outer, inner),
                                                                               tile)]
        cv.poly(lines, paving * 0.72, SIDEWALK, tex=(0.02, 0, 0))
        kerb_u = (inner - 0.2, inner) if side == 0 else (inner, inner + 0.2)
        cv.poly(cam.ground_quad(*kerb_u, zn, Z_FAR), kerb, SIDEWALK, tex=(0.03, 0.02, 0.05))
    asphalt = hsv_color(rng.uniform(0, 1), rng.uniform(0.0, 0.06), rng.uniform(0.25, 0.5))
    cv.poly(cam.ground_quad(*lay.road, zn, Z_FAR), asphalt, ROAD, tex=(0.06, 0.05, 0.07))
    for _ in range(int(rng.integers(0, 4))):  # repair patches
        u0, z0 = rng.uniform(*lay.road), rng.uniform(cam.z_bottom, 40)
        quad = cam.ground_quad(u0, min(u0 + rng.uniform(0.5, 3), lay.road[1]), z0, z0 + rng.uniform(1, 6))
        cv.poly(quad, asphalt * rng.uniform(0.75, 1.2), ROAD, tex=(0.06, 0.05, 0.1))
    _lane_marks(cv, rng, lay, zn)


def _lane_marks(cv: Canvas, rng: np.random.Generator, lay: Layout, zn: float) -> None:
    cam = lay.cam
    white = hsv_color(0.1, rng.uniform(0, 0.1), rng.uniform(0.75, 0.95))
    yellow = hsv_color(rng.uniform(0.11, 0.15), rng.uniform(0.6, 0.9), rng.uniform(0.7, 0.9))
    w = rng.uniform(0.1, 0.2)
    dash, gap, phase = rng.uniform(2, 4), rng.uniform(3, 8), rng.uniform(0, 8)
    marks = []
    centre = len(lay.lanes) // 2
    for k, u in enumerate(lay.lanes):
        if k == centre and len(lay.lanes) % 2 == 1 and rng.random() < 0.4:
            cv.poly(cam.ground_quad(u - w / 2, u + w / 2, zn, Z_FAR), yellow, ROAD, tex=(0.05, 0.03, 0.05))
            continue
        marks += [cam.ground_quad(u - w / 2, u + w / 2, z, z + dash) for z in np.arange(zn + phase, 150, dash + gap)]
    if rng.random() < 0.6:
        marks += [cam.ground_quad(e - w / 2, e + w / 2, zn, Z_FAR) for e in (lay.road[0] + 0.3, lay.road[1] - 0.3)]
    if rng.random() < 0.15:  # zebra crossing
        z0 = rng.uniform(8, 25)
        marks += [cam.ground_quad(u, u + 0.5, z0, z0 + 3) for u in np.arange(lay.road[0] + 0.3, lay.road[1] - 0.5, 1.0)]
    if marks:
        cv.poly(marks, white, ROAD, tex=(0.05, 0.03, 0.05))


def _skyline(cv: Canvas, rng: np.random.Generator, lay: Layout, haze: np.ndarray) -> None:
    cam, z = lay.cam, rng.uniform(120, 300)
    kind = rng.random()
    if kind < 0.25:
        return
    u = -z * cam.cx / cam.f - 10
    u_end = z * (cam.width - cam.cx) / cam.f + 10
    while u < u_end:
        wid = rng.uniform(8, 35)
        if kind < 0.65:
            col = hsv_color(rng.uniform(0, 0.15), rng.uniform(0, 0.25), rng.uniform(0.3, 0.75)) * 0.5 + haze * 0.5
            top = rng.uniform(4, 30)
            cv.poly(cam.project([u, u + wid, u + wid, u], z, [0, 0, top, top]), col, BUILDING, tex=(0.02, 0.02, 0.05))
        else:
            xs = np.linspace(u, u + wid, 9)
            tops = rng.uniform(5, 14) + rng.uniform(-3, 3, size=9)
            pts = cam.project(np.concatenate([xs, xs[::-1]]), z, np.concatenate([tops, np.zeros(9)]))
            col = grass_color(rng) * 0.55 + haze * 0.3
            cv.poly(pts, col, VEGETATION, tex=(0.08, 0.15, 0.1))
        u += wid * rng.uniform(0.8, 1.3)


def _facade(cv: Canvas, rng: np.random.Generator, cam: Camera, u: float, z0: float, z1: float, sgn: int) -> None:
    hb = rng.uniform(5, 28)
    painted = rng.random() < 0.25  # painted facades in any hue, the rest stone, brick and plaster
    col = hsv_color(rng.uniform(0, 1) if painted else rng.uniform(0, 0.16),
                    rng.uniform(0.2, 0.65) if painted else rng.uniform(0.05, 0.4), rng.uniform(0.35, 0.85))
    cv.poly(cam.project([u, u + sgn * 12, u + sgn * 12, u], z0, [0, 0, hb, hb]), col * 0.7, BUILDING,
            tex=(0.03, 0.03, 0.08))  # near end wall, visible where the previous block is lower or absent
    cv.poly(cam.wall_quad(u, z0, z1, 0, hb), col, BUILDING, tex=(0.03, 0.04, 0.1), shade=(0.95, 1.05))
    cv.poly(cam.wall_quad(u, z0, z1, hb - 0.5, hb), col * 0.6, BUILDING, tex=(0.03, 0, 0.05))
    glass = hsv_color(rng.uniform(0.5, 0.65), rng.uniform(0.05, 0.4), rng.uniform(0.1, 0.45))
    floor_h, pitch = rng.uniform(2.8, 3.6), rng.uniform(2.0, 4.0)
    win_w, win_h = pitch * rng.uniform(0.35, 0.7), floor_h * rng.uniform(0.35, 0.6)
    start = rng.uniform(0.5, 2.0)
    windows = []
    for h in np.arange(start + (floor_h if rng.random() < 0.4 else 0.0), hb - floor_h * 0.7, floor_h):
        for z in np.arange(z0 + pitch * 0.3, z1 - win_w, pitch):
            windows.append(cam.wall_quad(u, z, z + win_w, h, h + win_h))
    if rng.random() < 0.3:  # shop front
        windows.append(cam.wall_quad(u, z0 + 0.5, z1 - 0.5, 0.4, 2.6))
    if windows:
        cv.poly(windows, glass, BUILDING, tex=(0.03, 0.02, 0.15), shade=(1.15, 0.85))


def _sides(cv: Canvas, rng: np.random.Generator, lay: Layout) -> None:
    cam = lay.cam
    for side, sgn in ((0, -1), (1, 1)):
        blocks, z = [], cam.z_bottom * 0.3
        z_end = rng.uniform(50, 160)
        p_build = rng.uniform(0.35, 0.9)
        while z < z_end:
            r = rng.random()
            kind = "building" if r < p_build else ("hedge" if r < p_build + (1 - p_build) / 2 else "open")
            length = rng.uniform(6, 25) if kind == "building" else rng.uniform(4, 15)
            blocks.append((kind, z, z + length))
            z += length
        for kind, z0, z1 in reversed(blocks):  # far to near: the painter's algorithm
            u = lay.front[side] + sgn * rng.uniform(0, 1.5)
            if kind == "building":
                _facade(cv, rng, cam, u, z0, z1, sgn)
            elif kind == "hedge":
                hh = rng.uniform(0.8, 2.2)
                pts = cam.project([u, u, u, u], [z0, z1, z1, z0], [0, 0, hh, hh])
                cv.poly(pts, grass_color(rng) * 0.8, VEGETATION, tex=(0.12, 0.25, 0.1))
                lay.trees += [(u + sgn * rng.uniform(0.5, 3), zz) for zz in np.arange(z0, z1, rng.uniform(5, 12))]
            elif rng.random() < 0.5:
                lay.trees.append((u + sgn * rng.uniform(1, 6), rng.uniform(z0, z1)))


def draw_background(cv: Canvas, rng: np.random.Generator, lay: Layout) -> None:
    """Sky, skyline, ground, street sides, in that order. Fills ``lay.trees`` with tree positions."""
    haze = _sky(cv, rng, lay.cam)
    _ground(cv, rng, lay)
    _skyline(cv, rng, lay, haze)
    _sides(cv, rng, lay)
