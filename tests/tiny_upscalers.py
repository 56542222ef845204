"""Tiny random ESRGAN-family upscalers saved as the real files are: BasicSR/Real-ESRGAN RRDBNet `.pth` files
(`{"params_ema": ...}`, `conv_first` / `body.N.rdb1.conv1` / `conv_up1` names; x4, and x2 with a
pixel-unshuffled input as RealESRGAN_x2plus), an original-ESRGAN-layout x4 file (`model.0`,
`model.1.sub.N.RDB1.conv1.0`, `model.3`, ...) and an SRVGGNetCompact `.safetensors` (realesr-general-x4v3's
`body.N`)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from graycat.workers.engines.esrgan import Spec, build


def _random(spec: Spec, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = build(spec)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn_like(param) * 0.1)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def rrdb_state(scale: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """BasicSR's RRDBNet names (conv_upN), 8 features, 2 blocks, growth 4."""
    unshuffle = {4: 1, 2: 2, 1: 4}[scale]
    spec = Spec("rrdb", scale, 3, 3, 8, 2, growth=4, upsamplings=2, unshuffle=unshuffle)
    return {
        re.sub(r"^ups\.(\d+)\.", lambda m: f"conv_up{int(m[1]) + 1}.", k): v for k, v in _random(spec, seed).items()
    }


def old_esrgan_state(seed: int = 1) -> dict[str, torch.Tensor]:
    """The original ESRGAN layout of an x4 RRDBNet."""
    tops = {"conv_first": 0, "conv_up1": 3, "conv_up2": 6, "conv_hr": 8, "conv_last": 10}
    out: dict[str, torch.Tensor] = {}
    for key, value in rrdb_state(4, seed).items():
        if m := re.match(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(\w+)$", key):
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = value
        elif key.startswith("conv_body."):
            out["model.1.sub.2." + key.split(".")[1]] = value
        else:
            name, kind = key.split(".")
            out[f"model.{tops[name]}.{kind}"] = value
    return out


def srvgg_state(seed: int = 2) -> dict[str, torch.Tensor]:
    """SRVGGNetCompact x4: 8 features, 2 middle convolutions, PReLUs."""
    return _random(Spec("srvgg", 4, 3, 3, 8, 2), seed)


def build_upscalers(models_dir: Path) -> None:
    """`models/ESRGAN/4x-tiny.pth` (BasicSR layout), `models/ESRGAN/old-tiny.pth` (original layout, torch's
    legacy format), `models/RealESRGAN/RealESRGAN_x2tiny.pth` (x2, pixel unshuffle),
    `models/RealESRGAN/realesr-tiny-x4.safetensors` (SRVGGNetCompact) and `models/ESRGAN/broken.pth` (not a
    model)."""
    esrgan, real = models_dir / "models" / "ESRGAN", models_dir / "models" / "RealESRGAN"
    esrgan.mkdir(parents=True, exist_ok=True)
    real.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": rrdb_state(4)}, esrgan / "4x-tiny.pth")
    # the 2018 ESRGAN files predate torch's zip format
    torch.save(old_esrgan_state(), esrgan / "old-tiny.pth", _use_new_zipfile_serialization=False)
    torch.save({"params_ema": rrdb_state(2, seed=3)}, real / "RealESRGAN_x2tiny.pth")
    save_file(srvgg_state(), str(real / "realesr-tiny-x4.safetensors"))
    (esrgan / "broken.pth").write_bytes(b"not a model at all")
