"""The diffusers side in process, on tiny pipelines: every sampler, both loading paths, seeds, cancel."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from graycat.images import loras
from graycat.images.checkpoints import scan
from graycat.images.params import GenerationParams, HiresFix
from graycat.images.samplers import SAMPLERS
from graycat.workers.engines.sd_config import UnsupportedCheckpoint, configs, shapes, write_clip_tokenizer
from graycat.workers.engines.sd_pipelines import Device, Interrupted, generate, load, loras_applied
from tests.tiny_sd import build_models_folder


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sd-models")
    build_models_folder(root)
    return root


@pytest.fixture(scope="module")
def pipes(models_dir: Path) -> dict[str, Any]:
    return {c.model_name: load(c, Device(), models_dir / "scratch") for c in scan(models_dir)}


def _run(pipe: Any, **kw: Any) -> list[np.ndarray]:
    params = GenerationParams(
        **{"checkpoint": "x", "prompt": "a cat", "seed": 7, "width": 64, "height": 64, "steps": 2, **kw}
    )
    return [np.asarray(i, dtype=np.int16) for i in generate(pipe, params, lambda *_: None, threading.Event())]


@pytest.mark.parametrize("sampler", [s.name for s in SAMPLERS])
def test_every_sampler_runs_and_is_deterministic(pipes: dict[str, Any], sampler: str) -> None:
    first, second = _run(pipes["tiny"], sampler=sampler)[0], _run(pipes["tiny"], sampler=sampler)[0]
    assert first.shape == (64, 64, 3) and np.array_equal(first, second)


def test_karras_schedule_changes_the_image(pipes: dict[str, Any]) -> None:
    plain = _run(pipes["tiny"], sampler="DPM++ 2M", steps=4)[0]
    karras = _run(pipes["tiny"], sampler="DPM++ 2M", schedule="karras", steps=4)[0]
    assert not np.array_equal(plain, karras)


def test_single_file_checkpoint_matches_its_diffusers_folder(pipes: dict[str, Any]) -> None:
    folder, single = pipes["tiny"], pipes["tiny-single"]
    for part in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(folder, part).state_dict(), getattr(single, part).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), part
    latents, text = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 64)
    with torch.no_grad():  # the same weights in another memory layout: equal up to float rounding
        difference = folder.unet(latents, 10, text).sample - single.unet(latents, 10, text).sample
    assert difference.abs().max() < 1e-4


def test_batch_images_match_single_runs_of_their_seeds(pipes: dict[str, Any]) -> None:
    batch = _run(pipes["tiny"], batch_size=2, n_iter=2)
    assert len(batch) == 4
    assert np.abs(batch[3] - _run(pipes["tiny"], seed=10)[0]).max() <= 2  # image 3 has seed 7 + 3


def test_variation_seed_and_tiling_change_the_image(pipes: dict[str, Any]) -> None:
    base = _run(pipes["tiny"])[0]
    assert not np.array_equal(base, _run(pipes["tiny"], subseed=99, subseed_strength=0.5)[0])
    assert np.array_equal(base, _run(pipes["tiny"], subseed=99, subseed_strength=0.0)[0])
    assert not np.array_equal(base, _run(pipes["tiny"], tiling=True)[0])
    assert np.array_equal(base, _run(pipes["tiny"])[0])  # tiling is undone after the job


def test_inpainting_model_does_txt2img(pipes: dict[str, Any]) -> None:
    assert _run(pipes["tiny-inpaint"])[0].shape == (64, 64, 3)


def test_progress_per_step_and_stop_between_steps(pipes: dict[str, Any]) -> None:
    stop = threading.Event()
    seen: list[tuple[int, int, int]] = []

    def progress(job_no: int, step: int, steps: int, preview: Any) -> None:
        seen.append((job_no, step, steps))
        if step == 3:
            stop.set()

    params = GenerationParams(checkpoint="x", prompt="p", seed=1, width=64, height=64, steps=10, n_iter=2)
    with pytest.raises(Interrupted):
        generate(pipes["tiny"], params, progress, stop)
    assert seen == [(0, 1, 10), (0, 2, 10), (0, 3, 10)]


def test_a_lora_changes_the_image_and_unloads_exactly(pipes: dict[str, Any], models_dir: Path) -> None:
    [(name, path)] = loras.scan(models_dir).items()
    assert name == "tinylora"
    base = _run(pipes["tiny-single"])[0]
    with loras_applied(pipes["tiny-single"], [(path, 1.0)]):
        full = _run(pipes["tiny-single"])[0]
    with loras_applied(pipes["tiny-single"], [(path, 0.3)]):
        light = _run(pipes["tiny-single"])[0]
    assert not np.array_equal(base, full) and not np.array_equal(full, light)
    assert np.array_equal(base, _run(pipes["tiny-single"])[0])


def test_single_file_configs_are_read_from_the_weights(models_dir: Path) -> None:
    folder = models_dir / "models" / "Stable-diffusion"
    found = configs(shapes(folder / "tiny-inpaint.safetensors"))
    unet, vae, text = found["unet"], found["vae"], found["text_encoder"]
    assert (unet["in_channels"], unet["block_out_channels"], unet["cross_attention_dim"]) == (9, [16, 16, 32, 32], 64)
    assert unet["down_block_types"][-1] == "DownBlock2D" and unet["norm_num_groups"] == 8
    assert (vae["block_out_channels"], vae["norm_num_groups"]) == ([8, 8, 16, 16], 4)
    assert (text["vocab_size"], text["hidden_size"], text["num_hidden_layers"]) == (49408, 64, 2)
    with pytest.raises(UnsupportedCheckpoint, match="no UNet"):
        configs({"conditioner.embedders.0.transformer.x": (1,)})
    with pytest.raises(UnsupportedCheckpoint, match="no text encoder"):
        configs({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)})
    with pytest.raises(UnsupportedCheckpoint, match=r"not a complete SDXL checkpoint"):
        configs({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3), "conditioner.embedders.1.x": (1,)})


def test_ckpt_files_are_read_like_safetensors(models_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    single = models_dir / "models" / "Stable-diffusion" / "tiny-single.safetensors"
    torch.save({"state_dict": load_file(single), "global_step": 1}, tmp_path / "tiny.ckpt")
    assert shapes(tmp_path / "tiny.ckpt") == shapes(single)


def test_the_sd_1_5_tokenizer_is_rebuilt_offline(tmp_path: Path) -> None:
    from transformers import CLIPTokenizer

    write_clip_tokenizer(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path)
    assert len(tokenizer) == 49408
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_previews_every_n_steps_at_the_latent_size(pipes: dict[str, Any]) -> None:
    sizes: list[tuple[int, tuple[int, int] | None]] = []

    def progress(job_no: int, step: int, steps: int, preview: Any) -> None:
        sizes.append((step, preview.size if preview is not None else None))

    params = GenerationParams(checkpoint="x", prompt="p", seed=1, width=64, height=48, steps=5, batch_size=2)
    generate(pipes["tiny"], params, progress, threading.Event(), preview_every=2)
    assert sizes == [(1, None), (2, (8, 6)), (3, None), (4, (8, 6)), (5, None)]


def test_hires_progress_runs_over_both_passes(pipes: dict[str, Any]) -> None:
    seen: list[tuple[int, int, int]] = []
    hires = HiresFix(96, 96, "Lanczos", steps=4, denoising_strength=0.5)  # its second pass: 4 x 0.5 = 2 steps
    params = GenerationParams(checkpoint="x", prompt="p", seed=1, width=64, height=64, steps=3, n_iter=2, hires=hires)
    images = generate(pipes["tiny"], params, lambda k, step, steps, _: seen.append((k, step, steps)), threading.Event())
    assert [image.size for image in images] == [(96, 96), (96, 96)]
    assert seen == [(k, step, 5) for k in (0, 1) for step in range(1, 6)]  # never backwards, one total


def test_the_hires_sampler_does_not_leak_into_the_next_first_pass(pipes: dict[str, Any]) -> None:
    alone = _run(pipes["tiny"], sampler="DPM++ 2M", steps=3, seed=8)[0]
    hires = HiresFix(64, 64, "Nearest", steps=2, denoising_strength=0.5, sampler="DPM++ 2M SDE", schedule="karras")
    _run(pipes["tiny"], sampler="DPM++ 2M", steps=3, hires=hires)  # leaves the Karras SDE scheduler behind
    assert np.array_equal(_run(pipes["tiny"], sampler="DPM++ 2M", steps=3, seed=8)[0], alone)
