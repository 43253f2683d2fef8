"""``GET /v1/canaries``: per route and serving node, whether its canary probes all passed over
the last ``window_s`` and since when (docs/canary.md).

``{"window_s": 300.0, "canaries": [{"route", "serving_node", "probes", "passed", "failed",
"last_at", "last_result", "all_passed", "passing_since"}]}``. ``?window_s=S`` (0 < S <= one
day) asks for another window; anything else is refused with 400 and a JSON problem body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from adressat.api.http import Mount, json_response
from adressat.core.model import CanaryState

__all__ = ["mount", "canaries_body", "WINDOW_S_MAX"]

WINDOW_S_MAX = 86400.0

#: ``read(now, window_s)``: the store's ``canary_states`` (called in an executor thread)
ReadStates = Callable[[float, float], list[CanaryState]]


def canaries_body(states: list[CanaryState], window_s: float) -> dict[str, Any]:
    return {
        "window_s": window_s,
        "canaries": [
            {
                "route": s.route,
                "serving_node": s.serving_node,
                "probes": s.probes,
                "passed": s.passed,
                "failed": s.failed,
                "last_at": s.last_at,
                "last_result": s.last_result,
                "all_passed": s.all_passed,
                "passing_since": s.passing_since,
            }
            for s in states
        ],
    }


def _problem(status: int, title: str, detail: str) -> web.Response:
    return json_response({"type": "about:blank", "title": title, "status": status,
                          "detail": detail}, status)


def mount(read: ReadStates, window_s: float, clock: Callable[[], float] = time.time) -> Mount:
    """The mount of ``GET /v1/canaries`` reading through ``read`` (a store read)."""

    async def canaries(request: web.Request) -> web.Response:
        window = window_s
        text = request.query.get("window_s")
        if text is not None:
            try:
                window = float(text)
            except ValueError:
                return _problem(400, "bad window_s", "window_s must be a number of seconds")
            if not 0 < window <= WINDOW_S_MAX:
                return _problem(400, "bad window_s",
                                f"window_s must be within 0 < window_s <= {WINDOW_S_MAX:g}")
        unknown = set(request.query) - {"window_s"}
        if unknown:
            return _problem(400, "unknown parameter",
                            f"unknown query parameter(s): {', '.join(sorted(unknown))}")
        loop = asyncio.get_running_loop()
        states = await loop.run_in_executor(None, read, clock(), window)
        return json_response(canaries_body(states, window))

    def add(app: web.Application) -> None:
        app.router.add_get("/v1/canaries", canaries)

    return add
