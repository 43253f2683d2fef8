"""Back-pressure and priority against the running server: a full queue answers ESME_RMSGQFUL
(nothing queued without bound, nothing accepted is lost), and a priority message (a one-time
code) overtakes the backlog to its destination."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adressat.netsim import read_inbox
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.times import format_relative
from adressat.testing.esme import EsmeClient
from adressat.testing.server import ServerProcess, adressat, audit


def _server(home: Path, *args: str) -> ServerProcess:
    assert adressat(home, "account", "add", "acme", "--password", "pw").returncode == 0
    return ServerProcess(home, None, "--quiet-network", *args)


def test_full_queue_answers_msgqful_and_keeps_what_it_accepted(tmp_path: Path) -> None:
    home = tmp_path / "h"
    with _server(home, "--queue-max", "20") as server:

        async def run() -> list[int]:
            c = EsmeClient("127.0.0.1", server.port, "acme", "pw", window=10)
            await c.connect(timeout_s=10)
            later = format_relative(3600)  # scheduled: they stay in the queue
            recs = await c.submit_many(
                {"dest": str(46701000100 + i), "schedule_delivery_time": later}
                for i in range(30)
            )
            await c.close()
            return [r.status for r in recs]  # type: ignore[misc]

        statuses = asyncio.run(run())
    assert statuses.count(S.ESME_ROK) == 20
    assert statuses.count(S.ESME_RMSGQFUL) == 10
    report = audit(home)
    assert report["states"]["ROUTED"] == 20  # type: ignore[index]
    assert report["total"] == 20 and report["lost"] == 0


def test_priority_message_overtakes_the_backlog_to_its_destination(tmp_path: Path) -> None:
    home = tmp_path / "h"
    dest = "46701000777"
    with _server(home) as server:

        async def run() -> tuple[list[str], str]:
            c = EsmeClient("127.0.0.1", server.port, "acme", "pw", window=100)
            await c.connect(timeout_s=10)
            # one destination: delivered one at a time, in order (per-destination ordering)
            recs = await c.submit_many(
                {"dest": dest, "content": b"bulk %d" % i, "registered_delivery": 1}
                for i in range(60)
            )
            otp = await c.submit(dest, b"code 123456", registered_delivery=1, priority_flag=3)
            ids = [r.message_id for r in recs if r.message_id]
            otp_id = str(otp.fields["message_id"])
            missing = await c.wait_receipts([*ids, otp_id], timeout_s=60)
            assert not missing
            await c.close()
            return ids, otp_id

        bulk_ids, otp_id = asyncio.run(run())
    order = [r.smsc_message_id for r in read_inbox(home) if r.msisdn == dest]
    assert sorted(order) == sorted([*bulk_ids, otp_id])
    position = order.index(otp_id)
    # submitted last, delivered long before the backlog ends
    assert position < 30, position
    # the bulk messages keep their submission order among themselves
    assert [m for m in order if m != otp_id] == bulk_ids
