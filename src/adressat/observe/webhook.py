"""The alert webhook: every lifecycle change of an alert POSTed as JSON to a configured URL.

Body: ``{"event": "firing"|"resolved"|"acknowledged", "alert": {...as GET /v1/alerts/{id}},
"delivery": "<id of this change>"}``. Headers: ``X-Adressat-Timestamp`` (epoch seconds of
this try) and ``X-Adressat-Signature: sha256=<hex>``, the HMAC-SHA256 with the shared secret
over ``timestamp + "." + body`` (the raw bytes of the body). A receiver recomputes it, compares
in constant time, and refuses a timestamp too far from its clock (a replay); docs/alerts.md
has the receiver's check. Each try is signed afresh.

Delivery: one at a time, in order, each retried with exponential backoff
(``backoff_s_min`` doubling up to ``backoff_s_max``) up to ``tries_max`` tries; a queue of at
most ``queue_max`` changes: one more is dropped, counted (``overflow``) and logged at error.
The secret is read from a file (``--alert-webhook-secret-file``) or made once at
``<home>/webhook.key`` (owner-only). Never message text: alerts carry none.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from adressat.core.alert import AlertRecord, alert_json

__all__ = ["AlertWebhook", "sign", "load_webhook_secret", "TIMESTAMP_HEADER",
           "SIGNATURE_HEADER"]

log = logging.getLogger("adressat.webhook")

TIMESTAMP_HEADER = "X-Adressat-Timestamp"
SIGNATURE_HEADER = "X-Adressat-Signature"
DELIVERY_HEADER = "X-Adressat-Delivery"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 over ``timestamp + "." + body``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def load_webhook_secret(home: Path, secret_file: Path | None = None) -> bytes:
    """The shared secret: the file given (its content, surrounding whitespace stripped), or
    ``<home>/webhook.key``, made once (32 random octets as hex, mode 0600)."""
    if secret_file is not None:
        secret = secret_file.read_bytes().strip()
        if len(secret) < 16:
            raise ValueError(f"{secret_file}: a webhook secret needs at least 16 octets")
        return secret
    path = home / "webhook.key"
    with contextlib.suppress(FileNotFoundError):  # none yet: made below
        secret = path.read_bytes().strip()
        if len(secret) >= 16:
            return secret
    secret = os.urandom(32).hex().encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o600)
    return secret


class AlertWebhook:
    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        queue_max: int = 1000,
        tries_max: int = 8,
        backoff_s_min: float = 0.5,
        backoff_s_max: float = 30.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if queue_max < 1 or tries_max < 1 or backoff_s_min < 0 or backoff_s_max < backoff_s_min:
            raise ValueError("queue_max, tries_max >= 1; 0 <= backoff_s_min <= backoff_s_max")
        if not url.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must be http:// or https://")
        self.url = url
        self._secret = secret
        self.queue_max = queue_max
        self.tries_max = tries_max
        self.backoff_s_min = backoff_s_min
        self.backoff_s_max = backoff_s_max
        self.timeout_s = timeout_s
        self.clock = clock
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._seq = 0
        self.sent = 0
        self.tries = 0
        self.given_up = 0
        self.overflow = 0

    def submit(self, event: str, alert: AlertRecord) -> bool:
        """Queue one change (any thread of the loop); False when the queue is full."""
        self._seq += 1
        delivery = f"{alert.id}-{event}-{int(self.clock() * 1000)}-{self._seq}"
        if len(self._queue) >= self.queue_max:
            self.overflow += 1
            log.error("alert webhook queue full: change dropped",
                      extra={"alert_id": alert.id, "event": event, "overflow": self.overflow,
                             "queue_max": self.queue_max})
            return False
        body = json.dumps({"event": event, "alert": alert_json(alert), "delivery": delivery},
                          sort_keys=True, separators=(",", ":")).encode()
        self._queue.append((delivery, body))
        self._wake.set()
        return True

    @property
    def queued(self) -> int:
        return len(self._queue)

    def stats(self) -> dict[str, Any]:
        return {"url": self.url, "queued": len(self._queue), "sent": self.sent,
                "tries": self.tries, "given_up": self.given_up, "overflow": self.overflow}

    async def _post(self, session: aiohttp.ClientSession, delivery: str, body: bytes) -> int:
        ts = str(int(self.clock()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: ts,
                   SIGNATURE_HEADER: sign(self._secret, ts, body), DELIVERY_HEADER: delivery}
        async with session.post(self.url, data=body, headers=headers) as r:
            await r.read()
            return r.status

    async def _deliver(self, session: aiohttp.ClientSession, delivery: str,
                       body: bytes) -> bool:
        delay = self.backoff_s_min
        for attempt in range(1, self.tries_max + 1):
            self.tries += 1
            try:
                status = await self._post(session, delivery, body)
                if 200 <= status < 300:
                    return True
                reason = f"http_{status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                reason = type(e).__name__
            if attempt == self.tries_max:
                break
            log.warning("alert webhook try failed",
                        extra={"delivery": delivery, "try": attempt, "reason": reason,
                               "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(self.backoff_s_max, max(delay * 2.0, 0.001))
        log.error("alert webhook gave up", extra={"delivery": delivery,
                                                  "tries": self.tries_max})
        return False

    async def run(self) -> None:
        """Deliver the queue until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                delivery, body = self._queue[0]
                ok = await self._deliver(session, delivery, body)
                self._queue.popleft()
                if ok:
                    self.sent += 1
                else:
                    self.given_up += 1
