"""DeliveryWorker: bounded concurrency, compare-and-set on the outcome, restart recovery."""

from __future__ import annotations

import asyncio
from pathlib import Path

from delivery_kit import DEST, T0, Clock, make_msg, rig

from adressat.core.model import Message, State
from adressat.delivery import Adapter, Outcome
from adressat.delivery.adapter import Addressed
from adressat.delivery.errors import DeliveryError


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    class Slow:
        def __init__(self, inner: Adapter) -> None:
            self.inner = inner
            self.now = 0
            self.peak = 0

        async def deliver(self, msg: Message, addressed: Addressed | None = None) -> Outcome:
            self.now += 1
            self.peak = max(self.peak, self.now)
            try:
                await asyncio.sleep(0.01)
                return await self.inner.deliver(msg, addressed)
            finally:
                self.now -= 1

    slow: list[Slow] = []

    def wrap(a: Adapter) -> Adapter:
        slow.append(Slow(a))
        return slow[0]

    async def main() -> None:
        async with rig(tmp_path, wrap=wrap, concurrency_max=3, claim_batch_max=2) as r:
            msgs = [make_msg(str(46701000200 + i), submitted_at=T0 - 1) for i in range(20)]
            await r.insert(*msgs)
            for m in msgs:
                await r.wait_state(m.id, State.DELIVERED)
            assert slow[0].peak == 3
            await r.wait_for(lambda: r.worker.in_flight == 0)  # done callbacks run after
            assert r.worker.delivered == 20

    asyncio.run(main())


def test_a_message_moved_before_its_attempt_addresses_anyone_is_not_sent(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with rig(tmp_path, start=False) as r:
            msg = make_msg(DEST)
            await r.committer.insert(msg)
            [claimed] = r.store.claim_due(1, T0, 60.0, "node-1")
            # another party recovered the lease before the attempt addressed the handset:
            # writing the addressed identity fails, so nothing goes out
            r.store.recover_leases(T0 + 120)
            assert await r.worker.process(claimed) is None
            assert r.get(msg.id).state is State.DEFERRED
            assert r.get(msg.id).delivered_imsi is None
            assert r.worker.stale == 1
            [att] = r.store.attempts_for_message(msg.id)
            assert att.outcome == "TEMPORARY" and att.error == DeliveryError.SYSTEM_FAILURE
            assert r.network.inbox_of(DEST) == []  # not on the wire

    asyncio.run(main())


def test_restart_recovers_dispatched_due_now(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock()
        async with rig(tmp_path, clock=clock, start=False) as r:
            msg = make_msg(DEST)
            await r.committer.insert(msg)
            r.store.claim_due(1, T0, 60.0, "dead-node")
            # not leased out yet by the clock, but no attempt can be in flight at start
            assert await r.worker.recover() == 1
            m = r.get(msg.id)
            assert m.state is State.DEFERRED and m.next_attempt_at == T0
            assert [a.outcome for a in r.store.attempts_for_message(msg.id)] == ["INTERRUPTED"]
            r.start()
            await r.wait_state(msg.id, State.DELIVERED)

    asyncio.run(main())
