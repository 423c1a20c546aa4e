"""Product listing with cursor pagination and search, and one product with its images."""

from __future__ import annotations

import httpx
from shopify_support import ShopifySimHandle

from pikcel_jobs.shopify.graphql import ShopifyGraphQL
from pikcel_jobs.shopify.products import get_product, list_products


async def test_pages_through_every_product(gql: ShopifyGraphQL) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        products, cursor = await list_products(gql, None, cursor, first=5)
        pages += 1
        seen.extend(p.id for p in products)
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 12 == len(set(seen))
    first_page, _ = await list_products(gql, first=5)
    titles = [p.title for p in first_page]
    assert titles == sorted(titles, key=str.lower)


async def test_search_narrows_the_list(gql: ShopifyGraphQL) -> None:
    everything, _ = await list_products(gql, first=50)
    target = everything[0]
    hits, cursor = await list_products(gql, f'title:"{target.title}"', first=50)
    assert target.id in [p.id for p in hits] and cursor is None
    assert all(target.title.lower() in p.title.lower() for p in hits)
    others, _ = await list_products(gql, f'-title:"{target.title}"', first=50)
    assert target.id not in [p.id for p in others]
    assert len(others) + len(hits) == len(everything)
    word = target.title.split()[0]
    assert target.id in [p.id for p in (await list_products(gql, word.lower(), first=50))[0]]
    none, cursor = await list_products(gql, "title:zzznothing*", first=50)
    assert none == [] and cursor is None


async def test_product_shape_and_images_are_served(
    gql: ShopifyGraphQL,
    shopify_http: httpx.AsyncClient,
    shopify_sim: ShopifySimHandle,
) -> None:
    products, _ = await list_products(gql, first=3)
    product = await get_product(gql, products[0].id)
    assert product is not None and product.id.startswith("gid://shopify/Product/")
    dumped = product.model_dump(by_alias=True)
    assert set(dumped) == {"id", "title", "images"}
    assert dumped["images"] and set(dumped["images"][0]) == {"id", "url", "altText"}
    image = product.images[0]
    assert image.id.startswith("gid://shopify/MediaImage/")
    photo = await shopify_http.get(image.url)
    assert photo.status_code == 200
    assert photo.headers["content-type"] in ("image/png", "image/jpeg")
    assert len(photo.content) > 5_000
    assert image.width and image.width >= 512
    assert await get_product(gql, "gid://shopify/Product/999") is None
