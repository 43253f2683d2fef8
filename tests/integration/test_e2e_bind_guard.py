"""Credentials and guessing (issue 13) against the real ``adressat run``: one status for an
unknown system_id and a wrong password (python-smpplib), a lockout after N failures that
refuses even the right password from that address until its backoff ends (and not from
another address), kept across a restart; the same for sendsms and HTTP API keys; and a
storm of 50 parallel guessers that leaves a bound session working, lets a known ESME bind,
and keeps the node's memory bounded."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import smpplib.client
import smpplib.exceptions
from e2e_kit import HOST, OPEN, RawEsme, close_all, next_msisdn, wait_for

from adressat.smpp import codec
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import Pdu
from adressat.testing.server import ServerProcess, adressat

LOCKOUT_S = 2.0
GUARD_ARGS = ("--quiet-network", "--subscribers", "1000", "--log-format", "json",
              "--credential-failures-max", "3",
              "--credential-address-failures-max", "1000",
              "--credential-principal-failures-max", "1000",
              "--credential-lockout-s-min", str(LOCKOUT_S),
              "--credential-lockout-s-max", str(LOCKOUT_S * 2))
ACCOUNTS = ("acme", "lock1", "lock2", "sms1", "keyed")


def _home(tmp_path_factory: pytest.TempPathFactory, name: str,
          accounts: tuple[str, ...] = ACCOUNTS) -> Path:
    home = tmp_path_factory.mktemp(name)
    for account in accounts:
        out = adressat(home, "account", "add", account, "--password", "pw1")
        assert out.returncode == 0, out.stderr
    return home


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(_home(tmp_path_factory, "guard"), None, *GUARD_ARGS).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_all()


class FromAddress(RawEsme):
    """A raw ESME whose connection comes from another loopback address (127.0.0.0/8)."""

    def __init__(self, port: int, source: str) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5.0,
                                             source_address=(source, 0))
        OPEN.append(self)
        self.sock.settimeout(5.0)
        self.reader = codec.PduReader(1 << 20)
        self.seq = itertools.count(1)
        self.pending: list[Pdu] = []


def _records(srv: ServerProcess, event: str) -> list[dict[str, object]]:
    out = []
    for line in srv.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("event") == event:
                out.append(rec)
    return out


def _bind_status(port: int, system_id: str, password: str) -> int:
    raw = RawEsme(port, timeout_s=30.0)  # a check may wait behind a storm's (bounded) queue
    try:
        return int(raw.bind(system_id, password).command_status)
    finally:
        raw.close()


def _fail_n(port: int, system_id: str, n: int) -> list[int]:
    return [_bind_status(port, system_id, f"bad{i}") for i in range(n)]


# --- one answer ----------------------------------------------------------------------------------

def test_unknown_system_id_and_wrong_password_get_the_same_status(server: ServerProcess) -> None:
    got = []
    for system_id, password in (("acme", "wrong"), ("nobody", "pw1")):
        c = smpplib.client.Client(HOST, server.port, timeout=5, allow_unknown_opt_params=True)
        c.connect()
        try:
            with pytest.raises(smpplib.exceptions.PDUError) as exc:
                c.bind_transceiver(system_id=system_id, password=password)
            got.append(exc.value.args[1])
        finally:
            c.disconnect()
    assert got == [S.ESME_RBINDFAIL, S.ESME_RBINDFAIL]
    # the operator's log still says which (and never the password)
    recs = wait_for(lambda: [r for r in _records(server, "bind refused: credentials")
                             if r.get("account") in ("acme", "nobody")])
    assert {(r["account"], r["reason"]) for r in recs} >= {("acme", "password"),
                                                          ("nobody", "unknown")}
    assert "wrong" not in server.log_path.read_text(errors="replace")


# --- lockout -------------------------------------------------------------------------------------

def test_after_n_failures_the_right_password_is_refused_from_that_address_until_the_backoff_ends(
        server: ServerProcess) -> None:
    assert _fail_n(server.port, "lock1", 3) == [S.ESME_RBINDFAIL] * 3
    raw = RawEsme(server.port)
    assert raw.bind("lock1", "pw1").command_status == S.ESME_RBINDFAIL  # locked: unchecked
    assert raw.read(5.0) is None  # and closed at once
    # the lockout is of that (system_id, address): another address binds, another name too
    other = FromAddress(server.port, "127.0.0.2")
    assert other.bind("lock1", "pw1").command_status == S.ESME_ROK
    assert _bind_status(server.port, "acme", "pw1") == S.ESME_ROK
    # an unknown name locks alike (no oracle): 3 failures, then refused unchecked
    assert _fail_n(server.port, "ghost1", 4) == [S.ESME_RBINDFAIL] * 4
    lockouts = wait_for(lambda: [r for r in _records(server, "credential lockout")
                                 if r.get("principal") in ("lock1", "ghost1")])
    assert {r["principal"] for r in lockouts} == {"lock1", "ghost1"}
    assert all(r["scope"] == "pair" and r["lockout_s"] == LOCKOUT_S for r in lockouts)
    # the backoff ends: the right password works again from that address
    assert wait_for(lambda: _bind_status(server.port, "lock1", "pw1") == S.ESME_ROK,
                    LOCKOUT_S * 10, 0.5)
    status, body = server.http_get("/metrics")
    text = body.decode()
    assert 'adressat_credential_lockouts_total{realm="account",scope="pair"}' in text
    assert 'adressat_credential_failures_total{realm="account",reason="locked"}' in text
    assert 'adressat_credential_failures_total{realm="account",reason="unknown"}' in text


def test_sendsms_shares_the_lockout_of_the_account(server: ServerProcess) -> None:
    url = f"http://127.0.0.1:{server.http_port}/cgi-bin/sendsms"
    params = {"from": "ACME", "to": next_msisdn(), "text": "x"}
    with httpx.Client(timeout=10.0) as http:
        for i in range(3):
            r = http.get(url, params={**params, "username": "sms1", "password": f"bad{i}"})
            assert r.status_code == 403
        r = http.get(url, params={**params, "username": "sms1", "password": "pw1"})
        assert (r.status_code, r.text) == (403, "Authorization failed for sendsms")
        # ... and an SMPP bind of that account from that address is locked out too
        assert _bind_status(server.port, "sms1", "pw1") == S.ESME_RBINDFAIL
        ok = wait_for(lambda: http.get(url, params={**params, "username": "sms1",
                                                    "password": "pw1"}).status_code == 202,
                      LOCKOUT_S * 10, 0.5)
        assert ok


def test_api_keys_lock_out_per_key_and_address_with_one_401(server: ServerProcess) -> None:
    out = adressat(server.home, "account", "key", "add", "keyed")
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    prefix, key_id, secret = key.split("_", 2)
    wrong = f"{prefix}_{key_id}_{'A' * 42}{'g' if secret[-1] != 'g' else 'w'}"
    unknown = f"{prefix}_{'0' * 12}_{secret}"
    url = f"http://127.0.0.1:{server.http_port}/v1/messages/some-id"
    with httpx.Client(timeout=10.0) as http:
        def get(k: str) -> tuple[int, str]:
            r = http.get(url, headers={"Authorization": f"Bearer {k}"})
            return r.status_code, r.text

        assert get(key)[0] == 404  # the key works (no such message)
        answers = {get(unknown), get(wrong)}
        assert len(answers) == 1 and next(iter(answers))[0] == 401  # one answer for both
        get(wrong)
        get(wrong)  # 3 failures of that key id from this address
        assert get(key) == next(iter(answers))  # the right key: the same 401 while locked
        assert wait_for(lambda: get(key)[0] == 404, LOCKOUT_S * 10, 0.5)


# --- restart -------------------------------------------------------------------------------------

def test_a_restart_keeps_the_lockout(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = _home(tmp_path_factory, "restart", ("acme",))
    args = (*GUARD_ARGS[:-4], "--credential-lockout-s-min", "300",
            "--credential-lockout-s-max", "600")
    srv = ServerProcess(home, None, *args).start()
    try:
        assert _fail_n(srv.port, "acme", 3) == [S.ESME_RBINDFAIL] * 3
        assert _bind_status(srv.port, "acme", "pw1") == S.ESME_RBINDFAIL
    finally:
        assert srv.stop() == 0
    srv = ServerProcess(home, srv.port, *args).start()
    try:
        assert _bind_status(srv.port, "acme", "pw1") == S.ESME_RBINDFAIL  # still locked
        other = FromAddress(srv.port, "127.0.0.3")
        assert other.bind("acme", "pw1").command_status == S.ESME_ROK  # only that address
    finally:
        srv.stop()


# --- a guessing storm ----------------------------------------------------------------------------

GUESSERS = 50
STORM_S = 8.0
RSS_GROWTH_MB_MAX = 40


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _bind_frame(seq: int, system_id: str, password: str) -> bytes:
    return codec.encode(Pdu.make(C.BIND_TRANSCEIVER, seq, system_id=system_id,
                                 password=password, interface_version=0x34))


async def guesser(port: int, deadline: float, rng: random.Random, counts: dict[str, int]
                  ) -> None:
    """Reconnect and guess until ``deadline`` (bounded: at most 10,000 tries)."""
    for _ in range(10_000):
        if time.monotonic() >= deadline:
            return
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            counts["connect_failed"] += 1
            await asyncio.sleep(0.05)
            continue
        try:
            for seq in range(1, 4):
                name = "target" if rng.random() < 0.5 else f"u{rng.randrange(10**6)}"
                writer.write(_bind_frame(seq, name, f"g{rng.randrange(10**6)}"))
                await writer.drain()
                head = await asyncio.wait_for(reader.readexactly(16), 10.0)
                length, _, status, _ = struct.unpack(">IIII", head)
                await reader.readexactly(length - 16)
                counts[S(status).name] += 1
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            counts["closed"] += 1
        finally:
            writer.close()


def test_a_guessing_storm_leaves_a_bound_session_working_and_memory_bounded(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    home = _home(tmp_path_factory, "storm", ("target", "calm", "known"))
    srv = ServerProcess(home, None, "--quiet-network", "--subscribers", "1000",
                        "--log-format", "json").start()
    try:
        assert _bind_status(srv.port, "known", "pw1") == S.ESME_ROK  # this address is known
        calm = RawEsme(srv.port)
        assert calm.bind("calm", "pw1").command_status == S.ESME_ROK
        submit = dict(source_addr="CALM", source_addr_ton=5, dest_addr_ton=1, dest_addr_npi=1)
        for _ in range(20):  # warm
            assert calm.call(C.SUBMIT_SM, destination_addr=next_msisdn(), **submit,
                             short_message=b"w").command_status == S.ESME_ROK
        rss_before = rss_mb(srv.proc.pid)  # type: ignore[union-attr]
        counts: dict[str, int] = {k: 0 for k in ("connect_failed", "closed")}
        counts.update({s.name: 0 for s in S})
        done: list[BaseException | None] = []

        async def storm() -> None:
            deadline = time.monotonic() + STORM_S
            rng = random.Random(13)
            await asyncio.gather(*(guesser(srv.port, deadline, random.Random(rng.random()),
                                           counts) for _ in range(GUESSERS)))

        import threading

        def run() -> None:
            try:
                asyncio.run(storm())
                done.append(None)
            except BaseException as e:  # noqa: BLE001 - handed to the test
                done.append(e)

        t = threading.Thread(target=run)
        t.start()
        time.sleep(1.0)
        submitted = 0
        known_binds = []
        while t.is_alive() and submitted < 2000:
            r = calm.call(C.SUBMIT_SM, destination_addr=next_msisdn(), **submit,
                          short_message=b"s")
            assert r.command_status == S.ESME_ROK
            submitted += 1
            if submitted % 100 == 0:  # a known ESME can still bind during the storm
                known_binds.append(_bind_status(srv.port, "known", "pw1"))
        t.join(60)
        assert done == [None]
        assert submitted >= 20
        assert known_binds and set(known_binds) == {S.ESME_ROK}, known_binds
        guesses = sum(counts[s.name] for s in S)
        assert guesses >= GUESSERS
        # every guess was refused with the one status; none got in
        assert {s for s in S if counts[s.name]} == {S.ESME_RBINDFAIL}, counts
        rss_after = rss_mb(srv.proc.pid)  # type: ignore[union-attr]
        assert rss_after - rss_before < RSS_GROWTH_MB_MAX, (rss_before, rss_after)
        # the storm locked this address out for names it never bound (cheap answers)
        assert wait_for(lambda: any(r.get("scope") == "address" for r in
                                    _records(srv, "credential lockout")))
        assert os.path.exists(home / "adressat.db")
    finally:
        srv.stop()
