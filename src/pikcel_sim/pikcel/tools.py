"""The simulated tool catalogue and bulk templates (stable ids)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CATALOGUE_DATE = "2025-01-15T09:00:00.000Z"


@dataclass(frozen=True)
class ToolSpec:
    id: str
    name: str
    description: str
    category: str
    credits_required: int
    base_price: float
    duration_seconds: float  # processing time at time_scale 1
    default_parameters: dict[str, Any] = field(default_factory=dict)
    # name -> (low, high) numeric bounds; a value outside is a 400 INVALID_PARAMETERS
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self, *, active: bool) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "credits_required": self.credits_required,
            "base_price": self.base_price,
            "is_active": active,
            "default_parameters": dict(self.default_parameters),
            "created_at": CATALOGUE_DATE,
            "updated_at": CATALOGUE_DATE,
        }


TOOLS: dict[str, ToolSpec] = {
    tool.id: tool
    for tool in (
        ToolSpec(
            "background-removal", "Background Removal",
            "Removes the background around the product and leaves it transparent.",
            "editing", 1, 0.05, 6.0,
            {"tolerance": 40, "feather": 0, "output_format": "png"},
            {"tolerance": (0, 255), "feather": (0, 10)},
        ),
        ToolSpec(
            "upscale-2x", "Upscale 2x",
            "Doubles the width and height of the image with Lanczos resampling.",
            "enhancement", 2, 0.10, 8.0,
            {"scale": 2, "output_format": "png"},
            {"scale": (1, 4)},
        ),
        ToolSpec(
            "white-background", "White Background",
            "Places the product on a square white canvas, as marketplaces require.",
            "ecommerce", 1, 0.05, 4.0,
            {"size": None, "padding": 5, "output_format": "png"},
            {"size": (16, 4096), "padding": (0, 45)},
        ),
        ToolSpec(
            "auto-enhance", "Auto Enhance",
            "Stretches contrast and sharpens the image.",
            "enhancement", 1, 0.04, 3.0,
            {"cutoff": 1, "sharpness": 1.5, "color": 1.1, "output_format": "png"},
            {"cutoff": (0, 45), "sharpness": (0, 5), "color": (0, 5)},
        ),
        ToolSpec(
            "drop-shadow", "Drop Shadow",
            "Adds a soft drop shadow under the product.",
            "editing", 1, 0.05, 4.0,
            {"offset_x": 12, "offset_y": 12, "blur": 10, "opacity": 0.5, "background": None,
             "output_format": "png"},
            {"offset_x": (-200, 200), "offset_y": (-200, 200), "blur": (0, 100),
             "opacity": (0, 1)},
        ),
        ToolSpec(
            "convert-webp", "Convert to WebP",
            "Re-encodes the image as WebP for faster storefront pages.",
            "conversion", 1, 0.01, 2.0,
            {"quality": 85, "lossless": False},
            {"quality": (1, 100)},
        ),
    )
}

OUTPUT_FORMATS = ("png", "jpeg", "webp")

TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "tpl_marketplace_white",
        "name": "Marketplace white square",
        "description": "1:1 product shot on pure white with 5% padding (Amazon, Google Shopping).",
        "category": "ecommerce",
        "tool_id": "white-background",
        "parameters": {"size": 2000, "padding": 5},
    },
    {
        "id": "tpl_transparent_cutout",
        "name": "Transparent cut-out",
        "description": "Background removed, PNG with transparency.",
        "category": "editing",
        "tool_id": "background-removal",
        "parameters": {"tolerance": 40},
    },
    {
        "id": "tpl_hires_zoom",
        "name": "High-resolution zoom",
        "description": "Upscaled 2x for zoomable product galleries.",
        "category": "enhancement",
        "tool_id": "upscale-2x",
        "parameters": {"scale": 2},
    },
    {
        "id": "tpl_soft_shadow",
        "name": "Soft shadow on white",
        "description": "Drop shadow on a white background for catalogue pages.",
        "category": "editing",
        "tool_id": "drop-shadow",
        "parameters": {"background": "#ffffff", "blur": 14, "opacity": 0.4},
    },
    {
        "id": "tpl_fast_storefront",
        "name": "Fast storefront WebP",
        "description": "WebP at quality 80 for fast page loads.",
        "category": "conversion",
        "tool_id": "convert-webp",
        "parameters": {"quality": 80},
    },
    {
        "id": "tpl_social_pop",
        "name": "Social media pop",
        "description": "Stronger contrast and colour for social posts.",
        "category": "social",
        "tool_id": "auto-enhance",
        "parameters": {"cutoff": 2, "color": 1.3},
    },
]
for _template in TEMPLATES:
    _template.update(
        thumbnail_url=None, is_public=True, usage_count=0,
        created_at=CATALOGUE_DATE, updated_at=CATALOGUE_DATE,
    )
TEMPLATES_BY_ID = {template["id"]: template for template in TEMPLATES}


def check_parameters(tool: ToolSpec, parameters: dict[str, Any]) -> list[str]:
    """Problems with `parameters` for `tool` (empty when they are usable)."""
    problems: list[str] = []
    for name, (low, high) in tool.bounds.items():
        value = parameters.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{name} must be a number")
        elif not low <= value <= high:
            problems.append(f"{name} must be between {low:g} and {high:g}")
    fmt = parameters.get("output_format")
    if fmt is not None and str(fmt).lower() not in OUTPUT_FORMATS:
        problems.append(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}")
    for name in ("background",):
        value = parameters.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(f"{name} must be a colour string such as #ffffff")
    return problems
