"""The delivery process beside the SMPP process, against the running server.

* SIGKILL the delivery process while a client submits: the SMPP process keeps accepting,
  starts a new delivery process, and every acked message is still delivered exactly once to
  its own number and receipted (its interrupted attempts come back through lease recovery);
* SIGKILL the SMPP process: the delivery process dies with it (no orphan delivering on);
* ``--delivery-process off``: one process does everything, and still delivers.

Judged from the client's records and the handsets' own inbox, not the server's word.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from e2e_kit import customer_inbox, wait_for

from adressat.sms.receipt import ReceiptStat
from adressat.testing.esme import EsmeClient
from adressat.testing.server import ServerProcess, adressat, audit

pytestmark = pytest.mark.slow

FIRST = 46701000000


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(x) for x in text)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def start(home: Path, *extra: str) -> ServerProcess:
    out = adressat(home, "account", "add", "dp", "--password", "dp")
    assert out.returncode == 0, out.stderr
    return ServerProcess(home, None, "--quiet-network", "--subscribers", "10000", *extra).start()


def delivery_child(server: ServerProcess) -> int:
    assert server.proc is not None
    assert wait_for(lambda: len(children(server.proc.pid)) == 1, 20)  # type: ignore[union-attr]
    return children(server.proc.pid)[0]


async def submit_and_receipt(port: int, dests: list[str], during=None) -> EsmeClient:  # type: ignore[no-untyped-def]
    client = EsmeClient("127.0.0.1", port, "dp", "dp", window=10)
    await client.connect(timeout_s=20)
    first, rest = dests[: len(dests) // 3], dests[len(dests) // 3:]
    await client.submit_many({"dest": d, "registered_delivery": 1} for d in first)
    if during is not None:
        during()
    await client.submit_many({"dest": d, "registered_delivery": 1} for d in rest)
    ids = [r.message_id for r in client.submits if r.acked and r.message_id]
    missing = await client.wait_receipts(ids, timeout_s=90)
    assert not missing, f"{len(missing)} acked messages without a receipt"
    await client.close()
    return client


def check_exactly_once(home: Path, client: EsmeClient) -> None:
    acked = {r.message_id: r.dest for r in client.submits if r.acked}
    assert len(acked) == len(client.submits)  # the SMPP process never stopped accepting
    stored = [rec for rec in customer_inbox(home) if not rec.duplicate]
    per_id = Counter(rec.smsc_message_id for rec in stored)
    assert set(per_id) == set(acked)
    assert all(n == 1 for n in per_id.values())
    assert all(rec.msisdn == acked[rec.smsc_message_id] for rec in stored)
    assert all(client.receipts[i].stat is ReceiptStat.DELIVRD for i in acked)
    figures = audit(home)
    assert figures["lost"] == 0 and figures["misdelivered"] == 0
    assert figures["duplicates_stored"] == 0


def test_killed_delivery_process_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        first_child = delivery_child(server)
        dests = [str(FIRST + 100 + i) for i in range(600)]

        def kill_child() -> None:
            os.kill(first_child, signal.SIGKILL)

        client = asyncio.run(submit_and_receipt(server.port, dests, during=kill_child))
        assert server.proc is not None and server.proc.poll() is None
        assert not alive(first_child)
        second = children(server.proc.pid)
        assert len(second) == 1 and second[0] != first_child and alive(second[0])
        check_exactly_once(tmp_path, client)
    finally:
        server.stop()


def test_delivery_process_dies_with_the_smpp_process(tmp_path: Path) -> None:
    server = start(tmp_path)
    child = delivery_child(server)
    assert alive(child)
    server.kill()
    assert wait_for(lambda: not alive(child), 10), "delivery process outlived its parent"


def test_one_process_mode_delivers(tmp_path: Path) -> None:
    server = start(tmp_path, "--delivery-process", "off")
    try:
        assert server.proc is not None
        dests = [str(FIRST + 5000 + i) for i in range(60)]
        client = asyncio.run(submit_and_receipt(server.port, dests))
        assert children(server.proc.pid) == []
        check_exactly_once(tmp_path, client)
    finally:
        server.stop()
