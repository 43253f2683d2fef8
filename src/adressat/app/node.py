"""The composition root: the only place that wires concrete pieces together (STYLE.md #10).

store (SQLite) -> group committer -> ingress, delivery worker, receipt sender; netsim as the
delivery adapter of the own network; the SMPP server in front. The roles talk through the
store plus wake-up hints: ingress wakes the worker, the worker wakes the receipt sender, the
network's alerts wake the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from adressat.core.accept import AcceptLimits
from adressat.core.integrity import FaultSetting
from adressat.core.model import Message
from adressat.core.retry import RetryPolicy
from adressat.delivery.faults import InternalFaults
from adressat.delivery.netsim_adapter import NetsimAdapter
from adressat.delivery.worker import DeliveryWorker
from adressat.netsim import Faults, FaultSwitchboard, NetsimSettings, Network
from adressat.observe.faults import FAULT_COUNTERS_META, network_switchboard
from adressat.routing import Router
from adressat.smpp.session import SessionLimits
from adressat.store.commit import GroupCommitter
from adressat.store.sqlite import SqliteStore
from adressat.transport.smpp_server import SmppServer

from .ingress import Ingress
from .receipts import ReceiptSender
from .settings import Settings
from .smpp_service import SmppService

log = logging.getLogger("adressat.node")

OWN_OPERATOR = "own"


def load_tag_key(home: Path) -> bytes:
    """The binding-tag key, kept in the data directory (created once, owner-only)."""
    path = home / "tag.key"
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


def netsim_settings(s: Settings) -> NetsimSettings:
    base = NetsimSettings(seed=s.netsim_seed, subscribers=s.subscribers,
                          msisdn_first=int(s.first_msisdn))
    return base if s.netsim_realistic else NetsimSettings.quiet(
        seed=s.netsim_seed, subscribers=s.subscribers, msisdn_first=int(s.first_msisdn))


class Node:
    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        s.home.mkdir(parents=True, exist_ok=True)
        self.store = SqliteStore(s.store_path)
        self.committer = GroupCommitter(self.store, batch_max=s.commit_batch_max)
        self.tag_key = load_tag_key(s.home)
        self.network = Network(s.home, netsim_settings(s), faults=self._network_faults(s))
        self.internal_faults = InternalFaults(seed=s.netsim_seed)
        self._faults_applied: dict[str, FaultSetting] = {}
        if not s.integrity_guards:
            log.critical(
                "INTEGRITY GUARDS OFF: no binding-tag, routing or acknowledgement identity"
                " checks; messages can reach the wrong subscriber unnoticed. For measurement"
                " only (bench/e2e.py), never in service."
            )
        self.router = Router(OWN_OPERATOR, [self.network.settings.msisdn_range], None)
        self.receipts = ReceiptSender(self.committer, resend_s=s.receipt_resend_s)
        self.ingress = Ingress(
            self.committer,
            self.router,
            node=s.node_id,
            tag_key=self.tag_key,
            limits=AcceptLimits(validity_s_default=s.validity_s_default,
                                validity_s_max=s.validity_s_max),
            queue_messages_max=s.queue_messages_max,
            on_committed=self._on_committed,
        )
        self.worker = DeliveryWorker(
            self.committer,
            {"netsim": NetsimAdapter(self.network, self.tag_key, guards=s.integrity_guards)},
            self.ingress.route_kind,
            RetryPolicy(s.retry_delays_s, s.retry_jitter_fraction),
            owner=f"node-{s.node_id}-{os.getpid()}",
            node=s.node_id,
            rng=random.Random(),
            concurrency_max=s.delivery_concurrency_max,
            claim_batch_max=s.claim_batch_max,
            lease_s=s.lease_s,
            interval_s=s.scheduler_interval_s,
            on_final=self._on_final,
            delivery_timeout_s=s.delivery_timeout_s,
            breaker_alarms_threshold=s.breaker_alarms_threshold,
            held_refresh_s=s.held_routes_refresh_s,
            faults=self.internal_faults,
            current_imsi=self._current_imsi,
        )
        self.service = SmppService(
            self.ingress,
            self.receipts,
            self.committer,
            system_id=s.system_id,
            throughput_per_s_default=s.throughput_per_s_default,
        )
        self.server = SmppServer(
            self.service,
            SessionLimits(
                pdu_length_max=s.pdu_length_max,
                window_size_max=s.window_size_max,
                inbound_window_max=s.inbound_window_max,
                response_timeout_s=s.response_timeout_s,
                enquire_link_interval_s=s.enquire_link_interval_s,
                idle_timeout_s=s.idle_timeout_s,
                bind_timeout_s=s.bind_timeout_s,
                bad_pdus_max=s.bad_pdus_max,
            ),
            sessions_max=s.sessions_max,
        )
        self.smpp_port = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = asyncio.Event()

    @staticmethod
    def _network_faults(s: Settings) -> Faults:
        """netsim's seeded fault switchboard (all faults off until switched on)."""
        return FaultSwitchboard(seed=s.netsim_seed)

    def _current_imsi(self, msisdn: str) -> str | None:
        try:
            return self.network.register.identity(msisdn)
        except Exception:  # noqa: BLE001 - unknown or register down: no identity
            return None

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
                        board.on(f.name, rate=f.rate, route=route, **params)
                    else:
                        board.off(f.name)
                else:
                    continue
            except (KeyError, ValueError, TypeError) as e:
                log.error("fault not applied",
                          extra={"fault": f.name, "error_type": type(e).__name__})
                self._faults_applied[f.name] = f
                continue
            self._faults_applied[f.name] = f
            changed.append(f.name)
            log.warning("fault switched", extra={"fault": f.name, "on": f.on, "rate": f.rate,
                                                 "route": f.route})
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
        import json

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
            except Exception:  # noqa: BLE001 - fault control must not stop the node
                log.exception("fault poll failed")
            await asyncio.sleep(self.settings.fault_poll_interval_s)

    def _on_committed(self, msgs: list[Message]) -> None:
        self.worker.wake()
        for m in msgs:
            if m.route and self.ingress.route_kind(m.route) == "none":
                self.receipts.wake(m.account)

    def _on_final(self, msg: Message) -> None:
        self.ingress.queue.value = max(0, self.ingress.queue.value - 1)
        self.receipts.wake(msg.account)

    async def start(self) -> None:
        self.committer.start()
        await self.ingress.refresh_queue_gauge()
        self.network.on_alert(lambda msisdn: None if self.worker.alert(msisdn) else None)
        # netsim's late/stray acknowledgement channel, when this netsim has one: answers
        # outside their attempt are never applied, always alarmed (DeliveryWorker).
        on_late_ack = getattr(self.network, "on_late_ack", None)
        if on_late_ack is not None:
            on_late_ack(self.worker.on_late_ack)
        self.apply_faults(await self.committer.run(lambda st: st.list_faults()))
        self._tasks = [
            asyncio.create_task(self.worker.run(), name="delivery"),
            asyncio.create_task(self.receipts.run(), name="receipts"),
            asyncio.create_task(self._gauge_loop(), name="queue-gauge"),
            asyncio.create_task(self._fault_loop(), name="faults"),
        ]
        self._tasks.append(self.network.start())
        self.smpp_port = await self.server.start(self.settings.smpp_host, self.settings.smpp_port)
        log.info("listening", extra={"smpp_port": self.smpp_port})

    async def _gauge_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            try:
                await self.ingress.refresh_queue_gauge()
            except Exception:  # noqa: BLE001 - a gauge must not stop the node
                log.exception("queue gauge refresh failed")

    async def stop(self) -> None:
        await self.server.stop()
        self.worker.stop()
        self.receipts.stop()
        for t in self._tasks:
            if t.get_name() != "delivery":  # the worker finishes the attempts in flight
                t.cancel()
        await asyncio.wait(self._tasks, timeout=self.settings.delivery_timeout_s + 1)
        await self.network.aclose()
        await self.committer.aclose()
        self.store.close()
        self._stopped.set()

    async def serve_forever(self, banner: bool = True) -> None:
        await self.start()
        if banner:
            print_banner(self)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.stop()


def print_banner(node: Node) -> None:
    s = node.settings
    first = node.network.settings.msisdn_range[0]
    print(
        f"adressat listening: SMPP 3.4 on {s.smpp_host}:{node.smpp_port}\n"
        f"  store: {s.store_path}  (SQLite, WAL, synchronous=FULL)\n"
        f"  network: simulated, {s.subscribers:,} subscribers from +{first}\n"
        f"First message:\n"
        f"  adressat --home {s.home} account add demo --password demo\n"
        f"  then bind an SMPP client as system_id 'demo' password 'demo' to "
        f"{s.smpp_host}:{node.smpp_port}\n"
        f"  and submit_sm to {first} (TON 1, NPI 1) with registered_delivery 1.\n"
        f"  adressat --home {s.home} audit --json   # counts and invariant figures",
        flush=True,
    )


def run(settings: Settings) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    t0 = time.time()
    node = Node(settings)
    log.info("node built", extra={"seconds": time.time() - t0})
    asyncio.run(node.serve_forever())
