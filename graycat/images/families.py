"""Model families (SD 1.x, SD 2.x, SDXL and their variants), told from a checkpoint's tensor names and shapes.

Pure Python: the worker reads the shapes (graycat/workers/engines/sd_config.py) and announces each model's family;
the api reads it from that announcement for default sizes and to refuse a LoRA or VAE of another family.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Shapes = dict[str, tuple[int, ...]]

UNET = "model.diffusion_model."
SD1_TEXT = "cond_stage_model.transformer."
SD2_TEXT = "cond_stage_model.model."
XL_TEXT = "conditioner.embedders."


@dataclass(frozen=True, slots=True)
class Family:
    """What a checkpoint is: its architecture (`base`: sd1, sd2, sdxl, sdxl-refiner), what its UNet predicts,
    whether it is a 9-channel inpainting model, and the image size it was trained at."""

    base: str
    prediction: str = "epsilon"  # or "v"
    inpainting: bool = False

    @property
    def name(self) -> str:
        """The family as `sd-models` lists it: sd1, sd1-inpaint, sd2, sd2-v, sd2-inpaint, sdxl, sdxl-inpaint,
        sdxl-refiner."""
        suffix = "-v" if self.prediction == "v" else "-inpaint" if self.inpainting else ""
        return self.base + suffix

    @property
    def label(self) -> str:
        extra = " v-prediction" if self.prediction == "v" else " inpainting" if self.inpainting else ""
        return BASE_LABELS[self.base] + extra

    @property
    def size(self) -> int:
        """The default width and height: what the family was trained at."""
        if self.base.startswith("sdxl"):
            return 1024
        return 768 if self.prediction == "v" else 512

    @property
    def latent_space(self) -> str:
        """Models that share a VAE: sd (SD 1.x and 2.x) or sdxl (SDXL and its refiner)."""
        return "sdxl" if self.base.startswith("sdxl") else "sd"


BASE_LABELS = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "sdxl-refiner": "SDXL refiner"}
CONTEXT_WIDTHS = {768: "sd1", 1024: "sd2", 2048: "sdxl", 1280: "sdxl-refiner"}
"""The cross-attention (text context) width of each released family's UNet, which its LoRAs match."""


class UnknownFamily(ValueError):
    """Tensors of no Stable Diffusion family this server loads."""


def of_single_file(found: Shapes, prediction: str | None = None) -> Family:
    """The family of an A1111 (LDM layout) checkpoint. SD 2.x's prediction is not in its shapes: `prediction`
    ("v" or "epsilon") comes from a yaml or metadata beside it (see `declared_prediction`) or a test on its
    weights (the worker's sd_config.probe_prediction); None here means v."""
    conv_in = found.get(UNET + "input_blocks.0.0.weight")
    if conv_in is None:
        raise UnknownFamily("no UNet (model.diffusion_model.*) in the checkpoint")
    inpainting = conv_in[1] == 9
    if any(k.startswith(XL_TEXT + "1.") for k in found):
        return Family("sdxl", inpainting=inpainting)
    if any(k.startswith(XL_TEXT + "0.model.") for k in found):
        return Family("sdxl-refiner", inpainting=inpainting)
    if any(k.startswith(SD2_TEXT) for k in found):
        if inpainting:
            return Family("sd2", inpainting=True)
        return Family("sd2", prediction=prediction or "v")
    if any(k.startswith(SD1_TEXT) for k in found):
        return Family("sd1", inpainting=inpainting)
    raise UnknownFamily("no text encoder of SD 1.x, SD 2.x or SDXL in the checkpoint")


def context_width(found: Shapes) -> int | None:
    """The UNet's cross-attention width (the text encoders' output), from a checkpoint's tensors."""
    for key, shape in found.items():
        if key.startswith(UNET) and key.endswith(".attn2.to_k.weight"):
            return shape[1]
    return None


def declared_prediction(checkpoint: Path, metadata: dict[str, str]) -> str | None:
    """What an SD 2.x checkpoint says it predicts, A1111's way first: a `<name>.yaml` beside it (the LDM config;
    `parameterization: "v"` or, without that line, epsilon), else the safetensors metadata
    `modelspec.prediction_type`; None when neither says."""
    yaml = checkpoint.with_suffix(".yaml")
    if yaml.is_file():
        match = re.search(r"""^\s*parameterization:\s*["']?(\w+)""", yaml.read_text(errors="replace"), re.M)
        return "v" if match and match[1] == "v" else "epsilon"
    declared = metadata.get("modelspec.prediction_type", "").strip().lower()
    if declared in ("v", "v_prediction"):
        return "v"
    return "epsilon" if declared == "epsilon" else None


def of_diffusers_folder(folder: Path) -> tuple[Family, int | None]:
    """The family and cross-attention width of a diffusers folder, from its configs."""

    def config(name: str) -> dict[str, Any]:
        path = folder / name
        return json.loads(path.read_text()) if path.is_file() else {}

    index, unet = config("model_index.json"), config("unet/config.json")
    scheduler = config("scheduler/scheduler_config.json")
    inpainting = unet.get("in_channels") == 9
    context = unet.get("cross_attention_dim")
    if unet.get("addition_embed_type") == "text_time":
        refiner = not (index.get("text_encoder") or [None])[0]
        return Family("sdxl-refiner" if refiner else "sdxl", inpainting=inpainting), context
    text = config("text_encoder/config.json")
    if text.get("hidden_act") == "gelu":  # OpenCLIP (SD 2.x); SD 1.x's CLIP uses quick_gelu
        prediction = "v" if scheduler.get("prediction_type") == "v_prediction" else "epsilon"
        return Family("sd2", prediction=prediction, inpainting=inpainting), context
    return Family("sd1", inpainting=inpainting), context


def parse(name: str) -> Family:
    """A family from its `name` (as `Family.name` writes it)."""
    base, _, suffix = name.partition("-") if not name.startswith("sdxl-refiner") else ("sdxl-refiner", "", "")
    return Family(base, "v" if suffix == "v" else "epsilon", suffix == "inpaint")


_LORA_TO_K = re.compile(r"attn2[._]to_k\.(lora_down|lora_A)\.weight$")


def lora_context(found: Shapes) -> tuple[int | None, bool]:
    """A LoRA file's cross-attention width (the in-features of a cross-attention key projection it adapts; None
    when it adapts none) and whether it adapts SDXL's second text encoder (kohya `lora_te2_`, diffusers
    `text_encoder_2.`)."""
    width = next((shape[1] for key, shape in found.items() if _LORA_TO_K.search(key) and len(shape) >= 2), None)
    second = any(k.startswith(("lora_te2_", "text_encoder_2.", "te2.")) for k in found)
    return width, second


def lora_family(width: int | None, second_encoder: bool) -> str | None:
    """The base family a LoRA was trained for, by its cross-attention width among the released families', or
    SDXL when it adapts a second text encoder; None when neither tells."""
    if width in CONTEXT_WIDTHS:
        return CONTEXT_WIDTHS[width]
    return "sdxl" if second_encoder else None


def vae_latent_space(name: str, metadata: dict[str, str]) -> str:
    """Which latent space a standalone VAE decodes. SD 1.x/2.x's and SDXL's VAEs have the same tensors, so
    this reads the safetensors metadata (`modelspec.architecture`) and else the file name: `xl` in it (as in
    `sdxl_vae.safetensors`) means SDXL's."""
    architecture = metadata.get("modelspec.architecture", "").lower()
    if architecture:
        return "sdxl" if "xl" in architecture else "sd"
    return "sdxl" if "xl" in name.lower() else "sd"
