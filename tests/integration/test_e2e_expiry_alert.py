"""Validity and alerts against the running server: a message to a subscriber who stays away
ends EXPIRED (receipt stat EXPIRED, never delivered late); a subscriber whose memory was full
gets the message as soon as the network alerts, long before the next retry would be due."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from adressat.netsim import read_inbox
from adressat.smpp.times import format_relative
from adressat.sms.receipt import ReceiptStat
from adressat.testing.esme import EsmeClient
from adressat.testing.server import ServerProcess, adressat, audit


def _fault_on(home: Path, name: str, *params: str) -> None:
    args = ["fault", "on", name, "--rate", "1"]
    for p in params:
        args += ["--param", p]
    out = adressat(home, *args)
    assert out.returncode == 0, out.stderr


def test_absent_subscriber_expires_and_is_never_delivered_late(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert adressat(home, "account", "add", "acme", "--password", "pw").returncode == 0
    _fault_on(home, "absent_for_hours", "hours=1")
    dest = "46701000555"
    with ServerProcess(home, None, "--quiet-network", "--retry-delays-s", "1,1,1") as server:
        port = server.port

        async def run() -> tuple[str, ReceiptStat | None, float]:
            c = EsmeClient("127.0.0.1", port, "acme", "pw")
            await c.connect(timeout_s=10)
            t0 = time.monotonic()
            resp = await c.submit(dest, b"soon gone", registered_delivery=1,
                                  validity_period=format_relative(3))
            mid = str(resp.fields["message_id"])
            missing = await c.wait_receipts([mid], timeout_s=30)
            assert not missing
            await c.close()
            return mid, c.receipts[mid].stat, time.monotonic() - t0

        mid, stat, waited = asyncio.run(run())
        assert stat is ReceiptStat.EXPIRED
        assert 2.9 <= waited <= 20  # kept until its validity ended, not given up before
        adressat(home, "fault", "off", "absent_for_hours")
        time.sleep(2)  # the subscriber is back, a late delivery would happen now
    assert not [r for r in read_inbox(home) if r.smsc_message_id == mid]
    report = audit(home)
    assert report["states"]["EXPIRED"] == 1 and report["lost"] == 0  # type: ignore[index]


def test_memory_full_then_alert_delivers_before_the_next_retry(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert adressat(home, "account", "add", "acme", "--password", "pw").returncode == 0
    _fault_on(home, "memory_full_then_alert", "seconds=1")
    dest = "46701000556"
    # the next retry would be 10 minutes away: only the alert can bring it sooner
    with ServerProcess(home, None, "--quiet-network", "--retry-delays-s", "600") as server:

        async def run() -> tuple[str, ReceiptStat | None, float]:
            c = EsmeClient("127.0.0.1", server.port, "acme", "pw")
            await c.connect(timeout_s=10)
            t0 = time.monotonic()
            resp = await c.submit(dest, b"full then free", registered_delivery=1)
            mid = str(resp.fields["message_id"])
            # the first attempt has met the full memory: switch the fault off so the
            # delivery after the alert can succeed
            await asyncio.sleep(0.3)
            adressat(home, "fault", "off", "memory_full_then_alert")
            missing = await c.wait_receipts([mid], timeout_s=30)
            assert not missing
            await c.close()
            return mid, c.receipts[mid].stat, time.monotonic() - t0

        mid, stat, waited = asyncio.run(run())
    assert stat is ReceiptStat.DELIVRD
    assert waited < 15  # far below the 600 s retry delay
    records = [r for r in read_inbox(home) if r.smsc_message_id == mid and not r.duplicate]
    assert [r.msisdn for r in records] == [dest]
