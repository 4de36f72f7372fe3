"""`color_jitter`: brightness, contrast, saturation and hue factors drawn per sample; pixels only.

Offline: albumentations' `ColorJitter` (the drop-in of `pipeline.augment.albu`; it shuffles the
order of the four steps); online: the four steps in that order, saturation and hue on colour
batches only.
"""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import ALL_TARGETS, Op, Param, fail, named


def build(op: Any, channels: int, T: Any) -> Any:
    """`ColorJitter` with factor ranges [1-f, 1+f] (never below 0) and hue in [-h, h]."""
    k = op.params
    b, c, s, h = k["brightness"], k["contrast"], k["saturation"], k["hue"]
    return named(T.ColorJitter, op.name)(brightness=(max(0.0, 1 - b), 1 + b), contrast=(max(0.0, 1 - c), 1 + c),
                                         saturation=(max(0.0, 1 - s), 1 + s), hue=(-h, h), p=op.p)


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """Brightness, contrast, then saturation and hue (colour batches), each sample its own factors."""
    from pipeline.augment import online as O

    k = op.params
    n, c = x.shape[:2]
    b, ct, s, hue = k["brightness"], k["contrast"], k["saturation"], k["hue"]
    fb = O.uniform(gen, n, max(0.0, 1 - b), 1 + b).to(x.dtype).view(-1, 1, 1, 1).to(x.device)
    fc = O.uniform(gen, n, max(0.0, 1 - ct), 1 + ct).to(x.dtype).view(-1, 1, 1, 1).to(x.device)
    fs = O.uniform(gen, n, max(0.0, 1 - s), 1 + s).to(x.dtype).view(-1, 1, 1, 1).to(x.device)
    fh = O.uniform(gen, n, -hue, hue).to(x.dtype).to(x.device)
    out = (x * fb).clamp(0, 255)
    mean = O.grey(out).mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * fc + mean).clamp(0, 255)
    if c == 3:
        g = O.grey(out)
        out = ((out - g) * fs + g).clamp(0, 255)
        if hue > 0:
            out = O.hue_rotate(out, fh)
    return out


def check(where: str, params: dict[str, Any]) -> None:
    """A hue shift is at most half a turn."""
    if params["hue"] > 0.5:
        raise fail(where, "hue", "a number in [0, 0.5]", params["hue"])


OPS = (
    Op("color_jitter", "single", {
        "brightness": Param("number", 0.2, "factor in [1-b, 1+b]"),
        "contrast": Param("number", 0.2, "factor in [1-c, 1+c]"),
        "saturation": Param("number", 0.0, "factor in [1-s, 1+s] (colour images)"),
        "hue": Param("number", 0.0, "hue shift in [-h, h], h <= 0.5 (colour images)"),
    }, ALL_TARGETS, "brightness, contrast, saturation and hue", offline=build, online=batch, fast="ColorJitter",
        check=check),
)
