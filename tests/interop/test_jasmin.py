"""Jasmin 0.11.1's SMPP server with python-smpplib as the client: the fixture that the
connector tests will bind adressat to. Behind Jasmin, an adressat node: what Jasmin forwarded
reaches the netsim handsets, and the receipts travel back through Jasmin to the client."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from adressat_nodes import Node  # noqa: E402
from e2e_kit import Esme, close_all, customer_inbox, wait_for  # noqa: E402
from peer_jasmin import Jasmin  # noqa: E402
from smpp_capture import Capture  # noqa: E402

pytestmark = pytest.mark.slow

N = 20
_numbers = itertools.count(46701091000)  # netsim's default subscribers, apart from others


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v or "")


def test_jasmin_accepts_and_returns_receipts(jasmin: Jasmin, jasmin_upstream: Node,
                                             tmp_path: Path) -> None:
    with Capture(tmp_path, jasmin.smpp_port) as cap:
        _session(jasmin, jasmin_upstream)
    # the whole session, as Wireshark's SMPP dissector reads it: nothing malformed
    report = cap.decode()
    assert not report.problems, report.text()
    deliver, deliver_resp = 0x05, 0x80000005
    assert report.commands().count(deliver) == N, report.text()
    assert report.commands().count(deliver_resp) == N, report.text()
    assert report.commands()[0] == 0x09 and report.commands()[-1] == 0x80000006, report.text()
    assert all(p.command_status == 0 for p in report.pdus if p.command_id & 0x80000000), \
        report.text()


def _session(jasmin: Jasmin, jasmin_upstream: Node) -> None:
    e = Esme(jasmin.smpp_port, jasmin.system_id, jasmin.password)
    try:
        dests = [str(next(_numbers)) for _ in range(N)]
        seqs = [e.submit(d, f"via jasmin {i}".encode(), registered_delivery=1)
                for i, d in enumerate(dests)]
        resps = [e.resp(s, 15) for s in seqs]
        assert [r.status for r in resps] == [0] * N
        ids = [_s(r.message_id) for r in resps]
        assert len(set(ids)) == N and all(ids), ids

        # Jasmin forwarded every message to the node behind it, once
        def arrived() -> list[str]:
            return [r.msisdn for r in customer_inbox(jasmin_upstream.home) if r.msisdn in dests]
        got = wait_for(lambda: (lambda a: a if len(a) >= N else None)(arrived()), 30, 0.2)
        assert sorted(got or arrived()) == sorted(dests), jasmin.logs()

        # and the node's receipts came back through Jasmin, one per message, under Jasmin's ids
        def receipts() -> dict[str, list[object]]:
            return {i: e.receipts_for(i) for i in ids}
        e.pump(lambda: all(receipts().values()), 40)
        missing = [i for i, r in receipts().items() if not r]
        assert not missing, (len(missing), jasmin.logs())
        for i in ids:
            (p,) = receipts()[i]
            assert p.esm_class & 0x04, p  # type: ignore[attr-defined]
            assert "stat:DELIVRD" in _s(p.short_message), p  # type: ignore[attr-defined]
    finally:
        close_all()
