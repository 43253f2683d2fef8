"""End-to-end benchmark: SMPP in, SQLite (fsync on) in between, simulated network out,
receipts back. Prints one JSON line.

Starts a real ``adressat run`` on loopback (a fresh data directory, --quiet-network so the
figures measure the SMSC and not simulated radio latency) and drives it with the project's
lean load client (``adressat.testing.load``: pre-encoded bodies, a few microseconds per
message, so the client does not eat the core the server needs) over SMPP, in three phases:

* ``submit``: N submit_sm at window W without receipts -> accepted per second;
* ``e2e``: N submit_sm with registered_delivery=1 -> messages per second from the first submit
  to the last receipt at the ESME (every message delivered to a handset and receipted); it
  starts once the submit phase's messages are all delivered (``drained_s``: how long that
  took after the last submit), so it measures only its own messages;
* ``paced``: submits at a fixed rate (default 2,000/s) -> submit_sm_resp p50/p99 latency,
  each measured from the write of its submit_sm to the arrival of its response.

Peak resident memory of the server is read from /proc at the end (``--subscribers`` up to
2,700,000 sets the size of the simulated network).

    .venv/bin/python bench/e2e.py -n 20000 -w 100 --subscribers 2700000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from adressat.store.sqlite import SqliteStore
from adressat.testing.load import LoadClient
from adressat.testing.server import ServerProcess, adressat

FIRST = 46701000000


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def delivery_pid(pid: int) -> int | None:
    """The SMPP process's child: the delivery process (None with --delivery-process off)."""
    kids = [int(x) for task in Path(f"/proc/{pid}/task").iterdir()
            for x in (task / "children").read_text().split()]
    return kids[0] if kids else None


def cpu_all(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_s(p) for name, p in pids.items()} | {"client": time.process_time()}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def phase(port: int, pid: int, n: int, window: int, offset: int, subscribers: int,
                receipts: bool, rate: float | None = None) -> dict[str, float]:
    client = await LoadClient.connect("127.0.0.1", port, "bench", "bench", timeout_s=20)
    dests = [str(FIRST + (offset + i) % subscribers) for i in range(n)]
    pids = {"smpp": pid} | ({"delivery": d} if (d := delivery_pid(pid)) else {})
    cpu0 = cpu_all(pids)
    run = await client.submit_all(dests, registered_delivery=1 if receipts else 0,
                                  window=window, rate_per_s=rate)
    cpu1 = cpu_all(pids)
    acked = run.acked()
    lat = run.latencies_ms()
    out: dict[str, float] = {
        "n": n,
        "acked": len(acked),
        "refused": sum(1 for s in run.status if s > 0),
        "submit_rate": round(len(acked) / (run.finished_at - run.started_at), 1),
        "resp_p50_ms": round(pct(lat, 0.5), 2),
        "resp_p99_ms": round(pct(lat, 0.99), 2),
        # the SMPP process's CPU per accepted message while submitting (clock ticks: coarse)
        "server_cpu_us_per_msg": round((cpu1["smpp"] - cpu0["smpp"]) * 1e6
                                       / max(1, len(acked)), 1),
        # CPU share of a core per process while submitting: which one is the bottleneck
        "cpu_pct": {k: round((cpu1[k] - cpu0[k]) * 100 / (run.finished_at - run.started_at))
                    for k in cpu1},
    }
    if receipts:
        ids = run.message_ids()
        missing = await client.wait_receipts(ids, timeout_s=max(60.0, n / 200))
        t_done = time.perf_counter()
        out["receipts"] = len(ids) - len(missing)
        out["e2e_rate"] = round(out["receipts"] / (t_done - run.started_at), 1)
        out["delivered"] = sum(1 for m in ids if client.receipts.get(m) == "DELIVRD")
    out["client_violations"] = client.violations
    await client.close()
    return out


async def drained(home: Path, timeout_s: float = 300.0) -> float:
    """Wait until no message of the node is unfinished; returns how long it took."""
    store = SqliteStore(home / "adressat.db")
    t0 = time.perf_counter()
    try:
        while store.count_unfinished() > 0:
            if time.perf_counter() - t0 > timeout_s:
                raise TimeoutError("the node did not finish its messages")
            await asyncio.sleep(0.05)
    finally:
        store.close()
    return round(time.perf_counter() - t0, 2)


async def main_async(args: argparse.Namespace, home: Path, port: int,
                     pid: int) -> dict[str, object]:
    result: dict[str, object] = {}
    offset = 0
    # warm-up (imports, caches, first fsyncs)
    await phase(port, pid, min(2000, args.n), args.window, offset, args.subscribers, receipts=True)
    offset += args.n
    result["submit"] = await phase(port, pid, args.n, args.window, offset, args.subscribers, False)
    offset += args.n
    # the e2e phase starts with the submit phase's messages all delivered: it measures its own
    # messages, not a backlog left by the phase before (which had cost it 20-40 %)
    result["submit"]["drained_s"] = await drained(home)  # type: ignore[index]
    result["e2e"] = await phase(port, pid, args.n, args.window, offset, args.subscribers, True)
    offset += args.n
    paced_n = int(args.paced_rate * args.paced_s)
    result["paced"] = await phase(port, pid, paced_n, args.window, offset, args.subscribers, False,
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
            assert server.proc is not None
            res = asyncio.run(main_async(args, home, server.port, server.proc.pid))
            child = delivery_pid(server.proc.pid)
            rss_smpp = peak_rss_mib(server.proc.pid)
            rss_delivery = peak_rss_mib(child) if child else 0.0
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
        # both processes' peaks added up (they need not peak at the same moment: an upper bound)
        "server_peak_rss_mib": round(rss_smpp + rss_delivery, 1),
        "smpp_peak_rss_mib": round(rss_smpp, 1),
        "delivery_peak_rss_mib": round(rss_delivery, 1),
        "detail": res,
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
