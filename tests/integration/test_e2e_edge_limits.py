"""Limits at the SMPP edge, against the real ``adressat run`` over raw sockets: sessions in
total (exact under a burst), bound sessions and binds per minute per account, and the read
deadline of a PDU that has started to arrive."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_kit import HOST, RawEsme, close_all, wait_for

from adressat.smpp import codec
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import Pdu
from adressat.testing.server import ServerProcess, adressat

ACCOUNTS = [("sess", "pw"), ("other", "pw"), ("race", "pw"), ("storm", "pw"), ("calm", "pw"),
            ("slow", "pw")]
ACCOUNT_SESSIONS_MAX = 2
BINDS_PER_MINUTE_MAX = 6
PDU_READ_TIMEOUT_S = 1.0
ENQUIRE = codec.encode(Pdu.make(C.ENQUIRE_LINK, 1))


def _home(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    home = tmp_path_factory.mktemp(name)
    for account, pw in ACCOUNTS:
        out = adressat(home, "account", "add", account, "--password", pw)
        assert out.returncode == 0, out.stderr
    return home


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        _home(tmp_path_factory, "edge"), None, "--quiet-network", "--subscribers", "1000",
        "--account-sessions-max", str(ACCOUNT_SESSIONS_MAX),
        "--account-binds-per-minute-max", str(BINDS_PER_MINUTE_MAX),
        "--pdu-read-timeout-s", str(PDU_READ_TIMEOUT_S),
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_all()


def log_lines(srv: ServerProcess, needle: str) -> list[str]:
    return [ln for ln in srv.log_path.read_text(errors="replace").splitlines() if needle in ln]


def closed_within(sock: socket.socket, timeout_s: float) -> bool:
    """True if the server closes ``sock`` (EOF or reset) within ``timeout_s``; whatever it
    sends before that is read and dropped."""
    deadline = time.monotonic() + timeout_s
    for _ in range(10_000):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return False
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def closed_among(socks: list[socket.socket], timeout_s: float) -> list[socket.socket]:
    """Those of ``socks`` that the server closes within ``timeout_s`` (all watched at once)."""
    deadline = time.monotonic() + timeout_s
    watching, closed = list(socks), []
    for _ in range(100_000):
        left = deadline - time.monotonic()
        if left <= 0 or not watching:
            break
        readable, _, _ = select.select(watching, [], [], left)
        for sock in readable:
            try:
                eof = not sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                eof = True
            if eof:
                watching.remove(sock)
                closed.append(sock)
    return closed


def alive(sock: socket.socket) -> bool:
    """An enquire_link (legal before a bind) is answered."""
    try:
        sock.sendall(ENQUIRE)
    except OSError:
        return False
    reader = codec.PduReader()
    deadline = time.monotonic() + 5.0
    for _ in range(1000):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (TimeoutError, OSError):
            return False
        if not data:
            return False
        reader.feed(data)
        pdu = reader.next_pdu()
        if pdu is not None:
            return pdu.command_id == C.ENQUIRE_LINK_RESP and pdu.command_status == S.ESME_ROK
    return False


def bind_and_expect_close(srv: ServerProcess, account: str, status: S) -> None:
    raw = RawEsme(srv.port)
    r = raw.bind(account, "pw")
    assert (r.command_id, r.command_status) == (C.BIND_TRANSCEIVER_RESP, status)
    assert closed_within(raw.sock, 5.0), "the server kept the refused session open"


# -- sessions in total ---------------------------------------------------------------------------


def test_sessions_max_is_exact_under_a_burst(tmp_path_factory: pytest.TempPathFactory) -> None:
    """60 connects at once against --sessions-max 20: exactly 20 stay open, the other 40 are
    closed at once and each is logged; a closed session gives its place back, exactly."""
    srv = ServerProcess(_home(tmp_path_factory, "burst"), None, "--quiet-network",
                        "--subscribers", "1000", "--sessions-max", "20").start()
    socks: list[socket.socket] = []
    try:
        time.sleep(1.0)  # the readiness probe's connection is given back
        for _ in range(60):
            socks.append(socket.create_connection((HOST, srv.port), timeout=5.0))
        closed = closed_among(socks, 1.0)
        assert len(closed) == 40, len(closed)
        open_ = [s for s in socks if s not in closed]
        assert all(alive(s) for s in open_)
        assert wait_for(lambda: len(log_lines(srv, "session refused")) == 40, 5)
        line = log_lines(srv, "session refused")[0]
        assert "sessions=20" in line and "limit=20" in line

        for s in open_[:5]:  # five places free up
            s.close()
        time.sleep(1.0)
        more = [socket.create_connection((HOST, srv.port), timeout=5.0) for _ in range(6)]
        socks += more
        refused = closed_among(more, 1.0)
        assert len(refused) == 1
        assert all(alive(s) for s in more if s not in refused)
        assert all(alive(s) for s in open_[5:])
        assert wait_for(lambda: len(log_lines(srv, "session refused")) == 41, 5)
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_sessions_max_flag_is_checked(tmp_path: Path) -> None:
    out = adressat(tmp_path, "run", "--sessions-max", "0", timeout_s=30)
    assert out.returncode == 2 and "--sessions-max" in out.stderr


# -- per account ---------------------------------------------------------------------------------


def test_account_sessions_max(server: ServerProcess) -> None:
    """Two bound sessions of one account at once (TX and RX count alike); a third bind gets
    ESME_RBINDFAIL and a close; another account is not affected; a place freed is usable."""
    first = RawEsme(server.port)
    assert first.bind("sess", "pw", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    second = RawEsme(server.port)
    assert second.bind("sess", "pw", C.BIND_RECEIVER).command_status == S.ESME_ROK
    bind_and_expect_close(server, "sess", S.ESME_RBINDFAIL)
    assert [ln for ln in log_lines(server, "bind refused: account at its limit")
            if "account=sess " in ln and "limit_name=sessions" in ln and "limit=2" in ln]
    other = RawEsme(server.port)
    assert other.bind("other", "pw").command_status == S.ESME_ROK
    # both bound sessions are still served
    for raw in (first, second):
        assert raw.call(C.ENQUIRE_LINK).command_status == S.ESME_ROK
    first.close()

    def third_binds() -> bool:  # the server notices the close a moment later
        return RawEsme(server.port).bind("sess", "pw").command_status == S.ESME_ROK

    assert wait_for(third_binds, 5.0, 0.1)


def test_binds_racing_for_the_last_places_get_exactly_them(server: ServerProcess) -> None:
    """Eight binds of one account sent at once (their password checks run in parallel):
    exactly two are accepted. (Timing decides how often they really race here; the slot taken
    at admission is checked deterministically in tests/app/test_app_bind_limits.py.)"""
    raws = [RawEsme(server.port) for _ in range(8)]
    seqs = [r.request(C.BIND_TRANSCEIVER, system_id="race", password="pw",
                      interface_version=0x34) for r in raws]
    statuses = sorted(int(r.wait_resp(seq).command_status) for r, seq in zip(raws, seqs,
                                                                             strict=True))
    assert statuses == [S.ESME_ROK] * 2 + [S.ESME_RBINDFAIL] * 6


def test_binds_per_minute(server: ServerProcess) -> None:
    """Six accepted binds of one account within a minute; the seventh gets ESME_RBINDFAIL
    and a close, even with a wrong password (refused before the password check, so a
    reconnect storm costs no scrypt per bind); another account still binds."""
    for _ in range(BINDS_PER_MINUTE_MAX):
        raw = RawEsme(server.port)
        assert raw.bind("storm", "pw").command_status == S.ESME_ROK
        assert raw.call(C.UNBIND).command_status == S.ESME_ROK
        assert closed_within(raw.sock, 5.0)
        raw.close()
    bind_and_expect_close(server, "storm", S.ESME_RBINDFAIL)
    raw = RawEsme(server.port)
    assert raw.bind("storm", "wrong").command_status == S.ESME_RBINDFAIL
    assert [ln for ln in log_lines(server, "bind refused: account at its limit")
            if "account=storm " in ln and "binds per minute" in ln and "limit=6" in ln]
    calm = RawEsme(server.port)
    assert calm.bind("calm", "pw").command_status == S.ESME_ROK


# -- read deadline -------------------------------------------------------------------------------


def test_trickled_pdu_is_closed_at_the_read_deadline(server: ServerProcess) -> None:
    """A bound session announces a 64 KiB submit_sm and sends one octet every 0.2 s: it is
    closed within the read deadline plus slack, not held open by the trickle."""
    raw = RawEsme(server.port)
    assert raw.bind("slow", "pw", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    raw.send_raw(struct.pack(">IIII", 65536, C.SUBMIT_SM, 0, 7))
    t0 = time.monotonic()
    closed_at = None
    sent = 16
    for _ in range(50):  # at most 10 s
        if closed_within(raw.sock, 0.2):
            closed_at = time.monotonic()
            break
        try:
            raw.send_raw(b"\0")
            sent += 1
        except OSError:
            closed_at = time.monotonic()
            break
    assert closed_at is not None, "a trickling PDU held the session open"
    assert PDU_READ_TIMEOUT_S - 0.1 <= closed_at - t0 <= PDU_READ_TIMEOUT_S + 1.0
    assert wait_for(lambda: bool(log_lines(server, "PDU read deadline passed")), 5)
    (line,) = log_lines(server, "PDU read deadline passed")
    assert "announced_octets=65536" in line and "limit_s=1.0" in line
    other = RawEsme(server.port)  # the server goes on
    assert other.bind("other", "pw").command_status == S.ESME_ROK


def test_a_pdu_split_within_the_deadline_is_served(server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    raw.send_raw(ENQUIRE[:7])
    time.sleep(PDU_READ_TIMEOUT_S / 2)
    raw.send_raw(ENQUIRE[7:])
    r = raw.read(5.0)
    assert r is not None and r.command_id == C.ENQUIRE_LINK_RESP
