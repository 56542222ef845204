"""ControlNet preprocessors run by the SD worker, by the A1111 ControlNet extension's `module` names: `canny`
(edges, `threshold_a` / `threshold_b` the low and high hysteresis thresholds) and the line-art `invert`."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageOps

NONE = frozenset({"", "none"})
INVERT = frozenset({"invert", "invert (from white bg & black line)"})
CANNY = "canny"
CANNY_DEFAULTS = (100.0, 200.0)  # the extension's threshold_a / threshold_b for canny


def known(module: str) -> bool:
    """Whether `module` (case-insensitive) is run here."""
    name = module.lower()
    return name in NONE or name in INVERT or name == CANNY


def run(module: str, image: Image.Image, low: float, high: float) -> Image.Image:
    """The control image `module` makes of `image` (RGB in, RGB out)."""
    name = module.lower()
    if name in INVERT:
        return ImageOps.invert(image.convert("RGB"))
    if name == CANNY:
        return canny(image, low, high)
    return image


def canny(image: Image.Image, low: float, high: float) -> Image.Image:
    """Canny edges, white on black, computed as OpenCV's `Canny` computes them (which the A1111 extension
    calls): 3x3 Sobel gradients of each colour channel, the channel with the largest |gx| + |gy| at each pixel,
    thinned to the maxima across each edge, then hysteresis: above `high` an edge, above `low` an edge where it
    connects to one. No smoothing, as in OpenCV."""
    import numpy as np
    from scipy import ndimage

    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    gx = np.stack([ndimage.sobel(rgb[..., c], axis=1) for c in range(3)])
    gy = np.stack([ndimage.sobel(rgb[..., c], axis=0) for c in range(3)])
    strongest = (np.abs(gx) + np.abs(gy)).argmax(axis=0)[None]
    gx, gy = np.take_along_axis(gx, strongest, 0)[0], np.take_along_axis(gy, strongest, 0)[0]
    thin = _local_maxima(np.abs(gx) + np.abs(gy), np.degrees(np.arctan2(gy, gx)) % 180)
    strong, weak = thin > high, thin > low
    regions, count = ndimage.label(weak, structure=np.ones((3, 3)))
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(regions[strong])] = True
    keep[0] = False
    return Image.fromarray((keep[regions] * 255).astype(np.uint8)).convert("RGB")


def _local_maxima(magnitude: Any, angle: Any) -> Any:
    """The magnitude where it is a maximum across the edge direction, else 0. Ties go as in OpenCV: along x and
    y a pixel must beat its left (upper) neighbour and at least equal its right (lower) one; diagonally it must
    beat both."""
    import numpy as np

    padded = np.pad(magnitude, 1)
    h, w = magnitude.shape

    def shifted(dy: int, dx: int) -> Any:
        return padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    # gradient direction in four bins: across a vertical edge (0°), the diagonals (45°, 135°), a horizontal one
    bins = (np.round(angle / 45) % 4 * 45).astype(int)
    beats = {
        0: (magnitude > shifted(0, -1)) & (magnitude >= shifted(0, 1)),
        90: (magnitude > shifted(-1, 0)) & (magnitude >= shifted(1, 0)),
        45: (magnitude > shifted(1, 1)) & (magnitude > shifted(-1, -1)),
        135: (magnitude > shifted(1, -1)) & (magnitude > shifted(-1, 1)),
    }
    out = np.zeros_like(magnitude)
    for degrees, wins in beats.items():
        here = (bins == degrees) & wins
        out[here] = magnitude[here]
    return out
