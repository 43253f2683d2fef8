"""Soak benchmark: does the node last? One JSON line per minute and one at the end.

Starts a real ``adressat run`` (both processes, SQLite with an fsync per commit, the
simulated network with its realistic behaviour: absent subscribers, full memories, latency)
and submits at a fixed rate with receipts requested, for N minutes, through the project's lean
load client. Every minute it prints what grows or drifts when a node does not last:

* ``wal_bytes_max`` (sampled every 0.25 s) and ``db_bytes``, ``disk_free_bytes``;
* ``rss_smpp_mib`` / ``rss_delivery_mib``: resident memory of both processes;
* ``submit_p99_ms``: submit_sm written to submit_sm_resp read, this minute's submits;
* ``delivery_p50_ms`` / ``delivery_p99_ms``: submit to receipt at the ESME, this minute's
  receipts (absent subscribers come back through the retry schedule: the tail is minutes);
* ``unfinished`` (the node's queue), ``receipts``, ``refused`` (by status).

The last line sums up and judges the targets: WAL at most 64 MiB throughout; RSS of each
process within 10 % of its figure at minute 5 (``rss_flat``); p99s flat (no minute after
the fifth above twice the fifth's); nothing unfinished beyond what the retry schedule still
holds (``unfinished`` at the end at most the last ``retry_horizon_s`` of submits).

``--connector``: the messages go to another operator's numbers (4676...) through a connector
to a partner SMSC run by this script (``adressat.testing.partner``, receipts after
``--partner-delay-s``), so the forwards, the partner ids and the partners' receipts are what
runs for the hour; each line then also says ``forwards`` and ``held_receipts`` (rows in the
store) and the receipts the partner sent.

``--disk-full``: the data directory is a tmpfs of its own (``--fs-mib``, made by this script:
root), and in the middle of the run a filler takes every free byte for ``--full-s`` seconds
(default 20); the lines then show submits refused (ESME_RMSGQFUL) while full, and the last line
``healed_s``: from freeing the space to ``/health/ready`` 200, and whether receipts came
again without a restart of the delivery process.

    .venv/bin/python bench/soak.py                    # 60 minutes at 1,000 msg/s
    .venv/bin/python bench/soak.py --minutes 5 --rate 500
    .venv/bin/python bench/soak.py --minutes 4 --disk-full
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from adressat.testing.disk import fill, small_fs
from adressat.testing.load import LoadClient
from adressat.testing.server import ServerProcess, adressat, free_port

FIRST = 46701000000
FIRST_OUT = 46760000000  # another operator's numbers (--connector)
WAL_TARGET_BYTES = 64 * 1024 * 1024


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


class Soak:
    def __init__(self, args: argparse.Namespace, server: ServerProcess) -> None:
        self.args = args
        self.server = server
        self.home = server.home
        self.wal = self.home / "adressat.db-wal"
        self.sent: dict[str, float] = {}  # message id -> submit time, until its receipt
        self.early: dict[str, float] = {}  # receipts read before their submit's batch
        self.done: set[str] = set()
        self.minute_lat: list[float] = []
        self.minute_submit: list[float] = []
        self.refused: Counter[str] = Counter()
        self.minute_refused: Counter[str] = Counter()
        self.receipts = 0
        self.duplicate_receipts = 0
        self.acked = 0
        self.wal_max = 0
        self.minute_wal_max = 0
        self.lines: list[dict[str, Any]] = []
        self.partner: Any = None  # the partner SMSC (--connector)
        self.rng = random.Random(args.seed)
        self.stop = asyncio.Event()
        self.full = False
        self.full_events: dict[str, float] = {}

    def on_receipt(self, mid: str, _stat: str, t: float) -> None:
        at = self.sent.pop(mid, None)
        if at is None:
            if mid in self.done or mid in self.early:
                self.duplicate_receipts += 1
            else:  # before its submit's batch was read: matched when it is
                self.early[mid] = t
            return
        self._receipt(mid, at, t)

    def _receipt(self, mid: str, at: float, t: float) -> None:
        self.receipts += 1
        self.minute_lat.append((t - at) * 1000)
        self.done.add(mid)
        if len(self.done) > 200_000:  # only to tell a repeated receipt: the recent ones
            self.done.clear()

    async def sample_wal(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                n = self.wal.stat().st_size
                self.wal_max = max(self.wal_max, n)
                self.minute_wal_max = max(self.minute_wal_max, n)
            await asyncio.sleep(0.25)

    async def load(self, client: LoadClient) -> None:
        rate = self.args.rate
        t0 = time.perf_counter()
        second = 0
        subs = self.args.subscribers
        first = FIRST_OUT if self.args.connector else FIRST
        while not self.stop.is_set():
            dests = [str(first + self.rng.randrange(subs)) for _ in range(rate)]
            run = await client.submit_all(dests, registered_delivery=1, window=200,
                                          rate_per_s=rate, content=b"soak %08d" % second)
            for i, status in enumerate(run.status):
                if status == 0:
                    mid = run.message_id[i]
                    if mid:
                        self.acked += 1
                        t = self.early.pop(mid, None)
                        if t is None:
                            self.sent[mid] = run.sent_at[i]
                        else:
                            self._receipt(mid, run.sent_at[i], t)
                    self.minute_submit.append((run.answered_at[i] - run.sent_at[i]) * 1000)
                else:
                    name = _status_name(status)
                    self.refused[name] += 1
                    self.minute_refused[name] += 1
            second += 1
            wait = t0 + second - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)

    def status(self) -> dict[str, Any]:
        code, body = self.server.http_get("/status")
        return json.loads(body) if code == 200 else {}

    def minute_line(self, minute: int) -> dict[str, Any]:
        st = self.status()
        d = st.get("delivery", {})
        store = st.get("store", {})
        lat, sub = self.minute_lat, self.minute_submit
        line = {
            "minute": minute,
            "acked": self.acked,
            "receipts": self.receipts,
            "refused": dict(self.minute_refused),
            "wal_bytes_max": self.minute_wal_max,
            "db_bytes": store.get("db_bytes"),
            "disk_free_bytes": store.get("disk_free_bytes"),
            "rss_smpp_mib": rss_mib(st.get("node", {}).get("pid")),
            "rss_delivery_mib": rss_mib(d.get("pid")),
            "delivery_pid": d.get("pid"),
            "submit_p99_ms": pct(sub, 0.99),
            "delivery_p50_ms": pct(lat, 0.50),
            "delivery_p99_ms": pct(lat, 0.99),
            "unfinished": sum(st.get("queue", {}).values()) if st else None,
            "awaiting_receipt": len(self.sent),
            "ready": st.get("health", {}).get("ready"),
        }
        if self.args.connector:
            line.update(self.interconnect_counts())
        self.minute_lat, self.minute_submit = [], []
        self.minute_refused = Counter()
        self.minute_wal_max = 0
        return line

    def interconnect_counts(self) -> dict[str, Any]:
        """Rows the interconnect keeps (read-only, beside the node), and the partner's side."""
        db = self.server.home / "adressat.db"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            forwards = con.execute("SELECT COUNT(*) FROM forwards").fetchone()[0]
            held = con.execute("SELECT COUNT(DISTINCT held_id) FROM partner_receipts_held"
                               ).fetchone()[0]
        finally:
            con.close()
        sink = self.partner
        return {"forwards": forwards, "held_receipts": held,
                "partner_received": sink.received if sink else None,
                "partner_receipts_sent": len(sink.receipts) if sink else None}

    async def disk_full(self, fs: Path) -> None:
        """In the middle of the run: fill the file system for ``--full-s`` seconds."""
        args = self.args
        await asyncio.sleep(args.minutes * args.interval_s / 2)
        filler = fs / "filler"
        self.full_events["filled_at"] = time.time()
        await asyncio.to_thread(fill, filler)
        self.full = True
        await asyncio.sleep(args.full_s)
        filler.unlink()
        self.full = False
        freed = time.monotonic()
        self.full_events["freed_at"] = time.time()
        for _ in range(600):
            code, _ = await asyncio.to_thread(self.server.http_get, "/health/ready")
            if code == 200:
                self.full_events["healed_s"] = round(time.monotonic() - freed, 2)
                break
            await asyncio.sleep(0.1)


def _status_name(status: int) -> str:
    from adressat.smpp.constants import CommandStatus

    try:
        return CommandStatus(status).name
    except ValueError:
        return "no_answer" if status < 0 else hex(status)


async def main_async(args: argparse.Namespace, home: Path, fs: Path | None) -> dict[str, Any]:
    assert adressat(home, "account", "add", "soak", "--password", "soak").returncode == 0
    server_args = ["--subscribers", str(args.subscribers), *args.server_arg]
    partner = None
    if args.connector:
        from adressat.testing.partner import PartnerModes, PartnerSink

        partner = PartnerSink(PartnerModes(receipt_delay_s=args.partner_delay_s),
                              port=free_port(), pending_receipts_max=200_000)
        await partner.start()
        for cmd in (["connector", "add", "partner", "--host", "127.0.0.1", "--port",
                     str(partner.port), "--system-id", "soak", "--password", "soak",
                     "--window", "100"],  # the kit passes the password in the environment
                    ["route", "add", "out", "--prefix", "4676", "--via", "partner"]):
            out = adressat(home, *cmd)
            assert out.returncode == 0, out.stderr
    server = ServerProcess(home, None, *server_args)
    await asyncio.to_thread(server.start)
    soak = Soak(args, server)
    soak.partner = partner
    tasks: list[asyncio.Task[Any]] = []
    try:
        client = await LoadClient.connect("127.0.0.1", server.port, "soak", "soak",
                                          source_addr="SOAK")
        client.on_receipt = soak.on_receipt
        tasks = [asyncio.create_task(soak.sample_wal()), asyncio.create_task(soak.load(client))]
        if fs is not None:
            tasks.append(asyncio.create_task(soak.disk_full(fs)))
        first_pid = None
        for minute in range(1, args.minutes + 1):
            await asyncio.sleep(args.interval_s)
            line = await asyncio.to_thread(soak.minute_line, minute)
            first_pid = first_pid or line["delivery_pid"]
            soak.lines.append(line)
            print(json.dumps(line), flush=True)
        soak.stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # what the retry schedule still holds: receipts that come later are not waited for
        await asyncio.sleep(5)
        final = await asyncio.to_thread(soak.minute_line, args.minutes + 1)
        await client.close()
    finally:
        await asyncio.to_thread(server.stop)
        if partner is not None:
            await partner.stop()
    return summary(args, soak, final, first_pid)


def summary(args: argparse.Namespace, soak: Soak, final: dict[str, Any],
            first_pid: int | None) -> dict[str, Any]:
    lines = soak.lines
    warm = [ln for ln in lines if ln["minute"] >= 5] or lines[-1:]
    base = warm[0] if warm else {}

    def flat(key: str, tolerance: float) -> bool | None:
        ref = base.get(key)
        if not ref:
            return None
        return all((ln.get(key) or 0) <= ref * tolerance for ln in warm)

    retry_horizon = args.retry_horizon_s * args.rate
    out: dict[str, Any] = {
        "bench": "soak",
        "mode": "disk_full" if args.disk_full else "connector" if args.connector else "steady",
        "minutes": args.minutes,
        "rate_per_s": args.rate,
        "acked": soak.acked,
        "receipts": soak.receipts,
        "duplicate_receipts": soak.duplicate_receipts,
        "refused": dict(soak.refused),
        "wal_bytes_max": soak.wal_max,
        "wal_ok": soak.wal_max <= WAL_TARGET_BYTES,
        "db_bytes_end": final.get("db_bytes"),
        "rss_smpp_mib": [ln["rss_smpp_mib"] for ln in lines],
        "rss_delivery_mib": [ln["rss_delivery_mib"] for ln in lines],
        "rss_flat": bool(flat("rss_smpp_mib", 1.10) and flat("rss_delivery_mib", 1.10)),
        "submit_p99_ms": [ln["submit_p99_ms"] for ln in lines],
        "delivery_p99_ms": [ln["delivery_p99_ms"] for ln in lines],
        "p99_flat": bool(flat("submit_p99_ms", 2.0)),
        "unfinished_end": final.get("unfinished"),
        "awaiting_receipt_end": len(soak.sent),
        "unfinished_ok": (final.get("unfinished") or 0) <= retry_horizon,
        "delivery_restarts": len({ln["delivery_pid"] for ln in lines if ln["delivery_pid"]}) - 1,
    }
    if args.disk_full:
        out.update(soak.full_events)
        out["same_delivery_process"] = final.get("delivery_pid") == first_pid
        after = [ln for ln in lines if ln["minute"] * args.interval_s
                 > args.minutes * args.interval_s / 2 + args.full_s + args.interval_s]
        out["receipts_after_heal"] = (after[-1]["receipts"] - after[0]["receipts"]
                                      if len(after) >= 2 else None)
    if lines:
        out["median_submit_p99_ms"] = statistics.median(
            [x for x in out["submit_p99_ms"] if x is not None] or [0])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=int, default=60)
    p.add_argument("--rate", type=int, default=1000, help="submits per second")
    p.add_argument("--interval-s", type=float, default=60.0,
                   help="seconds between lines (a 'minute'; shorter only to try it out)")
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--disk-full", action="store_true",
                   help="fill the data directory's file system in the middle of the run")
    p.add_argument("--full-s", type=float, default=20.0)
    p.add_argument("--connector", action="store_true",
                   help="to another operator's numbers through a connector to a partner SMSC")
    p.add_argument("--partner-delay-s", type=float, default=1.0,
                   help="the partner's receipts come this long after its submit_sm_resp")
    p.add_argument("--fs-mib", type=int, default=2048, help="size of the tmpfs (--disk-full)")
    p.add_argument("--retry-horizon-s", type=float, default=3600.0,
                   help="unfinished at the end may be at most this many seconds of submits")
    p.add_argument("--server-arg", action="append", default=[],
                   help="an extra argument for adressat run (repeatable), e.g."
                   " --server-arg=--record-retention --server-arg=10m")
    args = p.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        print("uvloop not installed: the client runs on asyncio's own loop", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="adressat-soak-") as tmp:
        if args.disk_full:
            with small_fs(Path(tmp) / "fs", args.fs_mib * 1024 * 1024) as fs:
                out = asyncio.run(main_async(args, fs / "home", fs))
        else:
            out = asyncio.run(main_async(args, Path(tmp) / "home", None))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
