"""Status callback throughput: N events in a real SQLite outbox (synchronous=FULL), sent by
the CallbackSender to a webhook receiver in a process of its own on 127.0.0.1 that checks
every signature. Prints one JSON line:

    {"events", "seconds", "callbacks_per_s", "concurrency_max", "receiver_concurrent_max",
     "verified", "sender": {...}}

    .venv/bin/python bench/callbacks.py --events 5000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adressat.core.callbacks import CallbackEvent, encode_spec, make_spec
from adressat.core.model import Message, State
from adressat.ingress.callbacks import CallbackSender, RetryPolicy
from adressat.store import SqliteStore
from adressat.store.commit import GroupCommitter

SECRET = bytes(range(32))

RECEIVER = r"""
import asyncio, json, sys, time
from aiohttp import web
sys.path.insert(0, sys.argv[2])
from adressat.ingress.callbacks import SIGNATURE_HEADER, verify
SECRET = bytes(range(32))
state = {"n": 0, "bad": 0, "now": 0, "max": 0}

async def hook(request):
    state["now"] += 1
    state["max"] = max(state["max"], state["now"])
    try:
        body = await request.read()
        if not verify(SECRET, request.headers.get(SIGNATURE_HEADER, ""), body, time.time()):
            state["bad"] += 1
        state["n"] += 1
        return web.Response(status=204)
    finally:
        state["now"] -= 1

async def stats(request):
    return web.json_response(state)

app = web.Application()
app.router.add_post("/hook", hook)
app.router.add_get("/stats", stats)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _stats(port: int) -> dict[str, int]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{port}/stats") as r:
        return dict(await r.json())


async def _main(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    port = _free_port()
    src = str(Path(__file__).resolve().parents[1] / "src")
    rx = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), src])
    try:
        url = f"http://127.0.0.1:{port}/hook"
        store = SqliteStore(tmp / "adressat.db")
        store.add_account("acme", "x")
        store.set_account_callbacks("acme", url=url, hosts=(), secret=SECRET)
        spec = encode_spec(make_spec("webhook", url, (CallbackEvent.ACCEPTED,)))
        now = time.time()
        for start in range(0, args.events, 500):
            store.insert_messages([
                Message(id=f"{i + 1:032x}", account="acme", source_addr="Acme",
                        destination=f"4670{i:07d}", content=b"x", submitted_at=now,
                        expires_at=now + 3600, not_before=now, next_attempt_at=now + 3600,
                        state=State.ROUTED, route="netsim", tag=b"\x01" * 16,
                        extra={"cb": spec})
                for i in range(start, min(start + 500, args.events))])
        committer = GroupCommitter(store, inline=True).start()
        for _ in range(200):  # the receiver is up
            try:
                await _stats(port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        sender = CallbackSender(committer, concurrency_max=args.concurrency,
                                connections_per_host_max=args.concurrency,
                                batch_max=args.batch, poll_s=0.05,
                                policy=RetryPolicy(0.05, 1.0, 3600.0))
        t0 = time.perf_counter()
        task = asyncio.create_task(sender.run())
        deadline = time.monotonic() + args.timeout_s
        while store.pending_callbacks() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - t0
        left = store.pending_callbacks()
        sender.stop()
        await task
        st = await _stats(port)
        committer.stop()
        store.close()
        done = args.events - left
        return {"events": args.events, "sent": done, "seconds": round(seconds, 3),
                "callbacks_per_s": round(done / seconds, 1),
                "concurrency_max": args.concurrency,
                "sender_in_flight_max": sender.in_flight_max,
                "receiver_concurrent_max": st["max"], "verified": st["bad"] == 0,
                "received": st["n"], "polls": sender.polls, "sender": sender.stats()}
    finally:
        rx.terminate()
        rx.wait(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--timeout-s", type=float, default=300.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(asyncio.run(_main(args, Path(d)))))


if __name__ == "__main__":
    main()
