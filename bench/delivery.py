"""Delivery-side benchmark: what the delivery process spends per message, alone. Prints one
JSON line.

N messages (each to its own number, receipts wanted) are written ROUTED into a fresh SQLite
store (fsync on); then the delivery process's own parts (``app.delivery_process.DeliveryNode``:
the worker, the netsim adapter with every integrity guard, the quiet simulated network, one
inline group committer) run in this process until every message is final and its receipt row
is written. Reported: messages per second and CPU microseconds per message of this process.
No SMPP process competes for the cores or the write lock, so the CPU figure moves much less
from run to run than ``bench/e2e.py``'s end-to-end rate, which the delivery process limits.

    .venv/bin/python bench/delivery.py -n 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from adressat.app.delivery_process import DeliveryNode
from adressat.app.settings import Settings
from adressat.core.model import Message, State
from adressat.core.tag import binding_tag
from adressat.store.commit import GroupCommitter
from adressat.store.sqlite import SqliteStore

FIRST = 46701000000
KEY = b"bench-delivery-tag-key"


def messages(n: int, subscribers: int, now: float) -> list[Message]:
    out = []
    content = b"Your code is 918273"
    for i in range(n):
        mid = f"{i + 1:032x}"
        dest = str(FIRST + (i * 7919) % subscribers)
        out.append(Message(
            id=mid, account="bench", source_addr="Bench", destination=dest, content=content,
            submitted_at=now, expires_at=now + 3600, registered_delivery=1,
            state=State.ROUTED, route="netsim", next_attempt_at=now, not_before=now,
            tag=binding_tag(KEY, mid, dest, content, 0, 0),
        ))
    return out


async def deliver_all(home: Path, store: SqliteStore, n: int, subscribers: int) -> float:
    committer = GroupCommitter(store, inline=True)
    finals = 0
    done = asyncio.Event()

    def on_final(_m: Message) -> None:
        nonlocal finals
        finals += 1
        if finals >= n:
            done.set()

    settings = Settings(home=home, subscribers=subscribers, smpp_port=0,
                        netsim_realistic=False)
    node = DeliveryNode(settings, committer, KEY, on_final=on_final)
    t0 = time.perf_counter()
    await node.start()
    try:
        await asyncio.wait_for(done.wait(), 600)
    finally:
        await node.stop()
        await committer.aclose()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20_000)
    ap.add_argument("--subscribers", type=int, default=100_000)
    a = ap.parse_args()
    try:
        import uvloop  # as the delivery process does

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="adressat-bench-") as tmp:
        home = Path(tmp)
        store = SqliteStore(home / "adressat.db", autocheckpoint=True)
        msgs = messages(a.n, a.subscribers, time.time())
        for i in range(0, len(msgs), 1000):
            store.insert_messages(msgs[i : i + 1000])
        cpu0 = time.process_time()
        wall = asyncio.run(deliver_all(home, store, a.n, a.subscribers))
        cpu = time.process_time() - cpu0
        states = store.count_by_state()
        receipts = len(store.pending_receipts("bench", limit=a.n + 1))
        store.close()
    print(json.dumps({
        "bench": "delivery", "n": a.n, "subscribers": a.subscribers,
        "delivered": states.get(State.DELIVERED, 0), "receipt_rows": receipts,
        "rate": round(a.n / wall, 1), "cpu_us_per_msg": round(cpu / a.n * 1e6, 1),
        "cpu_pct": round(cpu / wall * 100),
    }))


if __name__ == "__main__":
    main()
