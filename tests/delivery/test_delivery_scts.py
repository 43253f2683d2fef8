"""TP-SCTS end to end in one process: the store stamps, the adapter sends, the handset
recognises a resend by (TP-OA, TP-SCTS) and nothing else (3GPP TS 23.040 §6.2)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from dataclasses import replace
from pathlib import Path

from delivery_kit import DEST, SUBSCRIBERS, T0, Clock, make_msg, rig

from adressat.core.model import State
from adressat.delivery import Outcome
from adressat.netsim import NetsimSettings, Register
from adressat.netsim.inbox import HEADER_V1, inbox_path, legacy_record_line
from adressat.observe import audit
from adressat.sms import Alphabet, encode_scts, encode_text, pack_septets
from adressat.store import SqliteStore
from adressat.store.migrations import MESSAGE_COLUMNS, MIGRATIONS


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_identical_messages_within_one_second_are_all_kept_by_the_handset(
    tmp_path: Path,
) -> None:
    """The bug class of the old TP-MR hash: the same text from one sender to one number, three
    times in one second (the clock does not move). Each gets a stamp of its own, one second
    after the other, and the handset keeps every one."""

    async def main() -> None:
        async with rig(tmp_path, start=False) as r:
            msgs = [make_msg(DEST, "Your appointment is at 09:00") for _ in range(3)]
            await r.committer.insert_many(msgs)
            r.start()
            done = [await r.wait_state(m.id, State.DELIVERED) for m in msgs]
            assert r.clock() == T0
            stamps = sorted(d.scts for d in done if d.scts is not None)
            assert stamps == [int(T0), int(T0) + 1, int(T0) + 2]
            inbox = r.network.inbox_of(DEST)
            assert [x.duplicate for x in inbox] == [False] * 3
            assert len({x.content_sha256 for x in inbox}) == 1  # identical on the air but
            assert {x.scts for x in inbox} == {encode_scts(s) for s in stamps}  # three stamps
            report = audit(r.store, tmp_path, r.clock())
            assert report["ok"] and report["duplicate_deliveries"] == 0

    run(main())


class CrashAfterSend:
    """Sends for real, then the process 'dies' before the outcome is written."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.sent = 0

    async def deliver(self, msg: object, addressed: object = None) -> Outcome:
        await self.inner.deliver(msg, addressed)  # type: ignore[attr-defined]
        self.sent += 1
        await asyncio.sleep(3600)
        raise AssertionError


def test_a_long_message_resent_after_a_crash_is_recognised_part_by_part(
    tmp_path: Path,
) -> None:
    text = "".join("abcdefghij0123456789"[i % 20] for i in range(400))  # three parts
    holder: list[CrashAfterSend] = []

    def wrap(a: object) -> CrashAfterSend:
        holder.append(CrashAfterSend(a))
        return holder[0]

    async def main() -> None:
        clock = Clock()
        msg = make_msg(DEST, text)
        async with rig(tmp_path, wrap=wrap, clock=clock) as r1:  # type: ignore[arg-type]
            await r1.insert(msg)
            await r1.wait_for(lambda: holder[0].sent == 1)
            assert r1.task is not None
            r1.task.cancel()  # the crash: nothing written after the send
            with contextlib.suppress(asyncio.CancelledError):
                await r1.task
            r1.task = None
        clock.advance(30)  # a later second: the resend keeps its first stamp all the same
        async with rig(tmp_path, clock=clock) as r2:
            done = await r2.wait_state(msg.id, State.DELIVERED)
            assert done.attempts == 2 and done.scts == int(T0)
            inbox = r2.network.inbox_of(DEST)
            assert [(x.part, x.duplicate) for x in inbox] == [
                (1, False), (2, False), (3, False), (1, True), (2, True), (3, True)
            ]
            assert {x.scts for x in inbox} == {encode_scts(int(T0))}
            assert r2.network.stats.duplicates == 3
            report = audit(r2.store, tmp_path, r2.clock())
            assert report["duplicates_discarded"] == 3 and report["duplicates_stored"] == 0
            assert report["ok"]

    run(main())


def _database_at_v8(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for v, statements in MIGRATIONS[:8]:
        for _, sql in statements:
            conn.execute(sql)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
    return conn


def test_a_message_in_flight_across_the_v9_upgrade_is_still_recognised(tmp_path: Path) -> None:
    """A node of schema v8 sent a message (TP-MR 17, as netsim identified it then), the
    handset stored it, and the node died before it wrote the outcome. The upgraded node
    resends it with its old reference: the handset, its memory rebuilt from the old inbox
    line, recognises it; the message is delivered once."""
    text = "Your code is 552211"
    imsi = Register(NetsimSettings.quiet(subscribers=SUBSCRIBERS)).identity(DEST)
    msg = replace(
        make_msg(DEST, text, registered_delivery=1),
        state=State.DISPATCHED,
        attempts=1,
        lease_until=T0 + 60,
        lease_owner="node-1",
        reference=17,
        addressed_imsi=imsi,
    )
    conn = _database_at_v8(tmp_path / "adressat.db")
    cols = [c for c in MESSAGE_COLUMNS if c not in ("scts", "client_reference")]
    values = [getattr(msg, c) for c in cols]
    values[cols.index("state")] = msg.state.value
    values[cols.index("extra")] = "{}"
    conn.execute(
        f"INSERT INTO messages ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        values,
    )
    conn.close()
    air = pack_septets(encode_text(text, Alphabet.GSM7))
    path = inbox_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(
        HEADER_V1.encode()
        + legacy_record_line(
            T0 - 1, DEST, imsi, "msc-1", "ACME", 17, 0, msg.id,
            hashlib.sha256(air).hexdigest(), False,
        )
    )
    store = SqliteStore(tmp_path / "adressat.db")

    async def main() -> None:
        async with rig(tmp_path, store=store) as r:
            done = await r.wait_state(msg.id, State.DELIVERED)
            assert (done.attempts, done.reference, done.scts) == (2, 17, None)
            inbox = r.network.inbox_of(DEST)
            assert [(x.message_reference, x.duplicate) for x in inbox] == [
                (17, False), (17, True)
            ]
            assert r.network.stats.duplicates == 1
            report = audit(r.store, tmp_path, r.clock())
            assert report["duplicates_discarded"] == 1 and report["duplicates_stored"] == 0
            assert report["lost"] == 0 and report["ok"]
            # the next message to that number is stamped, and is a message of its own
            nxt = make_msg(DEST, text)
            await r.insert(nxt)
            second = await r.wait_state(nxt.id, State.DELIVERED)
            assert second.scts == int(T0) and second.reference is None
            assert not r.network.inbox_of(DEST)[-1].duplicate

    try:
        run(main())
    finally:
        store.close()
