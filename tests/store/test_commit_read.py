"""GroupCommitter.read: reads on the loop outside any transaction (inline), never behind the
write lock; and the receipt sender, which reads its outbox so, still sends each receipt once."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest
from store_helpers import make_msg

from adressat.core.model import State
from adressat.ingress.receipts import ReceiptSender
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import Pdu
from adressat.store import SqliteStore
from adressat.store.commit import CommitterClosed, GroupCommitter


def _other_writer_holds_lock(db: Path) -> int:
    """What the other process does during its write transaction: hold ``<db>.wlock``."""
    fd = os.open(str(db) + ".wlock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_inline_read_sees_other_connections_commits_without_the_write_lock(
    tmp_path: Path,
) -> None:
    db = tmp_path / "r.db"
    store = SqliteStore(db)
    other = SqliteStore(db)

    async def main() -> None:
        gc = GroupCommitter(store, inline=True).start()
        m = make_msg()
        other.insert_messages([m])  # committed by "the other process"
        fd = _other_writer_holds_lock(db)
        try:
            # would block the loop for good if the read took the write lock
            got = await asyncio.wait_for(gc.read(lambda s: s.get_message(m.id)), 2.0)
        finally:
            os.close(fd)
        assert got == m
        assert store.commits == 0  # no transaction of its own
        assert gc.batches == 0
        gc.stop()
        with pytest.raises(CommitterClosed):
            await gc.read(lambda s: s.get_message(m.id))

    asyncio.run(main())
    other.close()
    store.close()


def test_read_with_a_writer_thread_runs_in_a_batch(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")

    async def main() -> None:
        gc = GroupCommitter(store, inline=False).start()
        m = make_msg()
        await gc.insert(m)
        assert await gc.read(lambda s: s.get_message(m.id)) == m
        await gc.aclose()

    asyncio.run(main())
    store.close()


class _Receiver:
    """An RX session whose deliver_sm_resp the test gives by hand."""

    account = "acme"
    interface_version = 0x34

    def __init__(self) -> None:
        self.sent: list[Pdu] = []
        self.answers: list[asyncio.Future[Pdu]] = []

    async def request(self, pdu: Pdu) -> Pdu:
        self.sent.append(pdu)
        fut: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self.answers.append(fut)
        return await fut


def test_receipt_in_flight_is_not_sent_again_and_is_marked_after_ok(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "rc.db")
    msg = make_msg()
    store.insert_messages([msg])
    store.transition(msg.id, State.ROUTED, State.UNDELIVERABLE, 1100.0, error=10)
    assert len(store.pending_receipts("acme")) == 1

    async def main() -> None:
        gc = GroupCommitter(store, inline=True).start()
        clock = [2000.0]
        sender = ReceiptSender(gc, resend_s=60.0, clock=lambda: clock[0])
        rx = _Receiver()
        sender.receivers["acme"] = [rx]
        first = asyncio.ensure_future(sender._send_account("acme"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(rx.sent) == 1
        await sender._send_account("acme")  # a second round: in flight, not sent again
        assert len(rx.sent) == 1
        clock[0] += 1.0
        rx.answers[0].set_result(rx.sent[0].response(S.ESME_ROK))
        await first
        for _ in range(5):  # the mark's batch runs at the end of a loop iteration
            await asyncio.sleep(0)
        assert sender.sent == 1
        assert store.pending_receipts("acme") == []
        clock[0] += 120.0  # past resend_s: a marked receipt is still never sent again
        await sender._send_account("acme")
        assert len(rx.sent) == 1
        gc.stop()

    asyncio.run(main())
    store.close()
