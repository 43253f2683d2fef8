"""The alerts of the SMPP process, wired (docs/alerts.md): the evaluator on the node's group
committer and clock, the webhook when a URL is configured, the figures of ``/metrics``, and
what ``api/alerts.py`` serves (``/v1/alerts``, ``/v1/live``). ``app/node.py`` builds one,
mounts it, starts it with the node and stops it with it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adressat.api import alerts as alerts_api
from adressat.core.alert import AlertRecord, alert_json
from adressat.observe import metrics as mx
from adressat.observe.alerts import SEVERITY, AlertEvaluator, AlertSettings
from adressat.observe.webhook import AlertWebhook, load_webhook_secret

if TYPE_CHECKING:
    from aiohttp import web
    from prometheus_client.core import Metric

    from .node import Node
    from .settings import Settings

__all__ = ["Alerting", "alert_settings"]

_QUEUE_CACHE_S = 1.0
_DUE_COUNT_MAX = 100_000


def alert_settings(s: Settings) -> AlertSettings:
    return AlertSettings(
        interval_s=s.alert_interval_s,
        hold_s=s.alert_hold_s,
        failure_window_s=s.alert_failure_window_s,
        failure_attempts_min=s.alert_failure_attempts_min,
        failure_failures_min=s.alert_failure_failures_min,
        failure_rate_margin=s.alert_failure_rate_margin,
        failure_rate_ratio=s.alert_failure_rate_ratio,
        failure_z_min=s.alert_failure_z_min,
        baseline_s=s.alert_baseline_s,
        latency_window_s=s.alert_latency_window_s,
        latency_attempts_min=s.alert_latency_attempts_min,
        latency_p95_ms_floor=s.alert_latency_p95_ms_floor,
        latency_ratio=s.alert_latency_ratio,
        canary_failures_in_row=s.alert_canary_failures_in_row,
        canary_passes_min=s.alert_canary_passes_min,
        complaint_hold_s=s.alert_complaint_hold_s,
        places_max=s.alert_places_max,
        place_idle_s=s.alert_place_idle_s,
        live_window_s=s.live_window_s,
        retention_s=s.alert_retention_s,
    )


class Alerting:
    def __init__(self, node: Node) -> None:
        self.node = node
        s = node.settings
        self.webhook: AlertWebhook | None = None
        if s.alert_webhook_url:
            secret = load_webhook_secret(
                s.home, Path(s.alert_webhook_secret_file) if s.alert_webhook_secret_file else None
            )
            self.webhook = AlertWebhook(
                s.alert_webhook_url, secret, queue_max=s.alert_webhook_queue_max,
                tries_max=s.alert_webhook_tries_max,
                backoff_s_min=s.alert_webhook_backoff_s_min,
                backoff_s_max=s.alert_webhook_backoff_s_max,
                timeout_s=s.alert_webhook_timeout_s,
            )
        c = node.committer
        self.evaluator = AlertEvaluator(
            c.read, c.run, time.time, alert_settings(s),
            accepted=lambda: node.ingress.accepted,
            on_change=self._changed,
            read_bulk=self._read_bulk,
        )
        self._queue: tuple[float, dict[str, Any]] = (0.0, {})
        self._tasks: list[asyncio.Task[Any]] = []

    async def _read_bulk(self, fn: Callable[[Any], Any]) -> Any:
        """The attempts' pages: on the node's read connection, in an executor thread."""
        reader = self.node._reader  # noqa: SLF001 - the node's read connection, off the loop
        return await asyncio.get_running_loop().run_in_executor(None, fn, reader)

    def _changed(self, event: str, record: AlertRecord) -> None:
        if self.webhook is not None:
            self.webhook.submit(event, record)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> list[asyncio.Task[Any]]:
        self._tasks = [asyncio.create_task(self.evaluator.run(), name="alerts")]
        if self.webhook is not None:
            self._tasks.append(asyncio.create_task(self.webhook.run(), name="alert-webhook"))
        return self._tasks

    def mount(self, app: web.Application) -> None:
        alerts_api.mount(self)(app)

    # --- what api/alerts.py serves --------------------------------------------------------------
    async def alerts(self, state: str | None, acknowledged: bool | None,
                     limit: int) -> list[dict[str, Any]]:
        records = await self.node.committer.read(
            lambda st: st.alerts(state, limit, acknowledged=acknowledged))
        return [alert_json(r) for r in records]

    async def alert(self, alert_id: int) -> dict[str, Any] | None:
        record = await self.node.committer.read(lambda st: st.alert(alert_id))
        return None if record is None else alert_json(record)

    def _read_queue(self, now: float) -> dict[str, Any]:
        r = self.node._reader  # noqa: SLF001 - the node's read connection, off the loop
        oldest = r.oldest_due_at(now)
        return {
            "unfinished": self.node.ingress.queue.value,
            "due": r.count_due(now, _DUE_COUNT_MAX),
            "oldest_due_age_s": None if oldest is None else round(max(0.0, now - oldest), 3),
        }

    async def live(self) -> dict[str, Any]:
        now = time.time()
        at, queue = self._queue
        if not queue or now - at >= _QUEUE_CACHE_S:
            loop = asyncio.get_running_loop()
            queue = await loop.run_in_executor(None, self._read_queue, now)
            self._queue = (now, queue)
        out = self.evaluator.live(now, queue)
        if self.webhook is not None:
            out["webhook"] = self.webhook.stats()
        return out

    def status(self) -> dict[str, Any]:
        """``/status``'s ``alerts``: the open ones (firing or not acknowledged) by rule and
        severity, how many fire, and the evaluator's last tick."""
        open_alerts = self.evaluator.rules.open_alerts()
        return {
            "open": len(open_alerts),
            "firing": sum(1 for a in open_alerts if a.state == "firing"),
            "unacknowledged": sum(1 for a in open_alerts if not a.acked),
            "by_rule": {f"{r}/{sev}": n for (r, sev), n in
                        sorted(self.evaluator.open_counts().items())},
            "last_tick_at": self.evaluator.last_tick_at,
            "webhook": None if self.webhook is None else self.webhook.stats(),
        }

    # --- /metrics -------------------------------------------------------------------------------
    def families(self) -> list[Metric]:
        counts: dict[tuple[str, ...], float] = {k: 0.0 for k in SEVERITY.items()}
        counts.update({k: float(n) for k, n in self.evaluator.open_counts().items()})
        out: list[Metric] = [
            *self.evaluator.families(),
            mx.gauge("adressat_alerts_open",
                     "Alerts open (firing, or not yet acknowledged), by rule and severity",
                     labelled=counts, labels=["rule", "severity"]),
            mx.counter("adressat_alert_evaluation_failures",
                       "Alert evaluations that failed (retried next tick)",
                       self.evaluator.failures),
        ]
        if self.webhook is not None:
            out += [
                mx.counter("adressat_alert_webhook_sent", "Alert changes the webhook took",
                           self.webhook.sent),
                mx.counter("adressat_alert_webhook_given_up",
                           "Alert changes given up after every try", self.webhook.given_up),
                mx.counter("adressat_alert_webhook_overflow",
                           "Alert changes dropped: the webhook queue was full",
                           self.webhook.overflow),
            ]
        return out
