"""The chaos scenario, shared by ``tests/chaos/test_chaos.py`` and ``bench/chaos.py``.

A real ``adressat run`` (subprocess, tmp home, ``--quiet-network``, short retry delays), two
accounts submitting concurrently over SMPP with the project's EsmeClient (unique 8-bit
content per submit, so an inbox record's SHA-256 names the submit it came from), and a list of
fault windows switched with the real CLI (``adressat fault on|off``): each window turns one
fault on, optionally SIGKILLs the server at a seeded moment inside it and restarts it, turns
the fault off, and if the route's breaker tripped, records the held figures and runs
``adressat route release netsim``.

:func:`analyse` then judges from OUTSIDE: the clients' own records (acked ids, receipts) and
the handsets' inbox (``read_inbox``), and compares with ``adressat audit --json`` and
``adressat incident report --json``. Ground truth for "wrong identity":

* an inbox record at a different MSISDN than the submit's destination (known from the
  client's own record, by content hash) is a misdelivery, always;
* a record at the right MSISDN under another IMSI than the one the SMSC addressed (a number
  recycled while the message was on its way): the inbox alone cannot tell (the register's
  history dies with the process); the audit recognises it from the alarm's ``addressed=``
  IMSI, and here it is cross-checked: every such record must be at the right MSISDN under an
  IMSI that, in a fresh register with the same seed, is a changed identity (generation >= 1)
  of that number, for a message its sender was told UNDELIV.

Bounded everywhere: every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adressat.netsim import NetsimSettings, read_inbox
from adressat.netsim.register import Register
from adressat.testing.esme import EsmeClient, SubmitRecord
from adressat.testing.server import ServerProcess, adressat, audit

ROUTE = "netsim"
ACCOUNTS = ("alpha", "beta")
PASSWORD = "pw"
SUBSCRIBERS = 100_000
FIRST = 46701000000
DATA_CODING_8BIT = 4
#: integrity error codes in a receipt's err: field (QUARANTINED)
QUARANTINE_ERRS = frozenset({30, 31, 32, 33, 35})
FAULT_APPLY_S = 1.2  # the node polls the desired fault state every 0.5 s


@dataclass(frozen=True)
class Window:
    """One fault switched on for ``seconds``. ``side``: ``smsc`` (the SMSC can cross-check:
    0 records at a wrong identity), ``network`` (the network hands it to a wrong handset:
    every such record detected), ``benign`` (no identity at stake: loss and duplicates)."""

    name: str
    side: str
    params: tuple[tuple[str, str], ...] = ()
    rate: float = 1.0
    seconds: float = 3.0
    kill: bool = False

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.params if k in ("reassigned", "at"))
        return f"{self.name}({extra})" if extra else self.name


#: every fault of netsim's catalogue (both variants where there are two) and the SMSC's own
WINDOWS: tuple[Window, ...] = (
    Window("corrupt_pairing", "smsc", rate=0.3, kill=True),
    Window("stale_routing", "smsc", (("reassigned", "false"),), rate=0.3, kill=True),
    Window("stale_routing", "smsc", (("reassigned", "true"),), rate=0.3),
    Window("recycled_number", "smsc", (("at", "lookup"),), rate=0.3),
    Window("recycled_number", "network", (("at", "forward"),), rate=0.3),
    Window("swapping_node", "network", rate=0.3),
    Window("double_delivery", "network", rate=0.3),
    Window("ack_lost", "benign", rate=0.3, kill=True),
    Window("ack_duplicated", "benign", (("delay_s", "0.3"),), rate=0.5),
    Window("ack_late", "benign", (("delay_s", "1.0"),), rate=0.3, kill=True),
    Window("register_unavailable", "benign", rate=0.3),
    Window("absent_for_hours", "benign", (("hours", "0.0005"),), rate=0.2, kill=True),
    Window("memory_full_then_alert", "benign", (("seconds", "1.0"),), rate=0.2),
)


@dataclass
class Submit:
    account: str
    dest: str
    sha: str
    record: SubmitRecord
    sent_wall: float
    answered_wall: float


@dataclass
class WindowResult:
    window: Window
    on_at: float
    off_at: float = 0.0
    end_at: float = 0.0
    kills: int = 0
    fired: int = 0
    tripped: bool = False
    late_trips: int = 0  # the route found held before this window's fault had fired
    held_at: float | None = None
    held_messages: int = 0
    release_started_at: float | None = None


@dataclass
class Run:
    home: Path
    seed: int
    started_at: float = 0.0
    ended_at: float = 0.0
    windows: list[WindowResult] = field(default_factory=list)
    submits: dict[str, Submit] = field(default_factory=dict)  # content sha -> submit
    clients: dict[str, EsmeClient] = field(default_factory=dict)
    kills: int = 0
    restart_s: list[float] = field(default_factory=list)
    receipts_missing: int = 0
    audit: dict[str, Any] = field(default_factory=dict)
    incident: dict[str, Any] = field(default_factory=dict)
    final_routes: list[dict[str, Any]] = field(default_factory=list)


def _cli(home: Path, *args: str) -> str:
    out = adressat(home, *args)
    if out.returncode != 0:
        raise RuntimeError(f"adressat {' '.join(args)}: {out.returncode} {out.stderr[-500:]}")
    return out.stdout


async def cli(home: Path, *args: str) -> str:
    return await asyncio.to_thread(_cli, home, *args)


async def route_status(home: Path) -> dict[str, Any]:
    rows = json.loads(await cli(home, "route", "list", "--json"))
    return next((r for r in rows if r["name"] == ROUTE), {"held": False, "held_messages": 0})


async def fired(home: Path, name: str) -> int:
    rows = json.loads(await cli(home, "fault", "list", "--json"))
    return int(next((r["fired"] for r in rows if r["name"] == name), 0))


class Load:
    """``workers`` submitters per account, one message outstanding each, reconnecting."""

    def __init__(self, run: Run, rng: random.Random, workers: int, pause_s: float) -> None:
        self.run = run
        self.rng = rng
        self.workers = workers
        self.pause_s = pause_s
        self.stop = asyncio.Event()
        self.n = 0
        self._connecting = {a: asyncio.Lock() for a in run.clients}

    async def go(self) -> None:
        await asyncio.gather(
            *(self._worker(a) for a in self.run.clients for _ in range(self.workers))
        )

    async def _worker(self, account: str) -> None:
        client = self.run.clients[account]
        while not self.stop.is_set():
            if not client.connected:
                async with self._connecting[account]:
                    await client.connect(retry_for_s=30.0, retry_interval_s=0.05)
            self.n += 1
            dest = str(FIRST + 1 + self.rng.randrange(SUBSCRIBERS - 1))
            content = b"chaos %s %08d" % (account.encode(), self.n)
            sent = time.time()
            [rec] = await client.submit_many(
                [{"dest": dest, "content": content, "data_coding": DATA_CODING_8BIT}]
            )
            if rec.sent:
                sha = hashlib.sha256(content).hexdigest()
                self.run.submits[sha] = Submit(account, dest, sha, rec, sent, time.time())
            else:
                await asyncio.sleep(0.05)
            await asyncio.sleep(self.rng.uniform(0, self.pause_s))


def setup_home(home: Path) -> None:
    for name in ACCOUNTS:
        _cli(home, "account", "add", name, "--password", PASSWORD)


def server_for(home: Path, *extra: str) -> ServerProcess:
    return ServerProcess(
        home,
        None,
        "--quiet-network",
        "--subscribers",
        str(SUBSCRIBERS),
        "--retry-delays-s",
        "0.5,1,1,2,2",
        # no canary prober: the faults' counters and the inbox are judged against the
        # clients' own submits exactly (the prober is tested in test_e2e_canary.py)
        "--canary-interval-s",
        "0",
        *extra,
    )


async def _restart(run: Run, server: ServerProcess, rng: random.Random) -> None:
    await asyncio.to_thread(server.kill)
    run.kills += 1
    await asyncio.sleep(rng.uniform(0.0, 0.5))
    t = time.monotonic()
    await asyncio.to_thread(server.start)
    run.restart_s.append(round(time.monotonic() - t, 2))


EXTENSIONS_MAX = 2  # a window whose fault never fired (route held) runs again, at most this


async def _window(run: Run, server: ServerProcess, w: Window, rng: random.Random) -> None:
    home = run.home
    args = ["fault", "on", w.name, "--rate", str(w.rate)]
    for k, v in w.params:
        args += ["--param", f"{k}={v}"]
    res = WindowResult(w, time.time())
    run.windows.append(res)
    await cli(home, *args)
    if w.kill:
        at = rng.uniform(0.8, w.seconds - 0.3)
        await asyncio.sleep(at)
        res.fired += await fired(home, w.name)  # the counters restart with the process
        await _restart(run, server, rng)
        res.kills += 1
        await asyncio.sleep(max(0.5, w.seconds - at))
    else:
        await asyncio.sleep(w.seconds)
    res.fired += await fired(home, w.name)
    for _ in range(EXTENSIONS_MAX):
        # a late trip by an earlier window's consequence (a retry finding its number's
        # identity changed by a recycled or swapped SIM: retry_identity_changed, correctly
        # fail-closed) can hold the route for this whole window, so its fault never meets a
        # delivery: release it and give the fault the window again (bounded)
        if res.fired:
            break
        status = await route_status(home)
        if status["held"]:
            res.late_trips += 1
            await cli(home, "route", "release", ROUTE)
        await asyncio.sleep(w.seconds)
        res.fired += await fired(home, w.name)
    await cli(home, "fault", "off", w.name)
    res.off_at = time.time()
    await asyncio.sleep(FAULT_APPLY_S)
    status = await route_status(home)
    if status["held"]:
        res.tripped = True
        res.held_at = status.get("held_at")
        res.held_messages = int(status["held_messages"])
        res.release_started_at = time.time()
        await cli(home, "route", "release", ROUTE)
    res.end_at = time.time()


async def scenario(
    home: Path,
    windows: tuple[Window, ...] = WINDOWS,
    *,
    seed: int = 20230120,
    baseline_s: float = 2.0,
    baseline_kill: bool = True,
    workers: int = 6,
    pause_s: float = 0.06,
    receipts_wait_s: float = 60.0,
    server_args: tuple[str, ...] = (),
) -> Run:
    """Run the whole scenario against a fresh server under ``home``; returns the record."""
    setup_home(home)
    run = Run(home, seed)
    rng = random.Random(seed)
    server = server_for(home, *server_args)
    await asyncio.to_thread(server.start)
    try:
        run.clients = {
            a: EsmeClient("127.0.0.1", server.port, a, PASSWORD, window=50) for a in ACCOUNTS
        }
        for c in run.clients.values():
            await c.connect(retry_for_s=10.0)
        run.started_at = time.time()
        load = Load(run, random.Random(seed + 1), workers, pause_s)
        task = asyncio.create_task(load.go())
        try:
            await asyncio.sleep(baseline_s / 2)
            if baseline_kill:
                await _restart(run, server, rng)
            await asyncio.sleep(baseline_s / 2)
            for w in windows:
                if task.done():
                    break
                await _window(run, server, w, rng)
            await asyncio.sleep(1.0)
        finally:
            load.stop.set()
            await asyncio.wait_for(task, 40.0)  # raises what the load raised
        run.ended_at = time.time()
        status = await route_status(home)
        if status["held"]:  # a trip after the last window: release, held messages go out
            await cli(home, "route", "release", ROUTE)
        missing = 0
        for c in run.clients.values():
            await c.connect(retry_for_s=10.0)
        deadline = time.monotonic() + receipts_wait_s
        for c in run.clients.values():
            ids = [r.message_id for r in c.acked if r.message_id]
            left = max(1.0, deadline - time.monotonic())
            missing += len(await c.wait_receipts(ids, left))
        run.receipts_missing = missing
        await asyncio.sleep(0.5)  # a late duplicate receipt is counted too
        for c in run.clients.values():
            await c.close()
        run.final_routes = json.loads(await cli(home, "route", "list", "--json"))
    finally:
        await asyncio.to_thread(server.stop)
    run.audit = await asyncio.to_thread(audit, home)
    run.incident = json.loads(
        await cli(
            home,
            "incident",
            "report",
            "--from",
            str(run.started_at - 5),
            "--to",
            str(time.time() + 5),
            "--json",
        )
    )
    return run


# -- judging from outside --------------------------------------------------------------------


def _generation(register: Register, msisdn: str, imsi: str, max_g: int = 50) -> int | None:
    try:
        index = register.index_of(msisdn)
    except Exception:  # noqa: BLE001 - not one of ours
        return None
    for g in range(max_g):
        if register.imsi_of(index, g) == imsi:
            return g
    return None


def _window_at(run: Run, t: float) -> WindowResult | None:
    """The window whose fault could have acted at ``t`` (on .. off + apply lag)."""
    for w in run.windows:
        if w.on_at <= t <= w.off_at + FAULT_APPLY_S:
            return w
    return None


def analyse(run: Run) -> dict[str, Any]:
    """Figures and problems, judged from the clients' records and the handsets' inbox."""
    problems: list[str] = []
    inbox = list(read_inbox(run.home))
    by_id: dict[str, Submit] = {}
    for s in run.submits.values():
        if s.record.message_id:
            by_id[s.record.message_id] = s
    owner_of = {mid: s.account for mid, s in by_id.items()}

    # receipts: each client's log holds only its own ids; one final receipt per acked id
    receipt_of: dict[str, Any] = {}
    for account, client in run.clients.items():
        for rr in client.receipt_log:
            if rr.message_id is None or rr.receipt is None:
                problems.append(f"{account}: unparsable receipt")
                continue
            owner = owner_of.get(rr.message_id)
            if owner is None:
                # an unknown-outcome submit of this client (kill cut off its answer)?
                shas = [
                    s for s in run.submits.values()
                    if s.account == account and s.record.unknown
                ]
                if not shas:
                    problems.append(f"{account}: receipt for unknown id {rr.message_id}")
                continue
            if owner != account:
                problems.append(f"receipt for {rr.message_id} ({owner}) went to {account}")
                continue
            first = receipt_of.setdefault(rr.message_id, rr.receipt)
            if (first.stat, first.err) != (rr.receipt.stat, rr.receipt.err):
                problems.append(f"{rr.message_id}: receipts differ")

    stored = [r for r in inbox if not r.duplicate]
    per_part = Counter(
        (r.smsc_message_id, r.deliver_key, r.msisdn, r.imsi) for r in stored
    )
    duplicates_stored = sum(n - 1 for n in per_part.values())
    duplicates_discarded = len(inbox) - len(stored)
    right: dict[str, list[Any]] = {}  # id -> records at its destination
    wrong_msisdn: list[tuple[Any, Submit]] = []
    for rec in inbox:
        s = run.submits.get(rec.content_sha256)
        if s is None:
            problems.append(f"inbox record {rec.smsc_message_id}: content never submitted")
            continue
        if s.record.message_id and rec.smsc_message_id != s.record.message_id:
            problems.append(f"{s.record.message_id} stored under id {rec.smsc_message_id}")
        if rec.msisdn != s.dest:
            wrong_msisdn.append((rec, s))
        elif not rec.duplicate:
            right.setdefault(rec.smsc_message_id, []).append(rec)

    quarantined_ids = {
        mid for mid, r in receipt_of.items()
        if r.stat is not None and r.stat.value == "UNDELIV" and int(r.err or 0) in QUARANTINE_ERRS
    }
    listed: set[str] = set()
    for acc in run.incident.get("accounts", {}).values():
        listed.update(acc.get("quarantined", ()))
        listed.update(acc.get("suspect", ()))

    # lost: every acked id final with a receipt; DELIVRD ones stored at their destination
    lost: list[str] = []
    for mid, s in by_id.items():
        r = receipt_of.get(mid)
        if r is None:
            lost.append(mid)
            problems.append(f"{mid} ({s.account}): acked, no receipt")
        elif r.stat is not None and r.stat.value == "DELIVRD":
            if mid not in right:
                lost.append(mid)
                problems.append(f"{mid}: DELIVRD but no inbox record at {s.dest}")
        elif mid not in quarantined_ids:
            lost.append(mid)
            problems.append(f"{mid}: final receipt {r.stat} err={r.err}")

    # wrong identity: a different MSISDN (always), or the audit's same-MSISDN new holder
    register = Register(
        NetsimSettings.quiet(seed=1, subscribers=SUBSCRIBERS, msisdn_first=FIRST)
    )
    wrong_detail: list[dict[str, Any]] = []
    for rec, s in wrong_msisdn:
        mid = rec.smsc_message_id
        w = _window_at(run, rec.time)
        wrong_detail.append({"id": mid, "window": w.window.label if w else None})
        if w is None or w.window.side != "network":
            problems.append(
                f"{mid} reached {rec.msisdn} (meant for {s.dest}) outside a network-side"
                f" fault window ({w.window.label if w else 'none'}): not prevented"
            )
        if mid not in quarantined_ids:
            problems.append(f"{mid} reached {rec.msisdn}: its sender was not told UNDELIV")
        if mid not in listed:
            problems.append(f"{mid} reached {rec.msisdn}: not in the incident report")
    same_msisdn_audit = int(run.audit.get("misdelivered", 0)) - len(wrong_msisdn)
    candidates = [
        recs
        for mid, recs in right.items()
        if mid in quarantined_ids
        and any((_generation(register, r.msisdn, r.imsi) or 0) >= 1 for r in recs)
    ]
    if same_msisdn_audit < 0:
        problems.append(
            f"audit counts {run.audit.get('misdelivered')} misdelivered, the inbox shows"
            f" {len(wrong_msisdn)} at a wrong number"
        )
    elif same_msisdn_audit > len(candidates):
        problems.append(
            f"audit counts {same_msisdn_audit} same-number misdeliveries, only"
            f" {len(candidates)} plausible from the inbox"
        )

    # the breaker held the rest of the route's traffic after the first detection
    breaker: list[dict[str, Any]] = []
    first_record = {mid: min(r.time for r in recs) for mid, recs in right.items()}
    for w in run.windows:
        if not w.tripped or w.held_at is None or w.release_started_at is None:
            continue
        between = [
            s for s in by_id.values()
            if w.held_at + 0.3 < s.answered_wall < w.release_started_at
        ]
        early = [
            s.record.message_id for s in between
            if s.record.message_id in first_record
            and first_record[s.record.message_id] < w.release_started_at
        ]
        breaker.append({"window": w.window.label, "submitted_while_held": len(between),
                        "delivered_before_release": len(early)})
        if early:
            problems.append(
                f"{w.window.label}: {len(early)} messages submitted after the trip were"
                f" delivered before the release, e.g. {early[:3]}"
            )

    a = run.audit
    for key, want in (("lost", 0), ("misdelivered_undetected", 0), ("duplicates_stored", 0)):
        if a.get(key) != want:
            problems.append(f"audit {key} = {a.get(key)}, want {want}")
    if a.get("misdelivered") != a.get("misdelivered_detected"):
        problems.append("audit: misdelivered != misdelivered_detected")
    if duplicates_stored:
        problems.append(f"inbox: {duplicates_stored} parts stored twice")
    if run.receipts_missing:
        problems.append(f"{run.receipts_missing} acked ids without a receipt")
    for r in run.final_routes:
        if r.get("held_messages"):
            problems.append(f"route {r['name']} still holds {r['held_messages']} at the end")

    return {
        "submitted": sum(len(c.submits) for c in run.clients.values()),
        "acked": len(by_id),
        "unknown": sum(len(c.unknown) for c in run.clients.values()),
        "kills": run.kills,
        "restart_s": run.restart_s,
        "inbox_records": len(inbox),
        "delivered": sum(
            1 for r in receipt_of.values() if r.stat is not None and r.stat.value == "DELIVRD"
        ),
        "quarantined": len(quarantined_ids),
        "alarms": sum(int(r.get("alarms_total", 0)) for r in run.final_routes),
        "wrong_identity_other_number": len(wrong_msisdn),
        "wrong_identity_same_number": max(0, same_msisdn_audit),
        "wrong_identity_detail": wrong_detail[:20],
        "lost": len(lost),
        "duplicates_discarded": duplicates_discarded,
        "duplicates_stored": duplicates_stored,
        "breaker": breaker,
        "windows": [
            {"fault": w.window.label, "fired": w.fired, "tripped": w.tripped,
             "late_trips": w.late_trips,
             "held_messages": w.held_messages, "kills": w.kills}
            for w in run.windows
        ],
        "audit": {k: a.get(k) for k in (
            "lost", "misdelivered", "misdelivered_detected", "misdelivered_undetected",
            "quarantined", "held", "duplicates_discarded", "duplicates_stored")},
        "problems": problems,
    }
