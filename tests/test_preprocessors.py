"""The ControlNet preprocessors the SD worker runs (graycat/images/preprocessors.py)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from graycat.images import preprocessors


def _square(inside: int, outside: int = 0) -> Image.Image:
    image = Image.new("RGB", (64, 64), (outside,) * 3)
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill=(inside,) * 3)
    return image


def _edges(image: Image.Image, low: float = 100, high: float = 200) -> np.ndarray:
    return np.asarray(preprocessors.run("canny", image, low, high).convert("L")) > 0


def test_canny_draws_a_one_pixel_outline_of_a_square() -> None:
    edges = _edges(_square(255))  # the square covers rows and columns 16..47
    near = np.zeros((64, 64), dtype=bool)
    near[15:49, 15:49] = True
    near[18:46, 18:46] = False
    assert not (edges & ~near).any()  # every edge pixel is on the square's border
    assert all(edges[row].sum() == 2 for row in range(20, 44))  # one pixel wide: left and right side
    assert all(edges[:, col].sum() == 2 for col in range(20, 44))
    assert preprocessors.run("Canny", _square(255), 100, 200).mode == "RGB"


def test_canny_sees_colour_edges_of_equal_brightness() -> None:
    image = Image.new("RGB", (64, 64), (200, 0, 0))
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill=(0, 102, 0))  # the same grey as the red
    grey = image.convert("L")
    assert grey.getpixel((0, 0)) == grey.getpixel((32, 32))
    assert _edges(image).sum() > 100


def test_canny_thresholds_decide_which_edges_count() -> None:
    faint = _square(110, 100)  # a step of 10 grey levels: a Sobel magnitude of about 40 to 80
    assert not _edges(faint).any()
    assert _edges(faint, 20, 40).sum() > 100


def test_canny_keeps_weak_edges_only_where_they_touch_strong_ones() -> None:
    image = Image.new("RGB", (64, 64), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, 27, 59), fill=(255, 255, 255))  # strong edges
    draw.rectangle((28, 4, 40, 59), fill=(40, 40, 40))  # a weak step that continues them
    draw.rectangle((50, 20, 60, 40), fill=(40, 40, 40))  # a weak square on its own
    edges = _edges(image, 100, 300)
    assert edges[:, :44].sum() > 100  # the strong rectangle and the weak edges joined to it
    assert not edges[:, 46:].any()  # the lone weak square is dropped


def test_invert_and_none() -> None:
    image = _square(255)
    assert np.asarray(preprocessors.run("invert (from white bg & black line)", image, 0, 0))[0, 0].tolist() == [
        255,
        255,
        255,
    ]
    assert preprocessors.run("none", image, 0, 0) is image
    assert preprocessors.known("Canny") and preprocessors.known("") and not preprocessors.known("depth_midas")
