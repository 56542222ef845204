"""ESRGAN-family upscalers (A1111's `models/ESRGAN` and `models/RealESRGAN`), written here from the published
structure of the two architectures these files hold, without spandrel (it imports torchvision, which has no CPU
build for this torch):

- RRDBNet (ESRGAN, Real-ESRGAN x4plus/x2plus, most community "4x-..." models), in either key layout: the original
  ESRGAN one (`model.0`, `model.1.sub.N.RDB1.conv1.0`, `model.3`, ...) or BasicSR's (`conv_first`,
  `body.N.rdb1.conv1`, `conv_body`, `conv_up1`, `conv_hr`, `conv_last`). Scale 4 directly; 2 and 1 as Real-ESRGAN
  makes them, the input pixel-unshuffled by 2 or 4 first.
- SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3): a plain stack of convolutions with PReLUs, a
  pixel shuffle, and the input's nearest upscale added.

Everything about a file (architecture, scale, widths, block counts) is read from its state dict. Images run in
tiles (graycat/images/tiles.py) so large ones fit in memory.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from graycat.images import tiles

log = logging.getLogger(__name__)

FOLDERS = ("ESRGAN", "RealESRGAN")  # under DIR/models
SUFFIXES = (".pth", ".safetensors")
TILE = 192  # input pixels per tile side (A1111's default ESRGAN tile)
OVERLAP = 8  # input pixels tiles overlap by


class UnknownArchitecture(ValueError):
    """A state dict of no architecture this module builds."""


@dataclass(frozen=True, slots=True)
class Spec:
    """What a file holds: its architecture and sizes, read from its tensors."""

    arch: str  # "rrdb" or "srvgg"
    scale: int
    in_channels: int
    out_channels: int
    features: int
    blocks: int  # RRDB blocks, or SRVGG's middle convolutions
    growth: int = 0  # RRDB's dense growth channels
    upsamplings: int = 0  # RRDB's x2 nearest upsamplings
    unshuffle: int = 1  # RRDB's input pixel unshuffle factor


class _DenseBlock(nn.Module):
    conv1: nn.Conv2d
    conv2: nn.Conv2d
    conv3: nn.Conv2d
    conv4: nn.Conv2d
    conv5: nn.Conv2d

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        for i in range(5):
            setattr(self, f"conv{i + 1}", nn.Conv2d(nf + i * gc, nf if i == 4 else gc, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{i}")(torch.cat(feats, 1)), 0.2))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class _RRDB(nn.Module):
    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = _DenseBlock(nf, gc), _DenseBlock(nf, gc), _DenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """ESRGAN's generator; parameter names are BasicSR's, but the upsampling convolutions are `ups.N`."""

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        nf, u = spec.features, spec.unshuffle
        self.unshuffle = u
        self.conv_first = nn.Conv2d(spec.in_channels * u * u, nf, 3, 1, 1)
        self.body = nn.Sequential(*[_RRDB(nf, spec.growth) for _ in range(spec.blocks)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.ups = nn.ModuleList([nn.Conv2d(nf, nf, 3, 1, 1) for _ in range(spec.upsamplings)])
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, spec.out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in self.ups:
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact model: `body` is conv, PReLU, (conv, PReLU) x blocks, conv to out x scale^2."""

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        nf = spec.features
        layers: list[nn.Module] = [nn.Conv2d(spec.in_channels, nf, 3, 1, 1), nn.PReLU(nf)]
        for _ in range(spec.blocks):
            layers += [nn.Conv2d(nf, nf, 3, 1, 1), nn.PReLU(nf)]
        layers.append(nn.Conv2d(nf, spec.out_channels * spec.scale * spec.scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.scale = spec.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return F.pixel_shuffle(out, self.scale) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a `.pth` (weights only: no pickled code runs) or `.safetensors` file, unwrapped from
    BasicSR's `params_ema` / `params`."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        try:  # memory-mapped: a scan reads only what it looks at
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (pre-zip) format cannot be mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict):
        for wrapper in ("params_ema", "params", "state_dict"):
            if isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnknownArchitecture("not a state dict of tensors")
    return state


_OLD_RDB = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")


def _from_old_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original ESRGAN names -> BasicSR's: model.0 conv_first, model.1.sub.N (N < blocks) the RRDBs,
    model.1.sub.<blocks> conv_body, then the upsampling convolutions, conv_hr and conv_last by position."""
    out: dict[str, torch.Tensor] = {}
    tops: dict[int, dict[str, torch.Tensor]] = {}
    body_conv = -1
    for key, value in state.items():
        if m := _OLD_RDB.match(key):
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = value
        elif m := re.match(r"model\.1\.sub\.(\d+)\.(weight|bias)$", key):
            body_conv = int(m[1])
            out[f"conv_body.{m[2]}"] = value
        elif m := re.match(r"model\.(\d+)\.(weight|bias)$", key):
            tops.setdefault(int(m[1]), {})[m[2]] = value
        else:
            raise UnknownArchitecture(f"unexpected tensor {key}")
    if body_conv < 0 or 0 not in tops or len(tops) < 3:
        raise UnknownArchitecture("an ESRGAN-like layout without its body or output convolutions")
    order = sorted(tops)
    names = ["conv_first"] + [f"conv_up{i + 1}" for i in range(len(order) - 3)] + ["conv_hr", "conv_last"]
    for name, index in zip(names, order, strict=True):
        for kind, value in tops[index].items():
            out[f"{name}.{kind}"] = value
    return out


def _blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    return len({int(k.split(".")[1]) for k in state if k.startswith(prefix)})


def detect(state: dict[str, torch.Tensor]) -> tuple[Spec, dict[str, torch.Tensor]]:
    """The architecture of a state dict and its tensors under this module's names; UnknownArchitecture else."""
    if "model.0.weight" in state and any(k.startswith("model.1.sub.") for k in state):
        state = _from_old_layout(state)
    if "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state:
        ups = sorted(k for k in state if re.fullmatch(r"conv_up\d+\.weight", k))
        out_ch = state["conv_last.weight"].shape[0]
        first_in = state["conv_first.weight"].shape[1]
        unshuffle = {1: 1, 4: 2, 16: 4}.get(first_in // out_ch, 0) if first_in % out_ch == 0 else 0
        if not unshuffle or not ups:
            raise UnknownArchitecture(f"RRDBNet with {first_in} input and {out_ch} output channels")
        spec = Spec(
            "rrdb",
            scale=2 ** len(ups) // unshuffle,
            in_channels=out_ch,
            out_channels=out_ch,
            features=state["conv_first.weight"].shape[0],
            blocks=_blocks(state, "body."),
            growth=state["body.0.rdb1.conv1.weight"].shape[0],
            upsamplings=len(ups),
            unshuffle=unshuffle,
        )
        if spec.scale < 1:
            raise UnknownArchitecture("RRDBNet that downscales")
        renamed = {re.sub(r"^conv_up(\d+)\.", lambda m: f"ups.{int(m[1]) - 1}.", k): v for k, v in state.items()}
        return spec, renamed
    if "body.0.weight" in state and state.get("body.1.weight", torch.empty(0, 0)).dim() == 1:
        last = max(int(k.split(".")[1]) for k in state if k.startswith("body."))
        features, in_ch = state["body.0.weight"].shape[:2]
        out = state[f"body.{last}.weight"].shape[0]
        scale = round((out / in_ch) ** 0.5)
        if last % 2 or scale * scale * in_ch != out:
            raise UnknownArchitecture(f"SRVGGNetCompact-like body ending in {out} channels")
        return Spec("srvgg", scale, in_ch, in_ch, features, blocks=(last - 2) // 2), state
    raise UnknownArchitecture("neither RRDBNet (ESRGAN, Real-ESRGAN) nor SRVGGNetCompact tensors")


def build(spec: Spec) -> nn.Module:
    return RRDBNet(spec) if spec.arch == "rrdb" else SRVGGNetCompact(spec)


def load(path: Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[Spec, nn.Module]:
    """The model of a file, with its weights, in eval mode on `device`."""
    spec, state = detect(read_state(path))
    model = build(spec)
    model.load_state_dict(state, strict=True)
    return spec, model.eval().to(device=device, dtype=dtype)


Specs = dict[tuple[Path, int, int], Spec]


def scan(models_dir: Path, known: Specs) -> dict[str, tuple[Path, Spec]]:
    """name (file stem) -> file and spec of each upscaler in `DIR/models/ESRGAN` and `DIR/models/RealESRGAN`
    (sub-folders too; the first of a name wins); a file of another architecture, or unreadable, is skipped with
    a warning naming it. `known` caches the specs per file version (path, mtime, size)."""
    found: dict[str, tuple[Path, Spec]] = {}
    for folder in FOLDERS:
        root = models_dir / "models" / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix not in SUFFIXES:
                continue
            stat = path.stat()
            version = (path, stat.st_mtime_ns, stat.st_size)
            try:
                if version not in known:
                    known[version] = detect(read_state(path))[0]
            except Exception as exc:  # another architecture, or a broken file: the rest still load
                log.warning(
                    "not serving upscaler %s: %s", path, (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                )
                continue
            found.setdefault(path.stem, (path, known[version]))
    return found


@torch.inference_mode()
def _run(model: nn.Module, image: Image.Image, multiple: int, device: str, dtype: torch.dtype) -> Image.Image:
    """One pass of the model over an RGB image, padded to a multiple of `multiple` (pixel unshuffle)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=dtype)
    h, w = x.shape[2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > 1 else "replicate")
    y = model(x)
    scale = y.shape[2] // x.shape[2]
    y = y[:, :, : h * scale, : w * scale].float().clamp(0, 1)
    out = (y[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(out, "RGB")


def _starts(xs: list[int], tile: int) -> list[int]:
    """Where each tile's part of the result begins: half way into its overlap with the one before, so every
    pixel comes from the tile where it lies farthest from a tile edge (a model's output is worst at edges)."""
    return [0] + [(x + prev + tile) // 2 for prev, x in itertools.pairwise(xs)]


def upscale(
    model: nn.Module,
    spec: Spec,
    image: Image.Image,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    tile: int = TILE,
    overlap: int = OVERLAP,
) -> Image.Image:
    """`image` upscaled `spec.scale` times, in tiles of `tile` input pixels overlapping by at least `overlap`
    (tiles.positions), each pixel taken from the tile it lies deepest in."""
    multiple = spec.unshuffle if spec.arch == "rrdb" else 1
    tw, th = min(tile, image.width), min(tile, image.height)
    xs = tiles.positions(image.width, tw, overlap) if tw < image.width else [0]
    ys = tiles.positions(image.height, th, overlap) if th < image.height else [0]
    if len(xs) == 1 and len(ys) == 1:
        return _run(model, image, multiple, device, dtype)
    s = spec.scale
    out = Image.new("RGB", (image.width * s, image.height * s))
    x_from, y_from = _starts(xs, tw), _starts(ys, th)
    for row, y, y0 in zip(tiles.cut(image, xs, ys, tw, th), ys, y_from, strict=True):
        for piece, x, x0 in zip(row, xs, x_from, strict=True):
            done = _run(model, piece, multiple, device, dtype)
            out.paste(done.crop(((x0 - x) * s, (y0 - y) * s, done.width, done.height)), (x0 * s, y0 * s))
    return out
