"""Shared pieces of the transport tests: a connector against a PartnerSink on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from adressat.core.model import ConnectorConfig
from adressat.smpp.views import DeliverSm, SubmitSm
from adressat.transport.smpp_client import SmppConnector

TEST_TIMEOUT_S = 10.0


def run(coro: Coroutine[Any, Any, Any], timeout_s: float = TEST_TIMEOUT_S) -> Any:
    """Run one test scenario, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def config(port: int, **kw: Any) -> ConnectorConfig:
    base: dict[str, Any] = {"name": "partner1", "host": "127.0.0.1", "port": port,
                            "system_id": "adressat", "password": "secret"}
    base.update(kw)
    return ConnectorConfig(**base)


class Deliveries:
    """An on_deliver that records what came and answers ``status``."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.got: list[tuple[DeliverSm, int]] = []

    async def __call__(self, view: DeliverSm, session_id: int) -> int:
        self.got.append((view, session_id))
        return self.status


def connector(port: int, on_deliver: Callable[[DeliverSm, int], Awaitable[int]] | None = None,
              **kw: Any) -> SmppConnector:
    opts: dict[str, Any] = {"response_timeout_s": 2.0, "reconnect_s_min": 0.05,
                            "reconnect_s_max": 0.2, "rng": random.Random(7)}
    for k in list(kw):
        if k in ("response_timeout_s", "reconnect_s_min", "reconnect_s_max", "bind_stable_s",
                 "throughput_burst_s", "rng", "clock"):
            opts[k] = kw.pop(k)
    return SmppConnector(config(port, **kw), on_deliver=on_deliver or Deliveries(), **opts)


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Bounded polling (every 10 ms) until ``predicate()``; False when it never held."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def sm(dest: str = "46731234567", text: bytes = b"hello", receipt: bool = True) -> SubmitSm:
    return SubmitSm(source_addr_ton=1, source_addr_npi=1, source_addr="46701000001",
                    destination_addr=dest, short_message=text,
                    registered_delivery=1 if receipt else 0)
