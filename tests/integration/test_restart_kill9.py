"""I1 under crashes: while a client submits, SIGKILL the server several times and restart it.

Afterwards, judged from the client's own records and the handsets' own inbox (never from the
server's word):

* every id that got ESME_ROK is in the inbox exactly once (one non-duplicate record), at the
  number it was submitted to, with the content it was submitted with;
* nothing else is in the inbox, except messages whose submit got no answer because of a kill
  (outcome unknown): those may or may not be delivered, but at most once, and only to their
  destination;
* every acked id has a DELIVRD receipt from the right number; a receipt may come again after a
  crash (sent, not yet marked sent) but only as the same receipt; no receipt for an id the
  client did not submit;
* ``adressat audit`` agrees: nothing lost, misdelivered or delivered twice.

Content is 8-bit data (data_coding 4) and unique per submit, so an inbox record's SHA-256 names
the submit it came from even when the client never learnt its message id.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import customer_inbox

from adressat.sms.receipt import ReceiptStat
from adressat.testing.esme import EsmeClient, SubmitRecord
from adressat.testing.server import ServerProcess, adressat, audit

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("ADRESSAT_KILL9_SEED", "20230120"))  # another seed: another run
KILLS = 4
KILL_GAP_S = (3.0, 6.0)  # run time before each kill
DOWN_S = (0.0, 0.8)  # how long the server stays dead
SUBMIT_AFTER_LAST_RESTART_S = 2.0
RECEIPTS_WAIT_S = 60.0
WORKERS = 20  # concurrent submitters, one message outstanding each
PAUSE_S = (0.0, 0.1)  # each worker's pause between submits (about 300 submits/s in all)
HOT_DESTINATIONS = 5  # a few numbers that get many messages (per-destination ordering)
HOT_SHARE = 0.2
DATA_CODING_8BIT = 4  # carried as is: the inbox hash is the SHA-256 of exactly these octets


class Load:
    """The submitting side: batches of short messages, reconnecting after every kill."""

    def __init__(self, client: EsmeClient, rng: random.Random) -> None:
        self.client = client
        self.rng = rng
        self.content: dict[str, SubmitRecord] = {}  # sha256 of content -> the submit
        self._connecting = asyncio.Lock()
        self.n = 0
        self.hot = [f"4670109{i:04d}" for i in range(HOT_DESTINATIONS)]
        self.stop = asyncio.Event()

    def _next(self) -> tuple[str, bytes]:
        self.n += 1
        if self.rng.random() < HOT_SHARE:
            dest = self.rng.choice(self.hot)
        else:
            dest = f"46701{self.n:06d}"  # distinct numbers 46701000001 upward (< 46701090000)
        return dest, b"kill9 msg %08d" % self.n

    async def run(self) -> None:
        """Workers submit one message at a time each, so submits are in flight at any moment
        (a kill always cuts some off); one of them reconnects after a kill."""
        await asyncio.gather(*(self._worker() for _ in range(WORKERS)))

    async def _worker(self) -> None:
        while not self.stop.is_set():
            if not self.client.connected:
                async with self._connecting:
                    await self.client.connect(retry_for_s=30.0, retry_interval_s=0.05)
            dest, content = self._next()
            [rec] = await self.client.submit_many(
                [{"dest": dest, "content": content, "data_coding": DATA_CODING_8BIT}]
            )
            if rec.sent:
                self.content[hashlib.sha256(content).hexdigest()] = rec
            else:
                await asyncio.sleep(0.05)
            await asyncio.sleep(self.rng.uniform(*PAUSE_S))


async def _scenario(
    server: ServerProcess, rng: random.Random
) -> tuple[EsmeClient, Load, dict[str, Any]]:
    client = EsmeClient("127.0.0.1", server.port, "demo", "demo", window=50)
    await client.connect(retry_for_s=10.0)
    load = Load(client, rng)
    task = asyncio.create_task(load.run())
    timeline: dict[str, Any] = {"kills": 0, "restart_s": []}
    try:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(*KILL_GAP_S))
            if task.done():
                break
            await asyncio.to_thread(server.kill)
            timeline["kills"] += 1
            await asyncio.sleep(rng.uniform(*DOWN_S))
            t = time.monotonic()
            await asyncio.to_thread(server.start)
            timeline["restart_s"].append(round(time.monotonic() - t, 2))
        await asyncio.sleep(SUBMIT_AFTER_LAST_RESTART_S)
    finally:
        load.stop.set()
        await asyncio.wait_for(task, 40.0)  # raises what the load loop raised
    # a receiver stays bound until every acked id has its receipt (or the bound passes)
    await client.connect(retry_for_s=10.0)
    acked_ids = [r.message_id for r in client.acked if r.message_id]
    t = time.monotonic()
    missing = await client.wait_receipts(acked_ids, RECEIPTS_WAIT_S)
    timeline["receipts_wait_s"] = round(time.monotonic() - t, 2)
    timeline["receipts_missing"] = len(missing)
    await asyncio.sleep(1.0)  # a late duplicate receipt, if any, is counted too
    await client.close()
    return client, load, timeline


def test_kill9_restarts_lose_nothing_and_deliver_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    added = adressat(home, "account", "add", "demo", "--password", "demo")
    assert added.returncode == 0, added.stderr
    server = ServerProcess(home, None, "--quiet-network")
    server.start()
    rng = random.Random(SEED)
    try:
        client, load, timeline = asyncio.run(asyncio.wait_for(_scenario(server, rng), 150.0))
    finally:
        server.stop()
    report = audit(home)

    stats = client.stats()
    acked = client.acked
    unknown = client.unknown
    by_id = {r.message_id: r for r in acked}
    assert len(by_id) == len(acked), "ESME_ROK message ids repeat (I5)"
    assert timeline["kills"] == KILLS
    assert client.connections >= KILLS + 1, "the client never reconnected after a kill"
    assert unknown, "no submit was in flight at any kill: the test did not test anything"

    # -- the handsets' inbox ----------------------------------------------------------------
    inbox = customer_inbox(home)  # the canary prober judges its own
    stored = [r for r in inbox if not r.duplicate]
    per_id = Counter(r.smsc_message_id for r in stored)
    problems: list[str] = []
    delivered_unknown: set[str] = set()  # ids of unknown-outcome submits that were delivered
    for rec in stored:
        submit = load.content.get(rec.content_sha256)
        if submit is None:
            problems.append(f"inbox record {rec.smsc_message_id}: content the client never sent")
            continue
        if rec.msisdn != submit.dest:
            problems.append(f"{rec.smsc_message_id} at {rec.msisdn}, submitted to {submit.dest}")
        if submit.acked:
            if rec.smsc_message_id != submit.message_id:
                problems.append(f"{submit.message_id} delivered under id {rec.smsc_message_id}")
        elif submit.unknown:
            delivered_unknown.add(rec.smsc_message_id)
        else:
            problems.append(f"{rec.smsc_message_id}: delivered though refused "
                            f"(status {submit.status:#x})")
    for mid, n in per_id.items():
        if n > 1:
            problems.append(f"{mid} stored {n} times by the handset")
    for mid, submit in by_id.items():
        if per_id.get(mid, 0) == 0:
            problems.append(f"{mid} acked (to {submit.dest}) but not in any inbox")
    assert not problems, f"{len(problems)} inbox problems, first: {problems[:10]}"

    # -- receipts -------------------------------------------------------------------------------
    receipt_counts = Counter(r.message_id for r in client.receipt_log)
    duplicate_receipts = sum(n - 1 for n in receipt_counts.values())
    dest_of = {mid: r.dest for mid, r in by_id.items()}
    dest_of.update({rec.smsc_message_id: rec.msisdn for rec in stored
                    if rec.smsc_message_id in delivered_unknown})
    first: dict[str, tuple[object, object]] = {}
    for rr in client.receipt_log:
        if rr.message_id not in dest_of:
            problems.append(f"receipt for {rr.message_id}, which the client did not submit")
            continue
        if rr.receipt is None:
            problems.append(f"receipt for {rr.message_id} does not parse")
            continue
        if rr.receipt.id != rr.message_id:
            problems.append(f"receipt text id {rr.receipt.id} != TLV id {rr.message_id}")
        if rr.handset != dest_of[rr.message_id]:
            problems.append(f"receipt for {rr.message_id} from {rr.handset}")
        key = (rr.receipt.stat, rr.message_state)
        if first.setdefault(rr.message_id, key) != key:
            problems.append(f"duplicate receipt for {rr.message_id} differs: "
                            f"{first[rr.message_id]} then {key}")
    for mid in by_id:
        r = client.receipts.get(mid)
        if r is None:
            problems.append(f"{mid}: acked, no receipt within {RECEIPTS_WAIT_S:.0f} s")
        elif r.stat is not ReceiptStat.DELIVRD:
            problems.append(f"{mid}: receipt {r.stat}, expected DELIVRD")
    assert not problems, f"{len(problems)} receipt problems, first: {problems[:10]}"

    # -- per-destination ordering (reported, not asserted: a crash may reorder a retry) -------
    seen_at: dict[str, int] = {rec.smsc_message_id: i for i, rec in enumerate(stored)}
    inversions = 0
    for hot in load.hot:
        chain = sorted((r for r in acked if r.dest == hot), key=lambda r: r.sent_at)
        last_answer = -1.0
        last_pos = -1
        for r in chain:  # only submits sent after the previous one's answer are ordered
            pos = seen_at[str(r.message_id)]
            if r.sent_at > last_answer and pos < last_pos:
                inversions += 1
            if r.answered_at is not None and r.answered_at > last_answer:
                last_answer, last_pos = r.answered_at, pos

    # -- the server's own audit -----------------------------------------------------------------
    summary = {
        **stats,
        "kills": timeline["kills"],
        "restart_s": timeline["restart_s"],
        "receipts_wait_s": timeline["receipts_wait_s"],
        "inbox_records": len(inbox),
        "inbox_duplicates_discarded": len(inbox) - len(stored),
        "delivered_acked": sum(1 for mid in by_id if per_id.get(mid)),
        "delivered_unknown": len(delivered_unknown),
        "duplicate_receipts": duplicate_receipts,
        "ordering_inversions": inversions,
        "audit": {k: report.get(k) for k in (
            "lost", "misdelivered", "duplicate_deliveries", "duplicates_discarded",
            "duplicates_stored", "receipts_pending")},
    }
    print("kill9 summary:", summary)
    assert report["lost"] == 0, report
    assert report["misdelivered"] == 0, report
    # duplicate_deliveries counts handset-discarded resends (same TP-SCTS: the user saw the
    # message once) plus second stored copies; only the latter break "exactly once"
    assert report["duplicate_deliveries"] == report["duplicates_discarded"], report
    assert report["duplicates_stored"] == 0, report
