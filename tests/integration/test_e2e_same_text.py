"""The same text from one sender, hundreds of times, to one number (a reminder service, a
retrying one-time-code sender): every message is a message of its own on the air. The TP-SCTS
of each comes from the store's counter per destination (TS 23.040 6.2: distinct for every
message to one MS, bumped when several arrive within one second, as hundreds do here), so the
handset, which knows a resend by TP-OA and TP-SCTS, never takes one for a resend of another
and drops it while acknowledging it (DELIVERED in the store, lost on the phone). (It was once
8 bits of a hash of the id in a TP-MR: one time in 256.) Against the running server; the
handsets' own record and ``adressat audit`` judge."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from e2e_kit import inbox

from adressat.sms import decode_scts
from adressat.testing.load import LoadClient
from adressat.testing.server import ServerProcess, adressat, audit

DEST = "46701000077"
COUNT = 300  # submitted within a few seconds: most stamps are bumped past the clock


def test_identical_messages_to_one_number_are_all_stored_by_the_handset(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert adressat(home, "account", "add", "clinic", "--password", "pw").returncode == 0
    server = ServerProcess(home, None, "--quiet-network", "--subscribers", "1000").start()

    async def scenario() -> list[str]:
        client = await LoadClient.connect(
            "127.0.0.1", server.port, "clinic", "pw", source_addr="Clinic"
        )
        ids: list[str] = []
        for _ in range(3):  # in rounds, so the first ones are delivered before the last come
            run = await client.submit_all(
                [DEST] * (COUNT // 3), registered_delivery=1, window=20,
                content=b"Your appointment is tomorrow at 09:00",
            )
            assert len(run.acked()) == COUNT // 3
            ids += run.message_ids()
        assert await client.wait_receipts(ids, timeout_s=60) == set()
        assert {client.receipts[m] for m in ids} == {"DELIVRD"}
        await client.close()
        return ids

    started_s = int(time.time())
    try:
        ids = asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        server.stop()
    ended_s = time.time()
    assert len(set(ids)) == COUNT
    records = inbox(home, DEST)
    kept = [r for r in records if not r.duplicate]
    assert [r for r in records if r.duplicate] == []
    assert sorted(r.smsc_message_id for r in kept) == sorted(ids)
    # a stamp of its own for every message, each as near its second as that allows (the
    # modification kept to a minimum): never further ahead of the clock than distinctness
    # needs
    stamps = sorted(decode_scts(r.scts)[0] for r in kept if r.scts is not None)
    assert len(set(stamps)) == COUNT
    assert started_s <= stamps[0] <= ended_s
    assert stamps[-1] <= max(ended_s, stamps[0] + COUNT - 1)
    figures = audit(home)
    assert figures["lost"] == 0 and figures["misdelivered"] == 0, figures
    assert figures["duplicate_deliveries"] == 0, figures
