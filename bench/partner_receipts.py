"""Partner receipts applied in the store: one JSON line.

The delivery process applies a loop turn's partner receipts (issue 11) in ONE committer
operation, ``Store.apply_partner_receipts``. A profile of the peers' connector topology
(ESME -> adressat -> connector -> sink, receipts 1 s later) showed that operation as the
biggest part of the delivery process's time. This measures it alone, on a real SQLite file
with fsync: ``--messages`` single-part messages forwarded to a connector (as the worker
records them), then their DELIVERED receipts in batches of ``--batch`` (the per-turn size at
full load) in their own transactions, as the committer runs them. ``one_by_one`` is the same
receipts with ``apply_partner_receipt`` (one unit of work each, the rules' plain form) in the
same run, so the ratio is what the batch buys on this machine today.

    .venv/bin/python bench/partner_receipts.py
    .venv/bin/python bench/partner_receipts.py --messages 20000 --batch 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from adressat.core.interconnect import canonical_id, id_candidates
from adressat.core.model import (
    AttemptRecord,
    ForwardPart,
    Message,
    PartnerReceipt,
    State,
)
from adressat.store.base import FinishedAttempt
from adressat.store.sqlite import SqliteStore

NOW = 2000.0


def _messages(n: int, start: int) -> list[Message]:
    return [
        Message(
            id=f"{start + i:032x}", account="bench", source_addr="BENCH",
            destination=f"4676{start + i:07d}", content=b"bench receipt text",
            submitted_at=1000.0, expires_at=NOW + 86_400, not_before=1000.0,
            next_attempt_at=1000.0, state=State.ROUTED, route="out", tag=b"\x01" * 16,
            registered_delivery=1,
        )
        for i in range(n)
    ]


def _forward(store: SqliteStore, msgs: list[Message], start: int) -> list[str]:
    """The messages claimed and FORWARDED to ``hub`` with partner ids (hex, as a partner
    answers them); the ids returned."""
    store.insert_messages(msgs)
    ids: list[str] = []
    claimed: list[Message] = []
    while len(claimed) < len(msgs):
        got = store.claim_due(500, NOW, 600.0, "bench")
        if not got:
            break
        claimed += got
    items = []
    for i, m in enumerate(claimed):
        pid = str(start + i)
        ids.append(pid)
        rec = AttemptRecord(m.id, m.account, m.destination, None, m.route, 1, m.attempts, NOW,
                            NOW + 0.01, "FORWARDED", 0)
        item = FinishedAttempt(m, State.FORWARDED, {"error": 0, "extra": {"connector": "hub"}},
                               rec, NOW + 0.01)
        items.append((item, [ForwardPart(m.id, 1, 1, "hub", canonical_id(pid),
                                         State.FORWARDED, None, NOW + 0.01)]))
    for k in range(0, len(items), 200):
        store.record_forwarded_many(items[k:k + 200])
    return ids


def _receipts(ids: list[str]) -> list[PartnerReceipt]:
    # decimal ids counted from 1 and read as the connector says (``--receipt-ids same``):
    # under ``auto`` many of them read as two messages' ids and are applied to none
    return [PartnerReceipt("hub", id_candidates(pid, "same"), State.DELIVERED, NOW + 1)
            for pid in ids]


def run(messages: int, batch: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        store = SqliteStore(str(Path(d) / "bench.db"))
        try:
            a = _receipts(_forward(store, _messages(messages, 1), 1))
            b = _receipts(_forward(store, _messages(messages, 10**8), 10**8))
            t0 = time.perf_counter()
            outcomes: dict[str, int] = {}
            for k in range(0, len(a), batch):
                with store.batch():
                    for r in store.apply_partner_receipts(a[k:k + batch], NOW + 1):
                        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
            batched_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            for k in range(0, len(b), batch):
                with store.batch():
                    for r in b[k:k + batch]:
                        res = store.apply_partner_receipt(r, NOW + 1)
                        outcomes[res.outcome] = outcomes.get(res.outcome, 0) + 1
            single_s = time.perf_counter() - t0
            delivered = store.count_by_state().get(State.DELIVERED, 0)
        finally:
            store.close()
    return {
        "bench": "partner_receipts",
        "messages": messages,
        "batch": batch,
        "batched_per_s": round(messages / batched_s, 1),
        "one_by_one_per_s": round(messages / single_s, 1),
        "batched_us_per_receipt": round(1e6 * batched_s / messages, 1),
        "one_by_one_us_per_receipt": round(1e6 * single_s / messages, 1),
        "ratio": round(single_s / batched_s, 2),
        "outcomes": outcomes,
        "delivered": delivered,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=100)
    args = p.parse_args(argv)
    out = run(args.messages, args.batch)
    print(json.dumps(out))
    ok = out["outcomes"] == {"final": 2 * args.messages} and out["delivered"] == 2 * args.messages
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
