"""adressat's connector against SMPP servers nobody here wrote (issue 11): Jasmin 0.11.1's
SMPP server (with an adressat node behind it, so the messages reach real netsim handsets and
the receipts travel back through Jasmin), and OsmoMSC's SMSC, which answers every submit_sm
with the same message id and never sends a receipt. tshark decodes each session of ours
without a malformed packet."""

from __future__ import annotations

import itertools
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from adressat_nodes import Node  # noqa: E402
from e2e_kit import Esme, close_all, customer_inbox, wait_for  # noqa: E402
from peer_jasmin import Jasmin  # noqa: E402
from peer_osmo import OsmoMsc  # noqa: E402
from smpp_capture import Capture  # noqa: E402

from adressat.testing.server import adressat  # noqa: E402

pytestmark = pytest.mark.slow

_numbers = itertools.count(46701096000)  # netsim numbers of both nodes, apart from others'


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v or "")


def _db(home: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(f"file:{home / 'adressat.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _connector_node(node_factory: Any, name: str, port: int, system_id: str, password: str,
                    *run_args: str) -> Node:
    return node_factory(accounts=[("acme", "pw1")], setup=[
        ["connector", "add", name, "--host", "127.0.0.1", "--port", str(port),
         "--system-id", system_id, "--password", password, "--bind", "trx"],
        ["route", "add", f"via-{name}", "--prefix", "4670109", "--via", name],
    ], run_args=["--canary-interval-s", "0", *run_args])


def test_connector_to_jasmin(jasmin: Jasmin, jasmin_upstream: Node, node_factory: Any,
                             tmp_path: Path) -> None:
    n = 10
    with Capture(tmp_path, jasmin.smpp_port) as cap:
        a = _connector_node(node_factory, "jasmin", jasmin.smpp_port, jasmin.system_id,
                            jasmin.password)
        e = Esme(a.port, "acme", "pw1")
        try:
            dests = [str(next(_numbers)) for _ in range(n)]
            seqs = [e.submit(d, f"through jasmin {i}".encode(), registered_delivery=1)
                    for i, d in enumerate(dests)]
            ids = [_s(e.resp(s, 15).message_id) for s in seqs]
            # each reaches its handset behind Jasmin (not one of node a's)
            def arrived() -> list[str]:
                return [r.msisdn for r in customer_inbox(jasmin_upstream.home)
                        if r.msisdn in dests]
            got = wait_for(lambda: (lambda x: x if len(x) >= n else None)(arrived()), 40, 0.2)
            assert sorted(got or arrived()) == sorted(dests), jasmin.logs()
            assert [r for r in customer_inbox(a.home) if r.msisdn in dests] == []
            # and the partner's receipts end them DELIVERED, receipted to acme under our ids
            e.pump(lambda: all(e.receipts_for(i) for i in ids), 60)
            for i in ids:
                [p] = e.receipts_for(i)
                assert "stat:DELIVRD" in _s(p.short_message)
            shown = json.loads(adressat(a.home, "message", "show", ids[0], "--json").stdout)
            assert shown["connector"] == "jasmin" and shown["state"] == "DELIVERED"
            assert len(shown["partner_id"]) >= 32  # Jasmin's UUID
            assert _db(a.home, "SELECT COUNT(*) FROM alarms") == [(0,)]
        finally:
            close_all()
            a.server.stop()  # a clean unbind, inside the capture
    report = cap.decode()
    assert not report.problems, report.text()
    assert 0x80000004 in report.commands() and 0x05 in report.commands()  # submits, receipts
    assert report.commands()[-1] == 0x80000006, report.text()  # our unbind, answered


def test_connector_to_osmo_msc_one_id_for_all_no_receipts(osmo_msc: OsmoMsc, node_factory: Any,
                                                         tmp_path: Path) -> None:
    n = 5
    with Capture(tmp_path, osmo_msc.smpp_port) as cap:
        a = _connector_node(node_factory, "osmo", osmo_msc.smpp_port, osmo_msc.system_id,
                            osmo_msc.password, "--forwarded-grace-s", "0")
        e = Esme(a.port, "acme", "pw1")
        before = len(osmo_msc.stored())
        try:
            seqs = [e.submit(str(next(_numbers)), f"to osmo {i}".encode(), registered_delivery=1,
                             validity_period="000000000005000R") for i in range(n)]
            ids = [_s(e.resp(s, 15).message_id) for s in seqs]
            # no receipt ever comes: each ends UNKNOWN after its validity, and says so
            e.pump(lambda: all(e.receipts_for(i) for i in ids), 40)
            for i in ids:
                [p] = e.receipts_for(i)
                assert "stat:UNKNOWN" in _s(p.short_message), _s(p.short_message)
            assert len(osmo_msc.stored()) - before == n  # each handed over once
            states = dict(_db(a.home, "SELECT id, state FROM messages WHERE account = 'acme'"))
            assert set(states.values()) == {"UNKNOWN"}
            kinds = [k for (k,) in _db(a.home, "SELECT kind FROM alarms")]
            assert kinds == ["partner_id_reused"]  # the same id for all: one alarm for it
            pids = {p for (p,) in _db(a.home, "SELECT DISTINCT partner_id FROM forwards")}
            assert pids == {"msg_id_not_implemented"}
        finally:
            close_all()
            a.server.stop()
    report = cap.decode()
    assert not report.problems, report.text()
    assert report.commands().count(0x04) == n, report.text()
