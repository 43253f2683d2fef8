"""The care console over HTTP (docs/care.md): lookups, complaints, a message's history.

* ``GET /v1/care/lookup?number=N[&since=T][&until=T]``: the messages to and from a number.
* ``POST /v1/care/complaints`` with ``{"number", "about", "sender"[, "window_s"]}``: judged
  from the audit trail and recorded; 201 with the verdict.
* ``GET /v1/care/messages/{id}``: one message's history, never its text; 404 when unknown.

Bad input gets 400 (404 for an unknown id) with a JSON problem body (``type``, ``title``,
``status``, ``detail``) and changes nothing. Times are epoch seconds or ISO 8601 (a naive
time is UTC). These answers are personal data: the listener binds to loopback by default, and
issue 13 brings authentication.

Reads run in an executor thread on the node's reader connection; the one write (a complaint)
goes through the group committer, like every other write of the SMPP process.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from aiohttp import web
from prometheus_client import REGISTRY

from adressat.api.http import Mount, json_response
from adressat.app.settings import Settings
from adressat.observe import care
from adressat.store.base import Store
from adressat.store.commit import GroupCommitter

__all__ = ["mount", "parse_when"]

_T = TypeVar("_T")
_figures: list[care.ComplaintFigures] = []  # the collector registered in this process


def parse_when(value: object, name: str, now: float) -> float:
    """Epoch seconds (a number or its text) or ISO 8601, within range; raises CareError."""
    if isinstance(value, bool) or value is None:
        raise care.CareError(f"{name}: a time is required (ISO 8601 or epoch seconds)")
    if isinstance(value, int | float):
        t = float(value)
    elif isinstance(value, str):
        try:
            t = float(value)
        except ValueError:
            try:
                d = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise care.CareError(
                    f"{name}: not a time (ISO 8601 or epoch seconds): {value[:40]!r}"
                ) from None
            t = (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()
    else:
        raise care.CareError(f"{name}: not a time (ISO 8601 or epoch seconds)")
    if t != t:  # NaN
        raise care.CareError(f"{name}: not a time")
    return care.check_time(t, now, name)


def _problem(status: int, title: str, detail: str) -> web.Response:
    return json_response(
        {"type": f"about:blank#{title.lower().replace(' ', '-')}", "title": title,
         "status": status, "detail": detail},
        status,
    )


def _register_figures(reader: Store) -> None:
    for old in _figures:
        REGISTRY.unregister(old)
    _figures.clear()
    fig = care.ComplaintFigures(reader)
    REGISTRY.register(fig)
    _figures.append(fig)


def mount(reader: Store, committer: GroupCommitter, settings: Settings) -> Mount:
    """The routes of the care console, over ``reader`` (reads, in an executor) and
    ``committer`` (the complaint's write)."""

    async def read(fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(None, fn)

    async def lookup(request: web.Request) -> web.Response:
        now = time.time()
        q = request.query
        try:
            number = care.parse_number(q.get("number", ""))
            until = parse_when(q["until"], "until", now) if "until" in q else now
            since = parse_when(q["since"], "since", now) if "since" in q else until - 86400.0
            if until < since:
                raise care.CareError("until is before since")
        except care.CareError as e:
            return _problem(400, "Bad request", str(e))
        out = await read(lambda: care.lookup(reader, number, since, until,
                                             limit=settings.care_lookup_messages_max, now=now))
        return json_response(out)

    async def complaint(request: web.Request) -> web.Response:
        now = time.time()
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return _problem(400, "Malformed JSON", "the body is not a JSON object")
        if not isinstance(body, dict):
            return _problem(400, "Malformed JSON", "the body is not a JSON object")
        try:
            for key in ("number", "about", "sender"):
                if key not in body:
                    raise care.CareError(f"{key} is required")
            if not isinstance(body["number"], str) or not isinstance(body["sender"], str):
                raise care.CareError("number and sender are strings")
            number = care.parse_number(body["number"])
            about = parse_when(body["about"], "about", now)
            sender = care.parse_sender(body["sender"])
            window = body.get("window_s", settings.care_complaint_window_s)
            if (isinstance(window, bool) or not isinstance(window, int | float)
                    or not 0 <= window <= settings.care_complaint_window_s_max):
                raise care.CareError(
                    f"window_s: seconds within 0..{settings.care_complaint_window_s_max:.0f}")
        except care.CareError as e:
            return _problem(400, "Bad request", str(e))
        record, answer = await read(lambda: care.judge_complaint(
            reader, number, about, sender, window_s=float(window), now=now,
            limit=settings.care_complaint_candidates_max))
        stored = await committer.run(lambda st: st.add_complaint(record))
        answer["complaint_id"] = stored.id
        return json_response(answer, 201)

    async def message(request: web.Request) -> web.Response:
        mid = request.match_info["id"]
        h = await read(lambda: care.message_history(reader, mid, time.time()))
        if h is None:
            return _problem(404, "Not found", f"no message {mid[:64]!r}")
        return json_response(h)

    def add(app: web.Application) -> None:
        _register_figures(reader)
        app.router.add_get("/v1/care/lookup", lookup)
        app.router.add_post("/v1/care/complaints", complaint)
        app.router.add_get("/v1/care/messages/{id}", message)

    return add
