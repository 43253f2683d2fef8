"""Kannel-compatible ``/cgi-bin/sendsms`` against the running node, with httpx and curl.

What an application written for Kannel meets: Kannel 1.4.5's answers byte for byte (body,
status, ``Content-Type: text/html``), GET and POST (an HTML form, and Kannel's own POST with
``X-Kannel-*`` headers), several receivers, each coding and charset, a UDH, validity and
deferred, the same answer for an unknown user and a wrong password, bad parameters refused
with nothing created (checked in the store), the account's throughput shared with SMPP
(503), and messages that reach the handsets.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import httpx
import pytest
from aiohttp import web
from e2e_kit import inbox, next_msisdn, wait_for

from adressat.sms.encodings import gsm7_encode
from adressat.store.content_crypto import ContentCipher, keyring_path
from adressat.testing.server import ServerProcess, adressat

pytestmark = pytest.mark.slow

ACCEPTED = b"0: Accepted for delivery"
AUTH_FAILED = b"Authorization failed for sendsms"
TEMPORARY = b"Temporal failure, try again later."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("sendsms")
    for args in (("shop", "--password", "shoppw"),
                 ("slow", "--password", "slowpw", "--throughput", "1")):
        out = adressat(home, "account", "add", *args)
        assert out.returncode == 0, out.stderr
    # shop's dlr-urls may call the test's receiver on loopback; slow's may call nothing
    out = adressat(home, "account", "callbacks", "shop", "--allow-host", "127.0.0.1")
    assert out.returncode == 0, out.stderr
    srv = ServerProcess(home, None, "--quiet-network", "--subscribers", "100000").start()
    try:
        yield srv
    finally:
        srv.stop()


def _url(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.http_port}/cgi-bin/sendsms"


def _rows(server: ServerProcess, where: str = "1", args: tuple[Any, ...] = ()) -> list[
        dict[str, Any]]:
    """The messages' rows as stored, each text decrypted with the node's own keyring (texts
    are encrypted at rest: the raw column is ciphertext)."""
    db = server.home / "adressat.db"
    cipher = ContentCipher.open(keyring_path(db), may_create=lambda: False)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in conn.execute(
            f"SELECT * FROM messages WHERE account != '_canary' AND {where}"  # noqa: S608
            " ORDER BY submitted_at", args)]
    finally:
        conn.close()
    for r in rows:
        if r["content"]:
            r["content"] = cipher.decrypt(bytes(r["content"]), r["id"])
    return rows


def _count(server: ServerProcess) -> int:
    return len(_rows(server))


def _to(server: ServerProcess, msisdn: str) -> list[dict[str, Any]]:
    return _rows(server, "destination = ?", (msisdn,))


def _get(server: ServerProcess, **params: str) -> httpx.Response:
    q = {"username": "shop", "password": "shoppw", "from": "Shop", "text": "hello"}
    q.update({k.replace("_", "-"): v for k, v in params.items()})
    q = {k: v for k, v in q.items() if v is not None}
    return httpx.get(_url(server), params=q, timeout=10)


def test_get_with_curl_is_kannels_answer_after_the_commit_and_reaches_the_handset(
        server: ServerProcess) -> None:
    to = next_msisdn()
    out = subprocess.run(
        ["curl", "-sS", "-i", "--max-time", "10", "-G", _url(server),
         "--data-urlencode", "username=shop", "--data-urlencode", "password=shoppw",
         "--data-urlencode", "from=Shop", "--data-urlencode", f"to={to}",
         "--data-urlencode", "text=Your box is on its way"],
        capture_output=True, timeout=20, check=False)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202 Accepted")
    assert b"Content-Type: text/html\r\n" in head
    assert body == ACCEPTED
    rows = _to(server, to)  # durable when answered: no wait
    assert len(rows) == 1
    m = rows[0]
    assert json.loads(m["extra"])["channel"] == "kannel"
    assert m["registered_delivery"] == 0 and m["data_coding"] == 0
    assert bytes(m["content"]) == gsm7_encode("Your box is on its way")
    assert (m["source_addr"], m["source_ton"]) == ("Shop", 5)
    got = wait_for(lambda: inbox(server.home, to), 15)
    assert [r.smsc_message_id for r in got] == [m["id"]]


def test_several_receivers_with_httpx_and_a_plus(server: ServerProcess) -> None:
    a, b = next_msisdn(), next_msisdn()
    r = _get(server, to=f"+{a} {b}  +{a}", text="two")
    assert (r.status_code, r.content) == (202, ACCEPTED)
    assert len(_to(server, a)) == 1 and len(_to(server, b)) == 1
    assert wait_for(lambda: inbox(server.home, a) and inbox(server.home, b), 15)


def test_post_html_form_and_kannels_own_post(server: ServerProcess) -> None:
    a = next_msisdn()
    r = httpx.post(_url(server), data={"user": "shop", "pass": "shoppw", "from": "4670999",
                                       "to": a, "text": "form"}, timeout=10)
    assert (r.status_code, r.content) == (202, ACCEPTED)
    m = _to(server, a)[0]
    assert (m["source_addr"], m["source_ton"]) == ("4670999", 1)
    b = next_msisdn()
    r = httpx.post(_url(server), content="Ж".encode("utf-16-be"), headers={
        "Content-Type": "application/octet-stream", "X-Kannel-Username": "shop",
        "X-Kannel-Password": "shoppw", "X-Kannel-From": "Shop", "X-Kannel-To": b,
        "X-Kannel-Coding": "2"}, timeout=10)
    assert (r.status_code, r.content) == (202, ACCEPTED)
    m = _to(server, b)[0]
    assert (m["data_coding"], bytes(m["content"])) == (8, b"\x04\x16")
    c = next_msisdn()
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-X", "POST", _url(server),
         "-H", "Content-Type: text/plain; charset=ISO-8859-1", "-H", "X-Kannel-Username: shop",
         "-H", "X-Kannel-Password: shoppw", "-H", "X-Kannel-From: Shop",
         "-H", f"X-Kannel-To: {c}", "--data-binary", "Hå".encode("latin-1")],
        capture_output=True, timeout=20, check=False)
    assert out.stdout == ACCEPTED, out.stderr
    assert bytes(_to(server, c)[0]["content"]) == gsm7_encode("Hå")
    r = httpx.post(_url(server), content=b"x", headers={"Content-Type": "image/png"}, timeout=10)
    assert (r.status_code, r.content) == (400, b"Invalid content-type")


@pytest.mark.parametrize(("params", "text", "data_coding", "content"), [
    ({}, "Hå €".encode(), 0, gsm7_encode("Hå €")),  # 7-bit from UTF-8 (the default charset)
    ({"charset": "ISO-8859-1"}, "Hå".encode("latin-1"), 0, gsm7_encode("Hå")),
    ({}, "a😀".encode(), 0, gsm7_encode("a?")),  # no GSM form: "?" as in Kannel
    ({"coding": "1"}, b"\x00\x01\xff", 4, b"\x00\x01\xff"),
    ({"coding": "2"}, "Ж".encode("utf-16-be"), 8, b"\x04\x16"),  # octets are UTF-16BE
    ({"coding": "2", "charset": "UTF-8"}, "Привет".encode(), 8, "Привет".encode("utf-16-be")),
    ({"mclass": "0"}, b"hi", 0x10, gsm7_encode("hi")),  # flash
])
def test_each_coding_and_charset(server: ServerProcess, params: dict[str, str], text: bytes,
                                 data_coding: int, content: bytes) -> None:
    to = next_msisdn()
    q = urlencode({"username": "shop", "password": "shoppw", "from": "Shop", "to": to,
                   **params})
    r = httpx.get(f"{_url(server)}?{q}&text={quote_from_bytes(text)}", timeout=10)
    assert (r.status_code, r.content) == (202, ACCEPTED)
    m = _to(server, to)[0]
    assert (m["data_coding"], bytes(m["content"])) == (data_coding, content)
    assert wait_for(lambda: inbox(server.home, to), 15)[0].data_coding == data_coding


def test_udh_validity_and_deferred(server: ServerProcess) -> None:
    to = next_msisdn()
    udh = b"\x05\x00\x03\x2a\x02\x01"
    r = httpx.get(_url(server) + "?username=shop&password=shoppw&from=Shop&to=" + to
                  + "&udh=%05%00%03%2A%02%01&text=part+one", timeout=10)
    assert (r.status_code, r.content) == (202, ACCEPTED)
    m = _to(server, to)[0]
    assert m["esm_class"] == 0x40 and m["data_coding"] == 4
    assert bytes(m["content"]) == udh + b"part one"
    later = next_msisdn()
    t0 = time.time()
    r = _get(server, to=later, validity="60", deferred="10")
    assert (r.status_code, r.content) == (202, ACCEPTED)
    m = _to(server, later)[0]
    assert abs(m["not_before"] - (t0 + 600)) < 5
    assert abs(m["expires_at"] - (t0 + 600 + 3600)) < 5
    time.sleep(0.5)  # not a wait for a condition: a deferred message must stay put
    assert _to(server, later)[0]["state"] == "ROUTED" and not inbox(server.home, later)


def test_bad_credentials_same_answer_nothing_created(server: ServerProcess) -> None:
    before = _count(server)
    answers = {
        (r.status_code, r.content, r.headers["content-type"])
        for r in (_get(server, to=next_msisdn(), username="nobody"),
                  _get(server, to=next_msisdn(), password="wrong"),
                  _get(server, to=next_msisdn(), password=None),
                  httpx.get(_url(server), params={"to": next_msisdn()}, timeout=10))
    }
    assert answers == {(403, AUTH_FAILED, "text/html")}
    assert _count(server) == before


@pytest.mark.parametrize(("params", "status", "body"), [
    ({"to": None}, 400, b"Missing receiver number, rejected"),
    ({"to": ""}, 400, b"Empty receiver number not allowed, rejected"),
    ({"to": "4670abc"}, 400, b"Number(s) has/have been denied by white- and/or black-lists."),
    ({"from": None}, 400, b"Sender missing and no global set, rejected"),
    ({"udh": "%05%00"}, 400, b"UDH field misformed, rejected"),
    ({"coding": "7"}, 400, b"Coding field misformed, rejected"),
    ({"dlr_mask": "99"}, 400, b"DLR-Mask field misformed, rejected"),
    ({"dlr_url": "mailto:x"}, 400, b"DLR-URL field misformed, rejected"),
    ({"validity": "soon"}, 400, b"Validity field misformed, rejected"),
    ({"priority": "9"}, 400, b"Priority field misformed, rejected"),
    ({"mclass": "5"}, 400, b"MClass field misformed, rejected"),
    ({"pid": "300"}, 400, b"PID field misformed, rejected"),
    ({"text": "\x04", "coding": "2"}, 400, b"Charset or body misformed, rejected"),
    ({"to": "123"}, 403, b"Not routable. Do not try again."),  # not a number of anyone
])
def test_invalid_parameters_kannels_answer_and_nothing_created(
        server: ServerProcess, params: dict[str, str | None], status: int, body: bytes) -> None:
    before = _count(server)
    extra = {"to": next_msisdn(), **params}
    r = _get(server, **extra)  # type: ignore[arg-type]
    assert (r.status_code, r.content) == (status, body)
    assert _count(server) == before


def test_one_bad_receiver_refuses_the_request(server: ServerProcess) -> None:
    before = _count(server)
    r = _get(server, to=f"{next_msisdn()} 123")
    assert r.status_code == 403 and _count(server) == before


def test_throughput_is_the_accounts_and_over_it_is_a_temporary_failure(
        server: ServerProcess) -> None:
    answers = []
    with httpx.Client(timeout=10) as c:
        for _ in range(6):  # 1 message per second, back to back: some must be refused
            r = c.get(_url(server), params={"username": "slow", "password": "slowpw",
                                            "from": "Slow", "to": next_msisdn(), "text": "t"})
            answers.append((r.status_code, r.content))
    assert (503, TEMPORARY) in answers
    assert set(answers) <= {(202, ACCEPTED), (503, TEMPORARY)}
    assert len(_rows(server, "account = 'slow'")) == answers.count((202, ACCEPTED))


class Receiver:
    """A real aiohttp server on 127.0.0.1 in a thread of its own: records the query of
    every GET (a Kannel application's DLR handler)."""

    def __init__(self) -> None:
        self.hits: list[dict[str, str]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits.append(dict(request.query))
        return web.Response(text="ok")

    async def _main(self) -> None:
        app = web.Application()
        app.router.add_get("/dlr", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]  # noqa: SLF001
        self._stop = asyncio.Event()
        self._started.set()
        await self._stop.wait()
        await runner.cleanup()

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())

    def __enter__(self) -> Receiver:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def url(self) -> str:
        return (f"http://127.0.0.1:{self.port}/dlr?id=%I&s=%d&to=%p&from=%P&smsc=%i"
                "&t=%T&ref=mine")


def test_dlr_url_is_called_for_accepted_and_delivered_in_order(server: ServerProcess) -> None:
    to = next_msisdn()
    with Receiver() as rx:
        r = _get(server, to=to, text="with a receipt", dlr_mask="9", dlr_url=rx.url())
        assert (r.status_code, r.content) == (202, ACCEPTED)
        mid = _to(server, to)[0]["id"]
        got = wait_for(lambda: [h for h in rx.hits if h.get("id") == mid][:2]
                       if len([h for h in rx.hits if h.get("id") == mid]) >= 2 else [], 20)
        assert [h["s"] for h in got] == ["8", "1"], rx.hits  # smsc accepted, then delivered
        assert all(h["ref"] == "mine" for h in got)
        assert {h["to"] for h in got} | {h["from"] for h in got} >= {to}
        assert abs(int(got[1]["t"]) - time.time()) < 60
        time.sleep(0.5)  # nothing more is owed: mask 9 asks for no failure report
        assert len([h for h in rx.hits if h.get("id") == mid]) == 2


def test_dlr_url_only_to_the_accounts_own_hosts(server: ServerProcess) -> None:
    before = _count(server)
    r = _get(server, to=next_msisdn(), dlr_mask="1", dlr_url="http://198.51.100.7/dlr?s=%d")
    assert (r.status_code, r.content) == (
        403, b"DLR-URL host not allowed for this account, rejected")
    r = httpx.get(_url(server), params={"username": "slow", "password": "slowpw",
                                        "from": "Slow", "to": next_msisdn(), "dlr-mask": "1",
                                        "dlr-url": "http://127.0.0.1:9/dlr"}, timeout=10)
    assert r.status_code == 403
    assert _count(server) == before


def test_dlr_url_is_called_for_a_failed_message(server: ServerProcess) -> None:
    to = "46731234567"  # a valid number of another operator, no connector to it: it fails
    with Receiver() as rx:
        r = _get(server, to="+" + to, text="no way out", dlr_mask="2", dlr_url=rx.url())
        assert (r.status_code, r.content) == (202, ACCEPTED)
        m = _to(server, to)[0]
        assert m["state"] == "UNDELIVERABLE"
        got = wait_for(lambda: [h for h in rx.hits if h.get("id") == m["id"]], 20)
        assert [h["s"] for h in got] == ["2"]
