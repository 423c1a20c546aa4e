"""Schemathesis against our own `/openapi.json`, served on loopback, signed in as a
shop: every operation gets generated requests, valid and invalid (positive and
negative generation). Proven for each answer: never a 5xx; every 4xx is the error
envelope `{success: false, error: {code, message}}` with a non-empty message; every
JSON 2xx says `success: true`.

Default run: a few examples per operation on SQLite (under a minute). `make fuzz` (or
`pytest -m slow -k fuzz`) runs the long profile on both databases; its size is
`PIKCEL_FUZZ_EXAMPLES` per operation and mode (default 200).
"""

from __future__ import annotations

import os
import secrets
import time
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from pikcel_jobs.config import Settings
from pikcel_jobs.shops.auth import SESSION_COOKIE, sign_session

# Not fuzzed, with the reason.
SKIPPED = {
    ("GET", "/api/events"): "an endless event stream; tested in test_tenant_matrix.py",
}


def answer_problems(response: Any) -> list[str]:
    problems = []
    if response.status_code >= 500:
        problems.append(f"server error {response.status_code}: {response.text[:300]}")
    ctype = response.headers.get("content-type", "")
    if isinstance(ctype, list):  # schemathesis keeps every value of a header
        ctype = ctype[0] if ctype else ""
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
            error = body["error"]
            assert body["success"] is False and isinstance(error["code"], str)
            assert isinstance(error["message"], str) and error["message"].strip()
        except (ValueError, KeyError, TypeError, AssertionError):
            problems.append(
                f"{response.status_code} without the error envelope: {response.text[:300]}"
            )
    elif response.status_code < 300 and ctype.startswith("application/json"):
        body = response.json()
        if not (isinstance(body, dict) and body.get("success") is True):
            problems.append(f"2xx JSON without success: true: {response.text[:200]}")
    return problems


def fuzz(api_url: str, app_settings: Settings, examples: int) -> Counter[str]:
    shop = f"fuzz-{secrets.token_hex(4)}.myshopify.com"
    cookies = {SESSION_COOKIE: sign_session(app_settings, shop)}
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    tally: Counter[str] = Counter()
    timings: dict[str, float] = {}
    failures: list[str] = []
    http = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20, "the OpenAPI document lost its operations"
    for operation in operations:
        key = (operation.method.upper(), operation.path)
        if key in SKIPPED:
            continue
        started = time.monotonic()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=examples, deadline=None, database=None, derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                response = case.call(base_url=api_url, session=http, cookies=cookies, timeout=30)
                tally[f"{response.status_code // 100}xx"] += 1
                tally["requests"] += 1
                for problem in answer_problems(response):
                    failures.append(f"{case.method} {case.path} {case.path_parameters} "
                                    f"{case.query} {str(case.body)[:200]}: {problem}")  # fmt: skip

            try:
                run()
            except Unsatisfiable:  # nothing in this operation can be made invalid
                assert mode is GenerationMode.NEGATIVE, key
        timings[f"{key[0]} {key[1]}"] = time.monotonic() - started
    http.close()
    slowest = sorted(timings.items(), key=lambda kv: -kv[1])[:5]
    print("slowest operations:", ", ".join(f"{k} {v:.1f}s" for k, v in slowest))
    assert not failures, "\n".join(failures[:20])
    return tally


def test_fuzz_openapi_short(api_url: str, app_settings: Settings) -> None:
    if "postgresql" in app_settings.database_url:
        pytest.skip("the short profile runs on SQLite; `make fuzz` runs both databases")
    tally = fuzz(api_url, app_settings, examples=2)
    print(f"fuzz (short): {dict(tally)}")
    assert tally["requests"] >= 60


@pytest.mark.slow
def test_fuzz_openapi_long(api_url: str, app_settings: Settings) -> None:
    examples = int(os.environ.get("PIKCEL_FUZZ_EXAMPLES", "200"))
    tally = fuzz(api_url, app_settings, examples=examples)
    print(f"fuzz (long, {examples} per operation and mode): {dict(tally)}")
