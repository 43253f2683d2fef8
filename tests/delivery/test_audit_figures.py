"""observe.audit: all zero on a clean run; forged inbox records and missing evidence show."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from delivery_kit import DEST, OTHER, T0, make_msg, rig

from adressat.core.model import State
from adressat.netsim.inbox import InboxRecord, InboxWriter
from adressat.observe import audit, iter_messages
from adressat.sms import encode_scts
from adressat.store import MemoryStore, SqliteStore


def _clean_run(tmp_path: Path) -> list[str]:
    ids: list[str] = []

    async def main() -> None:
        async with rig(tmp_path) as r:
            text = "x" * 200  # one long message among short ones
            msgs = [
                make_msg(DEST, "one", submitted_at=T0 - 3, registered_delivery=1),
                make_msg(OTHER, "two", submitted_at=T0 - 2),
                make_msg(DEST, text, submitted_at=T0 - 1, registered_delivery=1),
            ]
            await r.insert(*msgs)
            for m in msgs:
                await r.wait_state(m.id, State.DELIVERED)
                ids.append(m.id)

    asyncio.run(main())
    return ids


def test_audit_clean_run_all_zero(tmp_path: Path) -> None:
    _clean_run(tmp_path)
    store = SqliteStore(tmp_path / "adressat.db")
    try:
        report = audit(store, tmp_path, T0 + 10)
    finally:
        store.close()
    json.dumps(report)  # JSON-able
    assert report["total"] == 3
    assert report["states"]["DELIVERED"] == 3
    assert sum(report["states"].values()) == 3
    assert report["inbox_records"] == 4  # the long one is two parts
    for k in ("lost", "misdelivered", "duplicate_deliveries", "held_past_validity"):
        assert report[k] == 0, k
    assert report["receipts_pending"] == 2
    assert report["ok"] is True


STAMP = encode_scts(int(T0))


def test_audit_forged_record_is_misdelivered(tmp_path: Path) -> None:
    ids = _clean_run(tmp_path)
    store = SqliteStore(tmp_path / "adressat.db")
    try:
        delivered = store.get_message(ids[0])
        assert delivered is not None and delivered.delivered_imsi is not None
        w = InboxWriter(tmp_path)
        # a stranger's handset stored DEST's message
        w.append(
            InboxRecord(
                T0, OTHER, "240019999999999", "msc-1", "ACME", STAMP, 0, 0, ids[0], "00", False
            )
        )
        w.close()
        report = audit(store, tmp_path, T0 + 10)
        assert report["misdelivered"] == 1
        assert report["samples"]["misdelivered"] == [ids[0]]
        assert report["ok"] is False
        # an id the store never issued
        w = InboxWriter(tmp_path)
        w.append(
            InboxRecord(
                T0, DEST, "240010000000001", "msc-1", "X", STAMP, 0, 0, "f" * 32, "00", False
            )
        )
        # the right number but not the identity recorded as delivered
        w.append(
            InboxRecord(
                T0, DEST, "240010000000002", "msc-1", "ACME", STAMP, 0, 0, ids[0], "00", False
            )
        )
        # the same part stored twice (non-duplicate): one recipient saw it twice
        ref = next(x for x in _inbox(tmp_path) if x.smsc_message_id == ids[1])
        w.append(replace(ref, time=T0 + 1))
        w.close()
        report = audit(store, tmp_path, T0 + 10)
        assert report["misdelivered"] == 3
        assert report["misdelivered_unknown_id"] == 1
        assert report["duplicates_stored"] == 1
        assert report["duplicate_deliveries"] == 1
    finally:
        store.close()


def _inbox(home: Path) -> list[InboxRecord]:
    from adressat.netsim import read_inbox

    return list(read_inbox(home))


def test_audit_lost_delivered_without_evidence_and_overdue(tmp_path: Path) -> None:
    _clean_run(tmp_path)
    store = SqliteStore(tmp_path / "adressat.db")
    try:
        ghost = make_msg(DEST, "never sent", submitted_at=T0 + 3)
        overdue = make_msg(OTHER, "stuck", submitted_at=T0 + 4, validity_s=5.0)
        held = make_msg(OTHER, "held", submitted_at=T0 + 5, validity_s=5.0)
        store.insert_messages([ghost, overdue, held])
        store.hold_route("netsim-home", T0)  # hold and release: all due now
        store.release_route("netsim-home", T0)
        # one per destination is claimed: the ghost (DEST) and overdue (OTHER)
        claimed = store.claim_due(3, T0 + 5, 60.0, "x")
        by_id = {m.id: m for m in claimed}
        assert ghost.id in by_id
        store.transition(
            ghost.id,
            State.DISPATCHED,
            State.DELIVERED,
            T0 + 5,
            delivered_imsi="240010000000077",
            delivered_msisdn=DEST,
            error=0,
        )
        for m in claimed:
            if m.id != ghost.id:
                store.transition(m.id, State.DISPATCHED, State.DEFERRED, T0 + 5)
        store.hold_route("netsim-home", T0 + 6)  # whatever is queued is now HELD
        report = audit(store, tmp_path, T0 + 100)
        assert report["lost_delivered_without_evidence"] == 1
        assert report["samples"]["lost"][0] == ghost.id
        assert report["held_past_validity"] >= 1
        assert report["lost"] == 1
        assert report["ok"] is False
        store.release_route("netsim-home", T0 + 7)
        report = audit(store, tmp_path, T0 + 100)
        assert report["lost_expired_not_final"] == 2  # queued past validity, not final
        assert report["lost"] == 3
        assert audit(store, tmp_path, T0 + 100, grace_s=1000)["lost"] == 1
    finally:
        store.close()


def test_iter_messages_pages_through_equal_timestamps() -> None:
    store = MemoryStore()
    msgs = [make_msg(DEST, submitted_at=T0 + (i // 7)) for i in range(50)]
    store.insert_messages(msgs)
    got = [m.id for m in iter_messages(store, page_size=3)]
    assert sorted(got) == sorted(m.id for m in msgs)
    assert len(got) == len(set(got))
    assert [m.id for m in iter_messages(store, state=State.DELIVERED, page_size=3)] == []
