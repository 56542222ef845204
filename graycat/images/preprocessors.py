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
    """Canny edges, white on black: 3x3 Sobel gradients, thinned to the local maxima across each edge, then
    hysteresis (a weak edge is kept where it connects to a strong one). The gradient is measured as OpenCV's
    Canny measures it (unnormalised Sobel, |gx| + |gy|, no smoothing), so the extension's usual thresholds
    (100, 200) pick the same edges."""
    import numpy as np
    from scipy import ndimage

    grey = np.asarray(image.convert("L"), dtype=np.float64)
    gx, gy = ndimage.sobel(grey, axis=1), ndimage.sobel(grey, axis=0)
    thin = _local_maxima(np.abs(gx) + np.abs(gy), np.degrees(np.arctan2(gy, gx)) % 180)
    strong, weak = thin >= high, thin >= low
    regions, count = ndimage.label(weak, structure=np.ones((3, 3)))
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(regions[strong])] = True
    keep[0] = False
    return Image.fromarray((keep[regions] * 255).astype(np.uint8)).convert("RGB")


def _local_maxima(magnitude: Any, angle: Any) -> Any:
    """The magnitude where it is the largest of its two neighbours across the edge direction, else 0."""
    import numpy as np

    padded = np.pad(magnitude, 1)
    h, w = magnitude.shape

    def shifted(dy: int, dx: int) -> Any:
        return padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    # gradient direction, in four bins: across a vertical edge (0°), the diagonals (45°, 135°), a horizontal one
    pairs = {0: ((0, 1), (0, -1)), 45: ((1, 1), (-1, -1)), 90: ((1, 0), (-1, 0)), 135: ((1, -1), (-1, 1))}
    bins = (np.round(angle / 45) % 4 * 45).astype(int)
    out = np.zeros_like(magnitude)
    for degrees, (a, b) in pairs.items():
        here = (bins == degrees) & (magnitude > shifted(*a)) & (magnitude >= shifted(*b))  # a tie: one of two
        out[here] = magnitude[here]
    return out
