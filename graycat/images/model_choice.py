"""Which LoRAs and VAE a generation may use with a checkpoint, from what its workers announced (the model info
of `sd-models`): names they have, made for the checkpoint's family. Independent of any API: the routes map a
`ChoiceError` to their own error, naming the request field."""

from __future__ import annotations

from typing import Any

from graycat.images import families, loras, vaes


class ChoiceError(ValueError):
    """A LoRA or VAE the checkpoint cannot use: the HTTP status and error code it answers as."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def family_of(model: dict[str, Any]) -> families.Family | None:
    """The family a checkpoint's workers announced (None from workers that announce none)."""
    name = model.get("family")
    return families.parse(str(name)) if name else None


def width_label(width: int) -> str:
    """The family a text-context width belongs to, for messages."""
    family = families.CONTEXT_WIDTHS.get(width)
    return families.BASE_LABELS[family] if family else f"a model with {width}-wide text context"


def check_loras(prompt: str, model: dict[str, Any]) -> None:
    """Every `<lora:name:weight>` of the prompt names a LoRA the checkpoint's workers have (400 else), made for
    the checkpoint's family: the same cross-attention width (422 else)."""
    available: list[str] = model.get("loras", [])
    try:
        _, wanted = loras.parse(prompt)
    except ValueError as exc:
        raise ChoiceError(str(exc), 422, "invalid_request") from None
    for name in wanted:
        if name not in available:
            raise ChoiceError(
                f"LoRA '{name}' not found; available: {', '.join(available) or 'none'} (models/Lora)",
                400,
                "unknown_lora",
            )
        info = model.get("lora_info", {}).get(name, {})
        family, own = family_of(model), model.get("context")
        width = info.get("context")
        second = info.get("family") == "sdxl" and width is None  # adapts SDXL's second text encoder only
        if family is not None and ((width and own and width != own) or (second and family.base != "sdxl")):
            made_for = families.BASE_LABELS["sdxl"] if second else width_label(int(width))
            raise ChoiceError(
                f"LoRA '{name}' is made for {made_for}, but checkpoint '{model.get('model_name')}' is "
                f"{family.label} ({own}-wide text context): use a LoRA of its family",
                422,
                "lora_family_mismatch",
            )


def choose_vae(wanted: Any, saved: str | None, available: list[str], model: dict[str, Any] | None = None) -> str | None:
    """The VAE file a request means: `wanted` (404 when unknown, 422 when it decodes another family's latents
    than the checkpoint `model`'s), else the token's saved `sd_vae` while its workers still have it and it fits
    the checkpoint; None for the checkpoint's own."""
    family = family_of(model or {})
    spaces: dict[str, str] = (model or {}).get("vae_spaces", {})
    if wanted is not None:
        try:
            found = vaes.find(str(wanted), available)
        except KeyError:
            raise ChoiceError(
                f"VAE '{wanted}' not found; available: Automatic, None, {', '.join(available)} (models/VAE)",
                404,
                "vae_not_found",
            ) from None
        if found is not None and family is not None and spaces.get(found, family.latent_space) != family.latent_space:
            made_for = "SDXL" if spaces[found] == "sdxl" else "SD 1.x/2.x"
            raise ChoiceError(
                f"VAE '{found}' is made for {made_for}, but checkpoint '{(model or {}).get('model_name')}' is "
                f"{family.label}: use a VAE of its family, or Automatic",
                422,
                "vae_family_mismatch",
            )
        return found
    try:
        found = vaes.find(saved, available)
    except KeyError:
        return None
    if found is not None and family is not None and spaces.get(found, family.latent_space) != family.latent_space:
        return None  # the token's VAE is another family's: this checkpoint decodes with its own
    return found
