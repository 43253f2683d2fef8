"""The node's HTTP listener: ``/health/live``, ``/health/ready``, ``/metrics``, ``/status``.

aiohttp (a well-kept asyncio HTTP server, on the node's own event loop; the messages API of a
later issue is to join it here). Thin on purpose: every answer comes from a :class:`NodeView`
that the composition root provides; nothing here reads the store or decides readiness.

* ``GET /health/live``: 200 while the process serves at all.
* ``GET /health/ready``: 200 ``{"ready": true}`` or 503 with the reasons (the store cannot
  write, the delivery process is down or silent, an episode is open, delivery is stalled).
* ``GET /metrics``: Prometheus text format, both processes merged.
* ``GET /status``: everything ``adressat status`` shows, as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from ssl import SSLContext
from typing import Any, Protocol

from aiohttp import web

from .access import OPERATOR_NETWORKS_DEFAULT, operator_gate, parse_networks

__all__ = ["NodeView", "HttpListener", "Mount", "make_app", "json_response"]

#: one page or API of the listener: adds its routes to the application (``api/alerts.py``,
#: ``api/care.py``, ``api/dashboard.py`` ...); the composition root passes the list
Mount = Callable[[web.Application], None]

_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class NodeView(Protocol):
    def ready(self) -> tuple[bool, dict[str, Any]]: ...
    async def metrics(self) -> bytes: ...
    async def status(self) -> dict[str, Any]: ...


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, sort_keys=True, default=str), status=status,
                        content_type="application/json")


_json = json_response


def make_app(view: NodeView, mounts: Sequence[Mount] = (),
             client_max_size: int = 16 * 1024,
             operator_allow_ip: Sequence[str] = OPERATOR_NETWORKS_DEFAULT) -> web.Application:
    async def live(_r: web.Request) -> web.Response:
        return _json({"live": True})

    async def ready(_r: web.Request) -> web.Response:
        ok, body = view.ready()
        return _json(body, 200 if ok else 503)

    async def metrics(_r: web.Request) -> web.Response:
        return web.Response(body=await view.metrics(), headers={"Content-Type": _PROMETHEUS_TEXT})

    async def status(_r: web.Request) -> web.Response:
        return _json(await view.status())

    # small forms at most, or the messages API's largest body (issue 12)
    # every path but the senders' is the operator's: only from operator_allow_ip (api/access.py)
    app = web.Application(client_max_size=client_max_size,
                          middlewares=[operator_gate(parse_networks(operator_allow_ip))])
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    for mount in mounts:
        mount(app)
    return app


class HttpListener:
    def __init__(self, view: NodeView, mounts: Sequence[Mount] = (),
                 client_max_size: int = 16 * 1024,
                 operator_allow_ip: Sequence[str] = OPERATOR_NETWORKS_DEFAULT) -> None:
        self.app = make_app(view, mounts, client_max_size, operator_allow_ip)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int, ssl_context: SSLContext | None = None) -> int:
        """One more site of the same application: plaintext, or HTTPS with ``ssl_context``
        (issue 13). The port it listens on; ``port`` holds the first site's."""
        if self._runner is None:
            self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
            await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True,
                           ssl_context=ssl_context)
        await site.start()
        server = site._server  # noqa: SLF001 - the bound port when 0 was asked for
        sockets = getattr(server, "sockets", None) or ()
        bound = int(sockets[0].getsockname()[1]) if sockets else port
        self.port = self.port or bound
        return bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
