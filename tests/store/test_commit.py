"""GroupCommitter: many asyncio callers share few transactions; failures stay with their caller."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from store_helpers import make_msg

from adressat.core.model import State
from adressat.store import DuplicateMessage, MemoryStore, SqliteStore, Store
from adressat.store.commit import CommitQueueFull, CommitterClosed, GroupCommitter


@pytest.fixture(params=[False, True], ids=["writer-thread", "inline"])
def inline(request: pytest.FixtureRequest) -> bool:
    """Both ways of running batches: a writer thread, or on the event loop (store/commit.py)."""
    return bool(request.param)


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "g.db")


def test_many_callers_few_commits(backend: Store, inline: bool) -> None:
    async def main() -> None:
        gc = GroupCommitter(backend, batch_max=500, inline=inline).start()
        msgs = [make_msg() for _ in range(2000)]
        await asyncio.gather(*(gc.insert(m) for m in msgs))
        gc.stop()
        assert gc.ops == 2000
        assert gc.batches < 200, gc.batches  # shared, not one per caller
        for m in msgs:
            assert backend.get_message(m.id) == m

    asyncio.run(main())


def test_failure_of_one_op_does_not_fail_others(backend: Store, inline: bool) -> None:
    async def main() -> None:
        gc = GroupCommitter(backend, inline=inline).start()
        existing = make_msg()
        backend.insert_messages([existing])
        good = [make_msg() for _ in range(50)]

        def half_then_fail(s: Store) -> None:
            s.insert_messages([make_msg(id="f" * 32)])
            raise RuntimeError("boom")

        coros = [gc.insert(m) for m in good[:25]]
        coros.append(gc.insert(existing))  # duplicate
        coros.append(gc.run(half_then_fail))
        coros.append(gc.run(lambda s: s.get_message(existing.id)))
        coros.extend(gc.insert(m) for m in good[25:])
        res = await asyncio.gather(*coros, return_exceptions=True)
        gc.stop()
        assert isinstance(res[25], DuplicateMessage)
        assert isinstance(res[26], RuntimeError)
        assert res[27] == existing  # results come back
        assert all(r is None for i, r in enumerate(res) if i not in (25, 26, 27))
        for m in good:
            assert backend.get_message(m.id) is not None
        assert backend.get_message("f" * 32) is None  # the failed op left nothing behind

    asyncio.run(main())


def test_results_only_after_commit(tmp_path: Path, inline: bool) -> None:
    store = SqliteStore(tmp_path / "c.db")

    async def main() -> None:
        gc = GroupCommitter(store, inline=inline).start()
        m = make_msg()
        await gc.insert(m)
        # visible from an independent connection: it was committed before we were told
        other = SqliteStore(tmp_path / "c.db")
        assert other.get_message(m.id) == m
        got = await gc.run(lambda s: s.transition(m.id, State.ROUTED, State.DISPATCHED, 1.0))
        assert got.state is State.DISPATCHED
        assert other.get_message(m.id).state is State.DISPATCHED  # type: ignore[union-attr]
        other.close()
        gc.stop()

    asyncio.run(main())


def test_commit_failure_fails_the_whole_batch(inline: bool) -> None:
    class FailingCommit(MemoryStore):
        fail = True

        def batch(self):  # type: ignore[no-untyped-def, override]
            outer = super().batch()
            store = self

            class _B:
                def __enter__(self) -> None:
                    outer.__enter__()

                def __exit__(self, *exc: object) -> None:
                    if store.fail and exc[0] is None:
                        outer.__exit__(RuntimeError, RuntimeError("disk full"), None)
                        raise OSError("disk full")
                    outer.__exit__(*exc)  # type: ignore[arg-type]

            return _B()

    store = FailingCommit()

    async def main() -> None:
        gc = GroupCommitter(store, inline=inline).start()
        ms = [make_msg() for _ in range(5)]
        res = await asyncio.gather(*(gc.insert(m) for m in ms), return_exceptions=True)
        assert all(isinstance(r, OSError) for r in res)
        assert all(store.get_message(m.id) is None for m in ms)
        store.fail = False
        await gc.insert(ms[0])
        assert store.get_message(ms[0].id) is not None
        gc.stop()

    asyncio.run(main())


def test_back_pressure_and_close() -> None:
    store = MemoryStore()
    release = threading.Event()

    async def main() -> None:
        gc = GroupCommitter(store, queue_max=3).start()
        blocker = asyncio.ensure_future(gc.run(lambda s: release.wait(5)))
        await asyncio.sleep(0.05)  # the writer is now inside the blocker's batch
        waiting = [asyncio.ensure_future(gc.insert(make_msg())) for _ in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(CommitQueueFull):
            await gc.insert(make_msg())
        release.set()
        await asyncio.gather(blocker, *waiting)
        await gc.aclose()
        with pytest.raises(CommitterClosed):
            await gc.insert(make_msg())

    asyncio.run(main())


def test_inline_runs_batches_on_the_loop_thread_at_the_end_of_the_iteration(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "i.db")
    threads: list[int] = []

    async def main() -> None:
        gc = GroupCommitter(store, inline=True).start()
        assert not gc._thread.is_alive()  # no writer thread
        futs = [gc.run(lambda s: threads.append(threading.get_ident())) for _ in range(20)]
        futs += [gc.insert(make_msg()) for _ in range(30)]
        await asyncio.gather(*futs)
        assert set(threads) == {threading.get_ident()}
        assert gc.batches == 1  # everything queued in one iteration: one transaction
        await gc.aclose()

    asyncio.run(main())
    store.close()
