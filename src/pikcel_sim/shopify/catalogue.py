"""A deterministic demo catalogue: product names and Pillow-drawn product photos.

Photos are drawn on demand (objects on plain coloured backgrounds with a soft shadow)
and cached, so start-up stays fast however many shops and products there are.
"""

from __future__ import annotations

import io
import random
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("bottle", "circle", "box", "jar")

_NOUNS: dict[str, tuple[str, ...]] = {
    "bottle": ("Serum Bottle", "Water Bottle", "Perfume", "Body Oil", "Shampoo", "Hot Sauce"),
    "circle": ("Ceramic Plate", "Wall Clock", "Coaster Set", "Vinyl Record", "Hand Mirror"),
    "box": ("Gift Box", "Leather Wallet", "Notebook", "Soap Bar", "Phone Case", "Tea Tin"),
    "jar": ("Face Cream", "Scented Candle", "Honey Jar", "Lip Balm", "Spice Jar"),
}
_ADJECTIVES = (
    "Amber",
    "Sage",
    "Coral",
    "Midnight",
    "Ivory",
    "Terracotta",
    "Ocean",
    "Lavender",
    "Charcoal",
    "Golden",
    "Mint",
    "Rose",
    "Walnut",
    "Arctic",
    "Citrus",
    "Forest",
)
_BACKGROUNDS = (
    (236, 229, 218),
    (214, 230, 242),
    (242, 220, 219),
    (222, 238, 222),
    (240, 236, 210),
    (228, 222, 240),
    (210, 214, 220),
    (250, 246, 240),
    (246, 224, 200),
    (200, 226, 224),
)
_OBJECT_COLOURS = (
    (184, 92, 56),
    (64, 110, 140),
    (46, 46, 52),
    (150, 40, 60),
    (90, 130, 80),
    (210, 160, 60),
    (120, 84, 150),
    (30, 90, 90),
    (200, 200, 205),
    (160, 110, 70),
)
_VENDORS = ("Pikcel Goods", "Northwind", "Maple & Co", "Studio Nine", "Harbor Supply")


@dataclass(frozen=True)
class ProductSpec:
    """What the store needs to create one seeded product."""

    index: int
    title: str
    handle: str
    shape: str
    vendor: str
    product_type: str
    tags: tuple[str, ...]
    images: tuple[tuple[int, int, str], ...]  # (width, height, "png" | "jpg") per image


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _rng(*parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in parts))


def product_specs(seed: int, shop: str, count: int) -> list[ProductSpec]:
    """`count` distinct products for `shop`, identical for the same seed."""
    rng = _rng("catalogue", seed, shop)
    specs: list[ProductSpec] = []
    seen: set[str] = set()
    for index in range(count):
        shape = SHAPES[rng.randrange(len(SHAPES))]
        title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS[shape])}"
        if title in seen:
            title = f"{title} No. {index + 1}"
        seen.add(title)
        n_images = rng.choice((1, 1, 2, 2, 3))
        images = tuple(
            (size, size, rng.choice(("png", "jpg")))
            for size in (rng.choice((640, 720, 800)) for _ in range(n_images))
        )
        specs.append(
            ProductSpec(
                index=index,
                title=title,
                handle=slugify(title),
                shape=shape,
                vendor=rng.choice(_VENDORS),
                product_type=_NOUNS[shape][0].split()[-1],
                tags=(shape, title.split()[0].lower()),
                images=images,
            )
        )
    return specs


def _lighter(colour: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    r, g, b = colour
    return (
        int(r + (255 - r) * amount),
        int(g + (255 - g) * amount),
        int(b + (255 - b) * amount),
    )


def _darker(colour: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    r, g, b = colour
    return (int(r * (1 - amount)), int(g * (1 - amount)), int(b * (1 - amount)))


def draw_product_photo(
    seed: int, shop: str, index: int, image_index: int, width: int, height: int, shape: str
) -> Image.Image:
    """One product photo: `shape` on a plain coloured background with a soft shadow."""
    rng = _rng("photo", seed, shop, index, image_index)
    background = _BACKGROUNDS[rng.randrange(len(_BACKGROUNDS))]
    colour = _OBJECT_COLOURS[(index * 3 + rng.randrange(3)) % len(_OBJECT_COLOURS)]
    image = Image.new("RGB", (width, height), background)

    # A gentle floor: the lower part of the frame slightly darker.
    floor = Image.new("RGB", (width, height), _darker(background, 0.06))
    mask = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(floor, image, mask)

    scale = rng.uniform(0.78, 0.95)
    cx = width / 2 + rng.uniform(-0.05, 0.05) * width
    base_y = height * rng.uniform(0.80, 0.86)
    obj_h = height * 0.62 * scale
    obj_w = {"bottle": 0.30, "circle": 0.58, "box": 0.52, "jar": 0.40}[shape] * width * scale

    shadow = Image.new("L", (width, height), 0)
    ImageDraw.Draw(shadow).ellipse(
        (cx - obj_w * 0.62, base_y - height * 0.025, cx + obj_w * 0.62, base_y + height * 0.035),
        fill=110,
    )
    shadow = shadow.filter(ImageFilter.GaussianBlur(max(4, width // 60)))
    image.paste(_darker(background, 0.45), (0, 0), shadow)

    draw = ImageDraw.Draw(image)
    light = _lighter(colour, 0.35)
    dark = _darker(colour, 0.25)
    left, right = cx - obj_w / 2, cx + obj_w / 2
    top = base_y - obj_h
    if shape == "bottle":
        neck_w = obj_w * 0.36
        body_top = top + obj_h * 0.32
        draw.rounded_rectangle((left, body_top, right, base_y), radius=obj_w * 0.22, fill=colour)
        draw.polygon(
            [
                (left + obj_w * 0.1, body_top + 4),
                (cx - neck_w / 2, top + obj_h * 0.16),
                (cx + neck_w / 2, top + obj_h * 0.16),
                (right - obj_w * 0.1, body_top + 4),
            ],
            fill=colour,
        )
        draw.rectangle(
            (cx - neck_w / 2, top + obj_h * 0.08, cx + neck_w / 2, top + obj_h * 0.2), fill=colour
        )
        draw.rounded_rectangle(
            (cx - neck_w * 0.65, top, cx + neck_w * 0.65, top + obj_h * 0.1), radius=4, fill=dark
        )
        draw.rounded_rectangle(
            (
                left + obj_w * 0.16,
                body_top + obj_h * 0.2,
                right - obj_w * 0.16,
                base_y - obj_h * 0.12,
            ),
            radius=6,
            fill=_lighter(colour, 0.75),
        )
        draw.rectangle(
            (
                left + obj_w * 0.08,
                body_top + obj_h * 0.05,
                left + obj_w * 0.14,
                base_y - obj_h * 0.08,
            ),
            fill=light,
        )
    elif shape == "circle":
        r = min(obj_w, obj_h) / 2
        cy = base_y - r
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        draw.ellipse((cx - r * 0.78, cy - r * 0.78, cx + r * 0.78, cy + r * 0.78), fill=light)
        draw.ellipse((cx - r * 0.18, cy - r * 0.18, cx + r * 0.18, cy + r * 0.18), fill=dark)
        draw.arc(
            (cx - r * 0.92, cy - r * 0.92, cx + r * 0.92, cy + r * 0.92),
            200,
            250,
            fill=_lighter(colour, 0.8),
            width=max(3, int(r * 0.05)),
        )
    elif shape == "box":
        box_top = base_y - obj_h * 0.7
        depth = obj_h * 0.12
        draw.polygon(
            [
                (left, box_top),
                (left + depth, box_top - depth),
                (right + depth, box_top - depth),
                (right, box_top),
            ],
            fill=light,
        )
        draw.polygon(
            [
                (right, box_top),
                (right + depth, box_top - depth),
                (right + depth, base_y - depth),
                (right, base_y),
            ],
            fill=dark,
        )
        draw.rounded_rectangle((left, box_top, right, base_y), radius=6, fill=colour)
        draw.rectangle(
            (cx - obj_w * 0.06, box_top, cx + obj_w * 0.06, base_y), fill=_lighter(colour, 0.6)
        )
    else:  # jar
        lid_h = obj_h * 0.16
        body_top = top + lid_h
        draw.rounded_rectangle((left, body_top, right, base_y), radius=obj_w * 0.16, fill=colour)
        draw.rounded_rectangle(
            (left + obj_w * 0.04, top, right - obj_w * 0.04, body_top + 6), radius=8, fill=dark
        )
        draw.rounded_rectangle(
            (
                left + obj_w * 0.14,
                body_top + obj_h * 0.2,
                right - obj_w * 0.14,
                base_y - obj_h * 0.2,
            ),
            radius=8,
            fill=_lighter(colour, 0.8),
        )
        draw.rectangle(
            (
                left + obj_w * 0.06,
                body_top + obj_h * 0.06,
                left + obj_w * 0.12,
                base_y - obj_h * 0.08,
            ),
            fill=light,
        )
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "jpg":
        image.save(buffer, "JPEG", quality=88)
    else:
        image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()


class PhotoCache:
    """A small thread-safe LRU cache of encoded photos."""

    def __init__(self, maxsize: int = 128) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, seed: int, shop: str, spec: ProductSpec, image_index: int) -> bytes:
        width, height, fmt = spec.images[image_index]
        key = (seed, shop, spec.index, image_index)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = encode(
            draw_product_photo(seed, shop, spec.index, image_index, width, height, spec.shape), fmt
        )
        with self._lock:
            self._items[key] = data
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return data
