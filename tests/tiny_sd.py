"""Tiny Stable Diffusion 1.5-shaped pipelines built in code (no download), and an A1111 models folder of them.

Every width is tiny but the topology is SD 1.5's, so the same loading paths (diffusers folders, single-file LDM
checkpoints) and pipelines (txt2img, img2img, 4- and 9-channel inpainting) run as with a real model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from graycat.workers.engines.sd_config import XL_SCHEDULER, write_clip_tokenizer

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


def _vae(scaling: float) -> Any:
    """SD's VAE topology (4 levels, 4 latent channels), tiny."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        norm_num_groups=4,
        scaling_factor=scaling,
        sample_size=64,
    )


def _clip(hidden: int, layers: int, *, act: str = "quick_gelu", projection: bool = False) -> Any:
    """A CLIP text tower on the real CLIP vocabulary (so the tokenizers are the real ones), 64-wide heads."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        max_position_embeddings=77,
        hidden_act=act,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        projection_dim=hidden,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def build_pipeline(folder: Path, *, in_channels: int = 4, seed: int = 0) -> Any:
    """Build a tiny pipeline with random weights and save it as a diffusers folder."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
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
    vae = _vae(0.18215)
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


def build_sd2_pipeline(folder: Path, *, prediction: str = "v_prediction", seed: int = 10) -> Any:
    """A tiny SD 2.x pipeline (OpenCLIP-style text encoder: gelu, `!` padding; linear attention projections;
    64-wide heads), v-prediction unless told otherwise; saved as a diffusers folder. Its text context is 128
    wide: neither the tiny SD 1.x's (64) nor the tiny SDXL's (96), as real families differ."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTokenizer

    torch.manual_seed(seed)
    write_clip_tokenizer(folder / "tokenizer", "!")
    unet = UNet2DConditionModel(
        sample_size=12,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=2,
        cross_attention_dim=128,
        attention_head_dim=(1, 1, 1, 1),
        use_linear_projection=True,
        upcast_attention=prediction == "v_prediction",
        norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=_vae(0.18215),
        text_encoder=_clip(128, 2, act="gelu"),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        scheduler=PNDMScheduler.from_config({**SCHEDULER, "prediction_type": prediction}),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    write_clip_tokenizer(folder / "tokenizer", "!")
    return pipe


def _xl_unet(in_channels: int, context: int, projection: int, time_ids: int) -> Any:
    """SDXL's UNet topology, tiny: 3 levels (no attention at the first), transformer depths (1, 1, 2), linear
    projections, added text-and-time conditioning."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=16,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(16, 32, 64),
        layers_per_block=2,
        transformer_layers_per_block=(1, 1, 2),
        cross_attention_dim=context,
        attention_head_dim=(1, 1, 1),
        use_linear_projection=True,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=projection + time_ids * 8,
    )


def build_sdxl_pipeline(folder: Path, *, in_channels: int = 4, seed: int = 20) -> Any:
    """A tiny SDXL base (or, with 9 channels, inpainting) pipeline: a 32-wide CLIP and a 64-wide projected
    OpenCLIP-style encoder (text context 96 wide), SDXL's UNet topology with size conditioning, SDXL's VAE
    scaling; saved as a diffusers folder."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

    torch.manual_seed(seed)
    write_clip_tokenizer(folder / "tokenizer")
    write_clip_tokenizer(folder / "tokenizer_2", "!")
    pipe = StableDiffusionXLPipeline(
        unet=_xl_unet(in_channels, 32 + 64, 64, 6),
        vae=_vae(0.13025),
        text_encoder=_clip(32, 2),
        text_encoder_2=_clip(64, 2, act="gelu", projection=True),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
        scheduler=EulerDiscreteScheduler.from_config(XL_SCHEDULER),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    write_clip_tokenizer(folder / "tokenizer")
    write_clip_tokenizer(folder / "tokenizer_2", "!")
    return pipe


def build_refiner_pipeline(folder: Path, *, seed: int = 30) -> Any:
    """A tiny SDXL refiner: only the OpenCLIP-style encoder (64 wide), aesthetic-score conditioning."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline
    from transformers import CLIPTokenizer

    torch.manual_seed(seed)
    write_clip_tokenizer(folder / "tokenizer_2", "!")
    pipe = StableDiffusionXLImg2ImgPipeline(
        unet=_xl_unet(4, 64, 64, 5),
        vae=_vae(0.13025),
        text_encoder=None,
        tokenizer=None,
        text_encoder_2=_clip(64, 2, act="gelu", projection=True),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
        scheduler=EulerDiscreteScheduler.from_config(XL_SCHEDULER),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    write_clip_tokenizer(folder / "tokenizer_2", "!")
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


def _unet_key(key: str, up_attention: set[int]) -> str:
    """The LDM name of a diffusers UNet weight; `up_attention`: the up blocks that have attention layers."""
    parts = key.split(".")
    head, rest = parts[0], ".".join(parts[1:])
    simple = {
        "time_embedding": {"linear_1": "time_embed.0", "linear_2": "time_embed.2"},
        "add_embedding": {"linear_1": "label_emb.0.0", "linear_2": "label_emb.0.2"},
    }
    if head in simple:
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
            return f"output_blocks.{3 * i + 2}.{2 if i in up_attention else 1}.{'.'.join(parts[4:])}"
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


def _clip_state(encoder: Any, prefix: str) -> dict[str, Any]:
    """A CLIP text tower's weights as A1111 checkpoints name them (transformers names under `text_model.`)."""
    return {
        prefix + (key if key.startswith("text_model.") else "text_model." + key): value
        for key, value in encoder.state_dict().items()
    }


def _open_clip_state(encoder: Any, prefix: str, *, extra_layer: bool = False) -> dict[str, Any]:
    """A text tower in OpenCLIP's layout (SD 2.x, SDXL's second encoder): fused q/k/v, `resblocks`, the
    projection transposed. `extra_layer`: add a last layer (a copy of the last one), which SD 2.x files have
    and diffusers leaves out (SD 2.x reads the penultimate layer)."""
    import torch

    weights = {k.removeprefix("text_model."): v for k, v in encoder.state_dict().items()}
    out = {
        prefix + "token_embedding.weight": weights["embeddings.token_embedding.weight"],
        prefix + "positional_embedding": weights["embeddings.position_embedding.weight"],
        prefix + "ln_final.weight": weights["final_layer_norm.weight"],
        prefix + "ln_final.bias": weights["final_layer_norm.bias"],
    }
    if "text_projection.weight" in weights:
        out[prefix + "text_projection"] = weights["text_projection.weight"].T.contiguous()
    layers = encoder.config.num_hidden_layers
    for i in range(layers + extra_layer):
        source, block = f"encoder.layers.{min(i, layers - 1)}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            attention = [weights[f"{source}self_attn.{n}_proj.{kind}"] for n in "qkv"]
            out[f"{block}attn.in_proj_{kind}"] = torch.cat(attention)
            out[f"{block}attn.out_proj.{kind}"] = weights[f"{source}self_attn.out_proj.{kind}"]
            out[f"{block}ln_1.{kind}"] = weights[f"{source}layer_norm1.{kind}"]
            out[f"{block}ln_2.{kind}"] = weights[f"{source}layer_norm2.{kind}"]
            out[f"{block}mlp.c_fc.{kind}"] = weights[f"{source}mlp.fc1.{kind}"]
            out[f"{block}mlp.c_proj.{kind}"] = weights[f"{source}mlp.fc2.{kind}"]
    return out


def to_single_file(pipe: Any, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Save the pipeline's weights as one A1111-style (LDM layout) .safetensors checkpoint: SD 1.x, SD 2.x
    (OpenCLIP text encoder), SDXL (both encoders under `conditioner.embedders.`) or the SDXL refiner."""
    state: dict[str, Any] = {}
    up_attention = {i for i, kind in enumerate(pipe.unet.config.up_block_types) if "CrossAttn" in kind}
    for key, value in pipe.unet.state_dict().items():
        state["model.diffusion_model." + _unet_key(key, up_attention)] = value
    for key, value in vae_state(pipe.vae).items():
        state["first_stage_model." + key] = value
    second = getattr(pipe, "text_encoder_2", None)
    if second is not None and pipe.text_encoder is not None:  # SDXL
        state.update(_clip_state(pipe.text_encoder, "conditioner.embedders.0.transformer."))
        state.update(_open_clip_state(second, "conditioner.embedders.1.model."))
    elif second is not None:  # the refiner
        state.update(_open_clip_state(second, "conditioner.embedders.0.model."))
    elif pipe.text_encoder.config.hidden_act == "gelu":  # SD 2.x
        state.update(_open_clip_state(pipe.text_encoder, "cond_stage_model.model.", extra_layer=True))
    else:
        state.update(_clip_state(pipe.text_encoder, "cond_stage_model.transformer."))
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(path), metadata=metadata)


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


def build_kohya_lora(pipe: Any, path: Path, *, seed: int = 4) -> None:
    """A random rank-4 LoRA on the attention layers of the UNet and both text encoders of a (tiny) SDXL pipeline, saved
    as kohya's sd-scripts write SDXL LoRAs and A1111 users have them: LDM block names (`lora_unet_input_blocks_
    ...`), `lora_te1_` / `lora_te2_`, `lora_down` / `lora_up` and an `alpha` per module."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    up_attention = {i for i, kind in enumerate(pipe.unet.config.up_block_types) if "CrossAttn" in kind}
    state: dict[str, Any] = {}

    def add(name: str, module: torch.nn.Linear) -> None:
        rank = 4
        state[f"{name}.lora_down.weight"] = torch.randn(rank, module.in_features, generator=generator) * 0.5
        state[f"{name}.lora_up.weight"] = torch.randn(module.out_features, rank, generator=generator) * 0.5
        state[f"{name}.alpha"] = torch.tensor(float(rank))

    for key, module in pipe.unet.named_modules():
        if isinstance(module, torch.nn.Linear) and key.endswith(("to_q", "to_k", "to_v", "to_out.0")):
            add(
                "lora_unet_" + _unet_key(key + ".weight", up_attention).removesuffix(".weight").replace(".", "_"),
                module,
            )
    for prefix, encoder in (("lora_te1_", pipe.text_encoder), ("lora_te2_", pipe.text_encoder_2)):
        for key, module in encoder.named_modules():
            if isinstance(module, torch.nn.Linear) and key.endswith(("q_proj", "k_proj", "v_proj", "out_proj")):
                name = key if key.startswith("text_model.") else "text_model." + key
                add(prefix + name.replace(".", "_"), module)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))


def build_family_folder(root: Path) -> dict[str, Any]:
    """An A1111 models folder of every family: `tinyxl.safetensors` (SDXL base, single file), `tinyxl-folder`
    (the same as a diffusers folder), `tinyxl-inpaint.safetensors` (9 channels), `tinyxl-refiner.safetensors`,
    `tiny2v.safetensors` (SD 2.x v-prediction, with A1111's `tiny2v.yaml` beside it), `tiny2v-folder`, and
    `tiny-single.safetensors` (SD 1.x); LoRAs `tinyxllora` (SDXL, kohya names) and `tinylora` (SD 1.x); VAEs
    `tinyxl_vae.safetensors` (SDXL) and `tinyvae.safetensors` (SD 1.x); ControlNets `tinyxlcontrol` (SDXL) and
    `tinycontrol` (SD 1.x). Returns the pipelines by model name."""
    folder = root / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    xl = build_sdxl_pipeline(folder / "tinyxl-folder")
    to_single_file(xl, folder / "tinyxl.safetensors")
    inpaint = build_sdxl_pipeline(root / "build" / "xl-inpaint", in_channels=9, seed=21)
    to_single_file(inpaint, folder / "tinyxl-inpaint.safetensors")
    refiner = build_refiner_pipeline(root / "build" / "xl-refiner")
    to_single_file(refiner, folder / "tinyxl-refiner.safetensors")
    sd2 = build_sd2_pipeline(folder / "tiny2v-folder")
    to_single_file(sd2, folder / "tiny2v.safetensors")
    (folder / "tiny2v.yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    sd1 = build_pipeline(root / "build" / "sd1")
    to_single_file(sd1, folder / "tiny-single.safetensors")
    build_kohya_lora(xl, root / "models" / "Lora" / "tinyxllora.safetensors")
    other_xl = build_sdxl_pipeline(root / "build" / "xl-vae", seed=22)
    (root / "models" / "VAE").mkdir(parents=True)
    save_file(vae_state(other_xl.vae), str(root / "models" / "VAE" / "tinyxl_vae.safetensors"))
    save_file(vae_state(sd1.vae), str(root / "models" / "VAE" / "tinyvae.safetensors"))
    build_controlnet(xl, root / "models" / "ControlNet" / "tinyxlcontrol")
    build_controlnet(sd1, root / "models" / "ControlNet" / "tinycontrol")
    build_lora(sd1, root / "models" / "Lora" / "tinylora.safetensors")  # last: it adds adapters to `sd1`
    return {
        "tinyxl": xl,
        "tinyxl-folder": xl,
        "tinyxl-inpaint": inpaint,
        "tinyxl-refiner": refiner,
        "tiny2v": sd2,
        "tiny2v-folder": sd2,
        "tiny-single": sd1,
    }
