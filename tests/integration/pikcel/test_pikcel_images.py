"""Completed simulated jobs carry a real output that differs from the input as the tool says."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from pikcel_support import Origin, SimHandle, red_square_on_blue
from PIL import Image, ImageDraw

from pikcel_jobs.pikcel import PikcelClient


async def run_tool(client: PikcelClient, sim: SimHandle, tool: str, url: str,
                   **parameters: Any) -> tuple[dict[str, Any], Image.Image]:
    job = await client.dispatch(tool, url, parameters=parameters or None)
    done = await sim.wait_job(job.id, "completed")
    async with httpx.AsyncClient() as http:
        response = await http.get(done["output_image_url"])
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return done, image


async def test_background_removal_makes_the_edge_connected_background_transparent(
    client: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    source = red_square_on_blue((80, 60))
    ImageDraw.Draw(source).rectangle((35, 25, 45, 35), fill=(20, 40, 220))  # blue hole inside
    done, out = await run_tool(client, sim, "background-removal",
                               origin.add_image("bg.png", source))
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (80, 60)
    for corner in [(0, 0), (79, 0), (0, 59), (79, 59), (10, 30)]:
        assert out.getpixel(corner)[3] == 0, corner
    assert out.getpixel((25, 20)) == (230, 20, 20, 255)  # the product stays opaque
    assert out.getpixel((40, 30))[3] == 255  # background colour not reachable from the edge
    assert done["output_image_url"].endswith(".png")


async def test_background_removal_of_a_noisy_jpeg(client: PikcelClient, sim: SimHandle,
                                                  origin: Origin) -> None:
    source = Image.new("RGB", (120, 90), (240, 240, 240))
    ImageDraw.Draw(source).ellipse((30, 20, 90, 70), fill=(30, 90, 30))
    buffer = io.BytesIO()
    source.save(buffer, "JPEG", quality=70)
    url = origin.add("bg.jpg", buffer.getvalue(), "image/jpeg")
    _, out = await run_tool(client, sim, "background-removal", url)
    assert out.getpixel((2, 2))[3] == 0 and out.getpixel((60, 45))[3] == 255


async def test_upscale_doubles_the_size(client: PikcelClient, sim: SimHandle,
                                        origin: Origin) -> None:
    _, out = await run_tool(client, sim, "upscale-2x",
                            origin.add_image("up.png", red_square_on_blue((50, 30))))
    assert out.size == (100, 60)
    assert out.convert("RGB").getpixel((50, 30)) == (230, 20, 20)


async def test_white_background_is_a_square_white_canvas(client: PikcelClient, sim: SimHandle,
                                                         origin: Origin) -> None:
    _, out = await run_tool(client, sim, "white-background",
                            origin.add_image("wb.png", red_square_on_blue((80, 40))))
    assert out.width == out.height == 80 and out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((40, 2)) == (255, 255, 255)  # letterbox above the 80x40 picture
    assert out.getpixel((40, 40)) != (255, 255, 255)


async def test_auto_enhance_stretches_contrast(client: PikcelClient, sim: SimHandle,
                                               origin: Origin) -> None:
    flat = Image.new("RGB", (60, 60), (110, 110, 110))
    ImageDraw.Draw(flat).rectangle((20, 20, 40, 40), fill=(140, 140, 140))
    _, out = await run_tool(client, sim, "auto-enhance", origin.add_image("ae.png", flat))
    low, high = out.convert("L").getextrema()
    assert low < 60 and high > 200  # 110..140 stretched towards 0..255
    assert out.size == flat.size


async def test_drop_shadow_grows_the_canvas_and_darkens_below_right(
    client: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    product = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    ImageDraw.Draw(product).rectangle((10, 10, 29, 29), fill=(250, 200, 0, 255))
    done, out = await run_tool(client, sim, "drop-shadow", origin.add_image("ds.png", product),
                               offset_x=8, offset_y=8, blur=2, opacity=0.8)
    margin = 4 + 8
    assert out.size == (40 + 2 * margin, 40 + 2 * margin) and out.mode == "RGBA"
    assert out.getpixel((margin + 20, margin + 20)) == (250, 200, 0, 255)
    shadow = out.getpixel((margin + 34, margin + 34))  # below-right of the product
    assert shadow[:3] == (0, 0, 0) and shadow[3] > 100
    assert out.getpixel((0, 0))[3] == 0
    assert done["parameters"]["offset_x"] == 8


async def test_convert_webp_outputs_webp(client: PikcelClient, sim: SimHandle,
                                         origin: Origin) -> None:
    done, out = await run_tool(client, sim, "convert-webp", origin.add_image(
        "cw.png", red_square_on_blue()), quality=70)
    assert out.format == "WEBP" and out.size == (80, 60)
    assert done["output_image_url"].endswith(".webp")
    async with httpx.AsyncClient() as http:
        response = await http.get(done["output_image_url"])
    assert response.headers["content-type"] == "image/webp"


async def test_thumbnail_is_small(client: PikcelClient, sim: SimHandle, origin: Origin) -> None:
    done, _ = await run_tool(client, sim, "upscale-2x",
                             origin.add_image("big.png", red_square_on_blue((300, 200))))
    async with httpx.AsyncClient() as http:
        thumb = Image.open(io.BytesIO((await http.get(done["thumbnail_url"])).content))
    assert max(thumb.size) == 256


@pytest.mark.parametrize(("name", "expected"), [
    ("not-an-image.png", "Could not read the input image: not a supported image"),
    ("missing.png", "Could not read the input image: HTTP 404"),
])
async def test_unreadable_input_fails_the_job_clearly(
    client: PikcelClient, sim: SimHandle, origin: Origin, name: str, expected: str,
) -> None:
    job = await client.dispatch("background-removal", f"{origin.url}/img/{name}")
    done = await sim.wait_job(job.id)
    assert done["status"] == "failed"
    assert done["error_message"].startswith(expected), done["error_message"]
    assert done["credits_used"] == 0 and done["completed_at"] is not None
    assert (await client.get_profile()).credits_balance == 1000


async def test_unreachable_and_oversized_inputs_fail(client: PikcelClient, sim: SimHandle,
                                                      origin: Origin) -> None:
    job = await client.dispatch("convert-webp", "http://127.0.0.1:9/x.png")
    done = await sim.wait_job(job.id)
    assert done["status"] == "failed" and "could not fetch" in done["error_message"]

    sim.reset(max_input_bytes=100)
    big = origin.add_image("too-big.png", Image.effect_noise((64, 64), 50).convert("RGB"))
    job = await client.dispatch("convert-webp", big)
    done = await sim.wait_job(job.id)
    assert done["status"] == "failed" and "larger than" in done["error_message"]


async def test_forced_completion_of_an_unreadable_input_still_completes(
    client: PikcelClient, sim: SimHandle,
) -> None:
    sim.configure(auto_progress=False)
    job = await client.dispatch("upscale-2x", "http://127.0.0.1:9/nothing.png")
    forced = sim.force(job.id, "complete")
    assert forced["status"] == "completed" and forced["output_image_url"]
    assert forced["credits_used"] == 2


async def test_progress_rises_through_processing(client: PikcelClient, sim: SimHandle,
                                                 origin: Origin) -> None:
    sim.configure(auto_progress=False)
    job = await client.dispatch("auto-enhance", origin.add_image("pr.png", red_square_on_blue()))
    assert (await client.get_job(job.id)).progress == 0
    assert sim.force(job.id, "start")["progress"] == 10
    seen = [sim.force(job.id, "progress")["progress"] for _ in range(5)]
    assert seen == [30, 50, 70, 90, 90]
    assert sim.force(job.id, "progress", progress=95)["progress"] == 95
    processing = await client.get_job(job.id)
    assert processing.status == "processing" and processing.started_at is not None
