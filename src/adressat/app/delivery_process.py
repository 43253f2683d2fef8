"""The delivery half of a node, and the process it runs in.

A node is two processes on one store (docs/architecture.md, "Processes"):

* the **SMPP process** (``app.node.Node``): sessions, ingress, receipts to the ESMEs;
* the **delivery process** (this module's ``main``): the delivery worker, the delivery
  adapters with the simulated network, the fault switchboards.

CPython runs one thread of Python at a time, so one process would put ingress, delivery and
the simulated radio network on one core; two processes use both cores of the machine. They
share nothing but the SQLite file (each with its own connection and group committer; the
store's write lock hands the file over between them) and one socketpair of hints:

* SMPP -> delivery: ``W`` (new messages are committed: claim now, do not wait for the
  scheduler tick), ``S`` (stop: finish the attempts in flight, then exit);
* delivery -> SMPP: one JSON line per loop turn, ``{"final": {account: n}}`` (messages reached
  a final state: their receipts are in the outbox, and the queue gauge goes down);
  ``{"behind": [route, ...]}`` (delivery/backlog.py: new submits for those routes wait
  before their commit, ingress/pacing.py); and the heartbeat ``{"hb": {...}}``.

Hints only: the store is the truth. A lost hint costs at most a scheduler tick or a receipt
sweep. The delivery process dies with its parent (``PR_SET_PDEATHSIG``), and it takes
``delivery.lock`` in the data directory before it recovers leases, so a successor never runs
beside a predecessor that is still going down; crashed attempts come back as DEFERRED through
``DeliveryWorker.recover`` exactly as after a whole-node crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import fcntl
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adressat.app import heap
from adressat.core.health import Episode, EpisodeKind
from adressat.core.integrity import FaultSetting
from adressat.core.model import CANARY_ACCOUNT, ConnectorConfig, Message
from adressat.core.retry import RetryPolicy
from adressat.delivery.backlog import ClaimLag
from adressat.delivery.connectors import Client, ConnectorSet
from adressat.delivery.faults import InternalFaults
from adressat.delivery.netsim_adapter import NetsimAdapter
from adressat.delivery.partner_receipts import PartnerReceipts
from adressat.delivery.smpp_adapter import RouteTarget, SmppAdapter
from adressat.delivery.worker import DeliveryWorker
from adressat.netsim import Faults, FaultSwitchboard, NetsimSettings, Network
from adressat.observe.canary import CanaryProber, netsim_routes, tp_ud_digest
from adressat.observe.faults import FAULT_COUNTERS_META, network_switchboard
from adressat.observe.health import failure_cause
from adressat.observe.logs import setup_logging
from adressat.observe.metrics import multiprocess_env, observe_batch
from adressat.routing import Router
from adressat.routing.table import RoutingTable
from adressat.smpp.views import DeliverSm
from adressat.store.commit import GroupCommitter
from adressat.transport.smpp_client import SmppConnector

from .home import private_umask
from .settings import Settings

log = logging.getLogger("adressat.delivery_process")

_PR_SET_PDEATHSIG = 1


def netsim_settings(s: Settings) -> NetsimSettings:
    base = NetsimSettings(seed=s.netsim_seed, subscribers=s.subscribers,
                          msisdn_first=int(s.first_msisdn),
                          canaries_per_node=s.canaries_per_node)
    return base if s.netsim_realistic else NetsimSettings.quiet(
        seed=s.netsim_seed, subscribers=s.subscribers, msisdn_first=int(s.first_msisdn),
        canaries_per_node=s.canaries_per_node)


class DeliveryNode:
    """Delivery worker + simulated network + fault switchboards on one group committer."""

    def __init__(
        self,
        settings: Settings,
        committer: GroupCommitter,
        tag_key: bytes,
        *,
        on_final: Callable[[Message], None],
        on_episode: Callable[[Episode], None] | None = None,
        on_behind: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        """``on_behind(routes)``: the routes whose queue in the store is deeper than
        ``ingress_pace_lag_s`` (delivery/backlog.py; said on change, repeated while any)."""
        self.settings = s = settings
        self.committer = committer
        self.network = Network(s.home, netsim_settings(s), faults=self._network_faults(s))
        self.internal_faults = InternalFaults(seed=s.netsim_seed)
        self._faults_applied: dict[str, FaultSetting] = {}
        self.adapter = NetsimAdapter(self.network, tag_key, guards=s.integrity_guards)
        # interconnect (issue 11): the operator's routes and connectors, from the store
        first, last = netsim_settings(s).msisdn_range
        self.routes = RoutingTable("own", [(first, last)], s.routing_rules)
        self.connectors = ConnectorSet(committer, self._make_connector, clock=time.time,
                                       down_s_max=s.connector_down_s_max)

        self.smpp_adapter = SmppAdapter(
            tag_key,
            route=self._route_target,
            connector=self.connectors.get,  # type: ignore[arg-type]
            payload_allowed=self.connectors.payload_allowed,
            guards=s.integrity_guards,
        )
        self.worker = DeliveryWorker(
            committer,
            {"netsim": self.adapter, "smpp": self.smpp_adapter},
            self.routes.kind,
            RetryPolicy(s.retry_delays_s, s.retry_jitter_fraction),
            owner=f"node-{s.node_id}-{os.getpid()}",
            node=s.node_id,
            rng=random.Random(),
            concurrency_max=s.delivery_concurrency_max,
            claim_batch_max=s.claim_batch_max,
            lease_s=s.lease_s,
            interval_s=s.scheduler_interval_s,
            on_final=on_final,
            delivery_timeout_s=s.delivery_timeout_s,
            breaker_alarms_threshold=s.breaker_alarms_threshold,
            held_refresh_s=s.held_routes_refresh_s,
            faults=self.internal_faults,
            current_imsi=self._current_imsi,
            loop_failures_max=s.delivery_loop_failures_max,
            backoff_s_max=s.delivery_backoff_s_max,
            on_episode=on_episode,
            forwarded_grace_s=s.forwarded_grace_s,
            partner_receipt_hold_s=s.partner_receipt_hold_s,
        )
        if on_behind is not None and s.ingress_pace_lag_s > 0:
            lag = ClaimLag(s.ingress_pace_lag_s)

            kind = self.routes.kind
            own_too = s.ingress_pace_own_network

            def paced(route: str) -> bool:
                return own_too or kind(route) == "smpp"

            def on_claim(msgs: list[Message], limit: int) -> None:
                said = lag.observe(msgs, limit, time.time(), paced)
                if said is not None:
                    on_behind(said)

            self.worker.on_claim = on_claim
        self.connectors.health = self.worker.health
        self.partner_receipts = PartnerReceipts(
            committer, clock=time.time, on_final=self.worker.finished_elsewhere,
            on_alarm=self.worker.alarm_recorded,
        )
        # the canary prober (observe/canary.py): its probes go in through accept_message
        # and this committer, and it watches what the handsets store
        self.prober: CanaryProber | None = None
        if s.canary_interval_s > 0:
            first, last = netsim_settings(s).msisdn_range
            self.prober = CanaryProber(
                committer,
                netsim_routes(Router("own", [(first, last)], None, s.routing_rules)),
                self.network.register.canaries(),
                self.network.register.identity,
                tp_ud_digest,
                self.worker.wake,
                tag_key,
                held=lambda: self.worker.held_routes,
                node_id=s.node_id,
                interval_s=s.canary_interval_s,
                deadline_s=s.canary_deadline_s,
                validity_s=s.canary_validity_s,
            )
        self._tasks: list[asyncio.Task[Any]] = []

    def _route_target(self, name: str) -> RouteTarget | None:
        if self.routes.kind(name) != "smpp":
            return None
        return RouteTarget(self.routes.via(name))

    def _make_connector(self, cfg: ConnectorConfig) -> Client:
        name = cfg.name
        receipts = self.partner_receipts

        async def on_deliver(pdu: DeliverSm, session: int) -> int:
            current = self.connectors.config(name) or cfg  # as `connector set` left it
            return await receipts.on_deliver(name, pdu, session,
                                             receipt_ids=current.receipt_ids)

        return SmppConnector(
            cfg, on_deliver=on_deliver,
            response_timeout_s=self.settings.connector_response_timeout_s,
            reconnect_s_min=self.settings.connector_reconnect_s_min,
            reconnect_s_max=self.settings.connector_reconnect_s_max,
        )

    async def _interconnect_loop(self) -> None:
        """Routes and connectors in step with the store, connector statuses out."""
        interval_s = self.settings.interconnect_refresh_s
        while True:
            try:
                routes = await self.committer.read(lambda st: st.list_routes())
                self.routes.update(routes)
                await self.connectors.refresh()
                await self.connectors.write_statuses()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - an episode, tried again next second
                log.error("interconnect refresh failed",
                          extra={"node": self.settings.node_id, "error_type": type(e).__name__})
                self.worker.health.failed(EpisodeKind.ROUTES_REFRESH_FAILING, failure_cause(e),
                                          error_type=type(e).__name__)
            else:
                self.worker.health.recovered(EpisodeKind.ROUTES_REFRESH_FAILING)
            await asyncio.sleep(interval_s)

    @property
    def worker_task(self) -> asyncio.Task[Any] | None:
        """The worker's task once started (its end, other than at a stop, ends the process)."""
        return self._tasks[0] if self._tasks else None

    @staticmethod
    def _network_faults(s: Settings) -> Faults:
        """netsim's seeded fault switchboard (all faults off until switched on)."""
        return FaultSwitchboard(seed=s.netsim_seed)

    def _current_imsi(self, msisdn: str) -> str | None:
        try:
            return self.network.register.identity(msisdn)
        except Exception:  # noqa: BLE001 - unknown or register down: no identity
            return None

    def wake(self) -> None:
        self.worker.wake()

    def apply_faults(self, desired: list[FaultSetting]) -> list[str]:
        """Apply the desired fault state (from the store) to the in-process switchboards;
        returns the names changed. Unknown names are skipped (the CLI refuses them)."""
        changed: list[str] = []
        board = network_switchboard(self.network)
        for f in desired:
            if self._faults_applied.get(f.name) == f:
                continue
            route = f.route or None
            params = {k: v for k, v in f.params.items()}
            try:
                if f.name in self.internal_faults.names():
                    if f.on:
                        self.internal_faults.on(f.name, rate=f.rate, route=route, **params)
                    else:
                        self.internal_faults.off(f.name)
                elif board is not None:
                    if f.on:
                        board.on(f.name, rate=f.rate, route=route, node=f.node or None,
                                 **params)
                    else:
                        board.off(f.name)
                else:
                    continue
            except (KeyError, ValueError, TypeError) as e:
                log.error("fault not applied",
                          extra={"fault": f.name, "route": f.route, "error_type": type(e).__name__})
                self._faults_applied[f.name] = f
                continue
            self._faults_applied[f.name] = f
            changed.append(f.name)
            log.warning("fault switched", extra={"fault": f.name, "on": f.on, "rate": f.rate,
                                                 "route": f.route, "serving_node": f.node})
        return changed

    def fault_counters(self) -> dict[str, dict[str, int]]:
        out = {
            st.name: {"fired": st.fired, "opportunities": st.opportunities, "on": int(st.on)}
            for st in self.internal_faults.list()
        }
        board = network_switchboard(self.network)
        if board is not None:
            for st in board.list():
                out[st.name] = {
                    "fired": int(getattr(st, "fired", 0)),
                    "opportunities": int(getattr(st, "opportunities", 0)),
                    "on": int(bool(getattr(st, "on", False))),
                }
        return out

    async def _fault_loop(self) -> None:
        last = ""
        while True:
            try:
                desired = await self.committer.run(lambda st: st.list_faults())
                self.apply_faults(desired)
                counters = json.dumps(self.fault_counters(), sort_keys=True)
                if counters != last:
                    value = counters
                    await self.committer.run(
                        lambda st, v=value: st.set_meta(FAULT_COUNTERS_META, v)  # type: ignore[misc]
                    )
                    last = counters
            except Exception:  # noqa: BLE001 - fault control must not stop delivery
                log.exception("fault poll failed", extra={"node": self.settings.node_id})
            await asyncio.sleep(self.settings.fault_poll_interval_s)

    async def start(self) -> None:
        self.network.on_alert(lambda msisdn: None if self.worker.alert(msisdn) else None)
        # netsim's late/stray acknowledgement channel: answers outside their attempt are
        # never applied, always alarmed (DeliveryWorker).
        self.network.on_late_ack(self.worker.on_late_ack)
        await self.worker.health.close_stale("delivery")
        self.apply_faults(await self.committer.run(lambda st: st.list_faults()))
        # which IMSI answered for which number, as the store knows it: the IMSI-conflict
        # guard sees a conflict with a delivery made before this process started
        limit = self.adapter.acks_remembered_max
        remembered = self.adapter.remember_deliveries(
            await self.committer.read(lambda st: st.recent_deliveries(limit))
        )
        log.info("deliveries remembered", extra={"count": remembered})
        # the operator's routes and connectors before the first claim: a queued message of
        # a partner route must not meet an empty table (and end UNROUTABLE)
        self.routes.update(await self.committer.read(lambda st: st.list_routes()))
        await self.connectors.refresh()
        self._tasks = [
            asyncio.create_task(self.worker.run(), name="delivery"),
            asyncio.create_task(self._fault_loop(), name="faults"),
            self.network.start(),
            asyncio.create_task(self._interconnect_loop(), name="interconnect"),
        ]
        if self.prober is not None:
            self.network.on_stored(self.prober.on_stored)
            self._tasks.append(asyncio.create_task(self.prober.run(), name="canary"))

    async def stop(self) -> None:
        self.worker.stop()
        if self.prober is not None:
            self.prober.stop()
        for t in self._tasks:
            if t.get_name() != "delivery":  # the worker finishes the attempts in flight
                t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.settings.delivery_timeout_s + 1)
        await self.connectors.stop()  # a clean unbind towards every partner
        await self.network.aclose()


# --- settings across the process boundary --------------------------------------------------


def settings_to_json(s: Settings) -> str:
    return json.dumps({f.name: (str(v) if isinstance(v := getattr(s, f.name), Path) else v)
                       for f in dataclasses.fields(s)})


def settings_from_json(text: str) -> Settings:
    raw = json.loads(text)
    kinds = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    for name, v in raw.items():
        if name not in kinds:
            continue
        if name == "home":
            v = Path(v)
        elif isinstance(v, list):
            v = tuple(v)
        values[name] = v
    return Settings(**values)


# --- the SMPP process's handle on its delivery process -------------------------------------


class DeliveryProcess:
    """Starts the delivery process, passes hints both ways, starts it again if it dies.

    Heal or shout: a process that ends (or goes silent for ``delivery_heartbeat_timeout_s``:
    it is killed) is an episode (``on_down(cause)``) until a new one says it is alive
    (``on_heartbeat``); restarts back off from ``delivery_restart_delay_s_min`` doubling up
    to ``..._max`` while processes keep dying young."""

    def __init__(
        self,
        settings: Settings,
        on_finals: Callable[[dict[str, int]], None],
        *,
        on_heartbeat: Callable[[dict[str, Any]], None] | None = None,
        on_down: Callable[[str], None] | None = None,
        on_behind: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_finals = on_finals
        self.on_behind = on_behind
        self.on_heartbeat = on_heartbeat
        self.on_down = on_down
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.heartbeat: dict[str, Any] | None = None
        self.heartbeat_at: float | None = None  # time.monotonic() of the last one
        self._started_at = 0.0
        self._young_deaths = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake_pending = False

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="delivery-process")
        self._watchdog = asyncio.create_task(self._watch(), name="delivery-watchdog")

    async def _spawn(self) -> None:
        parent, child = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "adressat.app.delivery_process",
                 str(child.fileno()), str(os.getpid())],
                pass_fds=(child.fileno(),),
                env={**os.environ, **multiprocess_env(self.settings.home),
                     "ADRESSAT_DELIVERY_SETTINGS": settings_to_json(self.settings)},
            )
        finally:
            child.close()
        self._started_at = time.monotonic()
        self.heartbeat = None
        self.heartbeat_at = None
        self._reader, self._writer = await asyncio.open_connection(sock=parent)
        log.info("delivery process started", extra={"delivery_pid": self.proc.pid,
                                                    "restarts": self.restarts})

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def heartbeat_age_s(self) -> float | None:
        """Seconds since the running process last said it is alive (None: not yet)."""
        if self.heartbeat_at is None:
            return None
        return time.monotonic() - self.heartbeat_at

    async def _supervise(self) -> None:
        s = self.settings
        while True:
            assert self._reader is not None
            await self._read_hints(self._reader)
            if self._stopping:
                return
            code = await asyncio.get_running_loop().run_in_executor(None, self._reap)
            cause = f"exit_code={code}" if code is None or code >= 0 else f"signal={-code}"
            lived_s = time.monotonic() - self._started_at
            self._young_deaths = self._young_deaths + 1 if lived_s < 60.0 else 0
            delay = min(s.delivery_restart_delay_s_max,
                        s.delivery_restart_delay_s_min * 2 ** max(0, self._young_deaths - 1))
            log.critical("delivery process ended; starting it again",
                         extra={"exit_code": code, "cause": cause, "restarts": self.restarts + 1,
                                "delay_s": delay, "lived_s": round(lived_s, 3),
                                "delivery_pid": self.proc.pid if self.proc else None})
            self.heartbeat = None
            self.heartbeat_at = None
            if self.on_down is not None:
                self.on_down(cause)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            self.restarts += 1
            try:
                await self._spawn()
            except OSError as e:  # could not even start it: try again after the delay
                log.critical("delivery process not started", extra={"error_type": type(e).__name__})
                self._reader = asyncio.StreamReader()
                self._reader.feed_eof()

    async def _watch(self) -> None:
        """A running process that stops saying it is alive is killed (its attempts recover
        as after a crash) and started anew by the supervisor."""
        timeout = self.settings.delivery_heartbeat_timeout_s
        while not self._stopping:
            await asyncio.sleep(min(1.0, timeout / 4))
            proc = self.proc
            if proc is None or proc.poll() is not None:
                continue
            silent_s = time.monotonic() - (self.heartbeat_at or self._started_at)
            if silent_s > timeout:
                log.critical("delivery process silent; killing it",
                             extra={"pid": proc.pid, "silent_s": round(silent_s, 3)})
                with contextlib.suppress(OSError):
                    proc.kill()
                self.heartbeat_at = time.monotonic()  # once, not at every check

    def _reap(self) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(self.settings.delivery_timeout_s + 5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    async def _read_hints(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ConnectionError, OSError, ValueError):
                return
            if not line:
                return
            try:
                hint = json.loads(line)
                if "hb" in hint:
                    self._beat(hint["hb"])
                    continue
                if "behind" in hint:
                    if self.on_behind is not None:
                        self.on_behind([str(r) for r in hint["behind"]])
                    continue
                finals = hint["final"]
            except (ValueError, KeyError, TypeError):
                log.error("bad hint from the delivery process", extra={"octets": len(line)})
                continue
            try:
                self.on_finals({str(k): int(v) for k, v in finals.items()})
            except Exception:  # noqa: BLE001 - a hint must not stop the SMPP process
                log.exception("final hint not handled", extra={"accounts": len(finals)})

    def _beat(self, hb: dict[str, Any]) -> None:
        self.heartbeat = hb
        self.heartbeat_at = time.monotonic()
        if self.on_heartbeat is not None:
            try:
                self.on_heartbeat(hb)
            except Exception:  # noqa: BLE001 - a hint must not stop the SMPP process
                log.exception("heartbeat not handled")

    def wake(self) -> None:
        """New messages are committed: one ``W`` per loop turn, however many batches."""
        if self._wake_pending or self._writer is None:
            return
        self._wake_pending = True
        asyncio.get_running_loop().call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._wake_pending = False
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(b"W")

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(b"S")
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.drain()
        if self.proc is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._reap)
        if self._writer is not None:
            self._writer.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor


# --- the delivery process itself -----------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL when the parent dies (Linux), and leave at once if it is gone already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the closed socket below still ends us
    if os.getppid() != parent_pid:
        os._exit(0)


def _take_delivery_lock(home: Path) -> int:
    """One delivery process per data directory: wait for a predecessor to be gone."""
    fd = os.open(home / "delivery.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


#: exit code of a delivery process whose worker could not go on (EX_SOFTWARE)
EXIT_WORKER_FAILED = 70


def heartbeat(node: DeliveryNode, now: float) -> dict[str, Any]:
    """The line the delivery process sends every ``delivery_heartbeat_s``: alive, its loop's
    open episodes, its figures (the SMPP process's readiness and ``adressat status``)."""
    w = node.worker
    return {
        "at": now,
        "pid": os.getpid(),
        "episodes": [e.as_dict() for e in w.health.open_episodes()],
        "in_flight": w.in_flight,
        "loop_failures": w.loop_failures,
        "store_errors": w.store_errors,
    }


async def _serve(settings: Settings, sock: socket.socket) -> int:
    from adressat.app.node import load_tag_key
    from adressat.store.sqlite import SqliteStore

    # the SMPP process's WalCheckpointer checkpoints for both
    store = SqliteStore(settings.store_path, autocheckpoint=False,
                        lock_wait_s=settings.store_lock_wait_s)
    committer = GroupCommitter(store, batch_max=settings.commit_batch_max,
                               inline=True).start()
    committer.on_batch = observe_batch
    reader, writer = await asyncio.open_connection(sock=sock)
    finals: Counter[str] = Counter()
    loop = asyncio.get_running_loop()

    def send(line: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")

    def flush() -> None:
        if finals:
            send({"final": dict(finals)})
        finals.clear()

    def on_final(msg: Message) -> None:
        if msg.account == CANARY_ACCOUNT:  # no receipt, not in the queue gauge's count
            return
        if not finals:
            loop.call_soon(flush)
        finals[msg.account] += 1

    node: DeliveryNode | None = None

    def on_episode(_ep: Episode) -> None:  # said at once, not at the next beat
        if node is not None:
            send({"hb": heartbeat(node, time.time())})

    node = DeliveryNode(settings, committer, load_tag_key(settings.home), on_final=on_final,
                        on_episode=on_episode, on_behind=lambda routes: send({"behind": routes}))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    heap.settle()
    log.info("delivery process serving", extra={"node": settings.node_id})

    async def hints() -> None:
        while True:
            data = await reader.read(4096)
            if not data or b"S" in data:  # stop asked, or the SMPP process is gone
                stop.set()
                return
            node.wake()

    async def beats() -> None:
        while True:
            send({"hb": heartbeat(node, time.time())})
            await asyncio.sleep(settings.delivery_heartbeat_s)

    hint_task = asyncio.create_task(hints())
    beat_task = asyncio.create_task(beats())
    stopped = asyncio.create_task(stop.wait())
    worker = node.worker_task
    assert worker is not None
    await asyncio.wait({stopped, worker}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if not stop.is_set():  # the worker ended by itself: it could not go on
        exc = None if worker.cancelled() else worker.exception()
        log.critical("delivery worker ended; exiting for a new process",
                     extra={"error_type": type(exc).__name__ if exc else "none",
                            "exit_code": EXIT_WORKER_FAILED})
        code = EXIT_WORKER_FAILED
    stopped.cancel()
    hint_task.cancel()
    beat_task.cancel()
    await node.stop()
    await node.worker.health.drain()
    flush()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
    writer.close()
    await committer.aclose()
    store.close()
    log.info("delivery process stopped", extra={"node": settings.node_id})
    return code


def main() -> None:
    fd, parent_pid = int(sys.argv[1]), int(sys.argv[2])
    _die_with_parent(parent_pid)
    private_umask()  # what it creates (netsim/, delivery.lock) is its owner's only
    settings = settings_from_json(os.environ["ADRESSAT_DELIVERY_SETTINGS"])
    setup_logging(settings.log_format, settings.log_level, "delivery")
    _take_delivery_lock(settings.home)
    sock = socket.socket(fileno=fd)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sys.exit(asyncio.run(_serve(settings, sock)))


if __name__ == "__main__":
    main()
