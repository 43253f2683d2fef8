"""End-to-end audit: the SMSC's store against the handsets' own evidence (netsim inbox).

``audit(store, netsim_home, now)`` answers the DESIGN.md promises with numbers:

* ``lost`` (I1): messages past ``expires_at + grace_s`` that are not final, plus DELIVERED
  messages for which the delivered identity has no (non-duplicate) inbox record.
  HELD messages are not expired while held (fail closed, an operator decides); past their
  validity they are reported as ``held_past_validity``, not as lost. A message DELIVERED at
  or after ``now`` is not judged (``delivered_after_evidence_read``): on a running node the
  inbox is read before the store, and its record may be newer than what was read.
* ``misdelivered`` (I2): inbox records stored by a handset whose MSISDN is not the message's
  destination, or whose IMSI is not the identity the store recorded as delivered, or (for a
  message not delivered) not the IMSI the SMSC addressed when an acknowledgement-identity
  alarm recorded it (``addressed=`` in the alarm's detail: a number recycled while the
  message was on its way reaches the new holder under the right MSISDN); also records
  carrying an id the store does not know (``misdelivered_unknown_id``). The register's
  history is not durable (netsim keeps it in memory), so a same-MSISDN record under another
  IMSI is only recognised through that alarm: such records are by construction detected.
* ``duplicate_deliveries`` (I3): records the handset flagged as duplicates
  (``duplicates_discarded``: a resend with the same TP-OA and TP-SCTS, the user saw it once)
  plus second non-duplicate records of one SMS-DELIVER at the same identity, keyed by
  (message id, TP-SCTS and part number, MSISDN, IMSI) because the parts of a long message
  share the id and the stamp (``duplicates_stored``: the user saw it twice); a v1 inbox line
  (before schema v9) is keyed by its TP-MR instead. A copy at another identity (a node that
  delivers to two handsets) is a misdelivery, counted there, not a duplicate.
* ``misdelivered_detected`` / ``misdelivered_undetected``: the misdelivered records split by
  whether adressat itself noticed: detected when the message is QUARANTINED or named in an
  integrity alarm that says it may have reached a wrong identity (``alarms`` table,
  ``MISDELIVERY_KINDS``: not ``routing_mismatch``, raised when nothing was sent); undetected
  otherwise (must be 0).
* ``quarantined`` / ``held``: messages in those states now.
* ``delivered_by_partner``: DELIVERED by a partner operator (issue 11): the evidence is the
  partner's receipt, not our handsets' inbox, so they are not checked against it.
  ``forwarded_waiting``: FORWARDED within validity + grace + ``forwarded_grace_s``; past it
  (the UNKNOWN end did not happen) such a message counts as lost.
* ``receipts_pending``: receipt outbox rows not yet sent, over every account (informational).
* ``inbox_beyond_retention``: inbox records stored before the record retention horizon whose
  message the store has deleted (docs/architecture.md, "Disk: WAL and retention"): the audit
  judges only the retained window (``retained_from``). An unknown id stored before the horizon
  cannot be told from a deleted message and is counted here, not as misdelivered.
* ``ok``: no loss, no misdelivery, nothing stored twice.

The canary prober's messages (account ``_canary``, docs/canary.md) are left out of every
figure above, their inbox records too; ``canary`` counts them apart (messages, inbox
records, records at another handset): the prober judges them itself.

The inbox is streamed line by line (it can have millions); per distinct part only an 8-octet
hash is kept. Store rows are read in pages. Sample ids (at most ``sample_max`` per finding) are
included for forensics; never any text.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adressat.core.integrity import AlarmKind
from adressat.core.model import CANARY_ACCOUNT, FINAL_STATES, Message, State
from adressat.netsim.inbox import evidence_from, read_inbox
from adressat.store.base import Store
from adressat.store.migrations import RETENTION_HORIZON_META

__all__ = ["audit", "detail_field", "iter_messages"]

_CACHE_MAX = 4096

#: alarms raised by the acknowledgement identity check; their detail names the IMSI addressed
_ACK_IDENTITY_KINDS = frozenset(
    {AlarmKind.IDENTITY_MISMATCH, AlarmKind.PARTS_IDENTITY_MISMATCH, AlarmKind.IMSI_CONFLICT}
)


def _detail_field(detail: str, key: str) -> str | None:
    """``key=value`` from an alarm's detail (space-separated ids and codes)."""
    prefix = key + "="
    for word in detail.split():
        if word.startswith(prefix):
            return word[len(prefix):]
    return None


#: public name: the care console reads the identities in alarms the same way
detail_field = _detail_field


def _key(*parts: object) -> int:
    h = hashlib.blake2b("\t".join(map(str, parts)).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def iter_messages(
    store: Store, *, state: State | None = None, page_size: int = 1000
) -> Iterator[Message]:
    """Every message (optionally in one state) in (submitted_at, id) order, read in pages.

    ``list_messages`` has no offset, so the cursor is the last (submitted_at, id) seen: the
    next page starts at that submitted_at and skips what was already returned. A page made
    entirely of one submitted_at is re-read with a larger limit."""
    if page_size < 1:
        raise ValueError("page_size must be >= 1")
    cursor: tuple[float, str] | None = None
    limit = page_size
    while True:
        since = None if cursor is None else cursor[0]
        page = store.list_messages(state=state, since=since, limit=limit)
        fresh = [m for m in page if cursor is None or (m.submitted_at, m.id) > cursor]
        yield from fresh
        if len(page) < limit:
            return
        if fresh:
            cursor = (fresh[-1].submitted_at, fresh[-1].id)
            limit = page_size
        else:
            limit *= 2  # a full page of one timestamp already seen: widen it


class _MessageCache:
    """id -> (destination, delivered_imsi, state, account) or None, from the store, bounded
    (LRU): the parts of a message are usually adjacent in the inbox."""

    def __init__(self, store: Store, size_max: int = _CACHE_MAX) -> None:
        self._store = store
        self._size_max = size_max
        self._d: OrderedDict[str, tuple[str, str | None, State, str] | None] = OrderedDict()

    def get(self, message_id: str) -> tuple[str, str | None, State, str] | None:
        if message_id in self._d:
            self._d.move_to_end(message_id)
            return self._d[message_id]
        m = self._store.get_message(message_id)
        value = None if m is None else (m.destination, m.delivered_imsi, m.state, m.account)
        self._d[message_id] = value
        if len(self._d) > self._size_max:
            self._d.popitem(last=False)
        return value


def _sample(samples: list[str], message_id: str, sample_max: int) -> None:
    if len(samples) < sample_max and message_id not in samples:
        samples.append(message_id)


def audit(
    store: Store,
    netsim_home: Path,
    now: float,
    grace_s: float = 0,
    *,
    forwarded_grace_s: float = 3600.0,
    page_size: int = 1000,
    receipts_count_max: int = 1_000_000,
    sample_max: int = 20,
) -> dict[str, Any]:
    """One JSON-able report (see the module docstring for every figure)."""
    counts = store.count_by_state()
    horizon_text = store.get_meta(RETENTION_HORIZON_META)
    horizon = float(horizon_text) if horizon_text is not None else float("-inf")
    states = {s.value: counts.get(s, 0) for s in State}

    # 0. what adressat itself noticed: ids named in integrity alarms
    alarmed: set[str] = set()
    addressed: dict[str, set[str]] = {}  # message id -> IMSIs the SMSC addressed (from alarms)
    for alarm in store.alarms_between(float("-inf"), float("inf")):
        if alarm.names_misdelivery:
            alarmed.update(alarm.message_ids)
        if alarm.kind in _ACK_IDENTITY_KINDS and alarm.message_ids:
            imsi = _detail_field(alarm.detail, "addressed")
            if imsi:
                addressed.setdefault(alarm.message_ids[0], set()).add(imsi)

    # 1. the handsets' evidence, streamed
    cache = _MessageCache(store)
    detected = 0
    undetected_ids: list[str] = []
    parts_seen: set[int] = set()
    evidence: set[int] = set()  # (id, imsi) with a non-duplicate record at the destination
    inbox_records = 0
    misdelivered = 0
    unknown_id = 0
    beyond_retention = 0
    discarded = 0
    stored_twice = 0
    misdelivered_ids: list[str] = []
    duplicate_ids: list[str] = []
    canary_records = canary_elsewhere = 0
    for rec in read_inbox(netsim_home):
        mid = rec.smsc_message_id
        info = cache.get(mid)
        if info is not None and info[3] == CANARY_ACCOUNT:  # the prober judges its own
            canary_records += 1
            if rec.msisdn != info[0]:
                canary_elsewhere += 1
            continue
        inbox_records += 1
        if info is None and rec.time < horizon:  # its message is past record retention
            beyond_retention += 1
            continue
        if info is None:
            misdelivered += 1
            unknown_id += 1
            _sample(misdelivered_ids, mid, sample_max)
            if mid in alarmed:
                detected += 1
            else:
                _sample(undetected_ids, mid, sample_max)
            continue
        destination, delivered_imsi, state, _account = info
        if (
            rec.msisdn != destination
            or (delivered_imsi is not None and rec.imsi != delivered_imsi)
            or (delivered_imsi is None and mid in addressed and rec.imsi not in addressed[mid])
        ):
            misdelivered += 1
            _sample(misdelivered_ids, mid, sample_max)
            if state is State.QUARANTINED or mid in alarmed:
                detected += 1
            else:
                _sample(undetected_ids, mid, sample_max)
        if rec.duplicate:
            discarded += 1
            continue
        part = _key(mid, rec.deliver_key, rec.msisdn, rec.imsi)
        if part in parts_seen:
            stored_twice += 1
            _sample(duplicate_ids, mid, sample_max)
        else:
            parts_seen.add(part)
        if rec.msisdn == destination:
            evidence.add(_key(mid, rec.imsi))
    del parts_seen

    # 2. the store, in pages
    expired_not_final = 0
    delivered_without_evidence = 0
    before_evidence = 0
    # delivered at or after ``now``: its handset's record may have been written after the
    # inbox was read above (a live node); one final before ``now`` had its record written
    # before it (the handset stores, then acknowledges), so it must be in what was read
    after_evidence = 0
    whole_from = evidence_from(netsim_home)
    held_past_validity = 0
    delivered_by_partner = 0
    forwarded_waiting = 0
    lost_ids: list[str] = []
    accounts: set[str] = {a.name for a in store.list_accounts()}
    total = 0
    canary_states: dict[str, int] = {}
    for m in iter_messages(store, page_size=page_size):
        if m.account == CANARY_ACCOUNT:
            canary_states[m.state.value] = canary_states.get(m.state.value, 0) + 1
            continue
        total += 1
        accounts.add(m.account)
        if m.state is State.DELIVERED and m.extra.get("connector"):
            delivered_by_partner += 1  # its evidence is the partner's receipt, not our inbox
        elif m.state is State.DELIVERED:
            if whole_from is not None and (m.final_at or 0.0) < whole_from:
                before_evidence += 1  # its record was in an inbox file dropped since
            elif (m.final_at or 0.0) >= now:
                after_evidence += 1
            elif _key(m.id, m.delivered_imsi) not in evidence:
                delivered_without_evidence += 1
                _sample(lost_ids, m.id, sample_max)
        elif m.state is State.FORWARDED and now <= m.expires_at + grace_s + forwarded_grace_s:
            forwarded_waiting += 1  # a partner has it; its receipt or UNKNOWN will end it
        elif m.state not in FINAL_STATES and now > m.expires_at + grace_s:
            if m.state is State.HELD:
                held_past_validity += 1
            else:
                expired_not_final += 1
                _sample(lost_ids, m.id, sample_max)

    receipts_pending = sum(
        len(store.pending_receipts(account, limit=receipts_count_max))
        for account in sorted(accounts)
    )
    lost = expired_not_final + delivered_without_evidence
    for state_name, n in canary_states.items():  # counted a moment apart: never below 0
        states[state_name] = max(0, states[state_name] - n)
    return {
        "now": now,
        "grace_s": grace_s,
        "states": states,
        "total": total,
        "lost": lost,
        "lost_expired_not_final": expired_not_final,
        "lost_delivered_without_evidence": delivered_without_evidence,
        # delivered before the oldest inbox file kept (the evidence log is bounded)
        "delivered_before_evidence": before_evidence,
        "delivered_after_evidence_read": after_evidence,
        "evidence_from": whole_from,
        "held_past_validity": held_past_validity,
        # interconnect (issue 11): delivered by a partner (its receipt is the evidence), and
        # forwarded, waiting for the partner's receipt within validity + forwarded grace
        "delivered_by_partner": delivered_by_partner,
        "forwarded_waiting": forwarded_waiting,
        "misdelivered": misdelivered,
        "misdelivered_unknown_id": unknown_id,
        "misdelivered_detected": detected,
        "misdelivered_undetected": misdelivered - detected,
        "quarantined": states[State.QUARANTINED.value],
        "held": states[State.HELD.value],
        "duplicate_deliveries": discarded + stored_twice,
        "duplicates_discarded": discarded,
        "duplicates_stored": stored_twice,
        "inbox_records": inbox_records,
        "inbox_beyond_retention": beyond_retention,
        "retained_from": None if horizon_text is None else float(horizon_text),
        "receipts_pending": receipts_pending,
        "canary": {
            "messages": sum(canary_states.values()),
            "states": dict(sorted(canary_states.items())),
            "inbox_records": canary_records,
            "inbox_records_elsewhere": canary_elsewhere,
        },
        "samples": {
            "lost": lost_ids,
            "misdelivered": misdelivered_ids,
            "misdelivered_undetected": undetected_ids,
            "duplicates_stored": duplicate_ids,
        },
        "ok": lost == 0 and misdelivered == 0 and stored_twice == 0,
    }
