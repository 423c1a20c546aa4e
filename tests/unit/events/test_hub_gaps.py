"""The hub's reading position: ids skipped over (committed later on PostgreSQL) are
re-read until they appear or the grace period passes; nothing is read twice."""

from __future__ import annotations

from typing import Any

from pikcel_jobs.events import hub as hub_module
from pikcel_jobs.events.hub import EventHub


def make_hub() -> EventHub:
    return EventHub(sessions=None, database_url="sqlite://")  # type: ignore[arg-type]


def test_skipped_ids_become_gaps_and_fill_in() -> None:
    hub = make_hub()
    hub._advance([1, 2, 5], [])
    assert hub.cursor == 5 and set(hub.gaps) == {3, 4}
    hub._advance([6], [4])
    assert hub.cursor == 6 and set(hub.gaps) == {3}
    hub._advance([], [3])
    assert hub.gaps == {}


def test_a_gap_that_never_fills_is_given_up(monkeypatch: Any) -> None:
    hub = make_hub()
    clock = [100.0]
    monkeypatch.setattr(hub_module.time, "monotonic", lambda: clock[0])
    hub._advance([1, 3], [])
    assert set(hub.gaps) == {2}
    clock[0] += hub_module.GAP_GRACE_SECONDS + 1
    hub._advance([4], [])
    assert hub.gaps == {} and hub.cursor == 4
