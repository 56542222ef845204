"""The ESRGAN-family loader (graycat/workers/engines/esrgan.py): architectures and sizes read from the files'
tensors in both RRDBNet key layouts and SRVGGNetCompact's, the models run (tiled too), broken or foreign files
skipped with a warning naming them; and A1111's way of running a model upscaler to a size (extras.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from graycat.images import extras, upscalers
from graycat.workers.engines import esrgan
from tests.tiny_upscalers import build_upscalers, old_esrgan_state, rrdb_state, srvgg_state


def _picture(size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size)
    image.putdata(
        [((x * 37) % 256, (y * 53) % 256, ((x ^ y) * 11) % 256) for y in range(size[1]) for x in range(size[0])]
    )
    return image


@pytest.mark.parametrize(
    ("state", "arch", "scale", "unshuffle"),
    [
        (rrdb_state(4), "rrdb", 4, 1),
        (rrdb_state(2), "rrdb", 2, 2),
        (rrdb_state(1), "rrdb", 1, 4),
        (old_esrgan_state(), "rrdb", 4, 1),
        (srvgg_state(), "srvgg", 4, 1),
    ],
)
def test_architecture_and_sizes_are_read_from_the_tensors(
    state: dict[str, torch.Tensor], arch: str, scale: int, unshuffle: int
) -> None:
    spec, renamed = esrgan.detect(state)
    assert (spec.arch, spec.scale, spec.unshuffle, spec.features, spec.blocks) == (arch, scale, unshuffle, 8, 2)
    model = esrgan.build(spec)
    model.load_state_dict(renamed, strict=True)  # every tensor has its place, none is missing
    out = esrgan.upscale(model.eval(), spec, _picture((21, 14)))  # odd sizes: padded for the pixel unshuffle
    assert out.size == (21 * scale, 14 * scale)


def test_the_original_layout_loads_the_same_weights_as_basicsr_names() -> None:
    basic, _ = esrgan.detect(rrdb_state(4, seed=1))
    old_spec, old = esrgan.detect(old_esrgan_state(seed=1))
    assert old_spec == basic
    renamed = esrgan.detect(rrdb_state(4, seed=1))[1]
    assert old.keys() == renamed.keys() and all(torch.equal(old[k], renamed[k]) for k in old)


def test_tiles_cover_a_large_image_and_keep_its_size() -> None:
    spec, state = esrgan.detect(srvgg_state())
    model = esrgan.build(spec)
    model.load_state_dict(state)
    image = _picture((70, 45))
    whole = esrgan.upscale(model.eval(), spec, image)
    tiled = esrgan.upscale(model, spec, image, tile=32, overlap=4)
    assert tiled.size == whole.size == (280, 180)
    # each pixel comes from the tile it lies deepest in; this model sees 4 pixels around each one and the tiles
    # overlap by more than 8: the same image (to the rounding of float sums done in another order)
    diff = np.abs(np.asarray(whole, dtype=int) - np.asarray(tiled, dtype=int))
    assert diff.max() <= 1


def test_scan_names_files_by_stem_and_skips_what_is_not_a_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build_upscalers(tmp_path)
    foreign = tmp_path / "models" / "ESRGAN" / "swinir.safetensors"
    save_file({"layers.0.attn.qkv.weight": torch.zeros(4, 4)}, str(foreign))
    with caplog.at_level(logging.WARNING):
        found = esrgan.scan(tmp_path, {})
    assert {n: (s.arch, s.scale) for n, (_, s) in found.items()} == {
        "4x-tiny": ("rrdb", 4),
        "old-tiny": ("rrdb", 4),
        "RealESRGAN_x2tiny": ("rrdb", 2),
        "realesr-tiny-x4": ("srvgg", 4),
    }
    assert "broken.pth" in caplog.text and "swinir.safetensors" in caplog.text
    assert esrgan.scan(tmp_path / "nowhere", {}) == {}


def test_pth_files_load_weights_only(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pickled code ran",))

    with pytest.raises(Exception, match="Weights only load failed"):
        path = tmp_path / "payload.pth"
        try:
            torch.save({"x": Payload()}, path)
            esrgan.read_state(path)
        finally:
            path.unlink(missing_ok=True)


def test_a_model_upscaler_runs_until_it_covers_the_size_then_lanczos() -> None:
    calls: list[tuple[int, int]] = []

    def double(image: Image.Image) -> Image.Image:
        calls.append(image.size)
        return image.resize((image.width * 2, image.height * 2), Image.Resampling.NEAREST)

    out = upscalers.upscale(_picture((16, 16)), "x2", 56, 40, extras.ModelUpscaler(2, double))
    assert out.size == (56, 40) and calls == [(16, 16), (32, 32)]
    calls.clear()
    # a pass that would make more than MAX_PIXELS is left to Lanczos
    extras.model_resized(Image.new("RGB", (2100, 2100)), (4096, 4096), extras.ModelUpscaler(2, double))
    assert calls == []
    with pytest.raises(KeyError):
        upscalers.upscale(_picture((16, 16)), "x2", 32, 32)
