"""Shared rig for the delivery tests: real SqliteStore + GroupCommitter + netsim Network."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adressat.core.model import Message, State
from adressat.core.retry import RetryPolicy
from adressat.core.tag import binding_tag
from adressat.delivery import Adapter, DeliveryWorker, NetsimAdapter, Outcome
from adressat.netsim import Faults, NetsimSettings, Network
from adressat.sms import Alphabet, encode_text
from adressat.store import SqliteStore
from adressat.store.commit import GroupCommitter

KEY = b"delivery-test-tag-key"
T0 = 1_800_000_000.0
SUBSCRIBERS = 1000
DEST = "46701000123"
OTHER = "46701000456"
UNKNOWN_NUMBER = "46709999999"


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


_ids = iter(range(1, 1_000_000))


def new_id() -> str:
    return f"{next(_ids):032x}"


def make_msg(
    destination: str = DEST,
    text: str = "Your code is 123456",
    *,
    msg_id: str | None = None,
    content: bytes | None = None,
    submitted_at: float = T0,
    validity_s: float = 3600.0,
    registered_delivery: int = 0,
    data_coding: int = 0,
    esm_class: int = 0,
    account: str = "acme",
    source_addr: str = "ACME",
    tag: bytes | None = None,
) -> Message:
    mid = msg_id or new_id()
    body = encode_text(text, Alphabet.GSM7) if content is None else content
    return Message(
        id=mid,
        account=account,
        source_addr=source_addr,
        destination=destination,
        content=body,
        submitted_at=submitted_at,
        expires_at=submitted_at + validity_s,
        data_coding=data_coding,
        esm_class=esm_class,
        registered_delivery=registered_delivery,
        state=State.ROUTED,
        route="netsim-home",
        next_attempt_at=submitted_at,
        tag=(
            binding_tag(KEY, mid, destination, body, data_coding, esm_class) if tag is None else tag
        ),
    )


@dataclass
class Rig:
    home: Path
    store: SqliteStore
    committer: GroupCommitter
    network: Network
    adapter: Adapter
    worker: DeliveryWorker
    clock: Clock
    finals: list[Message] = field(default_factory=list)
    integrity: list[tuple[Message, Outcome]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def insert(self, *msgs: Message) -> None:
        await self.committer.insert_many(msgs)
        self.worker.wake()

    def get(self, message_id: str) -> Message:
        m = self.store.get_message(message_id)
        assert m is not None
        return m

    async def wait_state(self, message_id: str, *states: State, timeout_s: float = 5.0) -> Message:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            m = self.get(message_id)
            if m.state in states:
                if m.is_final:  # the worker's hooks run right after the commit: let them
                    grace = loop.time() + 1.0
                    while loop.time() < grace and all(f.id != m.id for f in self.finals):
                        await asyncio.sleep(0.002)
                return m
            if loop.time() > deadline:
                raise AssertionError(f"{message_id}: still {m.state.value}, wanted {states}")
            await asyncio.sleep(0.005)

    async def wait_for(self, cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not cond():
            if loop.time() > deadline:
                raise AssertionError("condition not reached")
            await asyncio.sleep(0.005)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.worker.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.worker.stop()
            await asyncio.wait_for(self.task, 5.0)
            self.task = None


def make_worker(
    committer: GroupCommitter,
    adapter: Adapter,
    clock: Clock,
    finals: list[Message],
    integrity: list[tuple[Message, Outcome]],
    **kw: Any,
) -> DeliveryWorker:
    params: dict[str, Any] = dict(
        owner="node-1",
        node=1,
        clock=clock,
        rng=random.Random(7),
        concurrency_max=16,
        claim_batch_max=8,
        lease_s=60.0,
        interval_s=0.01,
        on_final=finals.append,
        on_integrity=lambda m, o: integrity.append((m, o)),
        delivery_timeout_s=5.0,
    )
    params.update(kw)
    return DeliveryWorker(
        committer,
        {"netsim": adapter},
        lambda route: "netsim" if route.startswith("netsim") else route,
        RetryPolicy(),
        **params,
    )


@asynccontextmanager
async def rig(
    home: Path,
    *,
    clock: Clock | None = None,
    faults: Faults | None = None,
    wrap: Callable[[Adapter], Adapter] | None = None,
    start: bool = True,
    store: SqliteStore | None = None,
    **worker_kw: Any,
) -> AsyncIterator[Rig]:
    clock = clock or Clock()
    own_store = store is None
    st = store or SqliteStore(home / "adressat.db")
    committer = GroupCommitter(st).start()
    network = Network(
        home, NetsimSettings.quiet(subscribers=SUBSCRIBERS), clock=clock, faults=faults
    )
    adapter: Adapter = NetsimAdapter(network, KEY)
    if wrap is not None:
        adapter = wrap(adapter)
    finals: list[Message] = []
    integrity: list[tuple[Message, Outcome]] = []
    worker = make_worker(committer, adapter, clock, finals, integrity, **worker_kw)
    r = Rig(home, st, committer, network, adapter, worker, clock, finals, integrity)
    network.on_alert(worker.alert)
    if start:
        r.start()
    try:
        yield r
    finally:
        if r.task is not None and not r.task.done():
            r.worker.stop()
            try:
                await asyncio.wait_for(r.task, 5.0)
            except (asyncio.CancelledError, Exception):
                pass
        await committer.aclose()
        network.close()
        if own_store:
            st.close()
