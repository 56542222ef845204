"""Model families told from tensor names and shapes, and what the api makes of them (default sizes), without
a worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from graycat.api.dialects import a1111, openai_images
from graycat.images import families
from graycat.images.families import Family

LIMITS = a1111.Limits(max_size=2048, max_steps=150, max_images=16)
UNET = "model.diffusion_model."


def _checkpoint(text: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    return {UNET + "input_blocks.0.0.weight": (320, 4, 3, 3), **text}


def test_families_from_single_file_tensors() -> None:
    sd1 = _checkpoint({"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768)})
    sd2 = _checkpoint({"cond_stage_model.model.token_embedding.weight": (49408, 1024)})
    xl = _checkpoint({"conditioner.embedders.0.transformer.x": (1,), "conditioner.embedders.1.model.x": (1,)})
    refiner = _checkpoint({"conditioner.embedders.0.model.x": (1,)})
    assert families.of_single_file(sd1) == Family("sd1")
    assert families.of_single_file({**sd1, UNET + "input_blocks.0.0.weight": (320, 9, 3, 3)}).name == "sd1-inpaint"
    assert families.of_single_file(sd2).name == "sd2-v"  # declared by nothing: v, as SD 2.x's 768 releases
    assert families.of_single_file(sd2, "epsilon").name == "sd2"
    assert families.of_single_file(xl).name == "sdxl"
    assert families.of_single_file({**xl, UNET + "input_blocks.0.0.weight": (320, 9, 3, 3)}).name == "sdxl-inpaint"
    assert families.of_single_file(refiner).name == "sdxl-refiner"
    with pytest.raises(families.UnknownFamily):
        families.of_single_file({"transformer_blocks.0.x": (1,)})
    for name in ("sd1", "sd1-inpaint", "sd2", "sd2-v", "sdxl", "sdxl-inpaint", "sdxl-refiner"):
        assert families.parse(name).name == name
    assert [families.parse(n).size for n in ("sd1", "sd2", "sd2-v", "sdxl", "sdxl-refiner")] == [
        512,
        512,
        768,
        1024,
        1024,
    ]


def test_sd2_prediction_is_read_from_a_yaml_beside_the_file_then_metadata(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.safetensors"
    assert families.declared_prediction(checkpoint, {}) is None
    assert families.declared_prediction(checkpoint, {"modelspec.prediction_type": "v"}) == "v"
    assert families.declared_prediction(checkpoint, {"modelspec.prediction_type": "epsilon"}) == "epsilon"
    (tmp_path / "model.yaml").write_text("model:\n  params:\n    parameterization: 'v'\n")
    assert families.declared_prediction(checkpoint, {"modelspec.prediction_type": "epsilon"}) == "v"
    (tmp_path / "model.yaml").write_text("model:\n  params:\n    linear_start: 0.00085\n")  # the 512 base config
    assert families.declared_prediction(checkpoint, {}) == "epsilon"


def test_loras_and_vaes_say_their_family() -> None:
    kohya_xl = {
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 2048),
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 1280),
    }
    assert families.lora_context(kohya_xl) == (2048, True)
    assert families.lora_family(*families.lora_context(kohya_xl)) == "sdxl"
    diffusers_sd1 = {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 768)}
    assert families.lora_family(*families.lora_context(diffusers_sd1)) == "sd1"
    assert families.lora_context({"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 768)}) == (
        None,
        False,
    )
    assert families.vae_latent_space("sdxl_vae.safetensors", {}) == "sdxl"
    assert families.vae_latent_space("vae-ft-mse-840000.safetensors", {}) == "sd"
    assert (
        families.vae_latent_space("x.safetensors", {"modelspec.architecture": "stable-diffusion-xl-v1-base/vae"})
        == "sdxl"
    )


@pytest.mark.parametrize(("family", "size"), [("sd1", 512), ("sd2-v", 768), ("sdxl", 1024), (None, 512)])
def test_a_request_without_a_size_gets_its_familys(family: str | None, size: int) -> None:
    model = {"model_name": "m", "family": family} if family else {"model_name": "m"}
    params = a1111.to_params(
        a1111.Txt2ImgRequest(prompt="x"), checkpoint="m", model=model, saved={}, limits=LIMITS, random_seeds=(1, 2)
    )
    assert (params.width, params.height) == (size, size)
    given = a1111.to_params(
        a1111.Txt2ImgRequest(prompt="x", width=640),
        checkpoint="m",
        model=model,
        saved={},
        limits=LIMITS,
        random_seeds=(1, 2),
    )
    assert (given.width, given.height) == (640, size)
    openai = openai_images.to_params(
        openai_images.ImageGenerationRequest(prompt="x"),
        checkpoint="m",
        limits=LIMITS,
        random_seed=1,
        default_size=size,
    )
    assert (openai.width, openai.height) == (size, size)


def _real_size_unet(**config: object) -> dict[str, tuple[int, ...]]:
    """A released UNet's tensor shapes under A1111's (LDM) names, built on torch's meta device (no weights)."""
    import torch
    from diffusers import UNet2DConditionModel

    from tests.tiny_sd import _unet_key

    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)  # type: ignore[arg-type]
    up_attention = {i for i, kind in enumerate(unet.config.up_block_types) if "CrossAttn" in kind}
    return {UNET + _unet_key(k, up_attention): tuple(v.shape) for k, v in unet.state_dict().items()}


def test_configs_written_for_released_sdxl_and_sd2_shapes_are_theirs() -> None:
    from graycat.workers.engines.sd_config import _unet_config

    xl = {
        "sample_size": 128,
        "block_out_channels": (320, 640, 1280),
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": (5, 10, 20),
        "transformer_layers_per_block": (1, 2, 10),
        "cross_attention_dim": 2048,
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
    }
    written = _unet_config(_real_size_unet(**xl), Family("sdxl"), 1280)
    assert {k: written[k] for k in xl} == {k: list(v) if isinstance(v, tuple) else v for k, v in xl.items()}
    refiner = {
        "block_out_channels": (384, 768, 1536, 1536),
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": (6, 12, 24, 24),
        "transformer_layers_per_block": 4,
        "cross_attention_dim": 1280,
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2560,
    }
    written = _unet_config(_real_size_unet(**refiner), Family("sdxl-refiner"), 1280)
    assert written["transformer_layers_per_block"] == [1, 4, 4, 4] and written["addition_time_embed_dim"] == 256
    assert (written["attention_head_dim"], written["block_out_channels"]) == ([6, 12, 24, 24], [384, 768, 1536, 1536])
    sd2 = {
        "sample_size": 96,
        "block_out_channels": (320, 640, 1280, 1280),
        "attention_head_dim": (5, 10, 20, 20),
        "cross_attention_dim": 1024,
        "use_linear_projection": True,
        "upcast_attention": True,
    }
    written = _unet_config(_real_size_unet(**sd2), Family("sd2", prediction="v"), None)
    assert {k: written[k] for k in sd2} == {k: list(v) if isinstance(v, tuple) else v for k, v in sd2.items()}


def test_text_encoder_configs_written_for_released_openclip_shapes_are_theirs() -> None:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from graycat.workers.engines.sd_config import _open_clip_config
    from tests.tiny_sd import _open_clip_state

    def shapes(model: object, prefix: str, extra: bool) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in _open_clip_state(model, prefix, extra_layer=extra).items()}

    bigg = {"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 20, "intermediate_size": 5120}
    vit_h = {"hidden_size": 1024, "num_hidden_layers": 23, "num_attention_heads": 16, "intermediate_size": 4096}
    with torch.device("meta"):
        xl = CLIPTextModelWithProjection(CLIPTextConfig(**bigg, hidden_act="gelu", projection_dim=1280))
        sd2 = CLIPTextModel(CLIPTextConfig(**vit_h, hidden_act="gelu"))
    written = _open_clip_config(
        shapes(xl, "conditioner.embedders.1.model.", False), "conditioner.embedders.1.model.", True
    )
    assert {k: written[k] for k in bigg} == bigg and written["projection_dim"] == 1280
    # SD 2.x files hold 24 layers; diffusers leaves the last out (SD 2.x reads the penultimate one)
    written = _open_clip_config(shapes(sd2, "cond_stage_model.model.", True), "cond_stage_model.model.", False)
    assert {k: written[k] for k in vit_h} == vit_h and written["max_position_embeddings"] == 77


def test_an_undeclared_sd2_file_is_probed_as_a1111_does(tmp_path: Path) -> None:
    """UNets whose output is fixed (conv_out zeroed, its bias set) answer A1111's test one way or the other."""
    import torch

    from graycat.images.checkpoints import Checkpoint
    from graycat.workers.engines.sd_config import describe
    from tests.tiny_sd import build_sd2_pipeline, to_single_file

    pipe = build_sd2_pipeline(tmp_path / "build")
    probes: dict[tuple[Path, int, int], str] = {}
    for name, bias, family in (("v", -2.0, "sd2-v"), ("eps", 0.5, "sd2")):
        with torch.no_grad():
            pipe.unet.conv_out.weight.zero_()
            pipe.unet.conv_out.bias.fill_(bias)  # the output is `bias` everywhere; the input is 0.5
        to_single_file(pipe, tmp_path / f"{name}.safetensors")
        checkpoint = Checkpoint(tmp_path / f"{name}.safetensors", f"{name}.safetensors", None)
        assert describe(checkpoint, probes).family == family
    assert len(probes) == 2
    (tmp_path / "eps.yaml").write_text("model:\n  params:\n    parameterization: v\n")  # a yaml beside it wins
    assert describe(Checkpoint(tmp_path / "eps.safetensors", "eps.safetensors", None)).family == "sd2-v"


def test_the_loras_and_vae_a_checkpoint_may_use_are_chosen_without_an_api() -> None:
    """`model_choice` refuses with the status and code any API answers it with: unknown 400/404, another
    family's 422; a token's saved VAE of another family is skipped, not refused."""
    from graycat.images import model_choice

    xl = {
        "model_name": "xl",
        "family": "sdxl",
        "context": 2048,
        "loras": ["ink", "old"],
        "lora_info": {"ink": {"context": 2048}, "old": {"context": 768}},
        "vaes": ["xl-vae.safetensors", "sd-vae.safetensors"],
        "vae_spaces": {"xl-vae.safetensors": "sdxl", "sd-vae.safetensors": "sd"},
    }
    model_choice.check_loras("a cat <lora:ink:1>", xl)
    with pytest.raises(model_choice.ChoiceError) as unknown:
        model_choice.check_loras("<lora:nope:1>", xl)
    assert (unknown.value.status, unknown.value.code) == (400, "unknown_lora")
    with pytest.raises(model_choice.ChoiceError) as other:
        model_choice.check_loras("<lora:old:1>", xl)
    assert (other.value.status, other.value.code) == (422, "lora_family_mismatch")
    assert model_choice.choose_vae("xl-vae", None, xl["vaes"], xl) == "xl-vae.safetensors"
    with pytest.raises(model_choice.ChoiceError) as mismatch:
        model_choice.choose_vae("sd-vae", None, xl["vaes"], xl)
    assert (mismatch.value.status, mismatch.value.code) == (422, "vae_family_mismatch")
    assert model_choice.choose_vae(None, "sd-vae.safetensors", xl["vaes"], xl) is None
