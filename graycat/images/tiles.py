"""Tiles of A1111's "SD upscale" script: an image cut into overlapping tiles, and the tiles blended back."""

from __future__ import annotations

import math

from PIL import Image


def positions(length: int, tile: int, overlap: int) -> list[int]:
    """Where the tiles start along one side of `length` (>= tile): as few tiles as keep at least `overlap` pixels
    between neighbours, spread evenly, the last one flush with the end."""
    count = max(1, math.ceil((length - overlap) / (tile - overlap)))
    if count == 1:
        return [0]
    step = (length - tile) / (count - 1)
    return [min(int(i * step), length - tile) for i in range(count)]


def sd_upscale_tiles(size: tuple[int, int], tile_w: int, tile_h: int, overlap: int) -> tuple[list[int], list[int]]:
    """The tiles' left edges and top edges for an image of `size`."""
    return positions(size[0], tile_w, overlap), positions(size[1], tile_h, overlap)


def cut(image: Image.Image, xs: list[int], ys: list[int], tile_w: int, tile_h: int) -> list[list[Image.Image]]:
    """The tiles, row by row."""
    return [[image.crop((x, y, x + tile_w, y + tile_h)) for x in xs] for y in ys]


def _ramp(width: int, height: int, across: bool) -> Image.Image:
    """A mask rising from 0 to nearly 255 over `width` pixels left to right (`across`), else over `height`
    pixels top to bottom."""
    steps = width if across else height
    line = bytes(i * 255 // steps for i in range(steps))
    ramp = Image.frombytes("L", (steps, 1) if across else (1, steps), line)
    return ramp.resize((width, height), Image.Resampling.NEAREST)


def combine(
    tiles: list[list[Image.Image]], xs: list[int], ys: list[int], size: tuple[int, int], overlap: int
) -> Image.Image:
    """The tiles put back at their places; where a tile starts over its left (upper) neighbour its first
    `overlap` columns (rows) fade in over the neighbour, the rest covers it."""
    canvas = Image.new("RGB", size)
    for row_tiles, y in zip(tiles, ys, strict=True):
        tile_h = row_tiles[0].height
        row = Image.new("RGB", (size[0], tile_h))
        for tile, x in zip(row_tiles, xs, strict=True):
            _place(row, tile.convert("RGB"), (x, 0), overlap if x else 0, across=True)
        _place(canvas, row, (0, y), overlap if y else 0, across=False)
    return canvas


def _place(base: Image.Image, piece: Image.Image, at: tuple[int, int], fade: int, across: bool) -> None:
    if not fade:
        base.paste(piece, at)
        return
    w, h = piece.size
    head = (0, 0, fade, h) if across else (0, 0, w, fade)
    rest = (fade, 0, w, h) if across else (0, fade, w, h)
    base.paste(piece.crop(head), at, _ramp(head[2], head[3], across))
    base.paste(piece.crop(rest), (at[0] + fade, at[1]) if across else (at[0], at[1] + fade))
