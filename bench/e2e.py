"""End-to-end benchmark: SMPP in, SQLite (fsync on) in between, simulated network out,
receipts back. Prints one JSON line.

Starts a real ``adressat run`` on loopback (a fresh data directory, --quiet-network so the
figures measure the SMSC and not simulated radio latency) and drives it with the project's
own ESME client over SMPP, in three phases:

* ``submit``: N submit_sm at window W without receipts -> accepted per second;
* ``e2e``: N submit_sm with registered_delivery=1 -> messages per second from the first submit
  to the last receipt at the ESME (every message delivered to a handset and receipted);
* ``paced``: submits at a fixed rate (default 2,000/s) -> submit_sm_resp p50/p99 latency.

Peak resident memory of the server is read from /proc at the end (``--subscribers`` up to
2,700,000 sets the size of the simulated network).

    .venv/bin/python bench/e2e.py -n 20000 -w 100 --subscribers 2700000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from adressat.testing.esme import EsmeClient
from adressat.testing.server import ServerProcess, adressat

FIRST = 46701000000


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def phase(port: int, n: int, window: int, offset: int, subscribers: int,
                receipts: bool, rate: float | None = None) -> dict[str, float]:
    client = EsmeClient("127.0.0.1", port, "bench", "bench", window=window)
    await client.connect(timeout_s=20)
    dests = [str(FIRST + (offset + i) % subscribers) for i in range(n)]
    rd = 1 if receipts else 0
    t0 = time.perf_counter()
    if rate is None:
        recs = await client.submit_many({"dest": d, "registered_delivery": rd} for d in dests)
    else:
        tasks = []
        for i, d in enumerate(dests):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(client.submit_many(
                [{"dest": d, "registered_delivery": rd}])))
        recs = [r for t in await asyncio.gather(*tasks) for r in t]
    t_submitted = time.perf_counter()
    acked = [r for r in recs if r.acked]
    out: dict[str, float] = {
        "n": n,
        "acked": len(acked),
        "refused": sum(1 for r in recs if r.status not in (None, 0)),
        "submit_rate": round(len(acked) / (t_submitted - t0), 1),
        "resp_p50_ms": round(pct([(r.answered_at - r.sent_at) * 1000 for r in acked], 0.5), 2),
        "resp_p99_ms": round(pct([(r.answered_at - r.sent_at) * 1000 for r in acked], 0.99), 2),
    }
    if receipts:
        ids = [r.message_id for r in acked if r.message_id]
        missing = await client.wait_receipts(ids, timeout_s=max(60.0, n / 200))
        t_done = time.perf_counter()
        out["receipts"] = len(ids) - len(missing)
        out["e2e_rate"] = round(out["receipts"] / (t_done - t0), 1)
        stats = [r.stat for r in client.receipts.values()]
        out["delivered"] = sum(1 for s in stats if s is not None and s.value == "DELIVRD")
    await client.close()
    return out


async def main_async(args: argparse.Namespace, port: int) -> dict[str, object]:
    result: dict[str, object] = {}
    offset = 0
    # warm-up (imports, caches, first fsyncs)
    await phase(port, min(2000, args.n), args.window, offset, args.subscribers, receipts=True)
    offset += args.n
    result["submit"] = await phase(port, args.n, args.window, offset, args.subscribers, False)
    offset += args.n
    result["e2e"] = await phase(port, args.n, args.window, offset, args.subscribers, True)
    offset += args.n
    paced_n = int(args.paced_rate * args.paced_s)
    result["paced"] = await phase(port, paced_n, args.window, offset, args.subscribers, False,
                                  rate=args.paced_rate)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("-w", "--window", type=int, default=100)
    p.add_argument("--subscribers", type=int, default=2_700_000)
    p.add_argument("--paced-rate", type=float, default=2000.0)
    p.add_argument("--paced-s", type=float, default=5.0)
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra argument for `adressat run` (repeatable)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="adressat-bench-") as tmp:
        home = Path(tmp)
        out = adressat(home, "account", "add", "bench", "--password", "bench")
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            return 1
        server = ServerProcess(home, None, "--quiet-network", "--subscribers",
                               str(args.subscribers), *args.server_arg)
        server.start()
        try:
            res = asyncio.run(main_async(args, server.port))
            assert server.proc is not None
            rss = peak_rss_mib(server.proc.pid)
        finally:
            server.stop()
    e2e = res["e2e"]
    line = {
        "bench": "e2e",
        "n": args.n,
        "window": args.window,
        "subscribers": args.subscribers,
        "submit_rate": res["submit"]["submit_rate"],  # type: ignore[index]
        "e2e_rate": e2e["e2e_rate"],  # type: ignore[index]
        "delivered": e2e["delivered"],  # type: ignore[index]
        "paced_rate": args.paced_rate,
        "paced_resp_p50_ms": res["paced"]["resp_p50_ms"],  # type: ignore[index]
        "paced_resp_p99_ms": res["paced"]["resp_p99_ms"],  # type: ignore[index]
        "server_peak_rss_mib": round(rss, 1),
        "detail": res,
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
