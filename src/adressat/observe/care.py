"""The care console and the operator's views (docs/care.md): pure logic over store reads.

* :func:`lookup`: a subscriber's messages, to and from the number (never the text; the node's
  own canary messages left out; other parties' numbers masked).
* :func:`judge_complaint`: "I received a message that was not for me" (my number, about when,
  the sender shown): the candidate messages of that sender around that time, judged from the
  audit trail (the message record's acknowledging identity, the integrity alarms' identities,
  the attempt records): a :class:`~adressat.core.care.Complaint` to record, and the answer.
* :func:`message_history`: one message's states, attempts, identities and receipt.
* :func:`queue_shape`: the queue by route and by serving node against age (Postfix's qshape).
* :class:`ComplaintFigures`: ``adressat_care_complaints{route,serving_node,verdict}``, read
  from the store when scraped (complaints recorded by the CLI count as well).

Nothing here has a clock: ``now`` is passed in. Bad input raises :class:`CareError` with a
sentence to show (CLI exit 2, HTTP 400).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily

from adressat.core.care import Complaint, Verdict
from adressat.core.integrity import Alarm
from adressat.core.model import CANARY_ACCOUNT, FINAL_STATES, AttemptRecord, Message
from adressat.observe.audit import detail_field
from adressat.routing.numbers import OWN_RANGE_DEFAULT, InvalidNumber, normalise, normalise_source
from adressat.store.base import Store

__all__ = [
    "CareError",
    "ComplaintFigures",
    "QUEUE_COLUMNS",
    "QUEUE_EDGES_S",
    "check_time",
    "judge_complaint",
    "lookup",
    "mask_number",
    "message_history",
    "parse_number",
    "parse_sender",
    "queue_shape",
]

#: qshape's age buckets: below 5 min, 5-10, 10-20, 20-40, 40-80, 80-160, beyond 160 min
QUEUE_EDGES_S: tuple[float, ...] = (300.0, 600.0, 1200.0, 2400.0, 4800.0, 9600.0)
QUEUE_COLUMNS: tuple[str, ...] = (
    "0-5m", "5-10m", "10-20m", "20-40m", "40-80m", "80-160m", ">160m"
)
#: a time given to the console may lie at most this far ahead of the node's clock
CLOCK_SKEW_S_MAX = 300.0
#: alarms about a message are read up to this long after its window (acknowledgements of
#: retries come late; validity 48 h by default)
_ALARM_SLACK_S = 7 * 86400.0
#: digits shown at each end of a masked number
_SHOWN = 4


class CareError(ValueError):
    """Bad input to the console: the message says what and never carries message text."""


def mask_number(number: str | None) -> str | None:
    """``46701231234`` -> ``+4670***1234``: the first and last four digits of a number about
    someone else (a shorter one keeps fewer); an alphanumeric sender is shown as it is."""
    if number is None or number == "":
        return number
    if not number.isdigit():
        return number
    shown = min(_SHOWN, max(0, (len(number) - 3) // 2))
    return "+" + number[:shown] + "***" + (number[-shown:] if shown else "")


def parse_number(text: str, valid_ranges: Sequence[tuple[int, int]] = (OWN_RANGE_DEFAULT,)) -> str:
    """A subscriber's number as typed by a person (``+46701000001``, ``0046...``,
    ``46701000001``, national ``0701000001``) -> E.164 digits, as ingress normalises a
    destination (routing/numbers.py); raises CareError."""
    t = text.strip().replace(" ", "").replace("-", "")
    ton = 1 if t.isdigit() and not t.startswith("0") else 0
    try:
        return normalise(t, ton, 1, valid_ranges=valid_ranges)
    except (InvalidNumber, ValueError, TypeError):
        raise CareError(f"not a valid number: {text[:32]!r}") from None


def parse_sender(text: str) -> tuple[str, ...]:
    """The sender as the complainant saw it: a number (its forms as an ESME may have written
    it in source_addr: digits, with '+') or an alphanumeric sender id (as it is); raises
    CareError."""
    t = text.strip()
    if not t:
        raise CareError("the sender is empty")
    numeric = t.lstrip("+").replace(" ", "").isdigit()
    try:
        value = (normalise_source(t.replace(" ", ""), 0, 1) if numeric
                 else normalise_source(t, 5, 0))
    except (InvalidNumber, ValueError, TypeError):
        raise CareError(f"not a sender number or sender id: {text[:32]!r}") from None
    if numeric:
        return tuple(dict.fromkeys((value, "+" + value, t.replace(" ", ""))))
    return (value,)


def check_time(t: float, now: float, name: str) -> float:
    """A time given to the console: after 1970 and not in the future (beyond a small clock
    skew); raises CareError."""
    if not 0.0 <= t <= now + CLOCK_SKEW_S_MAX:
        raise CareError(f"{name} is out of range: must be after 1970 and not in the future")
    return t


# --- what the audit trail says about one message ---------------------------------------------
def _alarms_of(alarms: Iterable[Alarm], ids: set[str]) -> dict[str, list[Alarm]]:
    out: dict[str, list[Alarm]] = {}
    for a in alarms:
        if a.message_ids and a.message_ids[0] in ids:
            out.setdefault(a.message_ids[0], []).append(a)
    return out


def _serving_node(attempts: Sequence[AttemptRecord], alarms: Sequence[Alarm]) -> str | None:
    """The serving node of the last attempt (attempts.serving_node), else the one an
    integrity alarm names."""
    for a in reversed(attempts):
        node = getattr(a, "serving_node", None)
        if node:
            return str(node)
    for al in reversed(alarms):
        node = getattr(al, "serving_node", None) or detail_field(al.detail, "network_node")
        if node and node != "None":
            return node
    return None


def _reached(m: Message, alarms: Sequence[Alarm]) -> str | None:
    """The number whose handset acknowledged the message: the delivered identity, or the one
    an integrity alarm recorded (a QUARANTINED message acknowledged by another handset)."""
    if m.delivered_msisdn:
        return m.delivered_msisdn
    for al in alarms:
        msisdn = detail_field(al.detail, "msisdn")
        if al.names_misdelivery and msisdn and msisdn != "None":
            return msisdn
    return None


def _alarms_for(store: Store, ms: Sequence[Message], now: float) -> dict[str, list[Alarm]]:
    if not ms:
        return {}
    t1 = min(m.submitted_at for m in ms)
    t2 = min(now + 1.0, max(m.submitted_at for m in ms) + _ALARM_SLACK_S)
    return _alarms_of(store.alarms_between(t1, t2), {m.id for m in ms})


# --- lookup ------------------------------------------------------------------------------------
def lookup(
    store: Store, number: str, since: float, until: float, *, limit: int, now: float
) -> dict[str, Any]:
    """The messages to and from ``number`` (E.164 digits) submitted in ``[since, until)``,
    newest first, at most ``limit``."""
    if until < since:
        raise CareError("the window ends before it starts")
    ms = [
        m
        for m in store.messages_of_number(number, (number, "+" + number), since, until, limit)
        if m.account != CANARY_ACCOUNT
    ]
    # and what reached this number's handset though it was for another: the identity an
    # integrity alarm recorded (alarms are few; the messages found are added, newest first)
    seen = {m.id for m in ms}
    for al in store.alarms_between(since, min(now + 1.0, until + _ALARM_SLACK_S)):
        if (al.names_misdelivery and al.message_ids and al.message_ids[0] not in seen
                and detail_field(al.detail, "msisdn") == number and len(ms) < limit):
            m = store.get_message(al.message_ids[0])
            if (m is not None and m.account != CANARY_ACCOUNT and m.destination != number
                    and since <= m.submitted_at < until):
                ms.append(m)
                seen.add(m.id)
    ms.sort(key=lambda m: (m.submitted_at, m.id), reverse=True)
    alarms = _alarms_for(store, ms, now)
    rows = []
    for m in ms:
        to_number = m.destination == number
        from_number = m.source_addr.lstrip("+") == number
        rows.append({
            "id": m.id,
            # "reached": acknowledged by this number's handset, though destined elsewhere
            "direction": "to" if to_number else "from" if from_number else "reached",
            "account": m.account,
            "sender": m.source_addr,  # as the handset showed it
            "destination": m.destination if to_number else mask_number(m.destination),
            "submitted_at": m.submitted_at,
            "final_at": m.final_at,
            "state": m.state.value,
            "route": m.route,
            "serving_node": _serving_node(store.attempts_for_message(m.id),
                                          alarms.get(m.id, [])),
            "attempts": m.attempts,
        })
    return {"number": number, "since": since, "until": until, "limit": limit,
            "truncated": len(rows) >= limit, "messages": rows}


# --- complaint ---------------------------------------------------------------------------------
def judge_complaint(
    store: Store,
    number: str,
    about_at: float,
    sender: Sequence[str],
    *,
    window_s: float,
    now: float,
    limit: int,
) -> tuple[Complaint, dict[str, Any]]:
    """The candidates: messages from ``sender`` (its source_addr forms) submitted within
    ``window_s`` of ``about_at``, canaries left out. Returns the complaint to record (id 0) and
    the answer (JSON-able; the id is the caller's to add once recorded)."""
    since, until = about_at - window_s, about_at + window_s
    cands = [m for m in store.messages_from_sources(sender, since, until, limit)
             if m.account != CANARY_ACCOUNT]
    alarms = _alarms_for(store, cands, now)
    node: dict[str, str | None] = {}
    reached: dict[str, str | None] = {}
    for m in cands:
        al = alarms.get(m.id, [])
        node[m.id] = _serving_node(store.attempts_for_message(m.id), al)
        reached[m.id] = _reached(m, al)
    closest = sorted(cands, key=lambda m: (abs(m.submitted_at - about_at), m.id))
    wrong = [m for m in closest if reached[m.id] == number and m.destination != number]
    own = [m for m in closest if m.destination == number]
    found = wrong[0] if wrong else own[0] if own else None
    places = Counter((m.route, node[m.id] or "") for m in cands)
    if found is not None:
        verdict = Verdict.MISDELIVERED if wrong else Verdict.ADDRESSED_TO_COMPLAINANT
        route, serving = found.route, node[found.id] or ""
    else:
        verdict = Verdict.UNEXPLAINED
        (route, serving), _ = (places.most_common(1) or [(("", ""), 0)])[0]
    same: dict[str, list[dict[str, Any]]] = {}
    for m in cands:
        if (found is not None and m.id == found.id) or (m.route, node[m.id] or "") != (
            route, serving
        ):
            continue
        same.setdefault(m.account, []).append({
            "id": m.id, "submitted_at": m.submitted_at, "state": m.state.value,
            "intended_for": mask_number(m.destination),
            "misdelivered": reached[m.id] is not None and reached[m.id] != m.destination,
        })
    complaint = Complaint(
        at=now, number=number, about_at=about_at, sender=sender[0],
        message_id=None if found is None else found.id, verdict=verdict.value,
        route=route, serving_node=serving,
    )
    message = None
    if found is not None:
        message = {
            "id": found.id, "account": found.account, "submitted_at": found.submitted_at,
            "state": found.state.value, "route": found.route, "serving_node": node[found.id],
            "intended_for": mask_number(found.destination),
            "reached": None if reached[found.id] is None else "+" + str(reached[found.id]),
        }
    answer = {
        "verdict": verdict.value,
        "number": number,
        "sender": sender[0],
        "about": about_at,
        "window_s": window_s,
        "candidates": len(cands),
        "message": message,
        "route": route or None,
        "serving_node": serving or None,
        "same_way": {"route": route or None, "serving_node": serving or None,
                     "accounts": dict(sorted(same.items()))},
        "places": [{"route": r or None, "serving_node": n or None, "messages": c}
                   for (r, n), c in sorted(places.items())],
    }
    return complaint, answer


def complaint_dict(c: Complaint) -> dict[str, Any]:
    return {"id": c.id, "at": c.at, "number": c.number, "about_at": c.about_at,
            "sender": c.sender, "message_id": c.message_id, "verdict": c.verdict,
            "route": c.route or None, "serving_node": c.serving_node or None}


# --- message history ---------------------------------------------------------------------------
def message_history(store: Store, message_id: str, now: float) -> dict[str, Any] | None:
    """Everything on record about one message except its text, None when the id is unknown."""
    m = store.get_message(message_id)
    if m is None:
        return None
    attempts = store.attempts_for_message(m.id)
    end = (m.final_at or now) + 1.0
    alarms = [a for a in store.alarms_between(m.submitted_at, max(end, now + 1.0))
              if m.id in a.message_ids]
    events: list[dict[str, Any]] = [{"at": m.submitted_at, "state": "ACCEPTED",
                                     "detail": f"routed to {m.route or '-'}"}]
    for a in attempts:
        events.append({"at": a.started_at, "state": "DISPATCHED",
                       "detail": f"attempt {a.attempt}"})
        if a.ended_at is not None:
            events.append({"at": a.ended_at, "state": None,
                           "detail": f"attempt {a.attempt}: {a.outcome}"})
    for al in alarms:
        events.append({"at": al.at, "state": None, "detail": f"alarm {al.kind.value}"})
    if m.final_at is not None:
        events.append({"at": m.final_at, "state": m.state.value, "detail": "final"})
    forwards = store.forwards_of_message(m.id)
    for f in forwards:
        if f.receipt_at is not None:
            events.append({"at": f.receipt_at, "state": None,
                           "detail": f"part {f.part}: partner receipt {f.state.value}"})
    events.sort(key=lambda e: e["at"])
    receipt = store.receipt_times(m.id)
    return {
        "id": m.id,
        "account": m.account,
        "sender": m.source_addr,
        "destination": m.destination,
        "state": m.state.value,
        "final": m.state in FINAL_STATES,
        "error": m.error,
        "route": m.route,
        "submitted_at": m.submitted_at,
        "expires_at": m.expires_at,
        "final_at": m.final_at,
        "attempts_started": m.attempts,
        "content_octets": len(m.content),
        "identities": {"addressed_imsi": m.addressed_imsi, "delivered_imsi": m.delivered_imsi,
                       "delivered_msisdn": m.delivered_msisdn},
        # interconnect (issue 11): where it went beyond our network, and the partner's ids
        "connector": m.extra.get("connector"),
        "operator": m.extra.get("operator"),
        "partner_id": m.extra.get("partner_id"),
        "partner_status": m.extra.get("partner_status"),
        "failed_part": m.extra.get("failed_part"),
        "forwards": [
            {"part": f.part, "parts": f.parts, "connector": f.connector,
             "partner_id": f.partner_id, "state": f.state.value, "error": f.error,
             "at": f.at, "receipt_at": f.receipt_at}
            for f in forwards
        ],
        "attempts": [
            {"attempt": a.attempt, "started_at": a.started_at, "ended_at": a.ended_at,
             "imsi": a.imsi, "destination": a.destination, "route": a.route,
             "serving_node": getattr(a, "serving_node", None), "outcome": a.outcome,
             "error": a.error}
            for a in attempts
        ],
        "alarms": [{"id": a.id, "at": a.at, "kind": a.kind.value, "detail": a.detail}
                   for a in alarms],
        "receipt": None if receipt is None else {
            "state": receipt[0], "created_at": receipt[1], "sent_at": receipt[2]},
        "history": events,
    }


# --- queue shape -------------------------------------------------------------------------------
def queue_shape(store: Store, now: float) -> dict[str, Any]:
    """The unfinished messages per route and per serving node (of the last attempt; None:
    never attempted) against age since submission, plus a TOTAL row."""
    n = len(QUEUE_COLUMNS)

    def row(**key: Any) -> dict[str, Any]:
        return {**key, "total": 0, "buckets": [0] * n}

    routes: dict[str, dict[str, Any]] = {}
    nodes: dict[str, dict[str, Any]] = {}
    total = row(route="TOTAL")
    for route, node, b, count in store.queue_shape(now, QUEUE_EDGES_S):
        for r in (routes.setdefault(route, row(route=route)),
                  nodes.setdefault(node or "", row(serving_node=node or None)), total):
            r["total"] += count
            r["buckets"][b] += count
    return {
        "now": now,
        "columns": ["total", *QUEUE_COLUMNS],
        "routes": [routes[k] for k in sorted(routes)],
        "serving_nodes": [nodes[k] for k in sorted(nodes)],
        "total": total,
    }


class ComplaintFigures:
    """``adressat_care_complaints``: every complaint kept, by route, serving node and verdict,
    read from the store when scraped (a prometheus_client collector)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterable[CounterMetricFamily]:
        f = CounterMetricFamily("adressat_care_complaints",
                                "Care complaints recorded, by route, serving node and verdict",
                                labels=["route", "serving_node", "verdict"])
        try:
            counts = self.store.complaint_counts()
        except Exception:  # noqa: BLE001 - a scrape must not fail for a read that does
            counts = {}
        for (route, node, verdict), c in sorted(counts.items()):
            f.add_metric([route, node, verdict], float(c))
        yield f
