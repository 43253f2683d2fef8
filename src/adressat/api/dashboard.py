"""The dashboard: one web page served by the node (``GET /`` and ``GET /dashboard``).

The page is static (``api/static/``: HTML, CSS, plain JS, no build step, nothing from another
host); in the viewer's browser it asks the node's JSON APIs once a second and draws what they
say: ``/v1/live`` and ``/v1/alerts`` (alerts), ``/v1/canaries`` (canary), ``/v1/care/lookup``
and ``/v1/care/complaints`` (care console), ``/status``. Nothing here reads the store: the page
shows exactly what those APIs answer, so a test can hold the two side by side (docs/dashboard.md).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .http import json_response

__all__ = ["STATIC_DIR", "mount"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

# the page is the same for everyone and changes only with a new version: no caching across a
# restart into another version, and no framing by other sites
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
}
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml"}


def _file(name: str) -> web.Response:
    path = STATIC_DIR / name
    return web.Response(body=path.read_bytes(), content_type=_TYPES[path.suffix],
                        charset="utf-8", headers=_HEADERS)


def mount(app: web.Application) -> None:
    """Add the page and its assets to the node's HTTP listener."""
    assets = {p.name for p in STATIC_DIR.iterdir() if p.suffix in _TYPES}

    async def page(_r: web.Request) -> web.Response:
        return _file("dashboard.html")

    async def asset(r: web.Request) -> web.Response:
        name = r.match_info["name"]
        if name not in assets:  # only the files shipped with the package, never a path
            return json_response({"error": "not_found", "detail": "no such asset"}, 404)
        return _file(name)

    app.router.add_get("/", page)
    app.router.add_get("/dashboard", page)
    app.router.add_get("/static/{name}", asset)
