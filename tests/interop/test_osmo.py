"""OsmoMSC's built-in SMSC with python-smpplib as the client: the fixture that the connector
tests will bind adressat to. What it does, seen here: every submit_sm is stored and answered
ESME_ROK with the same message_id ("msg_id_not_implemented"), and no receipt ever comes (no
handset attaches): a partner that adressat must survive without a mix-up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from e2e_kit import Esme, close_all  # noqa: E402
from peer_osmo import OsmoMsc  # noqa: E402
from smpp_capture import Capture  # noqa: E402

pytestmark = pytest.mark.slow

N = 5
NO_RECEIPT_WAIT_S = 3.0
OSMO_MESSAGE_ID = "msg_id_not_implemented"


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v or "")


def test_osmo_msc_accepts_with_one_id_for_all_and_sends_no_receipts(osmo_msc: OsmoMsc) -> None:
    e = Esme(osmo_msc.smpp_port, osmo_msc.system_id, osmo_msc.password)
    try:
        before = len(osmo_msc.stored())
        dests = [f"4671000{i:04d}" for i in range(N)]
        seqs = [e.submit(d, f"to osmo {i}".encode(), registered_delivery=1)
                for i, d in enumerate(dests)]
        resps = [e.resp(s, 10) for s in seqs]
        assert [r.status for r in resps] == [0] * N, osmo_msc.logs()
        assert {_s(r.message_id) for r in resps} == {OSMO_MESSAGE_ID}
        rows = osmo_msc.stored()[before:]
        assert [r["dest_addr"] for r in rows] == dests
        assert all(r["status_rep_req"] == 1 and not r["sent"] for r in rows), rows
        # nothing will ever deliver these: no receipt, not even a failure report
        assert not e.pump(lambda: bool(e.delivered), NO_RECEIPT_WAIT_S), e.delivered
    finally:
        close_all()


def test_tshark_decodes_the_osmo_session(osmo_msc: OsmoMsc, tmp_path: Path) -> None:
    with Capture(tmp_path, osmo_msc.smpp_port) as cap:
        e = Esme(osmo_msc.smpp_port, osmo_msc.system_id, osmo_msc.password)
        try:
            for s in [e.submit(f"467100010{i:02d}", b"captured", registered_delivery=1)
                      for i in range(3)]:
                assert e.resp(s, 10).status == 0
        finally:
            close_all()  # unbind + close
    report = cap.decode()
    assert not report.problems, report.text()
    bind, submit, unbind = 0x09, 0x04, 0x06
    resp = 0x80000000
    # the three submits go out before their answers are read: order inside is free
    cmds = report.commands()
    assert cmds[:2] == [bind, bind | resp] and cmds[-2:] == [unbind, unbind | resp], report.text()
    assert sorted(cmds[2:-2]) == [submit] * 3 + [submit | resp] * 3, report.text()
    assert all(p.command_status == 0 for p in report.pdus if p.command_id & resp), report.text()
