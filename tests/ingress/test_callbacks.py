"""The callback sender against a real aiohttp HTTP server on 127.0.0.1 and a real SQLite
store: signatures verify, retries after 500s stop after a 200, 429 Retry-After is honoured,
a receiver that was down gets every event afterwards in order per message, a 404 gives up,
an event is given up after the keep time (injected clock), never more requests in flight
than the bound, never to a host that is not the account's, Kannel's dlr-url GET."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from adressat.core.callbacks import CallbackEvent, encode_spec, make_spec
from adressat.core.model import Message, State
from adressat.ingress.callbacks import (
    CALLBACKS,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    CallbackSender,
    RetryPolicy,
    pending_gauge,
    verify,
)
from adressat.store import SqliteStore
from adressat.store.commit import GroupCommitter

SECRET = bytes(range(32))
ACCOUNT = "acme"
#: retries within the test's patience
FAST = RetryPolicy(0.02, 0.1, 3600.0)

_ids = iter(range(1, 10**9))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A webhook (or dlr-url) receiver: ``answer(n, request)`` gives the n-th request's
    (status, headers); every request is recorded with its time and whether its signature
    verified."""

    def __init__(self, answer: Callable[[int, web.Request], tuple[int, dict[str, str]]]
                 | None = None, *, port: int | None = None, hold_s: float = 0.0,
                 check_signature: bool = True) -> None:
        self.answer = answer or (lambda n, r: (204, {}))
        self.port = port or _free_port()
        self.hold_s = hold_s
        self.check_signature = check_signature
        self.requests: list[dict[str, Any]] = []
        self.concurrent = 0
        self.concurrent_max = 0
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        self.concurrent += 1
        self.concurrent_max = max(self.concurrent_max, self.concurrent)
        try:
            raw = await request.read()
            rec: dict[str, Any] = {"method": request.method, "at": time.monotonic(),
                                   "headers": dict(request.headers),
                                   "query": dict(request.query), "raw": raw}
            if request.method == "POST":
                rec["doc"] = json.loads(raw)
                rec["verified"] = verify(SECRET, request.headers.get(SIGNATURE_HEADER, ""),
                                         raw, time.time())
            self.requests.append(rec)
            if self.hold_s:
                await asyncio.sleep(self.hold_s)
            status, headers = self.answer(len(self.requests), request)
            return web.Response(status=status, headers=headers)
        finally:
            self.concurrent -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def posts_of(self, message_id: str) -> list[dict[str, Any]]:
        return [r["doc"] for r in self.requests if r.get("doc", {}).get("message_id")
                == message_id]


class Harness:
    def __init__(self, tmp_path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.store = SqliteStore(tmp_path / "adressat.db")
        self.store.add_account(ACCOUNT, "x")
        self.committer = GroupCommitter(self.store, inline=True).start()
        self.clock = clock

    def callbacks_to(self, url: str, *, hosts: tuple[str, ...] = (),
                     secret: bytes | None = SECRET) -> None:
        self.store.set_account_callbacks(ACCOUNT, url=url, hosts=hosts, secret=secret)

    def submit(self, url: str, events: tuple[CallbackEvent, ...] = (CallbackEvent.ACCEPTED,
                                                                     CallbackEvent.FAILED),
               kind: str = "webhook", reference: str | None = None, at: float | None = None
               ) -> Message:
        n = next(_ids)
        now = self.clock() if at is None else at
        m = Message(id=f"{n:032x}", account=ACCOUNT, source_addr="Acme",
                    destination=f"4670{n:07d}", content=b"hello", submitted_at=now,
                    expires_at=now + 3600, not_before=now, next_attempt_at=now + 3600,
                    state=State.ROUTED, route="netsim", tag=b"\x01" * 16,
                    extra={"cb": encode_spec(make_spec(kind, url, events)), "channel": "http"},
                    client_reference=reference)
        self.store.insert_messages([m])
        return m

    def cancel(self, m: Message) -> None:
        self.store.cancel(m.id, ACCOUNT, self.clock())

    def sender(self, **kw: Any) -> CallbackSender:
        kw.setdefault("policy", FAST)
        kw.setdefault("poll_s", 0.02)
        kw.setdefault("timeout_s", 2.0)
        return CallbackSender(self.committer, clock=self.clock, **kw)

    def close(self) -> None:
        self.committer.stop()
        self.store.close()


async def _until(cond: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def _polls(sender: CallbackSender, n: int) -> None:
    """Let the sender poll ``n`` more times (so "nothing more came" means something)."""
    start = sender.polls
    await _until(lambda: sender.polls >= start + n)


def _counted(result: str) -> float:
    v = CALLBACKS.labels(ACCOUNT, result)._value.get()  # noqa: SLF001
    return float(v)


@pytest.fixture
def h(tmp_path: Path) -> Any:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def test_signed_webhooks_arrive_and_are_marked_sent(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver()
        await rx.start()
        h.callbacks_to(rx.url)
        m = h.submit(rx.url, reference="order-17")
        h.cancel(m)
        before = _counted("sent")
        sender = h.sender()
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        assert [r["verified"] for r in rx.requests] == [True, True]
        docs = [r["doc"] for r in rx.requests]
        assert [d["type"] for d in docs] == ["message.accepted", "message.failed"]
        assert docs[1]["state"] == "cancelled" and docs[0]["client_reference"] == "order-17"
        assert docs[0]["to"] == "+" + m.destination and docs[0]["from"] == "Acme"
        for r in rx.requests:
            assert r["headers"][EVENT_ID_HEADER] == r["doc"]["id"]
        rows = h.store.callbacks_of_message(m.id)
        assert [str(r.event_id) for r in rows] == [d["id"] for d in docs]
        assert all(r.sent_at is not None and r.gave_up_at is None for r in rows)
        assert sender.sent == 2 and _counted("sent") - before == 2
        assert pending_gauge(h.store).samples[0].value == 0

    asyncio.run(main())


def test_retries_after_500s_stop_after_a_200(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver(lambda n, r: (500, {}) if n <= 3 else (200, {}))
        await rx.start()
        h.callbacks_to(rx.url)
        m = h.submit(rx.url, events=(CallbackEvent.ACCEPTED,))
        sender = h.sender()
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.pending_callbacks() == 0)
        await _polls(sender, 5)
        sender.stop()
        await task
        await rx.stop()
        assert len(rx.requests) == 4  # three 500s, one 200, then nothing more
        assert len({r["doc"]["id"] for r in rx.requests}) == 1  # one event, four tries
        (row,) = h.store.callbacks_of_message(m.id)
        assert row.sent_at is not None and row.attempts == 4
        assert sender.retried == 3 and sender.sent == 1

    asyncio.run(main())


def test_429_retry_after_is_honoured(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver(lambda n, r: (429, {"Retry-After": "1"}) if n == 1 else (204, {}))
        await rx.start()
        h.callbacks_to(rx.url)
        m = h.submit(rx.url, events=(CallbackEvent.ACCEPTED,))
        # Retry-After is clamped to delay_s_max: 5 s here, more than the 1 s asked for
        sender = h.sender(policy=RetryPolicy(0.02, 5.0, 3600.0))
        task = asyncio.create_task(sender.run())
        await _until(lambda: len(rx.requests) >= 1)
        await _until(lambda: h.store.callbacks_of_message(m.id)[0].attempts == 1)
        (row,) = h.store.callbacks_of_message(m.id)
        assert row.last_status == 429 and row.next_attempt_at >= time.time() + 0.5
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        assert len(rx.requests) == 2
        assert rx.requests[1]["at"] - rx.requests[0]["at"] >= 0.95  # not before Retry-After

    asyncio.run(main())


def test_a_receiver_down_for_a_while_gets_everything_in_order_per_message(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver(hold_s=0.005)  # not started yet: connections refused
        h.callbacks_to(rx.url)
        msgs = [h.submit(rx.url) for _ in range(6)]
        for m in msgs:
            h.cancel(m)
        sender = h.sender(policy=RetryPolicy(0.02, 0.2, 3600.0))
        task = asyncio.create_task(sender.run())
        await _until(lambda: sender.retried >= 12)  # every first event tried and failed
        assert sender.sent == 0 and h.store.pending_callbacks() == 12
        await rx.start()
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        for m in msgs:
            docs = rx.posts_of(m.id)
            assert [d["type"] for d in docs] == ["message.accepted", "message.failed"]
            assert int(docs[0]["id"]) < int(docs[1]["id"])
        assert all(r["verified"] for r in rx.requests)
        assert len(rx.requests) == 12  # refused connections carried nothing: no repeats

    asyncio.run(main())


def test_a_404_gives_up_at_once(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver(lambda n, r: (404, {}))
        await rx.start()
        h.callbacks_to(rx.url)
        m = h.submit(rx.url, events=(CallbackEvent.ACCEPTED,))
        before = _counted("gave_up")
        sender = h.sender()
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.pending_callbacks() == 0)
        await _polls(sender, 5)
        sender.stop()
        await task
        await rx.stop()
        assert len(rx.requests) == 1
        (row,) = h.store.callbacks_of_message(m.id)
        assert row.gave_up_at is not None and row.sent_at is None and row.last_status == 404
        assert sender.gave_up == 1 and _counted("gave_up") - before == 1

    asyncio.run(main())


def test_given_up_after_the_keep_time(tmp_path: Path) -> None:
    now = [1_000_000.0]
    h = Harness(tmp_path, clock=lambda: now[0])
    try:
        async def main() -> None:
            rx = Receiver(lambda n, r: (503, {}))
            await rx.start()
            h.callbacks_to(rx.url)
            m = h.submit(rx.url, events=(CallbackEvent.ACCEPTED,))
            sender = h.sender(policy=RetryPolicy(1.0, 10.0, 100.0))
            task = asyncio.create_task(sender.run())
            await _until(lambda: len(rx.requests) == 1 and sender.retried == 1)
            (row,) = h.store.callbacks_of_message(m.id)
            assert row.gave_up_at is None and row.next_attempt_at <= now[0] + 1.0
            await _polls(sender, 3)
            assert len(rx.requests) == 1  # not due yet on the injected clock
            now[0] += 50  # within the keep time: tried again, still kept
            await _until(lambda: sender.retried == 2)
            assert h.store.pending_callbacks() == 1
            now[0] += 51  # past it: the next failure gives up
            await _until(lambda: h.store.pending_callbacks() == 0)
            await _polls(sender, 3)
            sender.stop()
            await task
            await rx.stop()
            assert len(rx.requests) == 3
            (row,) = h.store.callbacks_of_message(m.id)
            assert row.gave_up_at == pytest.approx(now[0]) and row.last_status == 503
            assert sender.gave_up == 1

        asyncio.run(main())
    finally:
        h.close()


def test_never_more_requests_in_flight_than_the_bound(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver(hold_s=0.05)
        await rx.start()
        h.callbacks_to(rx.url)
        for _ in range(40):
            h.submit(rx.url, events=(CallbackEvent.ACCEPTED,))
        sender = h.sender(concurrency_max=4, batch_max=10)
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        assert len(rx.requests) == 40
        assert rx.concurrent_max == 4  # the bound reached, never passed
        assert sender.in_flight_max <= 4

    asyncio.run(main())


def test_never_to_a_host_that_is_not_the_accounts(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver()
        await rx.start()
        h.callbacks_to(rx.url)  # the account's host is 127.0.0.1
        other = f"http://localhost:{rx.port}/hook"  # the same server, by another name
        m = h.submit(other, events=(CallbackEvent.ACCEPTED,))
        sender = h.sender()
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        assert rx.requests == []
        (row,) = h.store.callbacks_of_message(m.id)
        assert row.gave_up_at is not None and row.sent_at is None

    asyncio.run(main())


def test_without_a_secret_nothing_is_sent_unsigned(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver()
        await rx.start()
        h.callbacks_to(rx.url, secret=None)
        m = h.submit(rx.url, events=(CallbackEvent.ACCEPTED,))
        sender = h.sender()
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.callbacks_of_message(m.id)[0].attempts >= 1)
        assert rx.requests == [] and h.store.pending_callbacks() == 1  # kept, not sent
        h.callbacks_to(rx.url, secret=SECRET)  # the operator gives the account a secret
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        assert [r["verified"] for r in rx.requests] == [True]

    asyncio.run(main())


def test_kannel_dlr_url_is_fetched_with_its_escapes(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver()
        await rx.start()
        h.callbacks_to(rx.url)
        pattern = rx.url + "?type=%d&id=%I&to=%P&from=%p&smsc=%i&ts=%T&reply=%A"
        m = h.submit(pattern, kind="kannel")
        h.cancel(m)
        sender = h.sender()
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        assert [r["method"] for r in rx.requests] == ["GET", "GET"]
        q = [r["query"] for r in rx.requests]
        assert [x["type"] for x in q] == ["8", "2"]
        assert q[0]["reply"] == "ACK/"
        assert "stat:DELETED" in q[1]["reply"]
        assert all(x["id"] == m.id and x["to"] == m.destination and x["from"] == "Acme"
                   and x["smsc"] == "netsim" for x in q)
        assert SIGNATURE_HEADER not in rx.requests[0]["headers"]

    asyncio.run(main())


def test_a_kannel_escape_in_the_host_is_refused(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver()
        await rx.start()
        h.callbacks_to(rx.url, hosts=("127.0.0.1",))
        m = h.submit(f"http://%p.example:{rx.port}/hook", kind="kannel",
                     events=(CallbackEvent.ACCEPTED,))
        sender = h.sender()
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        assert rx.requests == []
        assert h.store.callbacks_of_message(m.id)[0].gave_up_at is not None

    asyncio.run(main())


def test_one_host_gets_at_most_its_share_of_the_requests_in_flight(h: Harness) -> None:
    async def main() -> None:
        slow = Receiver(hold_s=0.1)
        await slow.start()
        h.callbacks_to(slow.url)
        for _ in range(12):
            h.submit(slow.url, events=(CallbackEvent.ACCEPTED,))
        sender = h.sender(concurrency_max=8, connections_per_host_max=2)
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await slow.stop()
        assert len(slow.requests) == 12
        assert slow.concurrent_max == 2  # not 8: the other slots stay for other hosts

    asyncio.run(main())


def test_an_outcome_the_store_could_not_record_is_not_sent_again_at_once(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver()
        await rx.start()
        h.callbacks_to(rx.url)
        m = h.submit(rx.url, events=(CallbackEvent.ACCEPTED,))
        real = h.store.callbacks_sent
        failures = [1]

        def flaky(ids: Any, now: float) -> None:
            if failures:
                failures.pop()
                raise OSError("disk I/O error")
            real(ids, now)

        h.store.callbacks_sent = flaky  # type: ignore[method-assign]
        sender = h.sender(policy=RetryPolicy(0.5, 1.0, 3600.0))
        task = asyncio.create_task(sender.run())
        await _until(lambda: len(rx.requests) == 1 and not failures)
        await _polls(sender, 5)
        assert len(rx.requests) == 1  # held, not hammered while the store fails
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        assert len(rx.requests) == 2  # once more afterwards: at least once, same event id
        assert rx.requests[0]["doc"]["id"] == rx.requests[1]["doc"]["id"]
        assert h.store.callbacks_of_message(m.id)[0].sent_at is not None

    asyncio.run(main())


def test_a_receiver_that_does_not_answer_in_time_is_tried_again(h: Harness) -> None:
    async def main() -> None:
        holds = [0.6]

        class Slow(Receiver):
            async def handle(self, request: web.Request) -> web.Response:
                if holds:
                    await asyncio.sleep(holds.pop())  # longer than the timeout
                return await super().handle(request)

        rx = Slow()
        await rx.start()
        h.callbacks_to(rx.url)
        m = h.submit(rx.url, events=(CallbackEvent.ACCEPTED,))
        sender = h.sender(timeout_s=0.2)
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        (row,) = h.store.callbacks_of_message(m.id)
        assert row.sent_at is not None and row.attempts == 2
        assert sender.retried == 1 and sender.sent == 1

    asyncio.run(main())


def test_every_event_asked_for_in_order_through_a_failing_receiver(h: Harness) -> None:
    async def main() -> None:
        rx = Receiver(lambda n, r: (500, {}) if n % 2 else (200, {}))  # every other fails
        await rx.start()
        h.callbacks_to(rx.url)
        everything = tuple(CallbackEvent)
        msgs = [h.submit(rx.url, events=everything) for _ in range(3)]
        now = time.time()
        for m in msgs:  # the moves a delivery makes: deferred once, then delivered
            h.store.transition(m.id, State.ROUTED, State.DISPATCHED, now)
            h.store.transition(m.id, State.DISPATCHED, State.DEFERRED, now,
                               next_attempt_at=now + 60)
            h.store.transition(m.id, State.DEFERRED, State.DISPATCHED, now)
            h.store.transition(m.id, State.DISPATCHED, State.DELIVERED, now, final_at=now)
        assert h.store.pending_callbacks() == 9
        sender = h.sender()
        task = asyncio.create_task(sender.run())
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        for m in msgs:
            docs = rx.posts_of(m.id)
            ids = [int(d["id"]) for d in docs]
            assert ids == sorted(ids)  # never a later event before an earlier one was taken
            taken = [d["type"] for d in dict((d["id"], d) for d in docs).values()]
            assert taken == ["message.accepted", "message.deferred", "message.delivered"]
            assert [d["state"] for d in docs][-1] == "delivered"

    asyncio.run(main())


def test_a_failing_outbox_read_is_said_once_and_the_sender_carries_on(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        rx = Receiver()
        await rx.start()
        h.callbacks_to(rx.url)
        h.submit(rx.url, events=(CallbackEvent.ACCEPTED,))
        real = h.store.due_callbacks
        failing = [True]

        def due(now: float, limit: int) -> Any:
            if failing[0]:
                raise OSError("disk I/O error")
            return real(now, limit)

        h.store.due_callbacks = due  # type: ignore[method-assign]
        sender = h.sender()
        task = asyncio.create_task(sender.run())
        await _until(lambda: sender.poll_failures >= 5)
        assert rx.requests == []
        failing[0] = False
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await rx.stop()
        said = [r.getMessage() for r in caplog.records if r.name == "adressat.callbacks"]
        assert said.count("callback poll failing") == 1
        assert said.count("callback poll recovered") == 1

    asyncio.run(main())


def test_the_sender_takes_its_limits_from_the_settings(h: Harness) -> None:
    from adressat.app.settings import Settings

    s = Settings().with_(callback_timeout_s=3.0, callback_concurrency_max=5,
                         callback_connections_per_host_max=2, callback_poll_s=0.25,
                         callback_batch_max=7, callback_read_rows_max=70,
                         callback_poll_gap_s=0.01, callback_retry_delay_s_min=2.0,
                         callback_retry_delay_s_max=20.0, callback_keep_s=600.0)
    sender = CallbackSender.from_settings(h.committer, s)
    assert (sender.timeout_s, sender.concurrency_max, sender.connections_per_host_max,
            sender.poll_s, sender.batch_max, sender.read_rows_max, sender.poll_gap_s) == (
        3.0, 5, 2, 0.25, 7, 70, 0.01)
    assert sender.policy == RetryPolicy(2.0, 20.0, 600.0)
    d = Settings()
    assert (d.callback_concurrency_max, d.callback_poll_s, d.callback_keep_s,
            d.callback_retry_delay_s_min, d.callback_retry_delay_s_max) == (
        64, 0.5, 86400.0, 1.0, 3600.0)
    with pytest.raises(ValueError):
        CallbackSender(h.committer, concurrency_max=0)


def test_a_busy_hosts_backlog_does_not_hold_up_another_hosts_events(h: Harness) -> None:
    async def main() -> None:
        slow = Receiver(hold_s=0.15)
        await slow.start()
        fast = Receiver()
        await fast.start()
        fast_url = f"http://localhost:{fast.port}/hook"
        h.callbacks_to(slow.url, hosts=("localhost",))
        for _ in range(16):  # first in the outbox: the window of a narrow read is all theirs
            h.submit(slow.url, events=(CallbackEvent.ACCEPTED,))
        for _ in range(3):
            h.submit(fast_url, events=(CallbackEvent.ACCEPTED,))
        sender = h.sender(concurrency_max=8, connections_per_host_max=2, batch_max=5)
        task = asyncio.create_task(sender.run())
        await _until(lambda: len(fast.requests) == 3)
        took_slow = len(slow.requests)
        await _until(lambda: h.store.pending_callbacks() == 0)
        sender.stop()
        await task
        await slow.stop()
        await fast.stop()
        assert took_slow <= 6  # the fast host's three went out among the slow one's first
        assert slow.concurrent_max == 2 and len(slow.requests) == 16

    asyncio.run(main())
