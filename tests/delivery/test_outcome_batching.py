"""The worker writes the outcomes finished in one loop turn as ONE store operation
(``Store.finish_attempts``), and each message still gets its own result: a stale or doubly
delivered one is handled alone, exactly as when every outcome was its own operation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from delivery_kit import SUBSCRIBERS, make_msg, rig

from adressat.core.integrity import AlarmKind
from adressat.core.model import Message, State
from adressat.delivery import Adapter, Outcome
from adressat.delivery.adapter import Addressed
from adressat.store import SqliteStore
from adressat.store.base import FinishedAttempt


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


class CountingStore(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []

    def finish_attempts(
        self, items: Sequence[FinishedAttempt], planned: object | None = None
    ) -> list[Message | Exception]:
        self.batches.append(len(items))
        return super().finish_attempts(items, planned)


class Meddling:
    """An adapter that lets ``meddle(msg)`` touch the store while the attempt is in flight,
    then answers with the real adapter's outcome. Its first ``together`` attempts answer at
    once, in one loop turn, so their outcomes are one batch however busy the machine is."""

    def __init__(self, inner: Adapter, meddle: object, together: int) -> None:
        self.inner = inner
        self.meddle = meddle
        self.together = together
        self.arrived = 0
        self.gate = asyncio.Event()

    async def deliver(self, msg: Message, addressed: Addressed | None = None) -> Outcome:
        outcome = await self.inner.deliver(msg, addressed)
        self.meddle(msg)  # type: ignore[operator]
        self.arrived += 1
        if self.arrived >= self.together:
            self.gate.set()
        await asyncio.wait_for(self.gate.wait(), 10)
        return outcome


def _dests(n: int) -> list[str]:
    return [str(46701000000 + 1 + i * 7 % SUBSCRIBERS) for i in range(n)]


def test_outcomes_of_one_turn_are_one_operation(tmp_path: Path) -> None:
    async def main() -> None:
        store = CountingStore(tmp_path / "adressat.db")
        try:
            async with rig(
                tmp_path, store=store, concurrency_max=64, claim_batch_max=64
            ) as r:
                msgs = [make_msg(d, registered_delivery=1) for d in _dests(40)]
                await r.insert(*msgs)
                for m in msgs:
                    await r.wait_state(m.id, State.DELIVERED)
                await r.wait_for(lambda: len(r.finals) == 40)
                assert sum(store.batches) == 40 and max(store.batches) > 1
                assert len(store.batches) < 40
                for m in msgs:
                    [att] = r.store.attempts_for_message(m.id)
                    assert att.outcome == "DELIVERED" and att.attempt == 1
                assert len(r.store.pending_receipts("acme")) == 40
                assert r.worker.delivered == 40 and r.worker.stale == 0
        finally:
            store.close()

    run(main())


@asynccontextmanager
async def meddled_rig(
    tmp_path: Path, victim_index: int, move: Callable[[CountingStore, Message], None]
) -> AsyncIterator[tuple[Any, CountingStore, list[Message]]]:
    """12 messages through a rig whose adapter lets ``move`` change the victim's row while
    its attempt is in flight (someone else moved it); yields (rig, store, messages)."""
    store = CountingStore(tmp_path / "adressat.db")
    msgs = [make_msg(d) for d in _dests(12)]
    victim = msgs[victim_index].id

    def meddle(msg: Message) -> None:
        if msg.id == victim:
            move(store, msg)

    try:
        async with rig(
            tmp_path,
            store=store,
            wrap=lambda a: Meddling(a, meddle, len(msgs)),  # type: ignore[arg-type,return-value]
            concurrency_max=64,
            claim_batch_max=64,
        ) as r:
            await r.insert(*msgs)
            yield r, store, msgs
    finally:
        store.close()


def test_a_stale_outcome_in_a_batch_is_dropped_alone(tmp_path: Path) -> None:
    def move(store: CountingStore, msg: Message) -> None:  # lease recovery, say
        store.transition(
            msg.id,
            State.DISPATCHED,
            State.DEFERRED,
            msg.lease_until or 0.0,
            expected_attempts=msg.attempts,
            next_attempt_at=(msg.lease_until or 0.0) + 3600,
        )

    async def main() -> None:
        async with meddled_rig(tmp_path, 5, move) as (r, store, msgs):
            for i, m in enumerate(msgs):
                if i != 5:
                    await r.wait_state(m.id, State.DELIVERED)
            await r.wait_for(lambda: r.worker.stale == 1)
            v = r.get(msgs[5].id)
            assert v.state is State.DEFERRED and v.delivered_imsi is None
            # the attempt happened: its forensic record is kept anyway (written just after
            # the stale outcome is counted, in a commit of its own)
            await r.wait_for(lambda: len(r.store.attempts_for_message(v.id)) == 1)
            [att] = r.store.attempts_for_message(v.id)
            assert att.outcome == "DELIVERED"
            assert r.worker.delivered == 11
            assert store.batches == [12]  # the stale one was in the batch

    run(main())


def test_a_second_delivery_in_a_batch_is_refused_alone_with_an_alarm(tmp_path: Path) -> None:
    def move(store: CountingStore, msg: Message) -> None:  # delivered by someone else
        store.transition(
            msg.id,
            State.DISPATCHED,
            State.DELIVERED,
            msg.lease_until or 0.0,
            expected_attempts=msg.attempts,
            delivered_imsi="999990000000001",
            delivered_msisdn=msg.destination,
            error=0,
        )

    async def main() -> None:
        async with meddled_rig(tmp_path, 3, move) as (r, store, msgs):
            for m in msgs:
                await r.wait_state(m.id, State.DELIVERED)
            await r.wait_for(lambda: r.store.alarm_count() == 1)
            [alarm] = r.store.alarms_between(0, 10**12)
            assert alarm.kind is AlarmKind.DUPLICATE_DELIVERY_REFUSED
            assert alarm.message_ids == (msgs[3].id,)
            v = r.get(msgs[3].id)
            assert v.delivered_imsi == "999990000000001"  # the first delivery stands
            [att] = r.store.attempts_for_message(v.id)  # the attempt is still recorded
            assert att.outcome == "DELIVERED"
            assert r.worker.delivered == 11
            assert store.batches == [12]  # the second delivery was in the batch

    run(main())
