"""The long profiles (`@pytest.mark.slow`: full chaos, long fuzz) run only when asked
for: `pytest -m slow ...`, `make fuzz`, or PIKCEL_SLOW=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("markexpr") or "") or os.environ.get("PIKCEL_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="long profile: run with -m slow (make fuzz) or PIKCEL_SLOW=1")
    for item in items:
        if item.get_closest_marker("slow") and HERE in Path(str(item.path)).parents:
            item.add_marker(skip)
