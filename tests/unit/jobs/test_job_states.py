"""Every (from, to) pair of the transition table, legal and illegal."""

from __future__ import annotations

import itertools

import pytest

from pikcel_jobs.jobs.states import (
    PUSH_TRANSITIONS,
    RETRY_TRANSITIONS,
    STATUS_TRANSITIONS,
    TERMINAL,
    IllegalTransition,
    JobStatus,
    PushStatus,
    can_change_push_status,
    can_change_status,
)

LEGAL = {
    ("scheduled", "pending"), ("scheduled", "cancelled"),
    ("pending", "processing"), ("pending", "completed"), ("pending", "failed"),
    ("pending", "cancelled"),
    ("processing", "completed"), ("processing", "failed"), ("processing", "cancelled"),
}  # fmt: skip


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JobStatus, JobStatus)))
def test_status_pair(current: JobStatus, target: JobStatus) -> None:
    assert can_change_status(current, target) == ((current.value, target.value) in LEGAL)


def test_terminal_states_leave_only_through_retry() -> None:
    for current in TERMINAL:
        assert not any(can_change_status(current, target) for target in JobStatus)
    assert can_change_status(JobStatus.FAILED, JobStatus.PENDING, retry=True)
    assert can_change_status(JobStatus.CANCELLED, JobStatus.PENDING, retry=True)
    assert not can_change_status(JobStatus.COMPLETED, JobStatus.PENDING, retry=True)
    assert not can_change_status(JobStatus.PROCESSING, JobStatus.PENDING, retry=True)
    assert {c for c, _ in RETRY_TRANSITIONS} == {JobStatus.FAILED, JobStatus.CANCELLED}


def test_no_self_transitions() -> None:
    assert all(a != b for a, b in STATUS_TRANSITIONS | PUSH_TRANSITIONS)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(PushStatus, PushStatus)))
def test_push_pair(current: PushStatus, target: PushStatus) -> None:
    assert can_change_push_status(current, target) == ((current, target) in PUSH_TRANSITIONS)


def test_push_never_skips_attach_or_ready() -> None:
    # pushed is reachable only from attached (media READY) or a failed revert.
    assert {c for c, t in PUSH_TRANSITIONS if t == PushStatus.PUSHED} == {
        PushStatus.ATTACHED, PushStatus.REVERTING,
    }  # fmt: skip


def test_illegal_transition_message_names_both_states() -> None:
    err = IllegalTransition("status", "completed", "processing")
    assert "completed" in str(err) and "processing" in str(err)
