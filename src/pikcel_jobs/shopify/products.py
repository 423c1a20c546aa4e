"""Products for the job-creation picker: one product, or a searchable page of them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .graphql import ShopifyGraphQL

_MEDIA_FIELDS = """
  nodes {
    ... on MediaImage { id status alt image { url altText width height } }
  }
"""

PRODUCT_QUERY = f"""
query PikcelProduct($id: ID!, $mediaFirst: Int!) {{
  product(id: $id) {{
    id title handle
    media(first: $mediaFirst) {{ {_MEDIA_FIELDS} }}
  }}
}}
"""

PRODUCTS_QUERY = f"""
query PikcelProducts($first: Int!, $after: String, $query: String, $mediaFirst: Int!) {{
  products(first: $first, after: $after, query: $query, sortKey: TITLE) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id title handle
      media(first: $mediaFirst) {{ {_MEDIA_FIELDS} }}
    }}
  }}
}}
"""


class ProductImage(BaseModel):
    """A product image as our API returns it (`{id, url, altText}`)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    id: str
    url: str
    alt_text: str | None = Field(default=None, alias="altText")
    width: int | None = Field(default=None, exclude=True)
    height: int | None = Field(default=None, exclude=True)


class Product(BaseModel):
    """`{id, title, images: [{id, url, altText}]}`; dump with `model_dump(by_alias=True)`."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    id: str
    title: str
    handle: str | None = Field(default=None, exclude=True)
    images: list[ProductImage] = Field(default_factory=list)


def _product(node: dict[str, Any]) -> Product:
    images = []
    for media in (node.get("media") or {}).get("nodes") or []:
        image = (media or {}).get("image")
        if not media or media.get("status") not in (None, "READY") or not image:
            continue  # a video, or an image still processing / failed
        images.append(
            ProductImage(
                id=str(media["id"]),
                url=str(image["url"]),
                alt_text=image.get("altText")
                if image.get("altText") is not None
                else media.get("alt"),
                width=image.get("width"),
                height=image.get("height"),
            )
        )
    return Product(
        id=str(node["id"]),
        title=str(node.get("title", "")),
        handle=node.get("handle"),
        images=images,
    )


async def get_product(
    gql: ShopifyGraphQL,
    product_gid: str,
    *,
    media_first: int = 50,
) -> Product | None:
    """The product with its ready images, or None when it does not exist."""
    data = await gql.execute(PRODUCT_QUERY, {"id": product_gid, "mediaFirst": media_first})
    node = data.get("product")
    return _product(node) if node else None


async def list_products(
    gql: ShopifyGraphQL,
    query: str | None = None,
    after: str | None = None,
    first: int = 24,
    *,
    media_first: int = 5,
) -> tuple[list[Product], str | None]:
    """A page of products (sorted by title) matching Shopify search `query`, and the
    cursor of the next page (None on the last page)."""
    data = await gql.execute(
        PRODUCTS_QUERY,
        {
            "first": first,
            "after": after or None,
            "query": (query or "").strip() or None,
            "mediaFirst": media_first,
        },
    )
    connection = data.get("products") or {}
    products = [_product(n) for n in connection.get("nodes") or [] if n]
    page = connection.get("pageInfo") or {}
    return products, (page.get("endCursor") if page.get("hasNextPage") else None)
