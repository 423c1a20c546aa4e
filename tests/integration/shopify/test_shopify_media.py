"""The push steps against the simulator: new, broken, replace, revert, idempotence."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image
from shopify_support import API_KEY, API_SECRET, API_VERSION, ShopifySimHandle

from pikcel_jobs.shopify.auth import exchange_token
from pikcel_jobs.shopify.errors import ShopifyUserError
from pikcel_jobs.shopify.graphql import ShopifyGraphQL, ThrottlePacer
from pikcel_jobs.shopify.media import (
    STAGED_UPLOADS_CREATE,
    add_media_reference,
    alt_marker,
    alt_with_marker,
    attach_media,
    delete_file,
    find_media_by_alt,
    get_media,
    list_product_media,
    remove_media_from_product,
    staged_upload,
    wait_media_ready,
)
from pikcel_jobs.shopify.products import list_products
from pikcel_jobs.shopify.transport import make_async_client


def png(colour: tuple[int, int, int] = (220, 40, 40), size: int = 600) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "PNG")
    return buffer.getvalue()


async def first_product(gql: ShopifyGraphQL) -> tuple[str, list[str]]:
    products, _ = await list_products(gql, first=1)
    return products[0].id, [i.id for i in products[0].images]


async def test_push_new_image(
    gql: ShopifyGraphQL,
    shopify_http: httpx.AsyncClient,
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
) -> None:
    product_id, before = await first_product(gql)
    resource = await staged_upload(gql, shopify_http, png(), "result.png", "image/png")
    alt = alt_with_marker("Background removed", "job-101")
    media_id = await attach_media(gql, product_id, resource, alt)
    assert (await get_media(gql, media_id)).status in ("UPLOADED", "PROCESSING")  # type: ignore[union-attr]
    state = await wait_media_ready(gql, media_id, timeout=10, poll_interval=0.05)
    assert state.ready and state.url and state.width == 600 and state.message is None

    stored = shopify_sim.product(shop_domain, product_id)
    assert [m["id"] for m in stored["media"]] == [*before, media_id]
    assert stored["media"][-1]["alt"] == "Background removed [pikcel:job-101]"
    served = await shopify_http.get(state.url)
    assert served.status_code == 200 and served.content == png()


async def test_broken_image_fails_with_shopify_message(
    gql: ShopifyGraphQL,
    shopify_http: httpx.AsyncClient,
) -> None:
    product_id, _ = await first_product(gql)
    resource = await staged_upload(gql, shopify_http, b"this is not an image", "x.png", "image/png")
    media_id = await attach_media(gql, product_id, resource, alt_with_marker(None, "job-bad"))
    state = await wait_media_ready(gql, media_id, timeout=10, poll_interval=0.05)
    assert state.failed and state.error_codes == ("IMAGE_PROCESSING_FAILURE",)
    assert state.message and "could not be processed" in state.message
    # FAILED media cannot be detached (not READY) but can be deleted.
    with pytest.raises(ShopifyUserError) as caught:
        await remove_media_from_product(gql, product_id, media_id)
    assert caught.value.codes == ["NON_READY_STATE"]
    await delete_file(gql, media_id)
    assert await find_media_by_alt(gql, product_id, alt_marker("job-bad")) is None


async def test_media_failure_rate_fault(
    start_shopify_sim: object,
) -> None:
    sim = start_shopify_sim(media_processing_seconds=0.05)  # type: ignore[operator]
    sim.set_faults(media_failure_rate=1.0)
    shop = "faulty.myshopify.com"
    async with make_async_client(sim.url) as http:
        token = await exchange_token(
            shop, sim.session_token(shop), api_key=API_KEY, api_secret=API_SECRET, http_client=http
        )
        gql = ShopifyGraphQL(shop, token.access_token, API_VERSION, http, pacer=ThrottlePacer())
        product_id, _ = await first_product(gql)
        resource = await staged_upload(gql, http, png(), "ok.png", "image/png")
        media_id = await attach_media(gql, product_id, resource, "[pikcel:f]")
        state = await wait_media_ready(gql, media_id, timeout=5, poll_interval=0.05)
    assert state.failed and state.message


async def test_replace_then_revert(
    gql: ShopifyGraphQL,
    shopify_http: httpx.AsyncClient,
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
) -> None:
    product_id, before = await first_product(gql)
    original = before[0]
    resource = await staged_upload(gql, shopify_http, png((10, 120, 200)), "new.png", "image/png")
    ours = await attach_media(gql, product_id, resource, alt_with_marker("new", "job-7"))
    # Never remove the original before ours is READY (Shopify refuses non-ready files).
    if not (await get_media(gql, ours)).ready:  # type: ignore[union-attr]
        with pytest.raises(ShopifyUserError):
            await remove_media_from_product(gql, product_id, ours)
    assert (await wait_media_ready(gql, ours, timeout=10, poll_interval=0.05)).ready
    await remove_media_from_product(gql, product_id, original)
    media = [m["id"] for m in shopify_sim.product(shop_domain, product_id)["media"]]
    assert original not in media and ours in media
    # The original still exists as a file; nothing was deleted.
    assert (await get_media(gql, original)).ready  # type: ignore[union-attr]
    await remove_media_from_product(gql, product_id, original)  # idempotent

    # Revert: the original back, ours off.
    await add_media_reference(gql, product_id, original)
    await add_media_reference(gql, product_id, original)  # idempotent
    await remove_media_from_product(gql, product_id, ours)
    media = [m["id"] for m in shopify_sim.product(shop_domain, product_id)["media"]]
    assert original in media and ours not in media
    assert sorted(media) == sorted(before)
    detached = {f["id"]: f for f in shopify_sim.files(shop_domain)}
    assert detached[ours]["products"] == []


async def test_attach_is_made_idempotent_by_the_alt_marker(
    gql: ShopifyGraphQL,
    shopify_http: httpx.AsyncClient,
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
) -> None:
    """A worker that crashed after attach finds its media instead of adding a second."""
    product_id, _ = await first_product(gql)
    marker = alt_marker("job-42")
    assert await find_media_by_alt(gql, product_id, marker) is None
    resource = await staged_upload(gql, shopify_http, png(), "r.png", "image/png")
    media_id = await attach_media(gql, product_id, resource, alt_with_marker("Hat", "job-42"))
    # ... crash, retry: each step is repeated; the check finds the earlier attach.
    await staged_upload(gql, shopify_http, png(), "r.png", "image/png")
    assert await find_media_by_alt(gql, product_id, marker) == media_id
    # A marker is a whole token: job-4 and job-420 are other jobs.
    assert await find_media_by_alt(gql, product_id, alt_marker("job-4")) is None
    assert await find_media_by_alt(gql, product_id, alt_marker("job-420")) is None
    stored = shopify_sim.product(shop_domain, product_id)["media"]
    assert sum("pikcel:job-42" in (m["alt"] or "") for m in stored) == 1
    listed = await list_product_media(gql, product_id)
    assert listed is not None and listed[-1].id == media_id
    assert await list_product_media(gql, "gid://shopify/Product/1") is None


async def test_staged_target_checks_the_form(
    gql: ShopifyGraphQL,
    shopify_http: httpx.AsyncClient,
) -> None:
    async def target() -> dict[str, object]:
        payload = await gql.mutate(
            STAGED_UPLOADS_CREATE,
            {
                "input": [
                    {
                        "resource": "IMAGE",
                        "filename": "a.png",
                        "mimeType": "image/png",
                        "httpMethod": "POST",
                    }
                ]
            },
            payload_key="stagedUploadsCreate",
        )
        return payload["stagedTargets"][0]  # type: ignore[no-any-return]

    staged = await target()
    fields = {p["name"]: p["value"] for p in staged["parameters"]}  # type: ignore[attr-defined]
    assert {"key", "policy", "x-goog-signature", "Content-Type"} <= set(fields)
    url = str(staged["url"])
    # A body with the file before the fields is refused.
    boundary = "b0undary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="a.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
        + png()
        + b"\r\n"
    ]
    parts += [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    answer = await shopify_http.post(
        url, content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert answer.status_code == 400 and "last" in answer.text

    tampered = {**fields, "key": "tmp/elsewhere.png"}
    answer = await shopify_http.post(
        url, data=tampered, files={"file": ("a.png", png(), "image/png")}
    )
    assert answer.status_code == 403 and "AccessDenied" in answer.text
    answer = await shopify_http.post(
        url, data=fields, files={"file": ("a.png", png(), "image/png")}
    )
    assert answer.status_code == 201 and "<PostResponse>" in answer.text

    with pytest.raises(ShopifyUserError):
        await gql.mutate(
            STAGED_UPLOADS_CREATE,
            {
                "input": [
                    {
                        "resource": "IMAGE",
                        "filename": "a.txt",
                        "mimeType": "text/plain",
                        "httpMethod": "POST",
                    }
                ]
            },
            payload_key="stagedUploadsCreate",
        )


async def test_upload_to_unknown_target_is_an_error(
    gql: ShopifyGraphQL,
    shopify_http: httpx.AsyncClient,
    shopify_sim: ShopifySimHandle,
) -> None:
    answer = await shopify_http.post(
        f"{shopify_sim.url}/staged-uploads/nope", files={"file": ("a.png", png(), "image/png")}
    )
    assert answer.status_code == 404
    product_id, _ = await first_product(gql)
    # A resource URL that was never uploaded: the media fails to download.
    payload = await gql.mutate(
        STAGED_UPLOADS_CREATE,
        {
            "input": [
                {
                    "resource": "IMAGE",
                    "filename": "never.png",
                    "mimeType": "image/png",
                    "httpMethod": "POST",
                }
            ]
        },
        payload_key="stagedUploadsCreate",
    )
    resource = payload["stagedTargets"][0]["resourceUrl"]
    media_id = await attach_media(gql, product_id, resource, "[pikcel:never]")
    state = await wait_media_ready(gql, media_id, timeout=10, poll_interval=0.05)
    assert state.failed and state.error_codes == ("IMAGE_DOWNLOAD_FAILURE",)
