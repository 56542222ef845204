"""SD upscale's tiles and the extras' sizes, as A1111 computes them (pure PIL, no processes)."""

from __future__ import annotations

import itertools

import pytest
from PIL import Image

from graycat.images import extras, tiles


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "starts"),
    [
        (128, 64, 8, [0, 32, 64]),  # A1111's test: 64-pixel tiles, overlap 8, a 2x upscaled 64-pixel image
        (64, 64, 8, [0]),
        (100, 64, 0, [0, 36]),
        (1024, 64, 8, [int(i * 960 / 18) for i in range(19)]),
    ],
)
def test_tiles_cover_the_side_evenly_and_end_flush(length: int, tile: int, overlap: int, starts: list[int]) -> None:
    found = tiles.positions(length, tile, overlap)
    assert found == starts and found[-1] + tile == length
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(found))


def test_tiles_cut_and_combined_unchanged_give_the_image_back() -> None:
    image = Image.new("RGB", (128, 96))
    image.putdata([((x * 7) % 256, (y * 13) % 256, (x + y) % 256) for y in range(96) for x in range(128)])
    xs, ys = tiles.sd_upscale_tiles(image.size, 64, 48, 16)
    pieces = tiles.cut(image, xs, ys, 64, 48)
    assert tiles.combine(pieces, xs, ys, image.size, 16).tobytes() == image.tobytes()


def test_tiles_fade_into_their_left_neighbour_over_the_overlap() -> None:
    xs, ys = [0, 32], [0]
    black, white = Image.new("RGB", (64, 8), (0, 0, 0)), Image.new("RGB", (64, 8), (255, 255, 255))
    combined = tiles.combine([[black, white]], xs, ys, (96, 8), 16)
    row = list(combined.convert("L").tobytes()[:96])  # the first row, grey
    assert row[:32] == [0] * 32 and row[48:] == [255] * 48  # black alone, then white covering the rest
    assert row[32:48] == sorted(row[32:48]) and row[32] == 0 and 200 < row[47] < 255  # a ramp over 16 pixels


@pytest.mark.parametrize(
    ("up", "size", "out"),
    [
        (extras.Upscale(0, 2, upscaler_1="Lanczos"), (64, 48), (128, 96)),
        (extras.Upscale(0, 1.5, upscaler_1="Nearest"), (50, 50), (72, 72)),  # 75 rounded down to a multiple of 8
        (extras.Upscale(1, width=100, height=60, crop=True, upscaler_1="Lanczos"), (64, 48), (100, 60)),
        (extras.Upscale(1, width=100, height=60, crop=False, upscaler_1="Lanczos"), (64, 48), (96, 72)),
        (extras.Upscale(0, 8), (5000, 5000), (5000, 5000)),  # upscaler None: as it is
    ],
)
def test_extras_sizes(up: extras.Upscale, size: tuple[int, int], out: tuple[int, int]) -> None:
    assert up.output_size(size) == out
    assert extras.run(Image.new("RGB", size), up)[0].size == out


def test_extras_refuse_too_large_or_empty_results_before_any_work() -> None:
    with pytest.raises(extras.TooLarge):
        extras.Upscale(0, 8, upscaler_1="Lanczos").output_size((1024, 1024))
    with pytest.raises(extras.TooLarge):  # the upscaled image before its crop counts too
        extras.Upscale(1, width=8192, height=8, upscaler_1="Lanczos").output_size((64, 48))
    with pytest.raises(ValueError, match="8 pixels"):
        extras.Upscale(0, 1, upscaler_1="Lanczos").output_size((4, 4))


@pytest.mark.parametrize(("name", "found"), [("lanczos", "Lanczos"), (None, "None"), (" Nearest ", "Nearest")])
def test_upscaler_names(name: str | None, found: str) -> None:
    assert extras.upscaler(name) == found


@pytest.mark.parametrize(
    ("name", "model"), [("R-ESRGAN 4x+", True), ("4x-UltraSharp", True), ("SwinIR 4x", True), ("Bicubic", False)]
)
def test_other_upscalers_are_not_run_and_say_whether_they_need_weights(name: str, model: bool) -> None:
    with pytest.raises(extras.NotRun) as err:
        extras.upscaler(name)
    assert err.value.model is model
