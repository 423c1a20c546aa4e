"""The simulator's Pillow tools, directly (no HTTP)."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from pikcel_sim.pikcel import imaging


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def product_on(bg: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    image = Image.new("RGB", size, bg)
    w, h = size
    ImageDraw.Draw(image).rectangle((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=(200, 30, 30))
    return image


def test_border_colour_is_the_median_of_the_frame() -> None:
    image = product_on((10, 20, 30))
    image.putpixel((0, 0), (255, 255, 255))  # one odd pixel does not move the median
    assert imaging.border_colour(image) == (10, 20, 30)


def test_background_mask_only_takes_edge_connected_pixels() -> None:
    image = product_on((0, 0, 255))
    ImageDraw.Draw(image).rectangle((28, 20, 36, 28), fill=(0, 0, 255))  # enclosed hole
    mask = imaging.background_mask(image, 20)
    assert mask.getpixel((0, 0)) == 255 and mask.getpixel((63, 47)) == 255
    assert mask.getpixel((20, 15)) == 0 and mask.getpixel((32, 24)) == 0


def test_large_images_take_the_reduced_path_without_leaking() -> None:
    image = Image.new("RGB", (1500, 1100), (240, 240, 240))
    draw = ImageDraw.Draw(image)
    draw.ellipse((300, 200, 1200, 900), fill=(20, 120, 20))
    draw.rectangle((700, 500, 800, 600), fill=(240, 240, 240))  # enclosed, same as background
    draw.line((0, 1000, 1499, 1000), fill=(0, 0, 0), width=1)  # a thin line across
    out = imaging.remove_background(image, tolerance=30)
    assert out.getpixel((5, 5))[3] == 0 and out.getpixel((1495, 1095))[3] == 0
    assert out.getpixel((750, 550))[3] == 255 and out.getpixel((400, 550))[3] == 255
    assert out.getpixel((750, 1000))[3] == 255  # the line is not background
    assert out.getpixel((750, 1050))[3] == 0  # below the line: reached from the bottom edge


def test_tolerance_and_existing_transparency() -> None:
    image = product_on((100, 100, 100))
    image.putpixel((1, 1), (130, 100, 100))
    strict = imaging.remove_background(image, tolerance=10)
    loose = imaging.remove_background(image, tolerance=40)
    assert strict.getpixel((1, 1))[3] == 255 and loose.getpixel((1, 1))[3] == 0
    rgba = product_on((100, 100, 100)).convert("RGBA")
    rgba.putpixel((0, 0), (1, 2, 3, 0))
    assert imaging.remove_background(rgba).getpixel((0, 0))[3] == 0


def test_upscale_white_background_enhance_shadow_webp() -> None:
    data = encoded(product_on((0, 0, 255), (40, 20)))
    up = imaging.process("upscale-2x", data, {"scale": 2})
    assert (up.width, up.height) == (80, 40) and up.ext == "png"
    white = imaging.process("white-background", data, {"size": 100, "padding": 10})
    square = Image.open(io.BytesIO(white.data))
    assert square.size == (100, 100) and square.getpixel((50, 5)) == (255, 255, 255)
    assert square.getpixel((50, 50)) == (200, 30, 30)
    enhanced = imaging.process("auto-enhance", data, {})
    assert (enhanced.width, enhanced.height) == (40, 20)
    shadow = imaging.process("drop-shadow", data, {"offset_x": 5, "offset_y": 5, "blur": 0,
                                                   "background": "#ffffff"})
    assert (shadow.width, shadow.height) == (50, 30)
    webp = imaging.process("convert-webp", data, {"quality": 60})
    assert webp.mime == "image/webp" and Image.open(io.BytesIO(webp.data)).format == "WEBP"
    jpeg = imaging.process("background-removal", data, {"output_format": "jpeg"})
    assert Image.open(io.BytesIO(jpeg.data)).format == "JPEG" and jpeg.thumbnail_ext == "png"


def test_thumbnails_fit_256() -> None:
    out = imaging.process("upscale-2x", encoded(product_on((0, 0, 255), (400, 100))), {})
    thumb = Image.open(io.BytesIO(out.thumbnail))
    assert thumb.size == (256, 64) and out.thumbnail_mime == "image/jpeg"


@pytest.mark.parametrize(("data", "why"), [
    (b"", "not a supported image"),
    (b"GIF89a garbage", "not a supported image"),
    (encoded(Image.new("RGB", (10, 10))), None),
])
def test_decode_errors_are_readable(data: bytes, why: str | None) -> None:
    if why is None:
        assert imaging.decode(data).size == (10, 10)
        return
    with pytest.raises(imaging.ImageError, match=why):
        imaging.decode(data)


def test_limits() -> None:
    with pytest.raises(imaging.ImageError, match="limit"):
        imaging.upscale(Image.new("RGB", (5000, 10)), 2)
    with pytest.raises(imaging.ImageError, match="colour"):
        imaging.drop_shadow(Image.new("RGB", (10, 10)), background="not-a-colour")
    with pytest.raises(imaging.ImageError, match="unknown tool"):
        imaging.process("paint", encoded(Image.new("RGB", (4, 4))), {})
