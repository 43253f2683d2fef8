"""Status callbacks from the running node to a real HTTP receiver (aiohttp, in the test):
signed with the account's secret, retried after 500s until a 200, in order per message after
the receiver was down for a while, only to the account's own hosts; and a kill -9 of the node
between a commit and its callbacks loses none of them."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from e2e_kit import next_msisdn, wait_for
from test_e2e_http_api import new_key

from adressat.ingress.callbacks import verify
from adressat.testing.server import ServerProcess, adressat, free_port

pytestmark = pytest.mark.slow


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread of its own: records every callback; answers
    500 to the first ``fail_first`` requests; can be stopped and started again (down)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = 0
        self.answered_500 = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.answered_500 < self.fail_first:
            self.answered_500 += 1
            return web.Response(status=500)
        self.got.append((dict(request.headers), body))
        return web.Response(status=200)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(b) for _, b in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    try:
        yield r
    finally:
        r.close()


def setup(home: Path, receiver: Receiver) -> tuple[str, bytes]:
    assert adressat(home, "account", "add", "demo", "--password", "pw").returncode == 0
    out = adressat(home, "account", "callbacks", "demo", "--url",
                   f"http://127.0.0.1:{receiver.port}/hook")
    assert out.returncode == 0, out.stderr
    m = re.search(r"webhook_secret\t([0-9a-f]{64})", out.stdout)
    assert m, out.stdout
    return new_key(home, "demo"), bytes.fromhex(m.group(1))


def send(port: int, key: str, **fields: Any) -> dict[str, Any]:
    r = httpx.post(f"http://127.0.0.1:{port}/v1/messages", timeout=10,
                   headers={"Authorization": f"Bearer {key}"},
                   json={"to": "+" + next_msisdn(), "from": "Clinic", "text": "code 4711",
                         **fields})
    assert r.status_code == 202, r.text
    return r.json()  # type: ignore[no-any-return]


def test_callbacks_are_signed_retried_after_500s_and_stop_after_a_200(
        tmp_path: Path, receiver: Receiver) -> None:
    home = tmp_path / "home"
    key, secret = setup(home, receiver)
    receiver.fail_first = 2
    with ServerProcess(home, None, "--quiet-network") as server:
        a = send(server.http_port, key, callback_events=["accepted", "delivered"],
                 client_reference="r-1")
        wait_for(lambda: len(receiver.got) >= 2, 30)
        time.sleep(1.5)  # nothing more comes: each event once its 200 was given
        assert len(receiver.got) == 2 and receiver.answered_500 == 2
        for headers, body in receiver.got:
            assert verify(secret, headers["Adressat-Signature"], body, time.time())
            assert not verify(b"\0" * 32, headers["Adressat-Signature"], body, time.time())
            assert headers["Adressat-Event-Id"] == json.loads(body)["id"]
            assert b"4711" not in body  # never the text
        ev = receiver.events()
        assert [e["type"] for e in ev] == ["message.accepted", "message.delivered"]
        assert {e["message_id"] for e in ev} == {a["id"]}
        assert ev[1]["state"] == "delivered" and ev[1]["client_reference"] == "r-1"
        assert int(ev[0]["id"]) < int(ev[1]["id"])


def test_a_receiver_down_for_a_while_gets_everything_in_order_afterwards(
        tmp_path: Path, receiver: Receiver) -> None:
    home = tmp_path / "home"
    key, _ = setup(home, receiver)
    receiver.stop()  # down: connections refused
    with ServerProcess(home, None, "--quiet-network", "--callback-retry-delay-s-max",
                       "2") as server:
        ids = [send(server.http_port, key, callback_events=["accepted", "delivered"])["id"]
               for _ in range(10)]
        # every message is delivered while the receiver is down
        wait_for(lambda: all(httpx.get(f"http://127.0.0.1:{server.http_port}/v1/messages/{m}",
                                       headers={"Authorization": f"Bearer {key}"},
                                       timeout=10).json()["final"] for m in ids), 30)
        assert receiver.got == []
        receiver.start()
        wait_for(lambda: len(receiver.got) >= 20, 60)
    ev = receiver.events()
    for m in ids:
        mine = [e["type"] for e in ev if e["message_id"] == m]
        assert mine == ["message.accepted", "message.delivered"], (m, mine)
    assert len({e["id"] for e in ev}) == 20


def test_kill_9_between_commit_and_callback_loses_no_callback(
        tmp_path: Path, receiver: Receiver) -> None:
    home = tmp_path / "home"
    key, _ = setup(home, receiver)
    receiver.stop()
    with ServerProcess(home, None, "--quiet-network") as server:
        ids = [send(server.http_port, key, callback_events=["accepted"])["id"]
               for _ in range(20)]
        server.kill()  # the events are in the outbox, none sent
    assert receiver.got == []
    receiver.start()
    with ServerProcess(home, None, "--quiet-network"):
        wait_for(lambda: {e["message_id"] for e in receiver.events()} >= set(ids), 60)
    accepted = [e for e in receiver.events() if e["type"] == "message.accepted"]
    assert sorted(e["message_id"] for e in accepted) == sorted(ids)


def test_no_callback_to_a_host_the_account_does_not_have(tmp_path: Path,
                                                        receiver: Receiver) -> None:
    home = tmp_path / "home"
    key, _ = setup(home, receiver)
    assert adressat(home, "account", "add", "other", "--password", "pw").returncode == 0
    other_key = new_key(home, "other")
    with ServerProcess(home, None, "--quiet-network") as server:
        # another account naming demo's receiver: refused, nothing created
        r = httpx.post(f"http://127.0.0.1:{server.http_port}/v1/messages", timeout=10,
                       headers={"Authorization": f"Bearer {other_key}"},
                       json={"to": "+" + next_msisdn(), "from": "X", "text": "t",
                             "callback_url": f"http://127.0.0.1:{receiver.port}/hook"})
        assert r.status_code == 422 and r.json()["type"] == "/problems/callback-url-not-allowed"
        # demo's own default goes to its receiver; other's messages (no callback) to nobody
        send(server.http_port, other_key)
        mine = send(server.http_port, key)
        wait_for(lambda: len(receiver.got) >= 1, 30)
        time.sleep(1.0)
    assert [e["message_id"] for e in receiver.events()] == [mine["id"]]
