"""Incident report (DESIGN.md, "Forensics"): for a time window, per sending account, the exact
lists of its message ids that were delivered normally, suspect, quarantined or held.

A pure function over store reads (messages, append-only attempt records, alarms); no clock.

Which messages: those submitted in ``[t1, t2)`` plus those with a delivery attempt in the
window (a message submitted earlier but delivered during the incident). Alarms are read from
``t1`` on (an alarm raised after the window can still name a message of the window).

Per message (first rule that applies):

* ``quarantined``: state QUARANTINED (an integrity check stopped it; the sender was told);
* ``suspect``: named in an integrity alarm that says it may have reached a wrong identity
  (``core.integrity.MISDELIVERY_KINDS``; not ``routing_mismatch``: nothing was sent) but not
  quarantined: e.g. the earlier message of an IMSI conflict, a DELIVERED message whose stray
  acknowledgement shows a stranger's handset has it too;
* ``held``: state HELD (its route's breaker is open; not sent);
* ``delivered``: DELIVERED with no alarm naming it;
* otherwise counted under ``other`` (pending, expired, undeliverable, ...), with its state.

Where each went: ``serving_nodes`` (per account, message id -> the serving node of its
latest attempt that had one, for every message not delivered normally) and
``by_serving_node`` (per account, node -> counts per category; "" when no node answered).

The canary prober's messages (account ``_canary``) are left out (docs/canary.md), unless
the report is asked for that account.

Only the retained window is seen (docs/architecture.md, "Disk: WAL and retention"): messages
final before ``retained_from`` (the record retention horizon, None while nothing was deleted)
are gone with their attempts, and alarms raised before it; a window that starts earlier is
reported only from what is left.
"""

from __future__ import annotations

from typing import Any

from adressat.core.model import CANARY_ACCOUNT, Message, State
from adressat.store.base import Store
from adressat.store.migrations import RETENTION_HORIZON_META

__all__ = ["incident_report", "CATEGORIES"]

CATEGORIES = ("delivered", "suspect", "quarantined", "held")
_PAGE = 1000


def _submitted_in(store: Store, t1: float, t2: float, account: str | None) -> list[Message]:
    out: list[Message] = []
    since = t1
    seen: set[str] = set()
    limit = _PAGE
    while True:
        page = store.list_messages(account=account, since=since, until=t2, limit=limit)
        fresh = [m for m in page if m.id not in seen]
        out.extend(fresh)
        seen.update(m.id for m in fresh)
        if len(page) < limit:
            return out
        if fresh and fresh[-1].submitted_at > since:
            since = fresh[-1].submitted_at
            limit = _PAGE
        else:
            limit *= 2


def incident_report(
    store: Store, t1: float, t2: float, account: str | None = None
) -> dict[str, Any]:
    if t2 < t1:
        raise ValueError("the window ends before it starts")
    messages: dict[str, Message] = {m.id: m for m in _submitted_in(store, t1, t2, account)}
    node_of: dict[str, str] = {}  # message id -> serving node of its latest attempt with one
    for att in store.attempts_between(t1, t2, account):
        if att.serving_node:
            node_of[att.message_id] = att.serving_node
        if att.message_id not in messages:
            m = store.get_message(att.message_id)
            if m is not None and (account is None or m.account == account):
                messages[m.id] = m
    named: dict[str, list[int]] = {}
    alarms_in_window = 0
    for alarm in store.alarms_between(t1, float("inf")):
        if alarm.at < t2:
            alarms_in_window += 1
        if alarm.names_misdelivery:
            for mid in alarm.message_ids:
                named.setdefault(mid, []).append(alarm.id)
    # a message named by an alarm but outside the window's lists: include it (suspect)
    for mid in named:
        if mid not in messages:
            m = store.get_message(mid)
            if (
                m is not None
                and (account is None or m.account == account)
                and (t1 <= m.submitted_at < t2)
            ):
                messages[mid] = m

    if account != CANARY_ACCOUNT:
        messages = {k: m for k, m in messages.items() if m.account != CANARY_ACCOUNT}
    accounts: dict[str, dict[str, Any]] = {}
    for m in sorted(messages.values(), key=lambda x: (x.submitted_at, x.id)):
        acc = accounts.setdefault(
            m.account,
            {**{c: [] for c in CATEGORIES}, "other": {}, "alarms": {}, "serving_nodes": {},
             "by_serving_node": {}},
        )
        node = node_of.get(m.id)
        if node is None and m.state is not State.DELIVERED:
            node = next((a.serving_node for a in reversed(store.attempts_for_message(m.id))
                         if a.serving_node), None)
        if m.state is not State.DELIVERED or m.id in named:
            acc["serving_nodes"][m.id] = node
        if m.state is State.QUARANTINED:
            cat = "quarantined"
        elif m.id in named:
            cat = "suspect"
        elif m.state is State.HELD:
            cat = "held"
        elif m.state is State.DELIVERED:
            cat = "delivered"
        else:
            acc["other"][m.id] = m.state.value
            by = acc["by_serving_node"].setdefault(node or "", {})
            by["other"] = by.get("other", 0) + 1
            continue
        acc[cat].append(m.id)
        by = acc["by_serving_node"].setdefault(node or "", {})
        by[cat] = by.get(cat, 0) + 1
        if m.id in named:
            acc["alarms"][m.id] = named[m.id]
    for acc in accounts.values():
        acc["counts"] = {c: len(acc[c]) for c in CATEGORIES} | {"other": len(acc["other"])}
    horizon = store.get_meta(RETENTION_HORIZON_META)
    return {
        "from": t1,
        "to": t2,
        "account": account,
        "retained_from": None if horizon is None else float(horizon),
        "alarms_in_window": alarms_in_window,
        "accounts": dict(sorted(accounts.items())),
        "totals": {
            c: sum(a["counts"][c] for a in accounts.values()) for c in (*CATEGORIES, "other")
        },
    }
