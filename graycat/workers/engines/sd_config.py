"""The diffusers configs a single-file (LDM layout) SD 1.x checkpoint is loaded with, written from its weights.

A1111 checkpoints carry weights only. diffusers needs a folder of configs to load them offline; this writes
one with the SD 1.x topology and the widths read from the checkpoint's tensor shapes (so fine-tunes,
9-channel inpainting models and small test models all load), plus the CLIP tokenizer rebuilt from the BPE
vocabulary that the `open-clip-torch` wheel ships.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

UNET = "model.diffusion_model."
VAE = "first_stage_model."
TEXT = "cond_stage_model.transformer."
SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "trained_betas": None,
}
PIPELINE = {
    "_class_name": "StableDiffusionPipeline",
    "feature_extractor": [None, None],
    "safety_checker": [None, None],
    "requires_safety_checker": False,
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
CLIP_BPE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_MERGES = 49152 - 256 - 2  # the merges OpenAI's CLIP uses: 49,408 tokens in all


class UnsupportedCheckpoint(ValueError):
    """A checkpoint that is not SD 1.x-shaped (SD 2.x, SDXL) or lacks a part."""


def shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, read without loading the weights (.safetensors header; .ckpt memory-mapped)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    import torch

    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    state = state.get("state_dict", state)
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def _groups(channels: int) -> int:
    """GroupNorm groups: SD's 32, fewer for narrow (test-sized) models."""
    return min(32, max(1, channels // 2))


def _text_prefix(found: dict[str, tuple[int, ...]]) -> str:
    """transformers 5 drops `text_model.` from CLIPTextModel keys; checkpoints may have either."""
    return TEXT + "text_model." if TEXT + "text_model.embeddings.token_embedding.weight" in found else TEXT


def configs(found: dict[str, tuple[int, ...]]) -> dict[str, dict[str, Any]]:
    """unet, vae and text_encoder configs for a checkpoint's tensors."""
    if any(k.startswith("conditioner.embedders.") for k in found):
        raise UnsupportedCheckpoint("SDXL checkpoints are not supported (SD 1.x only)")
    if any(k.startswith("cond_stage_model.model.") for k in found):
        raise UnsupportedCheckpoint("SD 2.x checkpoints are not supported (SD 1.x only)")
    try:
        conv_in = found[UNET + "input_blocks.0.0.weight"]
        widths = [found[f"{UNET}input_blocks.{3 * i + 1}.0.out_layers.3.weight"][0] for i in range(4)]
        cross = found[UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"][1]
        vae = vae_config(found, VAE)
        text = _text_prefix(found)
        vocab, hidden = found[text + "embeddings.token_embedding.weight"]
        positions = found[text + "embeddings.position_embedding.weight"][0]
        layers = 1 + max(int(m[1]) for k in found if (m := re.match(re.escape(text) + r"encoder\.layers\.(\d+)\.", k)))
        intermediate = found[text + "encoder.layers.0.mlp.fc1.weight"][0]
    except (KeyError, ValueError) as exc:
        raise UnsupportedCheckpoint(f"not an SD 1.x checkpoint (missing {exc})") from None
    attention = [f"{UNET}input_blocks.{3 * i + 1}.1.proj_in.weight" in found for i in range(4)]
    unet = {
        "_class_name": "UNet2DConditionModel",
        "sample_size": 64,
        "in_channels": conv_in[1],
        "out_channels": 4,
        "block_out_channels": widths,
        "layers_per_block": 2,
        "cross_attention_dim": cross,
        "attention_head_dim": 8,
        "norm_num_groups": _groups(widths[0]),
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
    }
    encoder = {
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": positions,
        "hidden_act": "quick_gelu",
        "projection_dim": hidden,
        "bos_token_id": 0,
        "pad_token_id": 1,
        "eos_token_id": 2,
    }
    return {"unet": unet, "vae": vae, "text_encoder": encoder}


def vae_config(found: dict[str, tuple[int, ...]], prefix: str) -> dict[str, Any]:
    """The AutoencoderKL config of the SD VAE whose tensors are named `prefix` + LDM names; KeyError when it
    is not one."""
    widths = [found[f"{prefix}encoder.down.{i}.block.0.conv1.weight"][0] for i in range(4)]
    return {
        "_class_name": "AutoencoderKL",
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": found[prefix + "decoder.conv_in.weight"][1],
        "block_out_channels": widths,
        "layers_per_block": 2,
        "norm_num_groups": _groups(widths[0]),
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "sample_size": 512,
        "scaling_factor": 0.18215,
    }


def write_vae_config(vae_file: Path, folder: Path) -> Path:
    """The config folder of a standalone VAE file (A1111's models/VAE: LDM names, with or without the
    checkpoint's `first_stage_model.` prefix)."""
    found = shapes(vae_file)
    prefix = VAE if any(k.startswith(VAE) for k in found) else ""
    try:
        config = vae_config(found, prefix)
    except KeyError as exc:
        raise UnsupportedCheckpoint(f"{vae_file.name} is not an SD VAE (missing {exc})") from None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _byte_characters() -> list[str]:
    """The printable stand-in of each byte in byte-level BPE, in vocabulary order (printable bytes first)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]


def write_clip_tokenizer(folder: Path) -> None:
    """The SD 1.x (CLIP ViT-L/14) tokenizer files, from the BPE vocabulary the `open-clip-torch` wheel ships."""
    spec = importlib.util.find_spec("open_clip")  # found, not imported (it would need torchvision)
    source = (
        next(
            (
                Path(p) / CLIP_BPE
                for p in (spec.submodule_search_locations or [])
                if spec and (Path(p) / CLIP_BPE).is_file()
            ),
            None,
        )
        if spec
        else None
    )
    if source is None:
        raise FileNotFoundError(
            "the CLIP vocabulary for single-file checkpoints comes from the open-clip-torch "
            "wheel: pip install --no-deps open-clip-torch (or put a diffusers config folder "
            "'<name>.config' beside the checkpoint)"
        )
    merges = gzip.decompress(source.read_bytes()).decode().split("\n")[1 : CLIP_MERGES + 1]
    chars = _byte_characters()
    vocab = [
        *chars,
        *(c + "</w>" for c in chars),
        *(m.replace(" ", "") for m in merges),
        "<|startoftext|>",
        "<|endoftext|>",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({**special, "model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "do_lower_case": True})
    )


def write_skeleton(checkpoint: Path, folder: Path) -> Path:
    """A diffusers folder of configs (no weights) for `checkpoint`, in `folder`; returns `folder`."""
    for name, config in configs(shapes(checkpoint)).items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "config.json").write_text(json.dumps(config))
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER))
    (folder / "model_index.json").write_text(json.dumps(PIPELINE))
    write_clip_tokenizer(folder / "tokenizer")
    return folder
