"""The alert webhook against a real aiohttp server on 127.0.0.1 that checks the signature as a
receiver would (docs/alerts.md), fails the first posts, and sees the retries arrive."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from adressat.core.alert import AlertRecord
from adressat.observe.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertWebhook,
    load_webhook_secret,
)

SECRET = b"0123456789abcdef0123456789abcdef"


def _alert(i: int = 1) -> AlertRecord:
    return AlertRecord(rule="integrity", severity="critical",
                       place={"route": "netsim", "serving_node": "msc-2"}, state="firing",
                       started_at=1.0, last_evidence_at=1.0, summary="1 integrity alarm",
                       evidence={"alarms": 1}, id=i)


def verify(secret: bytes, headers: Any, body: bytes, now: float, skew_s: float = 300) -> bool:
    """What a receiver does (the snippet in docs/alerts.md)."""
    ts = headers.get(TIMESTAMP_HEADER, "")
    sig = headers.get(SIGNATURE_HEADER, "")
    if not ts.isdigit() or abs(now - int(ts)) > skew_s:
        return False
    expected = "sha256=" + hmac.new(secret, ts.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig)


class Receiver:
    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.posts: list[tuple[bool, dict[str, Any]]] = []
        self.got = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ok = verify(SECRET, request.headers, body, time.time())
        self.posts.append((ok, json.loads(body)))
        if not ok:
            return web.Response(status=401)
        if len(self.posts) <= self.fail_first:
            return web.Response(status=503)
        self.got.set()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr] # noqa: SLF001
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def _until(cond: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_signed_posts_are_retried_until_they_arrive() -> None:
    async def main() -> None:
        rx = Receiver(fail_first=3)
        await rx.start()
        hook = AlertWebhook(rx.url, SECRET, backoff_s_min=0.05, backoff_s_max=0.2, tries_max=5)
        task = asyncio.create_task(hook.run())
        try:
            hook.submit("firing", _alert(1))
            hook.submit("resolved", _alert(1))
            await _until(lambda: hook.sent == 2)
        finally:
            task.cancel()
            await rx.stop()
        assert all(ok for ok, _ in rx.posts)  # every try signed, each afresh
        events = [p["event"] for _, p in rx.posts]
        assert events == ["firing"] * 4 + ["resolved"]  # three 503s, then it arrived
        first = rx.posts[0][1]
        assert first["alert"]["place"] == {"route": "netsim", "serving_node": "msc-2"}
        assert first["alert"]["severity"] == "critical" and first["delivery"]
        assert len({p["delivery"] for _, p in rx.posts}) == 2  # a retry is the same delivery
        assert hook.stats()["tries"] == 5 and hook.given_up == 0

    asyncio.run(main())


def test_a_wrong_secret_is_refused_by_the_receiver_and_given_up() -> None:
    async def main() -> None:
        rx = Receiver(fail_first=0)
        await rx.start()
        hook = AlertWebhook(rx.url, b"another secret, not the receiver's", backoff_s_min=0.01,
                            backoff_s_max=0.01, tries_max=3)
        task = asyncio.create_task(hook.run())
        try:
            hook.submit("firing", _alert(1))
            await _until(lambda: hook.given_up == 1)
        finally:
            task.cancel()
            await rx.stop()
        assert [ok for ok, _ in rx.posts] == [False] * 3 and hook.sent == 0

    asyncio.run(main())


def test_the_queue_is_bounded_and_overflow_counted(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        hook = AlertWebhook("http://127.0.0.1:9/none", SECRET, queue_max=2)
        assert hook.submit("firing", _alert(1)) and hook.submit("firing", _alert(2))
        assert not hook.submit("firing", _alert(3))
        assert hook.queued == 2 and hook.overflow == 1

    asyncio.run(main())
    assert any(r.getMessage() == "alert webhook queue full: change dropped"
               for r in caplog.records)


def test_a_receiver_that_is_down_is_retried_then_given_up() -> None:
    async def main() -> None:
        hook = AlertWebhook("http://127.0.0.1:9/none", SECRET, backoff_s_min=0.01,
                            backoff_s_max=0.02, tries_max=3, timeout_s=1.0)
        task = asyncio.create_task(hook.run())
        try:
            hook.submit("firing", _alert(1))
            await _until(lambda: hook.given_up == 1)
        finally:
            task.cancel()
        assert hook.tries == 3

    asyncio.run(main())


def test_secret_made_once_owner_only_or_read_from_a_file(tmp_path: Path) -> None:
    s1 = load_webhook_secret(tmp_path)
    assert len(s1) == 64
    assert stat.S_IMODE((tmp_path / "webhook.key").stat().st_mode) == 0o600
    assert load_webhook_secret(tmp_path) == s1
    f = tmp_path / "given.key"
    f.write_bytes(b"  a secret of the operator's own \n")
    assert load_webhook_secret(tmp_path, f) == b"a secret of the operator's own"
    f.write_bytes(b"short")
    with pytest.raises(ValueError):
        load_webhook_secret(tmp_path, f)
    with pytest.raises(ValueError):
        AlertWebhook("ftp://x", SECRET)
