"""Job templates over real HTTP on SQLite and PostgreSQL: the JSON API (envelope, shop
scoping, unique names → 409, validation → 400 naming the field) and the page's forms
(CSRF, create, edit, delete, "apply to products")."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

Client = Callable[[str], httpx.AsyncClient]
BODY = {
    "name": "White studio",
    "description": "Clean white background for the catalogue",
    "toolId": "white-background",
    "parameters": {"color": "#ffffff", "padding": 0.05},
    "priority": "high",
}


async def create(client: httpx.AsyncClient, **changes: object) -> dict[str, object]:
    response = await client.post("/api/templates", json={**BODY, **changes})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True
    return dict(body["template"])


async def test_create_get_list_update_delete(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    made = await create(client)
    assert made["name"] == "White studio" and made["toolId"] == "white-background"
    assert made["parameters"] == {"color": "#ffffff", "padding": 0.05}
    assert made["priority"] == "high" and made["shop"] == shop
    for field in ("id", "description", "createdAt", "updatedAt"):
        assert field in made
    await create(client, name="a first one", toolId="upscale-2x", parameters={}, priority="low")

    got = (await client.get(f"/api/templates/{made['id']}")).json()
    assert got == {"success": True, "template": made}
    listed = (await client.get("/api/templates")).json()
    assert listed["success"] is True
    assert [t["name"] for t in listed["templates"]] == ["a first one", "White studio"]

    put = await client.put(
        f"/api/templates/{made['id']}", json={"priority": "urgent", "description": ""}
    )
    assert put.status_code == 200, put.text
    updated = put.json()["template"]
    assert updated["priority"] == "urgent" and updated["description"] is None
    assert updated["name"] == "White studio" and updated["parameters"] == made["parameters"]

    deleted = await client.delete(f"/api/templates/{made['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"success": True, "deleted": made["id"]}
    gone = await client.get(f"/api/templates/{made['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "NOT_FOUND"


async def test_another_shops_template_is_404(
    client_for: Client, shop: str, other_shop: str
) -> None:
    made = await create(client_for(shop))
    other = client_for(other_shop)
    for response in (
        await other.get(f"/api/templates/{made['id']}"),
        await other.put(f"/api/templates/{made['id']}", json={"name": "Mine now"}),
        await other.delete(f"/api/templates/{made['id']}"),
    ):
        assert response.status_code == 404
        assert response.json() == {
            "success": False,
            "error": {"code": "NOT_FOUND", "message": "template not found"},
        }
    assert (await other.get("/api/templates")).json()["templates"] == []
    # The same name is free in another shop.
    await create(other)
    still = (await client_for(shop).get(f"/api/templates/{made['id']}")).json()["template"]
    assert still["name"] == "White studio"


async def test_names_are_unique_per_shop(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    first = await create(client)
    for name in ("White studio", "white STUDIO", "  White studio  "):
        response = await client.post("/api/templates", json={**BODY, "name": name})
        assert response.status_code == 409, name
        error = response.json()["error"]
        assert error["code"] == "TEMPLATE_NAME_TAKEN"
        assert "already exists" in error["message"] and name.strip() in error["message"]
    second = await create(client, name="Shadow")
    rename = await client.put(f"/api/templates/{second['id']}", json={"name": "WHITE studio"})
    assert rename.status_code == 409
    # Renaming a template to its own name (or its own name in other case) is fine.
    same = await client.put(f"/api/templates/{first['id']}", json={"name": "White Studio"})
    assert same.status_code == 200 and same.json()["template"]["name"] == "White Studio"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 121}, "name"),
        ({"name": "two\nlines"}, "name"),
        ({"toolId": ""}, "toolId"),
        ({"priority": "asap"}, "priority"),
        ({"parameters": [1, 2]}, "parameters"),
        ({"parameters": {"blob": "x" * 11_000}}, "parameters"),
        ({"description": "d" * 2001}, "description"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_validation_names_the_field(
    client_for: Client, shop: str, body: dict[str, object], needle: str
) -> None:
    response = await client_for(shop).post("/api/templates", json={**BODY, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_INPUT" and needle in error["message"]


async def test_update_validation(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    made = await create(client)
    for body, needle in (
        ({"name": None}, "name"),
        ({"priority": "soon"}, "priority"),
        ({"toolId": ""}, "toolId"),
    ):
        response = await client.put(f"/api/templates/{made['id']}", json=body)
        assert response.status_code == 400, (body, response.text)
        assert needle in response.json()["error"]["message"]
    not_json = await client.put(
        f"/api/templates/{made['id']}", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400


async def test_requires_a_session(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        assert (await anonymous.get("/api/templates")).status_code == 401
        assert (await anonymous.post("/api/templates", json=BODY)).status_code == 401


# ---- The page ----


def csrf_token(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, "the page carries a CSRF token"
    return match.group(1)


async def test_page_create_edit_delete(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    empty = await client.get("/app/templates")
    assert empty.status_code == 200 and "No templates yet" in empty.text

    form_page = await client.get("/app/templates/new")
    assert form_page.status_code == 200 and 'name="csrfToken"' in form_page.text
    token = csrf_token(form_page.text)
    fields = {"csrfToken": token, "name": "Studio <b>white</b>", "description": "For the shop",
              "toolId": "white-background", "parameters": '{"color": "#fff"}', "priority": "high"}  # fmt: skip
    created = await client.post("/app/templates", data=fields)
    assert created.status_code == 303, created.text
    assert created.headers["location"].startswith("/app/templates#template-")
    template_id = created.headers["location"].split("#template-")[1]

    listing = await client.get("/app/templates")
    assert "Studio &lt;b&gt;white&lt;/b&gt;" in listing.text  # escaped, never markup
    assert f'href="/app/jobs/new?templateId={template_id}"' in listing.text  # apply to products
    api = (await client.get(f"/api/templates/{template_id}")).json()["template"]
    assert api["parameters"] == {"color": "#fff"} and api["priority"] == "high"

    edit = await client.get(f"/app/templates/{template_id}")
    assert edit.status_code == 200 and "Delete template" in edit.text
    assert "&#34;color&#34;: &#34;#fff&#34;" in edit.text or "&quot;color&quot;" in edit.text
    token = csrf_token(edit.text)
    changed = await client.post(
        f"/app/templates/{template_id}",
        data={
            **fields,
            "csrfToken": token,
            "name": "Studio white",
            "parameters": "{}",
            "priority": "low",
        },
    )
    assert changed.status_code == 303
    api = (await client.get(f"/api/templates/{template_id}")).json()["template"]
    assert api["name"] == "Studio white" and api["parameters"] == {} and api["priority"] == "low"

    deleted = await client.post(f"/app/templates/{template_id}/delete", data={"csrfToken": token})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/app/templates"
    assert (await client.get(f"/api/templates/{template_id}")).status_code == 404


async def test_page_form_errors_keep_the_input(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    await create(client, name="Taken")
    token = csrf_token((await client.get("/app/templates/new")).text)
    base = {
        "csrfToken": token,
        "name": "New one",
        "toolId": "upscale-2x",
        "parameters": "{}",
        "priority": "normal",
    }

    bad_json = await client.post("/app/templates", data={**base, "parameters": '{"scale": 2'})
    assert bad_json.status_code == 400
    assert "not valid JSON" in bad_json.text and "{&#34;scale&#34;: 2" in bad_json.text
    assert 'aria-invalid="true"' in bad_json.text

    not_object = await client.post("/app/templates", data={**base, "parameters": "[1]"})
    assert not_object.status_code == 400 and "JSON object" in not_object.text

    taken = await client.post("/app/templates", data={**base, "name": "taken"})
    assert taken.status_code == 400 and "already exists" in taken.text

    no_name = await client.post("/app/templates", data={**base, "name": "  "})
    assert no_name.status_code == 400 and 'id="tpl-name-error"' in no_name.text
    assert [t["name"] for t in (await client.get("/api/templates")).json()["templates"]] == [
        "Taken"
    ]


async def test_page_forms_need_the_csrf_token(
    client_for: Client, shop: str, other_shop: str
) -> None:
    client = client_for(shop)
    made = await create(client)
    fields = {"name": "Sneaky", "toolId": "x", "parameters": "{}", "priority": "normal"}
    assert (await client.post("/app/templates", data=fields)).status_code == 403
    assert (
        await client.post("/app/templates", data={**fields, "csrfToken": "abc.def"})
    ).status_code == 403
    assert (await client.post(f"/app/templates/{made['id']}/delete", data={})).status_code == 403
    assert (await client.get(f"/api/templates/{made['id']}")).status_code == 200
    # Another shop's template: not found, even with a valid token of its own.
    other = client_for(other_shop)
    token = csrf_token((await other.get("/app/templates")).text)
    response = await other.post(f"/app/templates/{made['id']}/delete", data={"csrfToken": token})
    assert response.status_code == 404
    assert (await other.get(f"/app/templates/{made['id']}")).status_code == 404
