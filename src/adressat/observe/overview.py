"""What ``adressat status`` and ``/status`` show beyond health (issue 10): per route and
serving node whether its canaries have all passed over the window and since when, the open
alerts, and the queue's shape. One function for the running node and for the CLI reading the
store of a stopped one, so both say the same."""

from __future__ import annotations

from typing import Any

from adressat.observe.care import queue_shape
from adressat.store.base import Store

__all__ = ["overview", "OPEN_ALERTS_SHOWN_MAX"]

#: open alerts listed (the newest first); the count is of all of them
OPEN_ALERTS_SHOWN_MAX = 20


def overview(store: Store, now: float, canary_window_s: float) -> dict[str, Any]:
    held = store.held_routes()
    canaries = [
        {
            "route": c.route,
            "serving_node": c.serving_node,
            "probes": c.probes,
            "passed": c.passed,
            "failed": c.failed,
            "all_passed": c.all_passed,
            "passing_since": c.passing_since,
            "last_at": c.last_at,
            "last_result": c.last_result,
            "route_held": c.route in held,
        }
        for c in store.canary_states(now, canary_window_s)
    ]
    open_alerts = store.alerts(open_only=True, limit=OPEN_ALERTS_SHOWN_MAX)
    return {
        "canary_window_s": canary_window_s,
        "canaries": sorted(canaries, key=lambda c: (c["route"], c["serving_node"] or "")),
        "alerts_open": [
            {
                "id": a.id,
                "rule": a.rule,
                "severity": a.severity,
                "state": a.state,
                "acknowledged": a.acknowledged,
                "place": dict(a.place),
                "started_at": a.started_at,
                "summary": a.summary,
            }
            for a in open_alerts
        ],
        "queue_shape": queue_shape(store, now),
    }
