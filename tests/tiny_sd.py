"""Tiny Stable Diffusion 1.5-shaped pipelines built in code (no download), and an A1111 models folder of them.

Every width is tiny but the topology is SD 1.5's, so the same loading paths (diffusers folders, single-file LDM
checkpoints) and pipelines (txt2img, img2img, 4- and 9-channel inpainting) run as with a real model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from graycat.workers.engines.sd_config import write_clip_tokenizer

SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}


def build_pipeline(folder: Path, *, in_channels: int = 4, seed: int = 0) -> Any:
    """Build a tiny pipeline with random weights and save it as a diffusers folder."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    write_clip_tokenizer(folder / "tokenizer")
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=2,
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        norm_num_groups=4,
        scaling_factor=0.18215,
        sample_size=64,
    )
    # the real CLIP vocabulary (so the tokenizer is SD 1.5's), one 64-wide head: SD 1.5's head width
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=1,
            max_position_embeddings=77,
            bos_token_id=0,
            pad_token_id=1,
            eos_token_id=2,
            projection_dim=64,
        )
    )
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=PNDMScheduler.from_config(SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    write_clip_tokenizer(folder / "tokenizer")  # transformers 5 saves only tokenizer.json
    return pipe


# diffusers -> original (LDM) names, the layout A1111 checkpoints use
_RESNET = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
]
_VAE_ATTN = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]


def _unet_key(key: str) -> str:
    parts = key.split(".")
    head, rest = parts[0], ".".join(parts[1:])
    simple = {"time_embedding": {"linear_1": "time_embed.0", "linear_2": "time_embed.2"}}
    if head == "time_embedding":
        sub, tail = rest.split(".", 1)
        return f"{simple[head][sub]}.{tail}"
    if head in ("conv_in", "conv_norm_out", "conv_out"):
        return {"conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}[head] + "." + rest
    if head == "mid_block":
        kind, j, tail = parts[1], int(parts[2]), ".".join(parts[3:])
        target = f"middle_block.1.{tail}" if kind == "attentions" else f"middle_block.{2 * j}.{tail}"
        return _resnet_names(target) if kind == "resnets" else target
    i, kind = int(parts[1]), parts[2]
    tail = ".".join(parts[4:])
    if head == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{3 * (i + 1)}.0.op.{'.'.join(parts[5:])}"
        j = int(parts[3])
        target = f"input_blocks.{3 * i + j + 1}.{0 if kind == 'resnets' else 1}.{tail}"
    else:
        if kind == "upsamplers":
            return f"output_blocks.{3 * i + 2}.{1 if i == 0 else 2}.{'.'.join(parts[4:])}"
        j = int(parts[3])
        target = f"output_blocks.{3 * i + j}.{0 if kind == 'resnets' else 1}.{tail}"
    return _resnet_names(target) if kind == "resnets" else target


def _resnet_names(key: str) -> str:
    for new, old in _RESNET:
        key = key.replace(f".{new}.", f".{old}.")
    return key


def _vae_key(key: str) -> str:
    parts = key.split(".")
    side, head = parts[0], parts[1]
    if head in ("down_blocks", "up_blocks"):
        i = int(parts[2]) if head == "down_blocks" else 3 - int(parts[2])
        level = f"{side}.{'down' if head == 'down_blocks' else 'up'}.{i}"
        if parts[3] == "resnets":
            key = f"{level}.block.{parts[4]}.{'.'.join(parts[5:])}"
        else:
            key = f"{level}.{'downsample' if head == 'down_blocks' else 'upsample'}.{'.'.join(parts[5:])}"
    elif head == "mid_block":
        if parts[2] == "resnets":
            key = f"{side}.mid.block_{int(parts[3]) + 1}.{'.'.join(parts[4:])}"
        else:
            key = f"{side}.mid.attn_1.{'.'.join(parts[4:])}"
            for new, old in _VAE_ATTN:
                key = key.replace(f"attn_1.{new}.", f"attn_1.{old}.")
    elif head == "conv_norm_out":
        key = f"{side}.norm_out.{'.'.join(parts[2:])}"
    return key.replace(".conv_shortcut.", ".nin_shortcut.")


def vae_state(vae: Any) -> dict[str, Any]:
    """A VAE's weights under the LDM names (without the checkpoint's `first_stage_model.` prefix)."""
    state = {}
    for key, value in vae.state_dict().items():
        if ".attentions." in key and value.ndim == 2:
            value = value[:, :, None, None]
        state[_vae_key(key) if key.split(".")[0] in ("encoder", "decoder") else key] = value.contiguous()
    return state


def to_single_file(pipe: Any, path: Path) -> None:
    """Save the pipeline's weights as one A1111-style (LDM layout) .safetensors checkpoint."""
    state: dict[str, Any] = {}
    for key, value in pipe.unet.state_dict().items():
        state["model.diffusion_model." + _unet_key(key)] = value
    for key, value in vae_state(pipe.vae).items():
        state["first_stage_model." + key] = value
    for key, value in pipe.text_encoder.state_dict().items():
        name = key if key.startswith("text_model.") else "text_model." + key
        state["cond_stage_model.transformer." + name] = value
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def build_models_folder(root: Path) -> dict[str, Any]:
    """An A1111 models folder: `tiny` (a diffusers folder), `tiny-single.safetensors` (the same weights as one
    LDM-layout file, as A1111 keeps them), `tiny-inpaint.safetensors` (a 9-channel inpainting UNet) and the
    LoRA `models/Lora/tinylora.safetensors`, VAE `models/VAE/tinyvae.safetensors` and ControlNet
    `models/ControlNet/tinycontrol` (made for the same topology, so they fit each of them). Returns the pipelines
    by model name."""
    folder = root / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    tiny = build_pipeline(folder / "tiny")
    to_single_file(tiny, folder / "tiny-single.safetensors")
    inpaint = build_pipeline(root / "build" / "inpaint", in_channels=9, seed=1)
    to_single_file(inpaint, folder / "tiny-inpaint.safetensors")
    other = build_pipeline(root / "build" / "other", seed=2)
    build_controlnet(other, root / "models" / "ControlNet" / "tinycontrol")
    build_lora(other, root / "models" / "Lora" / "tinylora.safetensors")  # last: it adds adapters to `other`
    (root / "models" / "VAE").mkdir(parents=True)
    save_file(vae_state(other.vae), str(root / "models" / "VAE" / "tinyvae.safetensors"))
    return {"tiny": tiny, "tiny-single": tiny, "tiny-inpaint": inpaint}


def build_lora(pipe: Any, path: Path) -> None:
    """A LoRA (random, rank 4) on the UNet's attention layers, saved as diffusers writes LoRA files."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(3)
    pipe.unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        path.parent,
        unet_lora_layers=get_peft_model_state_dict(pipe.unet),
        weight_name=path.name,
        safe_serialization=True,
    )


def build_controlnet(pipe: Any, folder: Path) -> None:
    """A ControlNet of the pipeline's UNet shape whose zero-initialised outputs are made random, so that it
    changes what it guides."""
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(5)
    controlnet = ControlNetModel.from_unet(pipe.unet)
    for layer in [
        controlnet.controlnet_cond_embedding.conv_out,
        *controlnet.controlnet_down_blocks,
        controlnet.controlnet_mid_block,
    ]:
        torch.nn.init.normal_(layer.weight, std=0.5)
    controlnet.save_pretrained(folder, safe_serialization=True)
