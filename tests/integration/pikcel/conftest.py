"""Fixtures of the PikcelAI integration tests; everything runs on real loopback ports.

* `shared_sim` (session) is one simulator; `sim` is that one reset before each test
  (`sim.reset(**config)` gives a test its own config); `start_sim(**config)` starts a
  separate simulator, for settings a reset cannot change;
* `origin` (session) serves test images for `input_image_url`;
* `receiver` records webhook deliveries for one test and can be told to fail some;
* `client` / `client_b` are PikcelClients of users A / B of `sim`, with fast backoff.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pikcel_support import (
    KEY_B,
    Origin,
    Receiver,
    ReceiverServer,
    SimHandle,
    fast_client,
    start_origin,
)
from pikcel_support import start_sim as _start_sim

from pikcel_jobs.pikcel import PikcelClient
from pikcel_sim.serve import ThreadedServer


@pytest.fixture(scope="session")
def shared_sim() -> Iterator[SimHandle]:
    handle, server = _start_sim()
    yield handle
    handle.admin.close()
    server.stop()


@pytest.fixture
def sim(shared_sim: SimHandle) -> SimHandle:
    return shared_sim.reset()


@pytest.fixture
def start_sim() -> Iterator[Callable[..., SimHandle]]:
    started: list[tuple[SimHandle, ThreadedServer]] = []

    def start(**overrides: Any) -> SimHandle:
        started.append(_start_sim(**overrides))
        return started[-1][0]

    yield start
    for handle, server in started:
        handle.admin.close()
        server.stop()


@pytest.fixture
async def client(sim: SimHandle) -> AsyncIterator[PikcelClient]:
    async with fast_client(sim.url) as c:
        yield c


@pytest.fixture
async def client_b(sim: SimHandle) -> AsyncIterator[PikcelClient]:
    async with fast_client(sim.url, KEY_B) as c:
        yield c


@pytest.fixture(scope="session")
def origin() -> Iterator[Origin]:
    found, server = start_origin()
    yield found
    server.stop()


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[ReceiverServer]:
    server = ReceiverServer()
    yield server
    server.stop()


@pytest.fixture
def receiver(receiver_server: ReceiverServer) -> Receiver:
    return receiver_server.new()
