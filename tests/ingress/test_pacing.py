"""ingress/pacing.py: commits wait while delivery is behind on their route, bounded in time,
in count, and by the freshness of what the delivery process said. On a real event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adressat.core.accept import AcceptLimits, Submission
from adressat.ingress.commit import Ingress
from adressat.ingress.pacing import Pacer
from adressat.routing.table import RoutingTable
from adressat.store.commit import GroupCommitter
from adressat.store.sqlite import SqliteStore


class Commits:
    def __init__(self) -> None:
        self.done: list[tuple[str, float]] = []

    def go(self, name: str) -> Callable[[], None]:
        return lambda: self.done.append((name, time.monotonic()))

    def names(self) -> list[str]:
        return [n for n, _ in self.done]


def test_nothing_waits_while_no_route_is_behind() -> None:
    async def main() -> None:
        p, c = Pacer(1.0), Commits()
        assert p.hold(["out"], c.go("a")) is False
        p.report(["out"])
        assert p.hold(["own"], c.go("b")) is False  # another route goes on
        assert p.held == 0

    asyncio.run(main())


def test_held_commits_go_in_order_when_the_route_catches_up() -> None:
    async def main() -> None:
        p, c = Pacer(5.0), Commits()
        p.report(["out"])
        for name in "abc":
            assert p.hold(["own", "out"], c.go(name)) is True  # one of its routes is behind
        assert p.held == 3 and c.done == []
        p.report(["out"])  # still behind: nothing goes
        assert c.done == []
        p.report([])
        assert c.names() == ["a", "b", "c"] and p.held == 0
        assert p.held_total == 3 and p.episodes == 1

    asyncio.run(main())


def test_a_route_said_behind_no_more_lapses_and_lets_its_commits_go() -> None:
    """A delivery process that hangs or dies says nothing more: what waits is let go after
    fresh_s, not after hold_s_max."""
    async def main() -> None:
        p, c = Pacer(10.0, fresh_s=0.1), Commits()
        p.report(["out"])
        t0 = time.monotonic()
        assert p.hold(["out"], c.go("a"))
        await asyncio.sleep(0.5)
        assert c.names() == ["a"]
        assert 0.09 <= c.done[0][1] - t0 < 0.45
        assert p.behind() == []
        assert p.hold(["out"], c.go("b")) is False  # lapsed: commits go at once

    asyncio.run(main())


def test_no_commit_waits_longer_than_hold_s_max() -> None:
    async def main() -> None:
        p, c = Pacer(0.15, fresh_s=5.0), Commits()
        p.report(["out"])
        t0 = time.monotonic()
        assert p.hold(["out"], c.go("a"))
        await asyncio.sleep(0.05)
        assert p.hold(["out"], c.go("b"))
        await asyncio.sleep(0.5)
        assert c.names() == ["a", "b"]  # still behind, each let go at its own bound
        assert 0.14 <= c.done[0][1] - t0 < 0.45
        assert c.done[1][1] - c.done[0][1] >= 0.04

    asyncio.run(main())


def test_at_most_held_max_wait_and_a_failing_commit_does_not_keep_the_rest() -> None:
    async def main() -> None:
        p, c = Pacer(5.0, held_max=2), Commits()
        p.report(["out"])

        def boom() -> None:
            raise RuntimeError("commit failed")

        assert p.hold(["out"], boom)
        assert p.hold(["out"], c.go("b"))
        assert p.hold(["out"], c.go("c")) is False  # full: the caller commits at once
        p.report([])
        assert c.names() == ["b"] and p.held == 0

    asyncio.run(main())


def test_pacing_off_never_holds() -> None:
    async def main() -> None:
        p = Pacer(0.0)
        p.report(["out"])
        assert p.hold(["out"], lambda: None) is False

    asyncio.run(main())
    with pytest.raises(ValueError):
        Pacer(-1.0)


def test_an_episode_is_logged_once_when_it_begins_and_once_when_it_is_over(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        p = Pacer(5.0, episode_quiet_s=0.2)
        for _ in range(5):  # behind and caught up, again and again
            p.report(["out"])
            assert p.hold(["out"], lambda: None)
            p.report([])
        await asyncio.sleep(0.1)
        assert [r.getMessage() for r in caplog.records] == [
            "delivery behind on a route: its new submits wait before their commit"]
        await asyncio.sleep(0.5)
        ended = [r for r in caplog.records if r.getMessage() == "delivery caught up on a route"]
        assert len(ended) == 1 and ended[0].__dict__["held"] == 5
        assert ended[0].__dict__["route"] == "out" and p.episodes == 1

    with caplog.at_level("INFO", logger="adressat.ingress"):
        asyncio.run(main())


def test_a_held_submit_is_committed_after_the_catch_up_or_dropped_if_its_sender_is_gone(
        tmp_path: Path) -> None:
    """I1 through the real Ingress and store: nothing held is durable; the held submit whose
    sender is still there is committed and answered once let go, the other never is."""
    async def main() -> None:
        store = SqliteStore(tmp_path / "a.db")
        committer = GroupCommitter(store, inline=True).start()
        try:
            ingress = Ingress(committer, RoutingTable("own", [(46700000000, 46709999999)]),
                              node=1, tag_key=b"k" * 32, limits=AcceptLimits(),
                              queue_messages_max=100, on_committed=lambda msgs: None,
                              pacer=Pacer(5.0))
            now = time.time()
            kept, gone = (
                ingress.build(Submission("acme", "ACME", dest, b"code", source_ton=5), now)
                for dest in ("46701000001", "46701000002"))
            ingress.pacer.report([kept.route])
            answered: list[tuple[str, BaseException | None]] = []
            ingress.commit_then([kept], lambda e: answered.append((kept.id, e)))
            ingress.commit_then([gone], lambda e: answered.append((gone.id, e)),
                                wanted=lambda: False)
            await asyncio.sleep(0.05)
            assert ingress.pacer.held == 2 and answered == []
            assert store.get_message(kept.id) is None and store.get_message(gone.id) is None
            ingress.pacer.report([])
            for _ in range(100):
                if answered:
                    break
                await asyncio.sleep(0.01)
            assert answered == [(kept.id, None)] and ingress.pacer.dropped == 1
            assert store.get_message(kept.id) is not None
            assert store.get_message(gone.id) is None
        finally:
            committer.stop()
            store.close()

    asyncio.run(main())
