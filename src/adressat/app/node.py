"""The composition root: the only place that wires concrete pieces together (STYLE.md #10).

store (SQLite) -> group committer -> ingress and receipt sender, the SMPP server in front; the
delivery half (worker, netsim as the adapter of the own network, fault switchboards) in a
process of its own (app.delivery_process), or in this one with ``delivery_process=False``.
The roles talk through the store plus wake-up hints: ingress wakes the worker, the worker's
final states wake the receipt sender, the network's alerts wake the worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adressat.api import canary as canary_api
from adressat.api import care as care_api
from adressat.api import dashboard
from adressat.api.http import HttpListener
from adressat.app import heap
from adressat.core.accept import AcceptLimits
from adressat.core.health import EpisodeKind
from adressat.core.lockout import LockoutPolicy
from adressat.core.model import CANARY_ACCOUNT, Message
from adressat.ingress import openapi
from adressat.ingress.callbacks import CallbackSender, pending_gauge
from adressat.ingress.commit import Ingress
from adressat.ingress.credentials import CredentialGuard
from adressat.ingress.http import HttpApi
from adressat.ingress.pacing import Pacer
from adressat.ingress.receipts import ReceiptSender
from adressat.ingress.sendsms import SendSms
from adressat.ingress.smpp import SmppService, TokenBucket
from adressat.observe import metrics as mx
from adressat.observe.health import EpisodeRecorder, NodeHealth, failure_cause
from adressat.observe.logs import setup_logging
from adressat.observe.overview import overview
from adressat.routing.portability import PortabilityTable
from adressat.routing.table import RoutingTable
from adressat.smpp.session import SessionLimits
from adressat.store.checkpoint import WalCheckpointer
from adressat.store.commit import GroupCommitter
from adressat.store.sqlite import SqliteStore
from adressat.transport.smpp_server import SmppServer
from adressat.transport.tls import CertificateInfo, CertificateWatcher, TlsError, describe

from .alerting import Alerting
from .delivery_process import DeliveryNode, DeliveryProcess, netsim_settings
from .home import prepare_home, private_umask
from .retention import Retention
from .settings import Settings

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
        # the committer runs on the loop: its wait for the write lock is bounded
        # (store/wlock.py), else a hung delivery process holding it freezes the loop and the
        # watchdog that would replace it
        self.store = SqliteStore(s.store_path, autocheckpoint=False,
                                 lock_wait_s=s.store_lock_wait_s)
        self.checkpointer = WalCheckpointer(s.store_path,
                                            wal_checkpoint_bytes=s.wal_checkpoint_bytes,
                                            lock_wait_s=s.store_lock_wait_s)
        # counting the queue scans an index of every message: on a connection of its own, in
        # an executor thread, never inside a write transaction (that would hold the write
        # lock of both processes for the whole scan)
        self._reader = SqliteStore(s.store_path, autocheckpoint=False)
        # inline: the batch's SQL on the loop, no writer thread convoying with it for the GIL
        # while it holds the store's write lock (store/commit.py)
        self.committer = GroupCommitter(self.store, batch_max=s.commit_batch_max, inline=True)
        # heal or shout: every batch (and the store probe's) says whether the store can write
        self.episodes = EpisodeRecorder("smpp", self.committer, time.time)
        self.health = NodeHealth(
            self.episodes,
            heartbeat_timeout_s=s.delivery_heartbeat_timeout_s,
            due_wait_s_max=s.due_wait_s_max,
            delivery_alive=None if s.delivery_process else self._worker_alive,
        )
        self.committer.on_batch = self._on_batch
        self.tag_key = load_tag_key(s.home)
        if not s.integrity_guards:
            log.critical(
                "integrity guards off",
                extra={"detail": "no binding-tag, routing or acknowledgement identity checks;"
                       " messages can reach the wrong subscriber unnoticed. For measurement"
                       " only (bench/e2e.py), never in service."},
            )
        self.first_msisdn, last = netsim_settings(s).msisdn_range
        # the operator's routes (store) and the portability table, reloaded while running
        self.router = RoutingTable(OWN_OPERATOR, [(self.first_msisdn, last)], s.routing_rules,
                                   portability=self._portability_source())
        self.receipts = ReceiptSender(self.committer, resend_s=s.receipt_resend_s)
        # status callbacks (webhooks, Kannel dlr-urls) from the store's outbox (issue 12)
        self.callbacks = CallbackSender.from_settings(self.committer, s)
        self.retention = Retention(self.committer, content_retention_s=s.content_retention_s,
                                   record_retention_s=s.record_retention_s,
                                   interval_s=s.retention_interval_s,
                                   batch_max=s.retention_batch_max,
                                   canary_probes_retention_s=s.canary_probes_retention_s,
                                   idempotency_keep_s=s.idempotency_keep_s,  # issue 12
                                   callback_retention_s=s.callback_retention_s)
        self.ingress = Ingress(
            self.committer,
            self.router,
            node=s.node_id,
            tag_key=self.tag_key,
            limits=AcceptLimits(validity_s_default=s.validity_s_default,
                                validity_s_max=s.validity_s_max),
            queue_messages_max=s.queue_messages_max,
            on_committed=self._on_committed,
            hops_max=s.hops_max,
            pacer=Pacer(s.ingress_hold_s_max),
        )
        self.ingress.via = self.router.via
        self.ingress.store_writable = lambda: self.health.store_writable
        # the delivery half: a process of its own (the default, one core each), or in this
        # process on the same committer (tests, debugging)
        self.delivery: DeliveryNode | None = None
        self.delivery_process: DeliveryProcess | None = None
        if s.delivery_process:
            self.delivery_process = DeliveryProcess(
                s, self._on_finals, on_heartbeat=self.health.heartbeat,
                on_down=self._delivery_down, on_behind=self.ingress.pacer.report,
            )
            self.health.heartbeat_age_s = lambda: (
                None if self.delivery_process is None else self.delivery_process.heartbeat_age_s
            )
        else:
            self.delivery = DeliveryNode(s, self.committer, self.tag_key,
                                         on_final=self._on_final,
                                         on_behind=self.ingress.pacer.report)
        # issue 13: one guard of credentials for SMPP binds, sendsms and the HTTP API keys
        self.guard = CredentialGuard(
            LockoutPolicy(
                failures_max=s.credential_failures_max,
                address_failures_max=s.credential_address_failures_max,
                principal_failures_max=s.credential_principal_failures_max,
                window_s=s.credential_failure_window_s,
                lockout_s_min=s.credential_lockout_s_min,
                lockout_s_max=s.credential_lockout_s_max,
                forget_s=s.credential_forget_s,
                trusted_s=s.credential_trusted_s,
                rows_max=s.credential_rows_max,
            ),
            committer=self.committer,
            checks_max=s.password_checks_max,
            waiting_max=s.password_checks_waiting_max,
            statuses=s.bind_failure_statuses,
            flush_s=s.credential_flush_s,
            refusal_delay_s=s.credential_refusal_delay_s,
        )
        self.service = SmppService(
            self.ingress,
            self.receipts,
            self.committer,
            guard=self.guard,
            system_id=s.system_id,
            throughput_per_s_default=s.throughput_per_s_default,
            account_sessions_max=s.account_sessions_max,
            account_binds_per_minute_max=s.account_binds_per_minute_max,
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
                pdu_read_timeout_s=s.pdu_read_timeout_s,
            ),
            sessions_max=s.sessions_max,
        )
        self.alerting = Alerting(self)  # the alert rules, webhook, /v1/alerts, /v1/live
        # the HTTP messages API (issue 12): the same ingress, commit and throughput limits
        self.http_api = HttpApi(
            self.ingress, self.committer, self.service.buckets,
            make_bucket=lambda rate, now: TokenBucket(rate, rate, now),
            throughput_per_s_default=s.throughput_per_s_default,
            body_octets_max=s.http_body_octets_max, auth_cache_s=s.http_auth_cache_s,
            on_cancelled=self._on_cancelled, guard=self.guard)
        # GET|POST /cgi-bin/sendsms: Kannel's HTTP sendsms, the SMPP accounts' credentials and
        # throughput (the service's buckets), the same ingress and commit
        self.sendsms = SendSms(
            self.ingress, self.committer, self.service.buckets,
            throughput_per_s_default=s.throughput_per_s_default,
            auth_cache_s=s.sendsms_auth_cache_s, auth_cache_max=s.sendsms_auth_cache_max,
            account_cache_s=s.sendsms_account_cache_s,
            receivers_max=s.sendsms_receivers_max, body_bytes_max=s.sendsms_body_bytes_max,
            guard=self.guard,
        )
        # the listener's pages and APIs beyond health, metrics and status (api/*.py)
        mounts: list[Any] = [
            # canary (helper A)
            canary_api.mount(self._reader.canary_states, s.canary_window_s),

            # alerts (helper B)
            self.alerting.mount,

            # care and operator views (helper C)
            care_api.mount(self._reader, self.committer, s),

            # dashboard (helper D)
            dashboard.mount,

            # HTTP messages API and its OpenAPI document (issue 12)
            self.http_api.mount,
            openapi.mount,
            # Kannel-compatible sendsms (issue 12, helper K)
            self.sendsms.mount,

        ]
        self.http = HttpListener(self, mounts, client_max_size=s.http_body_octets_max,
                                 operator_allow_ip=s.operator_allow_ip)
        # TLS (issue 13): one watcher for both TLS listeners, built now so that a node whose
        # files do not load does not start (TlsError, said by `adressat run`)
        self.tls: CertificateWatcher | None = None
        if s.tls_cert_file:
            self.tls = CertificateWatcher(
                Path(s.tls_cert_file), Path(s.tls_key_file),
                interval_s=s.tls_reload_interval_s,
                on_failed=self._tls_failed, on_reloaded=self._tls_reloaded)
        self.http_port = 0
        self.http_tls_port = 0
        self.smpp_tls_port = 0
        self._scraped: tuple[float, list[Any]] = (0.0, [])
        self.smpp_port = 0
        self.started_at = 0.0
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = asyncio.Event()

    # --- heal or shout ---------------------------------------------------------------------
    def _tls_failed(self, error: TlsError) -> None:
        """A changed certificate or key did not load: the previous one is still served; an
        episode until a change loads (it does not make the node unready: it still serves)."""
        self.episodes.failed(EpisodeKind.TLS_RELOAD_FAILED, error.cause,
                             error_type=type(error).__name__)

    def _tls_reloaded(self, _info: CertificateInfo) -> None:
        self.episodes.recovered(EpisodeKind.TLS_RELOAD_FAILED)

    def _on_batch(self, error: BaseException | None, ops: int, seconds: float) -> None:
        mx.observe_batch(error, ops, seconds)
        self.health.store_result(error)

    def _worker_alive(self) -> bool:
        task = None if self.delivery is None else self.delivery.worker_task
        return task is not None and not task.done()

    def _delivery_down(self, cause: str) -> None:
        self.health.delivery_down(cause)
        proc = None if self.delivery_process is None else self.delivery_process.proc
        if proc is not None:
            mx.mark_dead(self.settings.home, proc.pid)

    async def _probe_loop(self) -> None:
        """A one-row write every ``store_probe_interval_s``: the store's health is known
        (and an episode ends) even when no submit comes."""
        while True:
            interval = self.settings.store_probe_interval_s
            if not self.health.store_writable:  # it ends on writes that work: look often
                interval = min(interval, 0.25)
            await asyncio.sleep(interval)
            stamp = str(time.time())
            try:
                await self.committer.run(lambda st, v=stamp: st.set_meta("health.probe", v))
            except Exception:  # noqa: BLE001 - said by the batch hook (episode)
                continue

    async def _stall_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.stall_check_interval_s)
            now = time.time()
            try:
                oldest = await loop.run_in_executor(None, self._reader.oldest_due_at, now)
            except Exception:  # noqa: BLE001 - a read that fails is the store's episode
                continue
            self.health.due_wait(None if oldest is None else now - oldest)

    # --- the HTTP listener's view (api.http.NodeView) ----------------------------------------
    def ready(self) -> tuple[bool, dict[str, Any]]:
        ok, reasons = self.health.ready()
        return ok, {"ready": ok, "reasons": reasons,
                    "episodes_open": self.health.open_episodes()}

    def _sessions_by_account(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for conn in list(self.service.sessions):
            if conn.account:
                out[conn.account] = out.get(conn.account, 0) + 1
        return out

    def _scrape(self) -> list[Any]:
        """The figures read when scraped (an executor thread; at most once a second)."""
        at, families = self._scraped
        now = time.time()
        if families and now - at < 1.0:
            return families
        r = self._reader
        by_state = r.count_unfinished_by_state()
        cp = self.checkpointer.stats()
        rs = self.retention.stats()
        path = self.settings.store_path
        wal = path.with_name(path.name + "-wal")
        disk = os.statvfs(path.parent)
        bound = {(a,): float(n) for a, n in self._sessions_by_account().items()}
        ok, _ = self.health.ready()
        episodes: dict[tuple[str, ...], float] = {}
        for e in self.health.open_episodes():
            key = (str(e.get("kind")),)
            episodes[key] = episodes.get(key, 0) + 1
        dp = self.delivery_process
        families = [
            mx.gauge("adressat_queue_messages", "Messages not final yet, by state",
                    labelled={(st.value,): n for st, n in by_state.items()}, labels=["state"]),
            mx.gauge("adressat_receipts_pending", "Receipts in the outbox not yet sent",
                    r.count_pending_receipts()),
            mx.gauge("adressat_sessions_bound", "SMPP sessions bound, by account",
                    labelled=bound, labels=["account"]),
            mx.gauge("adressat_store_wal_bytes",
                     "Bytes of WAL written since it last started over (what a crash replays)",
                     cp.wal_bytes),
            mx.gauge("adressat_store_wal_file_bytes",
                     "Size of the SQLite WAL file (its high-water mark: it is reused)",
                     wal.stat().st_size if wal.exists() else 0),
            mx.counter("adressat_store_checkpoints", "PASSIVE WAL checkpoints",
                       cp.checkpoints_total),
            mx.counter("adressat_store_wal_restarts",
                       "RESTART checkpoints under the write lock (the WAL starts over)",
                       cp.restarts_total),
            mx.counter("adressat_store_checkpoint_failures", "WAL checkpoints that failed",
                       cp.failures_total),
            mx.gauge("adressat_store_wal_restart_lock_seconds_max",
                     "Longest write-lock hold of a WAL restart", cp.max_duration_s),
            mx.counter("adressat_retention_purged", "Message texts purged (content retention)",
                       rs.purged_total),
            mx.counter("adressat_retention_deleted_messages",
                       "Finished messages deleted with their records (record retention)",
                       rs.deleted_messages_total),
            mx.counter("adressat_retention_failures", "Retention passes that failed",
                       rs.failures_total),
            mx.counter("adressat_receipts_unsent_given_up",
                       "Receipts never sent, given up with their message at record retention",
                       rs.receipts_unsent_total),
            mx.gauge("adressat_store_db_bytes", "Size of the SQLite database file",
                    path.stat().st_size if path.exists() else 0),
            mx.gauge("adressat_disk_free_bytes", "Free bytes on the data directory's file system",
                    disk.f_bavail * disk.f_frsize),
            mx.gauge("adressat_ready", "1 when the node is ready (/health/ready)", int(ok)),
            mx.gauge("adressat_episodes_open", "Health episodes open now, by kind",
                    labelled=episodes, labels=["kind"]),
            mx.gauge("adressat_oldest_due_seconds",
                    "How long the oldest due message has waited unclaimed",
                    self.health.oldest_due_s or 0.0),
            mx.counter("adressat_delivery_process_restarts",
                      "Times the delivery process was started again", dp.restarts if dp else 0),
            mx.counter("adressat_connections_refused",
                       "Connections closed at once: over sessions_max", self.server.refused),
            mx.counter("adressat_binds_refused",
                       "Binds refused: over an account's sessions or binds per minute",
                       self.service.binds_refused),
            pending_gauge(r),
            *self._tls_families(),
            *self.alerting.families(),
        ]
        self._scraped = (now, families)
        return families

    def _tls_families(self) -> list[Any]:
        t = self.tls
        if t is None:
            return []
        return [
            mx.counter("adressat_tls_reloads", "TLS certificates loaded anew after a change",
                       t.reloads_total),
            mx.counter("adressat_tls_reload_failures",
                       "Changed TLS certificate or key files that did not load (the previous"
                       " certificate is still served)", t.failures_total),
            mx.gauge("adressat_tls_reload_failing",
                     "1 while the TLS files on disk are not the certificate served",
                     int(t.failing is not None)),
            mx.gauge("adressat_tls_certificate_expiry_timestamp_seconds",
                     "When the served TLS certificate expires (POSIX seconds)",
                     t.info.not_after),
        ]

    async def metrics(self) -> bytes:
        loop = asyncio.get_running_loop()
        families = await loop.run_in_executor(None, self._scrape)
        home = self.settings.home if self.delivery_process is not None else None
        return await loop.run_in_executor(
            None, mx.exposition, home, [mx.ScrapeFigures(lambda: families)]
        )

    async def status(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        r = self._reader
        by_state = await loop.run_in_executor(None, r.count_unfinished_by_state)
        pending = await loop.run_in_executor(None, r.count_pending_receipts)
        held = await loop.run_in_executor(None, r.held_routes)
        path = self.settings.store_path
        wal = path.with_name(path.name + "-wal")
        disk = os.statvfs(path.parent)
        dp = self.delivery_process
        sessions = self._sessions_by_account()
        return {
            "node": {"pid": os.getpid(), "started_at": self.started_at, "node_id":
                     self.settings.node_id, "smpp_port": self.smpp_port,
                     "http_port": self.http_port, "smpp_tls_port": self.smpp_tls_port,
                     "http_tls_port": self.http_tls_port},
            "tls": None if self.tls is None else self.tls.stats(),
            "health": self.health.snapshot(),
            "store": {
                "writable": self.health.store_writable,
                "path": str(path),
                "db_bytes": path.stat().st_size if path.exists() else 0,
                "wal_bytes": self.checkpointer.wal_bytes(),
                "wal_file_bytes": wal.stat().st_size if wal.exists() else 0,
                "checkpoint": dataclasses.asdict(self.checkpointer.stats()),
                "retention": dataclasses.asdict(self.retention.stats()),
                "disk_free_bytes": disk.f_bavail * disk.f_frsize,
                "failed_batches": self.committer.failed_batches,
            },
            "delivery": {
                "in_process": dp is None,
                "pid": None if dp is None else dp.pid,
                "restarts": 0 if dp is None else dp.restarts,
                "heartbeat_age_s": None if dp is None else dp.heartbeat_age_s,
                "heartbeat": None if dp is None else dp.heartbeat,
            },
            "queue": {st.value: n for st, n in by_state.items()},
            "queue_limit": self.ingress.queue.limit,
            "receipts_pending": pending,
            "callbacks": self.callbacks.stats(),
            "sessions_bound": sessions,
            "routes_held": sorted(held),
            "accepted": self.ingress.accepted,
            "alerts": self.alerting.status(),
            **await loop.run_in_executor(None, overview, r, time.time(),
                                         self.settings.canary_window_s),
        }

    def _write_node_file(self) -> None:
        """``<home>/node.json``: where the running node listens (``adressat status`` and
        ``audit`` read it to ask the node itself)."""
        path = self.settings.home / "node.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "http_host": self.settings.http_host,
                       "http_port": self.http_port, "smpp_port": self.smpp_port,
                       # 0: that listener is off; the certificate lets `adressat` pin it
                       "http_tls_port": self.http_tls_port,
                       "smpp_tls_port": self.smpp_tls_port,
                       "tls_cert_file": self.settings.tls_cert_file,
                       "started_at": self.started_at}, f)
        os.replace(tmp, path)

    def _wake_delivery(self) -> None:
        if self.delivery_process is not None:
            self.delivery_process.wake()
        elif self.delivery is not None:
            self.delivery.wake()

    def _on_committed(self, msgs: list[Message]) -> None:
        self._wake_delivery()
        self.callbacks.wake()  # an accepted event may be in the outbox
        for m in msgs:
            if m.route and self.ingress.route_kind(m.route) == "none":
                self.receipts.wake(m.account)

    def _on_cancelled(self, account: str) -> None:
        """A sender cancelled a message over HTTP: its receipt and callback are waiting."""
        self.receipts.wake(account)
        self.callbacks.wake()

    def _on_final(self, msg: Message) -> None:
        if msg.account == CANARY_ACCOUNT:  # the prober's own: no receipt, never queued here
            return
        self._on_finals({msg.account: 1})

    def _on_finals(self, finals: dict[str, int]) -> None:
        """Messages reached a final state (hint from the delivery half): the queue gauge
        goes down, and their receipts are in the outbox."""
        self.ingress.queue.value = max(0, self.ingress.queue.value - sum(finals.values()))
        for account in finals:
            self.receipts.wake(account)
        self.callbacks.wake()

    async def start(self) -> None:
        self.started_at = time.time()
        if self.delivery_process is not None:
            mx.reset_multiprocess_dir(self.settings.home)
        self.committer.start()
        self.checkpointer.start(asyncio.get_running_loop())  # the locked part on the loop
        await self.episodes.close_stale()
        await self.guard.load()  # issue 13: a restart keeps every lockout
        await self._refresh_gauge()
        await self._refresh_routes()  # before the first submit: routes as configured
        await self._refresh_accounts()  # and every account's sender rules and throughput
        if self.delivery_process is not None:
            await self.delivery_process.start()
        elif self.delivery is not None:
            await self.delivery.start()
        self._tasks = [
            asyncio.create_task(self.receipts.run(), name="receipts"),
            asyncio.create_task(self.callbacks.run(), name="callbacks"),
            asyncio.create_task(self._gauge_loop(), name="queue-gauge"),
            asyncio.create_task(self._probe_loop(), name="store-probe"),
            asyncio.create_task(self._stall_loop(), name="stall-check"),
            asyncio.create_task(self.retention.run(), name="retention"),
            # the operator's routes and the portability table, within a second of a change
            asyncio.create_task(self._refresh_loop(
                EpisodeKind.ROUTES_REFRESH_FAILING, self._refresh_routes,
                self.settings.interconnect_refresh_s), name="routes"),
            asyncio.create_task(self._refresh_loop(  # issue 13
                EpisodeKind.ACCOUNTS_REFRESH_FAILING, self._refresh_accounts,
                self.settings.accounts_refresh_s), name="accounts"),
            *self.alerting.start(),
        ]
        s = self.settings
        if s.smpp_plain:
            self.smpp_port = await self.server.start(s.smpp_host, s.smpp_port)
        if s.http_plain:
            self.http_port = await self.http.start(s.http_host, s.http_port)
        if self.tls is not None:
            self._tasks.append(asyncio.create_task(self.tls.run(), name="tls-reload"))
            self.smpp_tls_port = await self.server.start(
                s.smpp_host, s.smpp_tls_port, ssl=self.tls.front,
                ssl_handshake_timeout_s=s.tls_handshake_timeout_s)
            self.http_tls_port = await self.http.start(s.http_host, s.http_tls_port,
                                                       ssl_context=self.tls.front)
        self._write_node_file()
        log.info("listening", extra={"smpp_host": s.smpp_host,
                                     "smpp_port": self.smpp_port, "http_port": self.http_port,
                                     "smpp_tls_port": self.smpp_tls_port,
                                     "http_tls_port": self.http_tls_port,
                                     "node": s.node_id})

    def _portability_source(self) -> Callable[[float], PortabilityTable | None] | None:
        """The portability snapshot of the data directory (``adressat np load``), reloaded
        when it changes."""
        from adressat.routing.np_snapshot import SnapshotWatcher, snapshot_path

        return SnapshotWatcher(snapshot_path(self.settings.home)).table

    async def _refresh_routes(self) -> None:
        self.router.update(await self.committer.read(lambda st: st.list_routes()))
        self.router.refresh(time.time())

    async def _refresh_loop(self, episode: EpisodeKind, refresh: Callable[[], Awaitable[None]],
                            interval_s: float) -> None:
        """``refresh`` every ``interval_s``; a failure opens ``episode`` (said in the log, the
        store, the metrics and ``status``) and is tried again; the next success ends it."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await refresh()
            except Exception as e:  # noqa: BLE001 - said as an episode, tried again next time
                log.error("refresh failed", extra={"node": self.settings.node_id,
                                                   "what": episode.value,
                                                   "error_type": type(e).__name__})
                self.episodes.failed(episode, failure_cause(e), error_type=type(e).__name__)
            else:
                self.episodes.recovered(episode)

    # --- accounts an operator controls (issue 13) ---------------------------------------------
    _accounts_version = -1

    async def _refresh_accounts(self) -> None:
        """When ``accounts.version`` moved on: every account as stored now reaches the SMPP
        service (its sessions ended if disabled, removed or not allowed from their address),
        the HTTP and sendsms credential caches, and the sender rules of the ingress."""
        version = await self.committer.read(lambda st: st.accounts_version())
        if version == self._accounts_version:
            return
        accounts = await self.committer.read(lambda st: st.list_accounts())
        self._accounts_version = version
        self.http_api.forget_accounts()
        self.sendsms.forget_accounts()
        self.service.apply_accounts(accounts, self.settings.account_unbind_timeout_s)

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
                log.exception("queue gauge refresh failed", extra={"store": str(self._reader.path)})

    async def stop(self) -> None:
        (self.settings.home / "node.json").unlink(missing_ok=True)
        await self.http.stop()
        await self.server.stop()
        self.receipts.stop()
        self.callbacks.stop()
        self.retention.stop()
        for t in self._tasks:
            t.cancel()
        if self.delivery_process is not None:
            await self.delivery_process.stop()
        elif self.delivery is not None:
            await self.delivery.stop()
        await asyncio.wait(self._tasks, timeout=1.0)
        await self.episodes.drain()
        await self.guard.aclose()  # its last counters, then its password thread
        await self.committer.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.checkpointer.stop)
        self._reader.close()
        self.store.close()
        self._stopped.set()

    async def serve_forever(self, banner: bool = True) -> None:
        await self.start()
        if banner:
            print_banner(self)  # before the collection below: node.json says ready already
        heap.settle()  # a serving process's collector (app/heap.py)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping", extra={"node": self.settings.node_id})
        await self.stop()
        log.info("stopped", extra={"node": self.settings.node_id})


def cli_prefix(argv0: str, executable: str) -> str:
    """How to call ``adressat`` again, pasted into a shell: the script this node was started
    with (an absolute path: ``.venv/bin`` is seldom on PATH), else the interpreter with ``-m``."""
    path = Path(argv0)
    if path.name == "adressat" and path.is_file():
        return shlex.quote(str(path.resolve()))
    return f"{shlex.quote(executable)} -m adressat.cli"


def listening(node: Node) -> str:
    """Where the node listens, a line each (the banner's head; TLS ports included)."""
    s = node.settings
    lines = []
    if node.smpp_port:
        lines.append(f"  SMPP 3.4: {s.smpp_host}:{node.smpp_port}")
    if node.smpp_tls_port:
        lines.append(f"  SMPP 3.4 over TLS: {s.smpp_host}:{node.smpp_tls_port}")
    for scheme, port in (("http", node.http_port), ("https", node.http_tls_port)):
        if port:
            base = f"{scheme}://{s.http_host}:{port}"
            lines.append(f"  health, metrics, status: {base}/health/ready  /metrics  /status"
                         f"  (dashboard {base}/, messages API {base}/v1/messages)")
    if node.tls is not None:
        lines.append(f"  TLS certificate: {describe(node.tls.info)}  ({s.tls_cert_file},"
                     f" looked at every {s.tls_reload_interval_s:g} s)")
    return "".join(line + "\n" for line in lines)


def print_banner(node: Node) -> None:
    s = node.settings
    first = node.first_msisdn
    cmd = cli_prefix(sys.argv[0], sys.executable) + " --home " + shlex.quote(str(s.home.resolve()))
    if not node.smpp_port:  # `send` speaks plaintext SMPP only
        print(f"adressat listening:\n{listening(node)}"
              f"  store: {s.store_path}  (SQLite, WAL, synchronous=FULL)\n"
              f"  Any SMPP 3.4 client over TLS: {s.smpp_host}:{node.smpp_tls_port}", flush=True)
        return
    # send finds the SMPP port in <home>/node.json
    smpp = "" if s.smpp_host in ("127.0.0.1", "0.0.0.0", "::") else (
        f" --smpp-host {shlex.quote(s.smpp_host)}")
    print(
        f"adressat listening:\n{listening(node)}"
        f"  store: {s.store_path}  (SQLite, WAL, synchronous=FULL)\n"
        f"  network: simulated, {s.subscribers:,} subscribers from +{first}\n"
        f"First message (paste these in another terminal):\n"
        f"  ADRESSAT_PASSWORD=demo {cmd} account add demo\n"
        f"  {cmd} send --to {first} --text hello{smpp}   # waits for its receipt\n"
        f"  {cmd} audit --json   # counts and invariant figures\n"
        f"  Any SMPP 3.4 client works too: bind as system_id 'demo' password 'demo' to"
        f" {s.smpp_host}:{node.smpp_port}, submit_sm to {first} (TON 1, NPI 1),"
        f" registered_delivery 1.",
        flush=True,
    )


def run(settings: Settings) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    private_umask()
    setup_logging(settings.log_format, settings.log_level, "smpp")
    t0 = time.time()
    node = Node(settings)
    log.info("node built", extra={"node": settings.node_id, "home": str(settings.home),
                                  "seconds": round(time.time() - t0, 3)})
    asyncio.run(node.serve_forever(banner=settings.log_format == "text"))
