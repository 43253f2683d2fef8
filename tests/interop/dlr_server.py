"""A tiny HTTP server that records every GET it gets (Kannel's dlr-url callbacks)."""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from peers import HOST


class DlrServer:
    """``hits``: the query of every GET, as a dict of first values, in arrival order."""

    def __init__(self) -> None:
        self.hits: list[dict[str, str]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query,
                                           keep_blank_values=True)
                with owner._lock:
                    owner.hits.append({k: v[0] for k, v in q.items()})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Quiet: the test asserts on ``hits``, not on a request log."""

        self.httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, **query: str) -> str:
        """A dlr-url carrying ``query`` plus Kannel's escapes, filled in by Kannel on each
        report: ``s`` = %d (1 delivered, 2 failed, 4 buffered, 8 SMSC accepted, 16 SMSC
        rejected), ``f`` = %F (the SMSC's message id), ``a`` = %A (the report's text)."""
        return (f"http://{HOST}:{self.port}/dlr?{urllib.parse.urlencode(query)}"
                "&s=%d&f=%F&a=%A")

    def snapshot(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self.hits)

    def __enter__(self) -> DlrServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)
