"""The diffusers configs a single-file (LDM layout) checkpoint is loaded with, written from its weights.

A1111 checkpoints carry weights only. diffusers needs a folder of configs to load them offline; this writes one
for the checkpoint's family (SD 1.x, SD 2.x, SDXL base, inpainting and refiner: graycat/images/families.py) with
the widths, depths and heads read from its tensor shapes (so fine-tunes, 9-channel inpainting models and small
test models all load), plus the CLIP tokenizers rebuilt from the BPE vocabulary that the `open-clip-torch` wheel
ships.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from graycat.images import families
from graycat.images.checkpoints import Checkpoint
from graycat.images.families import SD1_TEXT, SD2_TEXT, UNET, XL_TEXT, Family, Shapes, UnknownFamily, of_single_file

VAE = "first_stage_model."
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
XL_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
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
XL_PIPELINE = {
    "_class_name": "StableDiffusionXLPipeline",
    "feature_extractor": [None, None],
    "image_encoder": [None, None],
    "force_zeros_for_empty_prompt": True,
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
REFINER_PIPELINE = {
    **XL_PIPELINE,
    "_class_name": "StableDiffusionXLImg2ImgPipeline",
    "force_zeros_for_empty_prompt": False,
    "requires_aesthetics_score": True,
    "text_encoder": [None, None],
    "tokenizer": [None, None],
}
VAE_SCALING = {"sd": 0.18215, "sdxl": 0.13025}
CLIP_BPE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_MERGES = 49152 - 256 - 2  # the merges OpenAI's CLIP uses: 49,408 tokens in all


class UnsupportedCheckpoint(ValueError):
    """A checkpoint of no family this server loads, or one that lacks a part."""


def header(path: Path) -> tuple[Shapes, dict[str, str]]:
    """Tensor name -> shape, and the safetensors metadata, read without loading the weights (.safetensors
    header; .ckpt memory-mapped, without metadata)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, dict(f.metadata() or {})
    import torch

    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    state = state.get("state_dict", state)
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}, {}


def shapes(path: Path) -> Shapes:
    """Tensor name -> shape of a checkpoint (see `header`)."""
    return header(path)[0]


def _groups(channels: int) -> int:
    """GroupNorm groups: SD's 32, fewer for narrow (test-sized) models."""
    return min(32, max(1, channels // 2))


def _text_prefix(found: Shapes, prefix: str) -> str:
    """transformers 5 drops `text_model.` from CLIPTextModel keys; checkpoints may have either."""
    return prefix + "text_model." if prefix + "text_model.embeddings.token_embedding.weight" in found else prefix


def _count(found: Shapes, pattern: str) -> int:
    """1 + the highest index that `pattern` (a regex with one group) finds in the tensor names; 0 for none."""
    compiled = re.compile(pattern)
    return 1 + max((int(m[1]) for k in found if (m := compiled.match(k))), default=-1)


def _clip_config(found: Shapes, prefix: str) -> dict[str, Any]:
    """CLIPTextModel (OpenAI CLIP, as in SD 1.x and SDXL's first encoder), named `prefix` + transformers names."""
    text = _text_prefix(found, prefix)
    vocab, hidden = found[text + "embeddings.token_embedding.weight"]
    return {
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": found[text + "encoder.layers.0.mlp.fc1.weight"][0],
        "num_hidden_layers": _count(found, re.escape(text) + r"encoder\.layers\.(\d+)\."),
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": found[text + "embeddings.position_embedding.weight"][0],
        "hidden_act": "quick_gelu",
        "projection_dim": hidden,
        "bos_token_id": 0,
        "pad_token_id": 1,
        "eos_token_id": 2,
    }


def _open_clip_config(found: Shapes, prefix: str, projection: bool) -> dict[str, Any]:
    """An OpenCLIP text tower (SD 2.x's, SDXL's second encoder) as a transformers CLIP config. SD 2.x uses the
    penultimate layer: diffusers leaves the last one out (`projection` False)."""
    vocab, hidden = found[prefix + "token_embedding.weight"]
    layers = _count(found, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
    projected = found.get(prefix + "text_projection", (hidden, hidden))[-1]
    return {
        "architectures": ["CLIPTextModelWithProjection" if projection else "CLIPTextModel"],
        "model_type": "clip_text_model",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": found[prefix + "transformer.resblocks.0.mlp.c_fc.weight"][0],
        "num_hidden_layers": layers if projection else layers - 1,
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": found[prefix + "positional_embedding"][0],
        "hidden_act": "gelu",
        "projection_dim": projected,
        "bos_token_id": 0,
        "pad_token_id": 1,
        "eos_token_id": 2,
    }


def _unet_config(found: Shapes, family: Family, text_projection: int | None) -> dict[str, Any]:
    """The UNet's widths, depths, heads and added conditioning, from its LDM tensor names and shapes."""
    levels = _count(found, re.escape(UNET) + r"input_blocks\.(\d+)\.") // 3
    first = [3 * i + 1 for i in range(levels)]  # the first resnet block of each level
    widths = [found[f"{UNET}input_blocks.{b}.0.out_layers.3.weight"][0] for b in first]
    attention = [f"{UNET}input_blocks.{b}.1.proj_in.weight" in found for b in first]
    depth = [_count(found, re.escape(f"{UNET}input_blocks.{b}.1.transformer_blocks.") + r"(\d+)\.") or 1 for b in first]
    if not attention[-1]:  # diffusers gives the middle block the last level's depth (unused there: the refiner)
        depth[-1] = _count(found, re.escape(f"{UNET}middle_block.1.transformer_blocks.") + r"(\d+)\.") or 1
    crossed = [b for b, a in zip(first, attention, strict=True) if a]  # the levels with attention
    proj_in = found[f"{UNET}input_blocks.{crossed[0]}.1.proj_in.weight"]
    config: dict[str, Any] = {
        "_class_name": "UNet2DConditionModel",
        "sample_size": family.size // 8,
        "in_channels": found[UNET + "input_blocks.0.0.weight"][1],
        "out_channels": 4,
        "block_out_channels": widths,
        "layers_per_block": 2,
        "cross_attention_dim": found[f"{UNET}input_blocks.{crossed[0]}.1.transformer_blocks.0.attn2.to_k.weight"][1],
        "attention_head_dim": 8 if family.base == "sd1" else [max(1, w // 64) for w in widths],
        "use_linear_projection": len(proj_in) == 2,
        "transformer_layers_per_block": depth,
        "norm_num_groups": _groups(widths[0]),
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "upcast_attention": family.prediction == "v",
    }
    if family.base.startswith("sdxl"):
        assert text_projection is not None
        added = found[UNET + "label_emb.0.0.weight"][1]
        time_ids = 5 if family.base == "sdxl-refiner" else 6  # sizes and crop (and the refiner's aesthetic score)
        config.update(
            addition_embed_type="text_time",
            addition_time_embed_dim=(added - text_projection) // time_ids,
            projection_class_embeddings_input_dim=added,
        )
    return config


def configs(found: Shapes, family: Family | None = None) -> dict[str, dict[str, Any]]:
    """The component configs (unet, vae, text encoders) for a checkpoint's tensors."""
    try:
        family = family or of_single_file(found)
    except UnknownFamily as exc:
        raise UnsupportedCheckpoint(str(exc)) from None
    try:
        out: dict[str, dict[str, Any]] = {}
        projection = None
        if family.base == "sdxl":
            out["text_encoder"] = _clip_config(found, XL_TEXT + "0.transformer.")
            out["text_encoder_2"] = _open_clip_config(found, XL_TEXT + "1.model.", projection=True)
            projection = out["text_encoder_2"]["projection_dim"]
        elif family.base == "sdxl-refiner":
            out["text_encoder_2"] = _open_clip_config(found, XL_TEXT + "0.model.", projection=True)
            projection = out["text_encoder_2"]["projection_dim"]
        elif family.base == "sd2":
            out["text_encoder"] = _open_clip_config(found, SD2_TEXT, projection=False)
        else:
            out["text_encoder"] = _clip_config(found, SD1_TEXT)
        out["unet"] = _unet_config(found, family, projection)
        out["vae"] = vae_config(found, VAE, VAE_SCALING[family.latent_space])
    except (KeyError, ValueError, IndexError) as exc:
        raise UnsupportedCheckpoint(f"not a complete {family.label} checkpoint (missing {exc})") from None
    return out


def vae_config(found: Shapes, prefix: str, scaling: float = VAE_SCALING["sd"]) -> dict[str, Any]:
    """The AutoencoderKL config of the SD VAE whose tensors are named `prefix` + LDM names (latents scaled by
    `scaling`: SD 1.x/2.x's or SDXL's); KeyError when it is not one."""
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
        "scaling_factor": scaling,
    }


def write_vae_config(vae_file: Path, folder: Path, scaling: float) -> Path:
    """The config folder of a standalone VAE file (A1111's models/VAE: LDM names, with or without the
    checkpoint's `first_stage_model.` prefix), for a pipeline whose latents are scaled by `scaling`."""
    found = shapes(vae_file)
    prefix = VAE if any(k.startswith(VAE) for k in found) else ""
    try:
        config = vae_config(found, prefix, scaling)
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


def write_clip_tokenizer(folder: Path, pad: str = "<|endoftext|>") -> None:
    """The SD 1.x (CLIP ViT-L/14) tokenizer files, from the BPE vocabulary the `open-clip-torch` wheel ships;
    OpenCLIP's (SD 2.x, SDXL's second encoder) is the same vocabulary padded with `!`."""
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
        "pad_token": pad,
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({**special, "model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "do_lower_case": True})
    )


def write_skeleton(checkpoint: Path, folder: Path, family: Family) -> Path:
    """A diffusers folder of configs (no weights) for `checkpoint` of `family`, in `folder`; returns `folder`."""
    found = shapes(checkpoint)
    for name, config in configs(found, family).items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "config.json").write_text(json.dumps(config))
    (folder / "scheduler").mkdir(exist_ok=True)
    xl = family.base.startswith("sdxl")
    scheduler = {
        **(XL_SCHEDULER if xl else SCHEDULER),
        "prediction_type": "v_prediction" if family.prediction == "v" else "epsilon",
    }
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    index = REFINER_PIPELINE if family.base == "sdxl-refiner" else XL_PIPELINE if xl else PIPELINE
    (folder / "model_index.json").write_text(json.dumps(index))
    if family.base != "sdxl-refiner":
        write_clip_tokenizer(folder / "tokenizer", "!" if family.base == "sd2" else "<|endoftext|>")
    if xl:
        write_clip_tokenizer(folder / "tokenizer_2", "!")
    return folder


def describe(checkpoint: Checkpoint, probes: dict[tuple[Path, int, int], str] | None = None) -> Checkpoint:
    """The checkpoint with its family and cross-attention width, read from its tensors (a file) or configs (a
    diffusers folder); UnsupportedCheckpoint when it is of no family this server loads. An SD 2.x file that
    declares no prediction is probed (`probe_prediction`), once per file version when given `probes`."""
    if checkpoint.path.is_dir():
        family, context = families.of_diffusers_folder(checkpoint.path)
    else:
        found, metadata = header(checkpoint.path)
        try:
            family = families.of_single_file(found, families.declared_prediction(checkpoint.path, metadata))
        except UnknownFamily as exc:
            raise UnsupportedCheckpoint(f"{checkpoint.relative}: {exc}") from None
        undeclared = families.declared_prediction(checkpoint.path, metadata) is None
        if family.base == "sd2" and not family.inpainting and undeclared:
            stat = checkpoint.path.stat()
            key = (checkpoint.path, stat.st_size, stat.st_mtime_ns)
            cache = probes if probes is not None else {}
            if key not in cache:
                cache[key] = probe_prediction(checkpoint.path)
            family = replace(family, prediction=cache[key])
        context = families.context_width(found)
    return replace(checkpoint, family=family.name, context=context)


def probe_prediction(checkpoint: Path) -> str:
    """Whether an SD 2.x UNet predicts v or epsilon, by A1111's test on its weights: run it once at the last
    timestep (999) on latents and text context all 0.5. Near pure noise an epsilon model answers about its
    input, a v model about minus the image it sees: an output more than 1 below the input on average means v."""
    import tempfile

    import torch
    from diffusers import UNet2DConditionModel

    with tempfile.TemporaryDirectory(prefix="graycat-probe-") as scratch:
        config = write_skeleton(checkpoint, Path(scratch), Family("sd2", prediction="v"))
        unet = UNet2DConditionModel.from_single_file(
            str(checkpoint), config=str(config), subfolder="unet", local_files_only=True, dtype=torch.float32
        )
    with torch.no_grad():
        x = torch.full((1, unet.config.in_channels, 8, 8), 0.5)
        context = torch.full((1, 2, unet.config.cross_attention_dim), 0.5)
        out = unet(x, torch.tensor([999]), encoder_hidden_states=context).sample
    return "v" if (out - x).mean().item() < -1 else "epsilon"


def lora_info(path: Path) -> dict[str, Any]:
    """What the api needs to refuse a LoRA for a checkpoint of another family: the cross-attention width it
    adapts and the family that width (or a second text encoder) says."""
    try:
        width, second = families.lora_context(shapes(path))
    except Exception:  # unreadable: not checked here (loading it fails the job that names it)
        return {"context": None, "family": None}
    return {"context": width, "family": families.lora_family(width, second)}


def vae_latent_space(path: Path) -> str:
    """`sd` or `sdxl`: the latents a standalone VAE file decodes (see families.vae_latent_space)."""
    try:
        metadata = header(path)[1]
    except Exception:  # unreadable: judged by its name (loading it fails the job that names it)
        metadata = {}
    return families.vae_latent_space(path.name, metadata)
