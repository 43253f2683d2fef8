"""The same text from one sender, hundreds of times, to one number (a reminder service, a
retrying one-time-code sender): every message is a message of its own on the air. The TP-MR of
each comes from the store's counter per destination, so the handset never takes one for a
resend of another and drops it while acknowledging it (DELIVERED in the store, lost on the
phone). Against the running server; the handsets' own record and ``adressat audit`` judge."""

from __future__ import annotations

import asyncio
from pathlib import Path

from e2e_kit import inbox

from adressat.testing.load import LoadClient
from adressat.testing.server import ServerProcess, adressat, audit

DEST = "46701000077"
COUNT = 300  # more than the 256 values of a TP-MR: the counter goes round once


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

    try:
        ids = asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        server.stop()
    assert len(set(ids)) == COUNT
    records = inbox(home, DEST)
    kept = [r for r in records if not r.duplicate]
    assert [r for r in records if r.duplicate] == []
    assert sorted(r.smsc_message_id for r in kept) == sorted(ids)
    # consecutive references, round the octet
    assert sorted(r.message_reference for r in kept) == sorted(i % 256 for i in range(COUNT))
    figures = audit(home)
    assert figures["lost"] == 0 and figures["misdelivered"] == 0, figures
    assert figures["duplicate_deliveries"] == 0, figures
