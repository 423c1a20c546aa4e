"""The image work behind each tool, with Pillow (run it in a thread: it is CPU-bound)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import (
    Image,
    ImageChops,
    ImageColor,
    ImageDraw,
    ImageEnhance,
    ImageFilter,
    ImageOps,
    ImageStat,
)

MAX_PIXELS = 40_000_000
MAX_OUTPUT_SIDE = 8192
THUMBNAIL_SIDE = 256
# Background reconstruction runs on a reduced mask first when the image is larger.
_RECON_SIDE = 384

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class ImageError(Exception):
    """The input cannot be used; the message is shown to the merchant."""


@dataclass(frozen=True)
class Output:
    data: bytes
    ext: str
    mime: str
    width: int
    height: int
    thumbnail: bytes
    thumbnail_ext: str
    thumbnail_mime: str


def decode(data: bytes) -> Image.Image:
    """Open and fully load an image, or raise ImageError with a readable reason."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"the image is too large ({width}x{height} pixels)")
            image = ImageOps.exif_transpose(probe)
            image.load()
            return image
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"the image is too large ({exc})") from None
    except Exception as exc:  # Pillow raises many kinds for bad input
        raise ImageError(f"not a supported image ({type(exc).__name__}: {exc})") from None


def process(tool_id: str, data: bytes, parameters: dict[str, Any]) -> Output:
    """Run `tool_id` on the encoded image `data`; returns the encoded output and a thumbnail."""
    image = decode(data)
    fmt = str(parameters.get("output_format") or "png").lower()
    if tool_id == "background-removal":
        result = remove_background(
            image, tolerance=int(parameters.get("tolerance", 40)),
            feather=float(parameters.get("feather", 0) or 0),
        )
    elif tool_id == "upscale-2x":
        result = upscale(image, float(parameters.get("scale", 2) or 2))
    elif tool_id == "white-background":
        size = parameters.get("size")
        result = white_background(
            image, size=int(size) if size else None,
            padding=float(parameters.get("padding", 5) or 0),
        )
    elif tool_id == "auto-enhance":
        result = auto_enhance(
            image, cutoff=float(parameters.get("cutoff", 1) or 0),
            sharpness=float(parameters.get("sharpness", 1.5)),
            color=float(parameters.get("color", 1.1)),
        )
    elif tool_id == "drop-shadow":
        result = drop_shadow(
            image,
            offset=(int(parameters.get("offset_x", 12)), int(parameters.get("offset_y", 12))),
            blur=float(parameters.get("blur", 10)),
            opacity=float(parameters.get("opacity", 0.5)),
            background=parameters.get("background"),
        )
    elif tool_id == "convert-webp":
        result, fmt = image, "webp"
    else:
        raise ImageError(f"unknown tool {tool_id!r}")
    encoded = encode(
        result, fmt, quality=int(parameters.get("quality", 90)),
        lossless=bool(parameters.get("lossless", False)),
    )
    thumb_fmt = "png" if _has_alpha(result) else "jpeg"
    thumb = result.copy()
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return Output(
        encoded, fmt, _MIME[fmt], result.width, result.height,
        encode(thumb, thumb_fmt, quality=80), thumb_fmt, _MIME[thumb_fmt],
    )


def encode(image: Image.Image, fmt: str, *, quality: int = 90, lossless: bool = False) -> bytes:
    out = io.BytesIO()
    if fmt == "jpeg":
        if _has_alpha(image):
            image = _flatten(image, (255, 255, 255))
        image.convert("RGB").save(out, "JPEG", quality=quality, optimize=True)
    elif fmt == "webp":
        mode = "RGBA" if _has_alpha(image) else "RGB"
        image.convert(mode).save(out, "WEBP", quality=quality, lossless=lossless, method=4)
    else:
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            image = image.convert("RGBA" if _has_alpha(image) else "RGB")
        image.save(out, "PNG", compress_level=6)
    return out.getvalue()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )


def _flatten(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*colour, 255))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


def border_colour(image: Image.Image) -> tuple[int, int, int]:
    """Median colour of the one-pixel frame around the image."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    strips = [
        rgb.crop((0, 0, w, 1)), rgb.crop((0, h - 1, w, h)),
        rgb.crop((0, 0, 1, h)), rgb.crop((w - 1, 0, w, h)),
    ]
    frame = Image.new("RGB", (2 * w + 2 * h, 1))
    x = 0
    for strip in strips:
        flat = strip.transpose(Image.Transpose.ROTATE_90) if strip.height > 1 else strip
        frame.paste(flat, (x, 0))
        x += flat.width
    median = ImageStat.Stat(frame).median
    return int(median[0]), int(median[1]), int(median[2])


def _near_mask(image: Image.Image, colour: tuple[int, int, int], tolerance: int) -> Image.Image:
    """255 where every channel is within `tolerance` of `colour` (or already transparent)."""
    rgb = image.convert("RGB")
    diff = ImageChops.difference(rgb, Image.new("RGB", rgb.size, colour))
    r, g, b = diff.split()
    worst = ImageChops.lighter(ImageChops.lighter(r, g), b)
    mask = worst.point(lambda v: 255 if v <= tolerance else 0)
    if _has_alpha(image):
        clear = image.convert("RGBA").getchannel("A").point(lambda v: 255 if v == 0 else 0)
        mask = ImageChops.lighter(mask, clear)
    return mask


def _frame_seed(mask: Image.Image) -> Image.Image:
    """The part of `mask` lying on the image's outer one-pixel frame."""
    w, h = mask.size
    frame = Image.new("L", mask.size, 255)
    if w > 2 and h > 2:
        frame.paste(0, (1, 1, w - 1, h - 1))
    return ImageChops.darker(frame, mask)


def _flood_from_frame(mask: Image.Image) -> Image.Image:
    """255 where `mask` is 255 and connected to the image's edge through 255s (a flood fill
    from every edge pixel at once: the mask is framed by a 255 border, filled from a corner)."""
    w, h = mask.size
    framed = Image.new("L", (w + 2, h + 2), 255)
    framed.paste(mask, (1, 1))
    ImageDraw.floodfill(framed, (0, 0), 128, thresh=0)
    return framed.crop((1, 1, w + 1, h + 1)).point(lambda v: 255 if v == 128 else 0)


def _reconstruct(seed: Image.Image, mask: Image.Image, max_rounds: int) -> Image.Image:
    """Grow `seed` inside `mask` (8-connected) until it stops changing."""
    grow = ImageFilter.MaxFilter(3)
    current = seed
    for _ in range(max_rounds):
        nxt = ImageChops.darker(current.filter(grow), mask)
        if ImageChops.difference(nxt, current).getbbox() is None:
            return nxt
        current = nxt
    return current


def background_mask(image: Image.Image, tolerance: int = 40) -> Image.Image:
    """255 on background pixels connected to the image's edge, 0 elsewhere.

    The background colour is the median colour of the border; pixels within `tolerance`
    of it are candidates, and only candidates reachable from the edge through other
    candidates count (a flood fill from every edge pixel). Large images are flood-filled
    on a conservatively reduced mask first (a reduced pixel is a candidate only when its
    whole block is, so the fill never leaks through a thin outline), then the result is
    grown at full size into the blocks along the edges of the background.
    """
    near = _near_mask(image, border_colour(image), tolerance)
    w, h = near.size
    factor = max(1, -(-max(w, h) // _RECON_SIDE))
    if factor == 1:
        return _flood_from_frame(near)
    small = near.reduce(factor).point(lambda v: 255 if v == 255 else 0)
    seed = ImageChops.darker(
        _flood_from_frame(small).resize((small.width * factor, small.height * factor),
                                        Image.Resampling.NEAREST).crop((0, 0, w, h)),
        near,
    )
    seed = ImageChops.lighter(seed, _frame_seed(near))
    return _reconstruct(seed, near, w * h)


def remove_background(
    image: Image.Image, *, tolerance: int = 40, feather: float = 0
) -> Image.Image:
    rgba = image.convert("RGBA")
    bg = background_mask(rgba, tolerance)
    alpha = ImageChops.darker(rgba.getchannel("A"), ImageOps.invert(bg))
    if feather > 0:
        alpha = ImageChops.darker(alpha, alpha.filter(ImageFilter.GaussianBlur(feather)))
    rgba.putalpha(alpha)
    return rgba


def upscale(image: Image.Image, scale: float = 2) -> Image.Image:
    width, height = round(image.width * scale), round(image.height * scale)
    if max(width, height) > MAX_OUTPUT_SIDE:
        raise ImageError(
            f"the upscaled image would be {width}x{height}, above the {MAX_OUTPUT_SIDE}px limit"
        )
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    return image.resize((width, height), Image.Resampling.LANCZOS)


def white_background(
    image: Image.Image, *, size: int | None = None, padding: float = 5
) -> Image.Image:
    """Fit the image (alpha flattened onto white) into a square white canvas."""
    flat = _flatten(image, (255, 255, 255)) if _has_alpha(image) else image.convert("RGB")
    side = size or max(flat.size)
    inner = max(1, round(side * (1 - 2 * padding / 100)))
    fitted = ImageOps.contain(flat, (inner, inner), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(fitted, ((side - fitted.width) // 2, (side - fitted.height) // 2))
    return canvas


def auto_enhance(
    image: Image.Image, *, cutoff: float = 1, sharpness: float = 1.5, color: float = 1.1
) -> Image.Image:
    alpha = image.convert("RGBA").getchannel("A") if _has_alpha(image) else None
    rgb = ImageOps.autocontrast(image.convert("RGB"), cutoff=cutoff)
    rgb = ImageEnhance.Color(rgb).enhance(color)
    rgb = ImageEnhance.Sharpness(rgb).enhance(sharpness)
    if alpha is not None:
        rgb.putalpha(alpha)
    return rgb


def drop_shadow(
    image: Image.Image, *, offset: tuple[int, int] = (12, 12), blur: float = 10,
    opacity: float = 0.5, background: str | None = None,
) -> Image.Image:
    """The image over a blurred dark copy of its silhouette, on a canvas grown to fit."""
    rgba = image.convert("RGBA")
    margin = int(blur * 2) + max(abs(offset[0]), abs(offset[1]))
    size = (rgba.width + 2 * margin, rgba.height + 2 * margin)
    silhouette = rgba.getchannel("A").point(lambda v: round(v * opacity))
    shadow_alpha = Image.new("L", size, 0)
    shadow_alpha.paste(silhouette, (margin + offset[0], margin + offset[1]))
    if blur > 0:
        shadow_alpha = shadow_alpha.filter(ImageFilter.GaussianBlur(blur))
    shadow = Image.new("RGBA", size, (0, 0, 0, 0))
    shadow.putalpha(shadow_alpha)
    if background:
        try:
            colour = ImageColor.getrgb(background)[:3]
        except ValueError:
            raise ImageError(f"unknown background colour {background!r}") from None
        canvas = Image.new("RGBA", size, (*colour, 255))
        canvas.alpha_composite(shadow)
    else:
        canvas = shadow
    canvas.alpha_composite(rgba, (margin, margin))
    return canvas
