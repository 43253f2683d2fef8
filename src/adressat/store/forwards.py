"""Forwards to partner operators and the partners' receipts (issue 11), for every back end.

The rules live here once; each back end supplies a few primitives over its own tables
(:class:`ForwardTables`) and calls these functions inside one of its savepoints, so each is
one unit of work:

* :func:`record_forwarded`: the attempt's outcome (DISPATCHED -> FORWARDED) and the partner
  ids of its parts, in ONE transaction (a restart finds the mapping or finds the message
  still DISPATCHED, which lease recovery brings back). A partner id the same connector
  already gave another message is recorded for both and alarmed (``partner_id_reused``): a
  receipt for it is then applied to neither. Receipts that came before this commit (held)
  are applied now.
* :func:`apply_partner_receipt`: a receipt is looked up by (connector, every reading of its
  id); :func:`apply_partner_receipts` the receipts of one loop turn, with one lookup and one
  read of their messages for all of them, each with the result it would have alone. No
  match: it is *held* (durable), not dropped, until its mapping commits or
  ``expire_held_receipts`` gives up on it with a ``partner_receipt_unmatched`` alarm. Several
  messages match: alarm, applied to none. A part's final state ends the message once every
  part has one (DELIVERED only if all are).
* :func:`expire_forwarded`: FORWARDED past validity end plus a grace ends UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, cast

from adressat.core.integrity import Alarm, AlarmKind
from adressat.core.interconnect import (
    ERROR_NO_RECEIPT,
    ERROR_NOT_DELIVERED,
    ERROR_OK,
    message_final_state,
)
from adressat.core.model import ForwardPart, Message, PartnerReceipt, State

if TYPE_CHECKING:
    from adressat.store.base import FinishedAttempt

__all__ = [
    "ForwardResult",
    "ForwardTables",
    "ForwardingStore",
    "ReceiptResult",
    "apply_partner_receipt",
    "apply_partner_receipts",
    "expire_forwarded",
    "expire_held_receipts",
    "record_forwarded",
    "record_forwarded_many",
]


@dataclass(frozen=True, slots=True)
class ForwardResult:
    """``Store.record_forwarded``: the message as it is now (FORWARDED, or final when held
    receipts ended it), the alarms raised, and the held receipts applied."""

    message: Message
    alarms: tuple[Alarm, ...] = ()
    applied: tuple[Message, ...] = ()
    #: parts whose partner id the connector had given another message already (the first
    #: such reuse of an id is a ``partner_id_reused`` alarm; the next ones only count here,
    #: so a partner that answers one id for everything, as OsmoMSC does, is one alarm, not
    #: one per message for as long as it runs)
    reused: int = 0


@dataclass(frozen=True, slots=True)
class ReceiptResult:
    """``Store.apply_partner_receipt``. ``outcome``: ``final`` (the message ended),
    ``part`` (a part ended, others are open), ``held`` (no mapping yet), ``ambiguous`` (more
    than one message; alarm), ``repeat`` (the part had ended already), ``intermediate`` (not
    a final state), ``late`` (the message had ended already, e.g. UNKNOWN)."""

    outcome: str
    message: Message | None = None
    alarm: Alarm | None = None
    #: the stored partner id it matched (one part), and whether only the receipt's
    #: ``preferred`` reading told it from others (evidence of a spelling only when not)
    partner_id: str | None = None
    resolved: bool = False


class ForwardTables(Protocol):
    """What a back end provides (private to the store; each call inside the caller's
    savepoint)."""

    def transition(
        self, message_id: str, expected_state: State, new_state: State, now: float, *,
        expected_attempts: int | None = None, **changes: object,
    ) -> Message: ...
    def get_message(self, message_id: str) -> Message | None: ...
    # the messages of ``ids`` that exist, by id (one read for many)
    def fw_messages(self, ids: Sequence[str]) -> dict[str, Message]: ...
    def append_alarm(self, alarm: Alarm) -> Alarm: ...
    def fw_insert(self, parts: Sequence[ForwardPart]) -> None: ...
    def fw_by_partner(self, connector: str, ids: Sequence[str]) -> list[ForwardPart]: ...
    def fw_of_message(self, message_id: str) -> list[ForwardPart]: ...
    def fw_set(self, part: ForwardPart) -> None: ...
    def fw_set_many(self, parts: Sequence[ForwardPart]) -> None: ...
    # FORWARDED -> each (final state, changes) for many messages, as ``transition`` would
    # write each one (with its receipt, delivery record and callback); the new rows
    def fw_end_many(
        self, ends: Sequence[tuple[Message, State, Mapping[str, object]]], now: float
    ) -> list[Message]: ...
    def held_insert(self, receipt: PartnerReceipt) -> None: ...
    # held receipts of ``connector`` any of whose readings is one of ``ids``, oldest first
    def held_matching(
        self, connector: str, ids: Sequence[str]
    ) -> list[tuple[int, PartnerReceipt]]: ...
    def held_delete(self, held_id: int) -> None: ...
    def held_before(
        self, received_before: float, limit: int
    ) -> list[tuple[int, PartnerReceipt]]: ...
    def forwarded_due(self, expired_before: float, limit: int) -> list[Message]: ...


def _alarm(kind: AlarmKind, now: float, ids: Sequence[str], msg: Message | None,
           connector: str, detail: str) -> Alarm:
    return Alarm(
        at=now,
        kind=kind,
        message_ids=tuple(dict.fromkeys(ids)),
        account=msg.account if msg is not None else "",
        route=msg.route if msg is not None else "",
        adapter="smpp",
        detail=f"connector={connector} {detail}".strip(),
    )


def record_forwarded(
    t: ForwardTables, forwarded: Message, parts: Sequence[ForwardPart], now: float
) -> ForwardResult:
    """After the caller wrote ``forwarded`` (the attempt's FORWARDED outcome) in the same
    savepoint: its parts, the reuse alarm, the held receipts."""
    [result] = record_forwarded_many(t, [forwarded], [parts], now)
    assert not isinstance(result, Exception)
    return result


def record_forwarded_many(
    t: ForwardTables,
    finished: Sequence[Message | Exception],
    parts_of: Sequence[Sequence[ForwardPart]],
    now: float,
) -> list[ForwardResult | Exception]:
    """:func:`record_forwarded` for the outcomes of one loop turn, after the caller wrote
    them all (``finished``: each item's result of ``finish_attempts``, an exception for one
    refused, which gets no mapping). One lookup per connector for reused ids and one for
    held receipts, one insert for every part."""
    ok = [(m, parts) for m, parts in zip(finished, parts_of, strict=True)
          if not isinstance(m, Exception)]
    by_connector: dict[str, list[str]] = {}
    for _, parts in ok:
        for p in parts:
            if p.partner_id is not None:
                by_connector.setdefault(p.connector, []).append(p.partner_id)
    known: dict[tuple[str, str], set[str]] = {}
    for connector, ids in by_connector.items():
        for f in t.fw_by_partner(connector, ids):
            known.setdefault((connector, f.partner_id or ""), set()).add(f.message_id)
    alarms_of: dict[str, list[Alarm]] = {}
    reused: dict[str, int] = {}
    for m, parts in ok:
        for p in parts:
            if p.partner_id is None:
                continue
            key = (p.connector, p.partner_id)
            others = sorted(known.get(key, set()) - {p.message_id})
            if others:
                reused[m.id] = reused.get(m.id, 0) + 1
            if len(others) == 1:  # its first reuse is the alarm; the next ones are counted
                alarms_of.setdefault(m.id, []).append(t.append_alarm(_alarm(
                    AlarmKind.PARTNER_ID_REUSED, now, [*others, p.message_id], m,
                    p.connector, f"partner_id={p.partner_id}",
                )))
            known.setdefault(key, set()).add(p.message_id)
    t.fw_insert([p for _, parts in ok for p in parts])
    ended: dict[str, Message] = {}
    for m, parts in ok:
        if any(p.state is not State.FORWARDED for p in parts):
            e = _end_if_done(t, m.id, now, "")
            if e is not None:
                ended[m.id] = e
    applied: dict[str, list[Message]] = {}
    owner = {(p.connector, p.partner_id): m.id for m, parts in ok for p in parts
             if p.partner_id is not None}
    for connector, ids in by_connector.items():
        for held_id, receipt in t.held_matching(connector, ids):
            t.held_delete(held_id)
            result = apply_partner_receipt(t, receipt, now)
            mid = next((owner[(connector, c)] for c in receipt.candidates
                        if (connector, c) in owner), "")
            if result.alarm is not None:
                alarms_of.setdefault(mid, []).append(result.alarm)
            if result.message is not None:
                applied.setdefault(mid, []).append(result.message)
                if result.message.is_final:
                    ended[result.message.id] = result.message
    out: list[ForwardResult | Exception] = []
    for done in finished:
        if isinstance(done, Exception):
            out.append(done)
            continue
        out.append(ForwardResult(ended.get(done.id, done), tuple(alarms_of.get(done.id, ())),
                                 tuple(applied.get(done.id, ())), reused.get(done.id, 0)))
    return out


def _end_if_done(t: ForwardTables, message_id: str, now: float, partner_err: str,
                 *, parts: Sequence[ForwardPart] | None = None,
                 msg: Message | None = None) -> Message | None:
    """The message's final state once every part has one (FORWARDED -> final), else None.
    ``partner_err``: the partner's own error text of the receipt that ended it, kept.
    ``parts`` and ``msg``: as the caller already read them (a one-part message needs no
    second read)."""
    if parts is None:
        parts = t.fw_of_message(message_id)
    parts = sorted(parts, key=lambda f: f.part)
    if not parts:
        return None
    final, failed = message_final_state(
        [None if f.state is State.FORWARDED else f.state for f in parts]
    )
    if final is None:
        return None
    if msg is None:
        msg = t.get_message(message_id)
    if msg is None or msg.state is not State.FORWARDED:
        return None
    return t.transition(message_id, State.FORWARDED, final, now,
                        **_final_changes(msg, parts, failed, partner_err))


def _final_changes(msg: Message, parts: Sequence[ForwardPart], failed: int | None,
                   partner_err: str) -> dict[str, object]:
    """What the final transition of a forwarded message changes: its error, and in its extra
    the part that failed (1-based) with the partner's own error text."""
    extra = dict(msg.extra)
    error = ERROR_OK
    if failed is not None:
        extra["failed_part"] = failed
        error = parts[failed - 1].error or ERROR_NOT_DELIVERED
        if partner_err:
            extra["partner_err"] = partner_err[:3]
    return {"error": error, "extra": extra}


def _received(row: ForwardPart, receipt: PartnerReceipt, now: float) -> ForwardPart:
    """The part as a final receipt leaves it."""
    error = ERROR_OK if receipt.state is State.DELIVERED else ERROR_NOT_DELIVERED
    return replace(row, state=receipt.state, error=error, receipt_at=now)


def apply_partner_receipt(t: ForwardTables, receipt: PartnerReceipt, now: float) -> ReceiptResult:
    rows = t.fw_by_partner(receipt.connector, receipt.candidates)
    return _apply_receipt(t, receipt, now, rows, t.get_message)[0]


#: ids per lookup (each one SQL variable; SQLite allows 32,766, PostgreSQL 65,535)
_IDS_PER_LOOKUP = 500


def apply_partner_receipts(
    t: ForwardTables, receipts: Sequence[PartnerReceipt], now: float
) -> list[ReceiptResult]:
    """:func:`apply_partner_receipt` for each of ``receipts`` in order, with the forwards of
    all of them looked up at once per connector and their messages read at once. Within the
    batch, forwards change only by the receipts themselves (kept in step here) and messages
    only by their transitions (kept too), so each gets the result it would have alone; two
    receipts for one part: the second is a ``repeat``. The common case, the final receipt of
    a one-part message still FORWARDED, is written with the others of its kind at the end,
    a few statements for all (``fw_set_many``, ``fw_end_many``); any other case is applied
    as it comes."""
    by_connector: dict[str, set[str]] = {}
    for r in receipts:
        by_connector.setdefault(r.connector, set()).update(r.candidates)
    keys: dict[tuple[str, str], list[tuple[str, int]]] = {}
    parts: dict[tuple[str, int], ForwardPart] = {}
    for connector, wanted in by_connector.items():
        ids = sorted(wanted)
        for k in range(0, len(ids), _IDS_PER_LOOKUP):
            for f in t.fw_by_partner(connector, ids[k:k + _IDS_PER_LOOKUP]):
                key = (f.message_id, f.part)
                if key not in parts:
                    parts[key] = f
                    keys.setdefault((connector, f.partner_id or ""), []).append(key)
    message_ids = sorted({mid for mid, _ in parts})
    messages: dict[str, Message] = {}
    for k in range(0, len(message_ids), _IDS_PER_LOOKUP):
        messages.update(t.fw_messages(message_ids[k:k + _IDS_PER_LOOKUP]))
    out: list[ReceiptResult] = []
    received: list[ForwardPart] = []
    ends: list[tuple[Message, State, dict[str, object]]] = []
    ended_at: list[int] = []  # each end's place in ``out``
    for r in receipts:
        found = dict.fromkeys(key for c in r.candidates for key in keys.get((r.connector, c), ()))
        rows, resolved = _preferred([parts[key] for key in found], r)
        if len(rows) == 1 and r.state is not None:
            [row] = rows
            key = (row.message_id, row.part)
            msg = messages.get(row.message_id)
            if row.parts == 1 and row.state is State.FORWARDED and msg is not None \
                    and msg.state is State.FORWARDED:
                done = parts[key] = _received(row, r, now)
                received.append(done)
                final, failed = message_final_state([done.state])
                assert final is not None  # a final receipt ends a one-part message
                ends.append((msg, final, _final_changes(msg, [done], failed, r.partner_err)))
                ended_at.append(len(out))
                out.append(ReceiptResult("final", msg, partner_id=row.partner_id,
                                         resolved=resolved))  # ended once written, below
                continue
        result, done = _apply_receipt(t, r, now, [parts[key] for key in found], messages.get)
        if done is not None:
            parts[(done.message_id, done.part)] = done
            if result.message is not None:
                messages[result.message.id] = result.message
        out.append(result)
    t.fw_set_many(received)
    ended_by_id = {ended.id: (i, ended) for i, ended in
                   zip(ended_at, t.fw_end_many(ends, now), strict=True)}
    for j, result in enumerate(out):  # its own receipt, and the later ones saw it ended
        if result.message is not None and (e := ended_by_id.get(result.message.id)) \
                and j >= e[0]:
            out[j] = replace(result, message=e[1])
    return out


def _preferred(rows: list[ForwardPart], receipt: PartnerReceipt
               ) -> tuple[list[ForwardPart], bool]:
    """``rows`` narrowed to the one under the receipt's preferred reading, when they are
    several and exactly one is; and whether that was needed."""
    if len(rows) > 1 and receipt.preferred is not None:
        chosen = [f for f in rows if f.partner_id == receipt.preferred]
        if len(chosen) == 1:
            return chosen, True
    return rows, False


def _apply_receipt(t: ForwardTables, receipt: PartnerReceipt, now: float,
                   rows: list[ForwardPart],
                   message: Callable[[str], Message | None]
                   ) -> tuple[ReceiptResult, ForwardPart | None]:
    """One receipt against ``rows`` (the forwards its readings match, as they are now);
    ``message``: a message by id, as it is now. With the result, the part as the receipt
    left it when it changed one."""
    rows, resolved = _preferred(rows, receipt)
    result, done = _apply_matched(t, receipt, now, rows, message)
    if len(rows) == 1 and result.outcome != "ambiguous":
        result = replace(result, partner_id=rows[0].partner_id, resolved=resolved)
    return result, done


def _apply_matched(t: ForwardTables, receipt: PartnerReceipt, now: float,
                   rows: list[ForwardPart],
                   message: Callable[[str], Message | None]
                   ) -> tuple[ReceiptResult, ForwardPart | None]:
    if not rows:
        t.held_insert(receipt)
        return ReceiptResult("held"), None
    messages = {f.message_id for f in rows}
    if len(rows) > 1:  # two messages (or two parts) under one id: which one is unknowable
        if len({f.partner_id for f in rows}) == 1 and len(messages) > 1:
            # one id given to several messages: its reuse was alarmed when it happened
            return ReceiptResult("ambiguous"), None
        msg = message(rows[0].message_id)
        alarm = t.append_alarm(_alarm(
            AlarmKind.PARTNER_RECEIPT_UNMATCHED, now, sorted(messages), msg, receipt.connector,
            f"partner_id={receipt.candidates[0]} matches={len(rows)} applied=none",
        ))
        return ReceiptResult("ambiguous", alarm=alarm), None
    row = rows[0]
    msg = message(row.message_id)
    if row.state is not State.FORWARDED:
        return ReceiptResult("repeat", msg), None
    if receipt.state is None:
        return ReceiptResult("intermediate", msg), None
    if msg is None or msg.state is not State.FORWARDED:
        return ReceiptResult("late", msg), None
    done = _received(row, receipt, now)
    t.fw_set(done)
    ended = _end_if_done(t, row.message_id, now, receipt.partner_err,
                         parts=[done] if row.parts == 1 else None, msg=msg)
    if ended is not None:
        return ReceiptResult("final", ended), done
    return ReceiptResult("part", msg), done


def expire_held_receipts(
    t: ForwardTables, received_before: float, now: float, limit: int
) -> list[Alarm]:
    """Held receipts older than ``received_before``: no mapping came; alarmed and dropped."""
    alarms: list[Alarm] = []
    for held_id, receipt in t.held_before(received_before, limit):
        t.held_delete(held_id)
        alarms.append(t.append_alarm(_alarm(
            AlarmKind.PARTNER_RECEIPT_UNMATCHED, now, (), None, receipt.connector,
            f"partner_id={receipt.candidates[0]} matches=0 applied=none",
        )))
    return alarms


def expire_forwarded(t: ForwardTables, now: float, grace_s: float, limit: int) -> list[Message]:
    """FORWARDED messages whose validity ended more than ``grace_s`` ago: UNKNOWN (the sender
    is told: message_state UNKNOWN), their open parts too."""
    out: list[Message] = []
    for msg in t.forwarded_due(now - grace_s, limit):
        for f in t.fw_of_message(msg.id):
            if f.state is State.FORWARDED:
                t.fw_set(replace(f, state=State.UNKNOWN,
                                 error=ERROR_NO_RECEIPT))
        out.append(t.transition(msg.id, State.FORWARDED, State.UNKNOWN, now,
                                error=ERROR_NO_RECEIPT))
    return out


class _Backend(ForwardTables, Protocol):
    def savepoint(self) -> AbstractContextManager[object]: ...
    def finish_attempts(
        self, items: Sequence[FinishedAttempt], planned: object | None = None
    ) -> list[Message | Exception]: ...


class ForwardingStore:
    """The public forwarding methods of ``Store`` (store/base.py) for a back end that has the
    primitives (:class:`ForwardTables`), ``finish_attempts`` and ``savepoint``: each one
    unit of work. Both back ends inherit them, so the rules are written once."""

    def _backend(self) -> _Backend:
        return cast(_Backend, self)

    def record_forwarded(
        self, item: FinishedAttempt, parts: Sequence[ForwardPart]
    ) -> ForwardResult:
        b = self._backend()
        with b.savepoint():
            result = b.finish_attempts([item])[0]
            if isinstance(result, Exception):
                raise result
            return record_forwarded(b, result, parts, item.now)

    def record_forwarded_many(
        self, items: Sequence[tuple[FinishedAttempt, Sequence[ForwardPart]]]
    ) -> list[ForwardResult | Exception]:
        if not items:
            return []
        b = self._backend()
        with b.savepoint():
            finished = b.finish_attempts([it for it, _ in items])
            return record_forwarded_many(b, finished, [parts for _, parts in items],
                                         max(it.now for it, _ in items))

    def apply_partner_receipt(self, receipt: PartnerReceipt, now: float) -> ReceiptResult:
        b = self._backend()
        with b.savepoint():
            return apply_partner_receipt(b, receipt, now)

    def apply_partner_receipts(
        self, receipts: Sequence[PartnerReceipt], now: float
    ) -> list[ReceiptResult]:
        b = self._backend()
        with b.savepoint():
            return apply_partner_receipts(b, receipts, now)

    def expire_held_receipts(
        self, received_before: float, now: float, limit: int = 500
    ) -> list[Alarm]:
        b = self._backend()
        with b.savepoint():
            return expire_held_receipts(b, received_before, now, limit)

    def expire_forwarded(self, now: float, grace_s: float, limit: int = 500) -> list[Message]:
        b = self._backend()
        with b.savepoint():
            return expire_forwarded(b, now, grace_s, limit)

    def forwards_of_message(self, message_id: str) -> list[ForwardPart]:
        return self._backend().fw_of_message(message_id)
