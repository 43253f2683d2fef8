"""Disk benchmark: at a steady rate, does the WAL stay under its limit and the database file
stop growing once record retention is reached? Prints one JSON line.

Starts a real ``adressat run`` on loopback (fresh data directory, --quiet-network) and sends
submit_sm with registered_delivery=1 at ``--rate`` for ``--seconds`` through the project's
load client, sampling the sizes of the -wal and the database files every 50 ms. With a short
``--record-retention`` (default 10 s) and ``--content-retention 0``, the retention passes
delete what the load adds once it has run longer than the retention: ``db_bytes`` then stays
flat (SQLite reuses the freed pages), and ``db_growth_after_retention_bytes`` is how much the
file grew in the second half of the run.

The node is run through this file (``--serve``) so that, when it stops, it writes the figures
of its WAL checkpointer and its retention pass (``stats()``) where the bench reads them:
restarts, how long they held the write lock, rows purged and deleted.

    .venv/bin/python bench/disk.py --rate 300 --seconds 60
    .venv/bin/python bench/disk.py --rate 1000 --seconds 60 --wal-checkpoint-bytes 4194304
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FIRST = 46701000000


def serve(stats_path: str, argv: list[str]) -> int:
    """``adressat`` with ``argv``; at stop, the node's disk figures into ``stats_path``."""
    from adressat import cli
    from adressat.app import node

    real_stop = node.Node.stop

    async def stop(self: node.Node) -> None:
        await real_stop(self)
        figures = {"checkpoint": dataclasses.asdict(self.checkpointer.stats()),
                   "retention": dataclasses.asdict(self.retention.stats())}
        Path(stats_path).write_text(json.dumps(figures))

    node.Node.stop = stop  # type: ignore[method-assign]
    return cli.main(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sizes:
    def __init__(self, home: Path) -> None:
        self.wal = home / "adressat.db-wal"
        self.db = home / "adressat.db"
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _size(p: Path) -> int:
        try:
            return p.stat().st_size
        except FileNotFoundError:
            return 0

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(0.05):
            self.samples.append((time.monotonic() - t0, self._size(self.wal),
                                 self._size(self.db)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


async def load(port: int, rate: float, seconds: float) -> dict[str, Any]:
    from adressat.testing.load import LoadClient

    c = await LoadClient.connect("127.0.0.1", port, "bench", "bench")
    n = int(rate * seconds)
    dests = [str(FIRST + i % 10_000) for i in range(n)]
    run = await c.submit_all(dests, registered_delivery=1, window=100, rate_per_s=rate)
    missing = await c.wait_receipts(run.message_ids(), timeout_s=60)
    await c.close()
    lat = sorted(run.latencies_ms())

    def q(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(len(lat) * p))], 2) if lat else float("nan")

    return {"accepted": len(run.acked()), "receipts_missing": len(missing),
            "submit_resp_ms_p50": q(0.5), "submit_resp_ms_p99": q(0.99)}


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        return serve(sys.argv[2], sys.argv[3:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=300.0)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--content-retention", default="0")
    p.add_argument("--record-retention", default="10s")
    p.add_argument("--wal-checkpoint-bytes", type=int, default=16 * 1024 * 1024)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="adressat-disk-") as tmp:
        print(json.dumps(measure(Path(tmp) / "h", args)))
    return 0


def measure(home: Path, args: argparse.Namespace) -> dict[str, Any]:
    from adressat.testing.server import adressat

    assert adressat(home, "account", "add", "bench", "--password", "bench").returncode == 0
    stats_path = home.parent / "stats.json"
    port = free_port()
    log_fd = os.open(home.parent / "server.log", os.O_WRONLY | os.O_CREAT, 0o600)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(stats_path), "--home", str(home), "run",
         "--smpp-port", str(port), "--quiet-network", "--subscribers", "10000",
         "--content-retention", args.content_retention,
         "--record-retention", args.record_retention,
         "--wal-checkpoint-bytes", str(args.wal_checkpoint_bytes)],
        stdout=log_fd, stderr=subprocess.STDOUT,
    )
    os.close(log_fd)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("adressat did not listen") from None
            time.sleep(0.05)
    sizes = Sizes(home)
    sizes.start()
    try:
        figures = asyncio.run(load(port, args.rate, args.seconds))
    finally:
        sizes.stop()
        proc.terminate()
        proc.wait(30)
    node = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    s = sizes.samples
    half = [x for x in s if x[0] >= args.seconds / 2]
    ckpt = node.get("checkpoint", {})
    ret = node.get("retention", {})
    return {
        "bench": "disk",
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "content_retention": args.content_retention,
        "record_retention": args.record_retention,
        "wal_checkpoint_bytes": args.wal_checkpoint_bytes,
        **figures,
        "wal_file_max_bytes": max((x[1] for x in s), default=0),
        "db_bytes_by_quarter": [s[min(len(s) - 1, len(s) * k // 4)][2] for k in (1, 2, 3)]
        + [s[-1][2]] if s else [],
        "db_growth_after_retention_bytes": (half[-1][2] - half[0][2]) if half else None,
        "wal_restarts": ckpt.get("restarts_total"),
        "wal_restarts_busy": ckpt.get("busy_total"),
        "wal_checkpoint_failures": ckpt.get("failures_total"),
        "wal_lock_held_ms_max": round(1e3 * ckpt.get("max_duration_s", float("nan")), 2),
        "purged": ret.get("purged_total"),
        "deleted_messages": ret.get("deleted_messages_total"),
        "retention_failures": ret.get("failures_total"),
    }


if __name__ == "__main__":
    sys.exit(main())
