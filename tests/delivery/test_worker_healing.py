"""Heal or shout in the delivery worker: a failing store is an episode and is retried with
backoff, never the end of the loop; a loop that fails for another reason ends (the process is
then started anew); an attempt whose outcome could not be written comes back once its lease is
over."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from delivery_kit import T0, make_msg, rig

from adressat.core.health import EpisodeKind
from adressat.core.model import Message, State
from adressat.delivery.worker import INTERRUPTED, WorkerFailed
from adressat.store import SqliteStore
from adressat.store.base import StoreUnavailable


class FailingStore(SqliteStore):
    """A real SQLite store whose claims fail with ``fail`` while it is set."""

    fail: BaseException | None = None
    claims_failed = 0

    def claim_due(self, limit: int, now: float, lease_s: float, owner: str) -> list[Message]:
        if self.fail is not None:
            self.claims_failed += 1
            raise self.fail
        return super().claim_due(limit, now, lease_s, owner)


async def _until(cond: Any, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.005)):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def test_a_failing_store_is_an_episode_and_the_loop_heals(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "adressat.db")
    store.fail = StoreUnavailable("disk_full", "SQLITE_FULL")

    async def go() -> None:
        async with rig(tmp_path, store=store, backoff_s_max=0.05) as r:
            msg = make_msg()
            await r.insert(msg)
            await _until(lambda: store.claims_failed >= 5)
            kind = EpisodeKind.DELIVERY_LOOP_FAILING
            assert r.worker.health.is_open(kind)
            assert r.get(msg.id).state is State.ROUTED
            assert r.task is not None and not r.task.done()  # the loop goes on
            failed_before = store.claims_failed
            await asyncio.sleep(0.3)
            # backoff: at most one claim per 10 ms tick would be 30; it backs off to 50 ms
            assert store.claims_failed - failed_before <= 12
            store.fail = None
            await r.wait_state(msg.id, State.DELIVERED)
            await _until(lambda: not r.worker.health.is_open(kind))
            await r.worker.health.drain()
            (ep,) = store.episodes()
            assert ep.kind is kind and ep.cause == "disk_full" and ep.process == "delivery"
            assert ep.ended_at is not None and ep.failures >= 5

    asyncio.run(go())
    store.close()


def test_a_loop_failing_for_another_reason_ends_the_worker(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "adressat.db")
    store.fail = RuntimeError("a bug")

    async def go() -> None:
        async with rig(tmp_path, store=store, backoff_s_max=0.02, loop_failures_max=4) as r:
            assert r.task is not None
            with pytest.raises(WorkerFailed):
                await asyncio.wait_for(r.task, 5.0)
            assert store.claims_failed == 4
            r.task = None

    asyncio.run(go())
    store.close()


def test_a_store_failure_alone_never_ends_the_worker(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "adressat.db")
    store.fail = StoreUnavailable("io_error")

    async def go() -> None:
        async with rig(tmp_path, store=store, backoff_s_max=0.01, loop_failures_max=2) as r:
            await _until(lambda: store.claims_failed >= 10)
            assert r.task is not None and not r.task.done()

    asyncio.run(go())
    store.close()


def test_an_orphaned_attempt_comes_back_when_its_lease_is_over(tmp_path: Path) -> None:
    """An attempt whose outcome was never written (the store failed at that moment) leaves
    its message DISPATCHED; once the lease is over it comes back DEFERRED with an
    INTERRUPTED attempt (the retry goes only to the identity it addressed) and is
    delivered, without a restart."""

    async def go() -> None:
        async with rig(tmp_path) as r:
            msg = make_msg(submitted_at=T0)
            msg = Message(**{**{f: getattr(msg, f) for f in msg.__dataclass_fields__},
                             "not_before": T0 + 100, "next_attempt_at": T0 + 100})
            await r.insert(msg)
            (claimed,) = r.store.claim_due(1, T0 + 100, 1.0, "node-1")  # an attempt ...
            assert claimed.id == msg.id  # ... whose outcome is lost
            r.clock.advance(200.0)
            r.worker.wake()
            await r.wait_state(msg.id, State.DELIVERED)
            outcomes = [a.outcome for a in r.store.attempts_for_message(msg.id)]
            assert outcomes[0] == INTERRUPTED and outcomes[-1] == "DELIVERED"

    asyncio.run(go())


class FailingFinish(SqliteStore):
    """Outcomes are refused ``fail_finishes`` times (the disk filled just then)."""

    fail_finishes = 0

    def finish_attempts(self, items: Any, planned: object | None = None) -> Any:
        if self.fail_finishes > 0:
            self.fail_finishes -= 1
            raise StoreUnavailable("disk_full")
        return super().finish_attempts(items, planned)


def test_an_outcome_the_store_refused_is_written_again_without_a_resend(tmp_path: Path) -> None:
    store = FailingFinish(tmp_path / "adressat.db")
    store.fail_finishes = 1

    async def go() -> None:
        async with rig(tmp_path, store=store) as r:
            msg = make_msg()
            await r.insert(msg)
            m = await r.wait_state(msg.id, State.DELIVERED, timeout_s=5.0)
            assert m.attempts == 1  # written again, not sent again
            assert [a.outcome for a in r.store.attempts_for_message(msg.id)] == ["DELIVERED"]
            assert r.network.stats.duplicates == 0

    asyncio.run(go())
    store.close()
