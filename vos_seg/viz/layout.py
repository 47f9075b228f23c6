"""Pixel geometry of the annotated figures, computed before drawing so that tests can find each element."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Box", "FigureLayout", "panel_layout", "view_layout", "PANEL_TILES"]

PANEL_TILES = ("image", "segmentation", "anomaly", "detection")  # reading order, 2 x 2 grid

MARGIN = 12
TITLE_H = 34  # figure title
HEAD_H = 24  # tile title above each tile (one line; two in single views)
CAPTION_H = 50  # up to three caption lines below each tile
SIDE_W = 200  # strip right of each tile: colorbar and ticks, or a legend
GAP = 14
BAR_W = 18


@dataclass(frozen=True)
class Box:
    """A rectangle in figure pixels, origin at the top-left corner, ``x1``/``y1`` exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@dataclass(frozen=True)
class FigureLayout:
    """Where each element of a figure goes: ``tiles`` (name -> Box), their ``sides`` strips, the ``colorbar``.

    ``heads`` and ``captions`` are the text boxes above and below each tile.
    """

    width: int
    height: int
    tiles: dict
    sides: dict
    heads: dict
    captions: dict
    colorbar: Box
    title: Box | None


def _tile_size(shape: tuple[int, int], width: int) -> tuple[int, int]:
    height, image_width = shape
    if height < 1 or image_width < 1:
        raise ValueError(f"expected a non-empty image shape, got {shape}")
    tile_h = max(1, round(width * height / image_width))
    if tile_h > 1.5 * width:  # portrait frames: cap the height instead of the width
        tile_h = round(1.5 * width)
        width = max(1, round(tile_h * image_width / height))
    return width, tile_h


def _cell(x: int, y: int, tile_w: int, tile_h: int, head_h: int):
    head = Box(x, y, x + tile_w + SIDE_W, y + head_h)
    tile = Box(x, y + head_h, x + tile_w, y + head_h + tile_h)
    side = Box(tile.x1 + 10, tile.y0, tile.x1 + SIDE_W, tile.y1)
    caption = Box(x, tile.y1 + 4, x + tile_w + SIDE_W, tile.y1 + CAPTION_H)
    return head, tile, side, caption


def _layout(shape, names, grid_cols: int, tile_width: int, title: bool, colorbar_of: str,
            head_h: int = HEAD_H) -> FigureLayout:
    tile_w, tile_h = _tile_size(shape, tile_width)
    cell_w = tile_w + SIDE_W
    cell_h = head_h + tile_h + CAPTION_H
    rows = (len(names) + grid_cols - 1) // grid_cols
    top = MARGIN + (TITLE_H if title else 0)
    tiles, sides, heads, captions = {}, {}, {}, {}
    for index, name in enumerate(names):
        row, col = divmod(index, grid_cols)
        cell = _cell(MARGIN + col * (cell_w + GAP), top + row * (cell_h + GAP), tile_w, tile_h, head_h)
        heads[name], tiles[name], sides[name], captions[name] = cell
    width = 2 * MARGIN + grid_cols * cell_w + (grid_cols - 1) * GAP
    height = top + rows * cell_h + (rows - 1) * GAP + MARGIN
    bar_tile = tiles[colorbar_of]
    colorbar = Box(bar_tile.x1 + 10, bar_tile.y0, bar_tile.x1 + 10 + BAR_W, bar_tile.y1)
    title_box = Box(MARGIN, MARGIN, width - MARGIN, MARGIN + TITLE_H) if title else None
    return FigureLayout(width, height, tiles, sides, heads, captions, colorbar, title_box)


def panel_layout(shape: tuple[int, int], *, tile_width: int = 480, title: bool = True) -> FigureLayout:
    """Geometry of :func:`vos_seg.viz.render_panel`: a 2 x 2 grid of :data:`PANEL_TILES` tiles.

    Args:
        shape: (H, W) of the input frame; each tile keeps its aspect ratio at ``tile_width`` pixels wide.
        tile_width: width of each tile in the figure, in pixels.
        title: whether a figure title row is reserved.
    """
    return _layout(shape, PANEL_TILES, 2, tile_width, title, "anomaly")


def view_layout(shape: tuple[int, int], *, max_width: int = 1024, min_width: int = 420,
                title: bool = True) -> FigureLayout:
    """Geometry of one annotated view (map or overlay): the tile at native width clamped to
    [min_width, max_width], its colorbar at the right, a caption below."""
    width = min(max(shape[1], min_width), max_width)
    return _layout(shape, ("view",), 1, width, title, "view", head_h=2 * HEAD_H)  # two-line heading
