"""``GET /v1/alerts``, ``GET /v1/alerts/{id}``, ``GET /v1/live`` (docs/alerts.md).

Thin: the answers come from an :class:`AlertsView` (``app/alerting.py``). Bad input gets a
JSON problem body and changes nothing: an unknown query parameter, a state that is not
``firing``/``resolved``, ``acknowledged`` not ``true``/``false``, a limit outside 1..1000
(400); an id that is not a whole number (400); an id no alert has (404).
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from adressat.api.http import Mount, json_response

__all__ = ["AlertsView", "mount", "problem"]

_LIMIT_MAX = 1000
_ALERTS_PARAMS = frozenset({"state", "acknowledged", "limit"})


class AlertsView(Protocol):
    async def alerts(self, state: str | None, acknowledged: bool | None,
                     limit: int) -> list[dict[str, Any]]: ...
    async def alert(self, alert_id: int) -> dict[str, Any] | None: ...
    async def live(self) -> dict[str, Any]: ...


def problem(status: int, title: str, detail: str) -> web.Response:
    return json_response({"status": status, "title": title, "detail": detail}, status)


def mount(view: AlertsView) -> Mount:
    async def list_alerts(request: web.Request) -> web.Response:
        q = request.query
        unknown = sorted(set(q) - _ALERTS_PARAMS)
        if unknown:
            return problem(400, "unknown parameter",
                           f"not a parameter of /v1/alerts: {', '.join(unknown)}"
                           f" (known: {', '.join(sorted(_ALERTS_PARAMS))})")
        state = q.get("state")
        if state is not None and state not in ("firing", "resolved"):
            return problem(400, "bad state", "state must be 'firing' or 'resolved'")
        ack_text = q.get("acknowledged")
        acknowledged: bool | None = None
        if ack_text is not None:
            if ack_text not in ("true", "false"):
                return problem(400, "bad acknowledged", "acknowledged must be 'true' or 'false'")
            acknowledged = ack_text == "true"
        limit = 100
        if "limit" in q:
            try:
                limit = int(q["limit"])
            except ValueError:
                limit = 0
            if not 1 <= limit <= _LIMIT_MAX:
                return problem(400, "bad limit", f"limit must be a whole number 1..{_LIMIT_MAX}")
        return json_response({"alerts": await view.alerts(state, acknowledged, limit)})

    async def one_alert(request: web.Request) -> web.Response:
        text = request.match_info["alert_id"]
        if not text.isdigit() or len(text) > 18:
            return problem(400, "bad alert id", "an alert id is a whole number")
        found = await view.alert(int(text))
        if found is None:
            return problem(404, "no such alert", f"no alert {int(text)}")
        return json_response(found)

    async def live(_request: web.Request) -> web.Response:
        return json_response(await view.live())

    def add(app: web.Application) -> None:
        app.router.add_get("/v1/alerts", list_alerts)
        app.router.add_get("/v1/alerts/{alert_id}", one_alert)
        app.router.add_get("/v1/live", live)

    return add
