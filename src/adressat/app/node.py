"""The composition root: the only place that wires concrete pieces together (STYLE.md #10).

store (SQLite) -> group committer -> ingress and receipt sender, the SMPP server in front; the
delivery half (worker, netsim as the adapter of the own network, fault switchboards) in a
process of its own (app.delivery_process), or in this one with ``delivery_process=False``.
The roles talk through the store plus wake-up hints: ingress wakes the worker, the worker's
final states wake the receipt sender, the network's alerts wake the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from adressat.core.accept import AcceptLimits
from adressat.core.model import Message
from adressat.routing import Router
from adressat.smpp.session import SessionLimits
from adressat.store.checkpoint import WalCheckpointer
from adressat.store.commit import GroupCommitter
from adressat.store.sqlite import SqliteStore
from adressat.transport.smpp_server import SmppServer

from .delivery_process import DeliveryNode, DeliveryProcess, netsim_settings
from .home import prepare_home, private_umask
from .ingress import Ingress
from .receipts import ReceiptSender
from .retention import Retention
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


class Node:
    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        prepare_home(s.home)  # 0700, tightened if an older version left it open
        self.store = SqliteStore(s.store_path, autocheckpoint=False)
        self.checkpointer = WalCheckpointer(s.store_path,
                                            wal_checkpoint_bytes=s.wal_checkpoint_bytes)
        # counting the queue scans an index of every message: on a connection of its own, in
        # an executor thread, never inside a write transaction (that would hold the write
        # lock of both processes for the whole scan)
        self._reader = SqliteStore(s.store_path, autocheckpoint=False)
        # inline: the batch's SQL on the loop, no writer thread convoying with it for the GIL
        # while it holds the store's write lock (store/commit.py)
        self.committer = GroupCommitter(self.store, batch_max=s.commit_batch_max, inline=True)
        self.tag_key = load_tag_key(s.home)
        if not s.integrity_guards:
            log.critical(
                "INTEGRITY GUARDS OFF: no binding-tag, routing or acknowledgement identity"
                " checks; messages can reach the wrong subscriber unnoticed. For measurement"
                " only (bench/e2e.py), never in service."
            )
        self.first_msisdn, last = netsim_settings(s).msisdn_range
        self.router = Router(OWN_OPERATOR, [(self.first_msisdn, last)], None)
        self.receipts = ReceiptSender(self.committer, resend_s=s.receipt_resend_s)
        self.retention = Retention(self.committer, content_retention_s=s.content_retention_s,
                                   record_retention_s=s.record_retention_s,
                                   interval_s=s.retention_interval_s,
                                   batch_max=s.retention_batch_max)
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
        # the delivery half: a process of its own (the default, one core each), or in this
        # process on the same committer (tests, debugging)
        self.delivery: DeliveryNode | None = None
        self.delivery_process: DeliveryProcess | None = None
        if s.delivery_process:
            self.delivery_process = DeliveryProcess(s, self._on_finals)
        else:
            self.delivery = DeliveryNode(s, self.committer, self.tag_key,
                                         on_final=self._on_final)
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

    def _wake_delivery(self) -> None:
        if self.delivery_process is not None:
            self.delivery_process.wake()
        elif self.delivery is not None:
            self.delivery.wake()

    def _on_committed(self, msgs: list[Message]) -> None:
        self._wake_delivery()
        for m in msgs:
            if m.route and self.ingress.route_kind(m.route) == "none":
                self.receipts.wake(m.account)

    def _on_final(self, msg: Message) -> None:
        self._on_finals({msg.account: 1})

    def _on_finals(self, finals: dict[str, int]) -> None:
        """Messages reached a final state (hint from the delivery half): the queue gauge
        goes down, and their receipts are in the outbox."""
        self.ingress.queue.value = max(0, self.ingress.queue.value - sum(finals.values()))
        for account in finals:
            self.receipts.wake(account)

    async def start(self) -> None:
        self.committer.start()
        self.checkpointer.start(asyncio.get_running_loop())  # the locked part on the loop
        await self._refresh_gauge()
        if self.delivery_process is not None:
            await self.delivery_process.start()
        elif self.delivery is not None:
            await self.delivery.start()
        self._tasks = [
            asyncio.create_task(self.receipts.run(), name="receipts"),
            asyncio.create_task(self._gauge_loop(), name="queue-gauge"),
            asyncio.create_task(self.retention.run(), name="retention"),
        ]
        self.smpp_port = await self.server.start(self.settings.smpp_host, self.settings.smpp_port)
        log.info("listening", extra={"smpp_port": self.smpp_port})

    async def _refresh_gauge(self) -> None:
        n = await asyncio.get_running_loop().run_in_executor(
            None, self._reader.count_unfinished
        )
        self.ingress.queue.value = n
        self.ingress.queue.refreshed_at = time.time()

    async def _gauge_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            try:
                await self._refresh_gauge()
            except Exception:  # noqa: BLE001 - a gauge must not stop the node
                log.exception("queue gauge refresh failed")

    async def stop(self) -> None:
        await self.server.stop()
        self.receipts.stop()
        self.retention.stop()
        for t in self._tasks:
            t.cancel()
        if self.delivery_process is not None:
            await self.delivery_process.stop()
        elif self.delivery is not None:
            await self.delivery.stop()
        await asyncio.wait(self._tasks, timeout=1.0)
        await self.committer.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.checkpointer.stop)
        self._reader.close()
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
    first = node.first_msisdn
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
    private_umask()
    t0 = time.time()
    node = Node(settings)
    log.info("node built", extra={"seconds": time.time() - t0})
    asyncio.run(node.serve_forever())
