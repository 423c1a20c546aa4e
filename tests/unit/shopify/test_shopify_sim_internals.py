"""The simulator's cost rules, bucket, search syntax and pagination, without HTTP."""

from __future__ import annotations

import pytest
from graphql import GraphQLError, get_operation_ast, parse

from pikcel_sim.shopify.cost import CostCalculator
from pikcel_sim.shopify.schema import build_sim_schema, paginate, product_matches
from pikcel_sim.shopify.store import Product
from pikcel_sim.shopify.throttle import LeakyBucket

SCHEMA = build_sim_schema()


def requested(query: str, variables: dict[str, object] | None = None) -> int:
    document = parse(query)
    operation = get_operation_ast(document)
    assert operation is not None
    return CostCalculator(SCHEMA, document, operation, variables).requested()


def test_cost_rules() -> None:
    assert requested("{ shop { id name } }") == 1
    assert requested('{ product(id: "gid://shopify/Product/1") { id title } }') == 1
    assert (
        requested(
            "query($n: Int) { products(first: $n) { pageInfo { hasNextPage } "
            "edges { cursor node { id featuredMedia { id } } } } }",
            {"n": 10},
        )
        == 2 + 10 * 2
    )
    assert (
        requested(
            '{ product(id: "gid://shopify/Product/1") { media(first: 5) '
            "{ nodes { ... on MediaImage { image { url } } } } } }"
        )
        == 1 + 2 + 5 * 2
    )
    assert (
        requested(
            "mutation { fileUpdate(files: []) { files { id } } "
            "productUpdate(product: {}) { product { id } } }"
        )
        == 20
    )


def test_bucket_leaks_and_refunds() -> None:
    now = [0.0]
    bucket = LeakyBucket(50, 10, clock=lambda: now[0])
    assert bucket.try_take(40)
    assert not bucket.try_take(20)
    now[0] += 1.0
    assert bucket.try_take(20)
    bucket.refund(5)
    assert bucket.status() == {
        "maximumAvailable": 50.0,
        "currentlyAvailable": 5,
        "restoreRate": 10.0,
    }
    now[0] += 100
    assert bucket.available == 50


def _product(title: str, **kw: object) -> Product:
    fields: dict[str, object] = {
        "id": 1,
        "title": title,
        "handle": title.lower().replace(" ", "-"),
        "vendor": "Acme",
        "product_type": "Bottle",
        "tags": ("bottle",),
        "created_at": 0.0,
        "updated_at": 0.0,
    }
    fields.update(kw)
    return Product(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "hit"),
    [
        (None, True),
        ("", True),
        ("amber", True),
        ("AMBER", True),
        ("title:amber*", True),
        ("title:Serum", True),
        ("title:glass", False),
        ("amber serum", True),
        ("amber glass", False),
        ("glass OR serum", True),
        ("-amber", False),
        ("tag:bottle", True),
        ("tag:jar", False),
        ("vendor:acme", True),
        ('title:"amber serum"', True),
        ("status:active", True),
        ("status:draft", False),
        ("sku:123", False),
    ],
)
def test_search(query: str | None, hit: bool) -> None:
    assert product_matches(_product("Amber Serum Bottle"), query) is hit


def test_paginate() -> None:
    items = list(range(1, 8))
    page = paginate(items, lambda x: x, first=3, after=None, last=None, before=None)
    assert page["nodes"] == [1, 2, 3] and page["pageInfo"]["hasNextPage"]
    page2 = paginate(
        items, lambda x: x, first=3, after=page["pageInfo"]["endCursor"], last=None, before=None
    )
    assert page2["nodes"] == [4, 5, 6] and page2["pageInfo"]["hasPreviousPage"]
    tail = paginate(items, lambda x: x, first=None, after=None, last=2, before=None)
    assert tail["nodes"] == [6, 7] and not tail["pageInfo"]["hasNextPage"]
    rev = paginate(items, lambda x: x, first=2, after=None, last=None, before=None, reverse=True)
    assert rev["nodes"] == [7, 6]
    with pytest.raises(GraphQLError):
        paginate(items, lambda x: x, first=None, after=None, last=None, before=None)
    with pytest.raises(GraphQLError):
        paginate(items, lambda x: x, first=251, after=None, last=None, before=None)
    with pytest.raises(GraphQLError):
        paginate(items, lambda x: x, first=1, after="garbage!", last=None, before=None)
