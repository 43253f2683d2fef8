"""A storm of hostile peers against the real ``adressat run`` while a real client
(python-smpplib) keeps submitting: malformed PDUs (random bytes, command_length huge and
small, unknown command ids, truncated bodies, oversized PDUs), half-open connections
(nothing sent; half a header), slow ones (a bind at one octet per 100 ms) and over a
thousand binds (wrong passwords, unknown system_ids, right ones dropped without an unbind).

What must hold (no timing assertions; every wait bounded):
- every submit of the bound session gets a valid submit_sm_resp, and every message accepted
  is delivered to its own destination and nowhere else, with its receipt back;
- no hostile bind is ever accepted, and every hostile connection is closed by the server
  (the short limits below reap it);
- afterwards the node is up, its open file descriptors and bound sessions are back to
  what they were before, and its memory grew by less than ``RSS_GROWTH_BYTES_MAX``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from e2e_kit import Esme, close_all, inbox, wait_for
from hostile_kit import Storm, fd_count, rss_bytes

from adressat.smpp.constants import CommandStatus as S
from adressat.testing.server import ServerProcess, adressat, audit

# short limits, so that what hostile peers leave open is reaped within the storm
PDU_READ_TIMEOUT_S = 1.0
BIND_TIMEOUT_S = 1.0
BAD_PDUS_MAX = 3
PDU_LENGTH_MAX = 65536  # the default (pdu_length_max is not a run option)
# Measured (bench/hostile.py, 2 cores, loopback): malformed, half-open and slow peers grow the
# SMPP process by about 1 MB (600 connections). The bind flood grew it by 185 MB before the
# password checks were bounded (scrypt takes 16 MB a check, run in the default executor's
# threads, whose malloc arenas keep it): 50 MB leaves room for a few checks at once and
# catches both that and a leak of 40 KB per connection (1,200 of them).
RSS_GROWTH_BYTES_MAX = 50 * 1024 * 1024
FD_SLACK = 2  # the SQLite WAL/shm and the log may be reopened by a checkpoint
SUBMITS_MIN = 100
OK_OR_BACKPRESSURE = {S.ESME_ROK, S.ESME_RTHROTTLED, S.ESME_RMSGQFUL}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("hostile")
    for name, pw in [("acme", "pw1"), ("flood", "pw2")]:
        out = adressat(home, "account", "add", name, "--password", pw)
        assert out.returncode == 0, out.stderr
    srv = ServerProcess(
        home, None, "--quiet-network", "--subscribers", "5000",
        "--pdu-read-timeout-s", str(PDU_READ_TIMEOUT_S),
        "--bind-timeout-s", str(BIND_TIMEOUT_S), "--bad-pdus-max", str(BAD_PDUS_MAX),
        "--account-binds-per-minute-max", "0", "--account-sessions-max", "0",
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_all()


def _bound_sessions(srv: ServerProcess) -> dict[str, float]:
    status, body = srv.http_get("/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("adressat_sessions_bound{"):
            account = line.split('account="', 1)[1].split('"', 1)[0]
            out[account] = float(line.rsplit(" ", 1)[1])
    return {a: n for a, n in out.items() if n}


def _mid(resp: object) -> str:
    v = resp.message_id  # type: ignore[attr-defined]
    return v.decode() if isinstance(v, bytes) else str(v)


# the storm in two parts, each against the same node with its own baseline, so that a
# failure says which kind of peer did it
STORMS = {
    "malformed_half_open_slow": dict(wrong_password=0, unknown_id=0, right_then_drop=0),
    # 40 guessers at once: from one address the guard locks them out after 50 failures, and a
    # locked bind is answered after credential_refusal_delay_s (1 s), so sequential guessers
    # would take minutes; the real ESMEs' pairs (bound before the storm) stay trusted
    "bind_flood": dict(malformed=0, half_open=0, half_header=0, slow=0, threads=40),
}


@pytest.mark.parametrize("part", list(STORMS))
def test_storm_of_hostile_peers_loses_nothing_and_leaves_nothing(server: ServerProcess,
                                                                 part: str) -> None:
    pid = server.proc.pid  # type: ignore[union-attr]  # the SMPP process: it holds the sockets
    acme = Esme(server.port, "acme", "pw1", timeout_s=2.0)
    first = 46701000000 + (0 if part == "bind_flood" else 2500)  # destinations of their own
    warm = [acme.resp(acme.submit(str(first + 100 + i), b"warm", registered_delivery=1))
            for i in range(20)]
    assert all(r.status == S.ESME_ROK for r in warm)
    assert acme.pump(lambda: all(acme.receipts_for(_mid(r)) for r in warm), 20)
    fds_before = fd_count(pid)
    rss_before = rss_bytes(pid)
    sessions_before = _bound_sessions(server)
    assert sessions_before == {"acme": 1.0}

    storm = Storm(server.port, good=("flood", "pw2"), victim="acme",
                  pdu_length_max=PDU_LENGTH_MAX, close_wait_s=20.0,
                  **STORMS[part])  # type: ignore[arg-type]
    attack = threading.Thread(target=storm.run, daemon=True)
    attack.start()
    sent: dict[str, str] = {}  # message id -> destination
    statuses: list[int] = []
    n = 0
    while (attack.is_alive() or n < SUBMITS_MIN) and n < 2000:
        dest = str(first + 200 + n)  # one of the 5,000 subscribers, a new one each time
        resp = acme.resp(acme.submit(dest, b"storm %d" % n, registered_delivery=1), 30)
        assert resp.command == "submit_sm_resp"
        statuses.append(resp.status)
        if resp.status == S.ESME_ROK:
            sent[_mid(resp)] = dest
        n += 1
    attack.join(60)
    assert not attack.is_alive()
    report = storm.report
    print("storm:", report.as_dict(), "submits:", n)

    # the bound session: a valid answer to every submit, nothing lost, nothing misdirected
    assert set(statuses) <= {int(s) for s in OK_OR_BACKPRESSURE}, set(statuses)
    assert len(sent) >= SUBMITS_MIN
    assert acme.pump(lambda: all(acme.receipts_for(m) for m in sent), 60), "receipts missing"
    delivered = {}
    for rec in inbox(server.home):
        if rec.smsc_message_id in sent and not rec.duplicate:
            assert rec.msisdn == sent[rec.smsc_message_id], rec
            assert rec.smsc_message_id not in delivered, "delivered twice"
            delivered[rec.smsc_message_id] = rec.msisdn
    assert delivered == sent
    for mid in sent:
        receipts = acme.receipts_for(mid)
        assert len({bytes(p.short_message) for p in receipts}) == 1
        assert b"stat:DELIVRD" in bytes(receipts[0].short_message)

    # the attackers: nothing accepted that should not be, everything reaped
    assert report.wrongly_bound == 0
    assert not report.errors, report.errors
    assert not report.not_closed, report.not_closed
    if part == "bind_flood":
        assert sum(report.binds.values()) >= 1000
        assert report.binds["right:ESME_ROK"] >= 1  # the good binds were real binds
    else:
        assert report.connections["half_open"] + report.connections["half_header"] >= 150
        assert report.connections["malformed"] >= 250
        assert report.connections["slow"] >= 1

    # the node: up, and back to what it was
    acme.resp(acme.submit(str(first + 99), b"after"), 30)
    assert wait_for(lambda: fd_count(pid) <= fds_before + FD_SLACK, 30), (
        fd_count(pid), fds_before)
    assert wait_for(lambda: _bound_sessions(server) == sessions_before, 30), (
        _bound_sessions(server))
    growth = rss_bytes(pid) - rss_before
    print(f"rss growth {growth / 1e6:.1f} MB, fds {fd_count(pid)} (before {fds_before})")
    assert growth < RSS_GROWTH_BYTES_MAX, growth
    acme.close()
    wait_for(lambda: audit(server.home)["lost"] == 0, 20, 0.5)
    final = audit(server.home)
    assert final["lost"] == 0 and final["misdelivered"] == 0, final
    assert final["duplicate_deliveries"] == 0, final
