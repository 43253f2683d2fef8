"""Reference semantics of the Store: plain dicts, same behaviour as every SQL back end.

Every method validates before it mutates, so a raising method leaves nothing behind;
``batch()``/``savepoint()`` snapshot the containers so a failing block rolls back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from adressat.core.accounts import (
    CANCEL_ON_REMOVE,
    HOLD_CLAIMED,
    HOLD_ON_DISABLE,
    RELEASE_ON_ENABLE,
    check_account_fields,
)
from adressat.core.alert import AlertRecord, check_ack, check_alert, check_alert_filters
from adressat.core.breaker import counts as counts_for_breaker
from adressat.core.callbacks import Callback, check_account_callbacks
from adressat.core.care import Complaint
from adressat.core.health import Episode
from adressat.core.integrity import Alarm, FaultSetting, RouteStatus
from adressat.core.interconnect_config import (
    check_connector,
    check_connector_status,
    check_partner,
    check_route,
)
from adressat.core.lifecycle import check_transition
from adressat.core.lockout import LockoutRow
from adressat.core.model import (
    CANARY_ACCOUNT,
    FINAL_STATES,
    PENDING_STATES,
    QUEUED_STATES,
    Account,
    AttemptRecord,
    AttemptView,
    CanaryProbe,
    CanaryState,
    ConnectorConfig,
    ConnectorStatus,
    ForwardPart,
    Message,
    PartnerReceipt,
    Receipt,
    RouteConfig,
    State,
    canary_state,
    receipt_reference,
    receipt_wanted,
)
from adressat.core.scheduling import (
    claim_order_key,
    counter_key,
    give_scts,
    is_due,
    should_expire,
    takes_scts,
)
from adressat.store.base import (
    ACCOUNTS_VERSION_KEY,
    AccountExists,
    ApiKey,
    ConnectorExists,
    ConnectorInUse,
    DeletedRecords,
    DuplicateMessage,
    FinishedAttempt,
    IdempotencyExists,
    IdempotencyRecord,
    NotPending,
    RouteExists,
    StoreError,
    Transition,
    UnknownAccount,
    UnknownConnector,
    UnknownMessage,
    apply_each,
    check_api_key,
    check_changes,
    check_idempotency,
    check_new_message,
    plan_finish,
    plan_transition,
    planned_callback,
)
from adressat.store.forwards import ForwardingStore


@dataclass
class _Interconnect:
    """Connectors, their status and the operator's routes (issue 11)."""

    connectors: dict[str, ConnectorConfig] = field(default_factory=dict)
    statuses: dict[str, ConnectorStatus] = field(default_factory=dict)
    routes: dict[str, RouteConfig] = field(default_factory=dict)

    def copy(self) -> _Interconnect:
        return _Interconnect(dict(self.connectors), dict(self.statuses), dict(self.routes))


@dataclass
class _Http:
    """HTTP senders (issue 12): API keys, idempotency records, the callbacks outbox."""

    api_keys: dict[str, ApiKey] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    callbacks: dict[int, Callback] = field(default_factory=dict)
    next_callback_id: int = 1  # ids never repeat, also once old rows are pruned

    def copy(self) -> _Http:
        return _Http(dict(self.api_keys), dict(self.idempotency), dict(self.callbacks),
                     self.next_callback_id)

    def add_callback(self, old: Message | None, new: Message, now: float) -> None:
        planned = planned_callback(old, new)
        if planned is None:
            return
        spec, event = planned
        cid = self.next_callback_id
        self.next_callback_id += 1
        # never due before an earlier pending event of its message (as SQLite)
        due = max([now, *(cb.next_attempt_at for cb in self.callbacks.values()
                          if cb.message_id == new.id and cb.pending)])
        self.callbacks[cid] = Callback(
            cid, new.id, new.account, spec.kind, spec.url, event, new.state, new.error, now,
            new.source_addr, new.destination, 0, due, None, None, None,
        )


@dataclass
class _Data:
    accounts: dict[str, Account] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    receipts: dict[int, Receipt] = field(default_factory=dict)
    receipt_by_message: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, tuple[str | None, str | None, float]] = field(default_factory=dict)
    attempts: list[AttemptRecord] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    next_receipt_id: int = 1
    alarms: list[Alarm] = field(default_factory=list)
    routes: dict[str, RouteStatus] = field(default_factory=dict)
    faults: dict[str, FaultSetting] = field(default_factory=dict)
    timestamps: dict[int, int] = field(default_factory=dict)  # counter_key -> last TP-SCTS
    episodes: list[Episode] = field(default_factory=list)
    next_alarm_id: int = 1  # ids never repeat, also once old alarms are deleted
    # the seq of each attempt in ``attempts`` (the same index), as SQLite's attempts.seq
    attempt_seqs: list[int] = field(default_factory=list)
    next_attempt_seq: int = 1
    canary_probes: list[CanaryProbe] = field(default_factory=list)
    next_canary_id: int = 1
    alerts: dict[int, AlertRecord] = field(default_factory=dict)
    next_alert_id: int = 1
    # issue 11, main: forwards to partners, receipts held for their mapping
    forwards: dict[tuple[str, int], ForwardPart] = field(default_factory=dict)
    held_receipts: dict[int, PartnerReceipt] = field(default_factory=dict)
    next_held_id: int = 1
    interconnect: _Interconnect = field(default_factory=_Interconnect)
    http: _Http = field(default_factory=_Http)  # issue 12
    # issue 13: ids of messages HELD because their account is disabled (messages.held_by)
    held_by_account: set[str] = field(default_factory=set)

    # issue 13, helper bind: lockout counters by (realm, scope, principal, address)
    lockouts: dict[tuple[str, str, str, str], LockoutRow] = field(default_factory=dict)

    def copy(self) -> _Data:
        return _Data(
            dict(self.accounts),
            dict(self.messages),
            dict(self.receipts),
            dict(self.receipt_by_message),
            dict(self.deliveries),
            list(self.attempts),
            dict(self.meta),
            self.next_receipt_id,
            list(self.alarms),
            dict(self.routes),
            dict(self.faults),
            dict(self.timestamps),
            list(self.episodes),
            self.next_alarm_id,
            list(self.attempt_seqs),
            self.next_attempt_seq,
            list(self.canary_probes),
            self.next_canary_id,
            dict(self.alerts),
            self.next_alert_id,
            dict(self.forwards),
            dict(self.held_receipts),
            self.next_held_id,
            self.interconnect.copy(),
            self.http.copy(),
            set(self.held_by_account),

            {k: replace(r) for k, r in self.lockouts.items()},
        )

    def add_attempt(self, rec: AttemptRecord) -> None:
        self.attempts.append(rec)
        self.attempt_seqs.append(self.next_attempt_seq)
        self.next_attempt_seq += 1


class MemoryStore(ForwardingStore):
    def __init__(self) -> None:
        self._d = _Data()
        self._lock = threading.RLock()
        self._depth = 0
        self.commits = 0

    # --- units of work -------------------------------------------------------------------------
    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self._lock:
            snapshot = self._d.copy()
            self._depth += 1
            try:
                yield
            except BaseException:
                self._d = snapshot
                raise
            finally:
                self._depth -= 1
            if self._depth == 0:
                self.commits += 1

    def batch(self) -> AbstractContextManager[None]:
        return self.savepoint()

    @contextmanager
    def _op(self) -> Iterator[None]:
        with self._lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            if self._depth == 0:
                self.commits += 1

    def close(self) -> None:
        pass

    # --- accounts ------------------------------------------------------------------------------
    def add_account(
        self,
        name: str,
        password_hash: str,
        throughput_per_s: int | None = None,
        *,
        partner_ranges: Sequence[str] | None = None,
        partner_connectors: Sequence[str] = (),
        sessions_max: int | None = None,
        allow_ip: Sequence[str] = (),
        senders: Sequence[str] = (),
    ) -> None:
        check_partner(partner_ranges, partner_connectors)
        f = check_account_fields(throughput_per_s=throughput_per_s, sessions_max=sessions_max,
                                 allow_ip=allow_ip, senders=senders)
        with self._op():
            if name in self._d.accounts:
                raise AccountExists(name)
            self._d.accounts[name] = Account(
                name, password_hash, f["throughput_per_s"],  # type: ignore[arg-type]
                partner_ranges is not None, tuple(partner_ranges or ()),
                tuple(partner_connectors), sessions_max=f["sessions_max"],  # type: ignore[arg-type]
                allow_ip=f["allow_ip"], senders=f["senders"])  # type: ignore[arg-type]
            self._bump_accounts()

    def _bump_accounts(self) -> None:
        meta = self._d.meta
        meta[ACCOUNTS_VERSION_KEY] = str(int(meta.get(ACCOUNTS_VERSION_KEY, "0")) + 1)

    def accounts_version(self) -> int:
        with self._lock:
            return int(self._d.meta.get(ACCOUNTS_VERSION_KEY, "0"))

    def update_account(self, name: str, **changes: Any) -> Account:
        checked = check_account_fields(**changes)
        with self._op():
            a = self._d.accounts.get(name)
            if a is None:
                raise UnknownAccount(name)
            a = self._d.accounts[name] = replace(a, **checked)  # type: ignore[arg-type]
            self._bump_accounts()
            return a

    def disable_account(self, name: str, now: float, *, keep_queue: bool = False) -> int:
        with self._op():
            a = self._d.accounts.get(name)
            if a is None:
                raise UnknownAccount(name)
            self._d.accounts[name] = replace(
                a, disabled_at=a.disabled_at if a.disabled_at is not None else now,
                disabled_keep_queue=keep_queue)
            self._bump_accounts()
            if keep_queue:
                return self._release_account(name, now)
            n = 0
            for m in list(self._d.messages.values()):
                if m.account != name:
                    continue
                if m.state in HOLD_ON_DISABLE:
                    self._d.messages[m.id] = replace(m, state=State.HELD)
                    n += 1
                elif m.state is not State.HELD:
                    continue
                self._d.held_by_account.add(m.id)
            return n

    def enable_account(self, name: str, now: float) -> int:
        with self._op():
            a = self._d.accounts.get(name)
            if a is None:
                raise UnknownAccount(name)
            self._d.accounts[name] = replace(a, disabled_at=None, disabled_keep_queue=False)
            self._bump_accounts()
            return self._release_account(name, now)

    def _release_account(self, name: str, now: float) -> int:
        old, new = RELEASE_ON_ENABLE
        n = 0
        for mid in sorted(self._d.held_by_account):
            m = self._d.messages.get(mid)
            if m is None or m.account != name:
                continue
            self._d.held_by_account.discard(mid)
            if m.state is old:
                self._d.messages[mid] = replace(
                    m, state=new, next_attempt_at=min(m.next_attempt_at, now))
                n += 1
        return n

    def hold_claimed_of_disabled(self, message_id: str, expected_attempts: int,
                                 now: float) -> Message | None:
        with self._op():
            m = self._d.messages.get(message_id)
            if m is None or m.account not in self.accounts_holding_queue():
                return None
            new = self.transition(message_id, HOLD_CLAIMED[0], HOLD_CLAIMED[1], now,
                                  expected_attempts=expected_attempts,
                                  attempts=expected_attempts - 1, lease_until=None,
                                  lease_owner=None)
            self._d.held_by_account.add(message_id)
            return new

    def accounts_holding_queue(self) -> frozenset[str]:
        with self._lock:
            return frozenset(a.name for a in self._d.accounts.values()
                             if a.disabled and not a.disabled_keep_queue)

    def _pending_cb(self, event_id: int) -> Callback | None:
        cb = self._d.http.callbacks.get(event_id)
        return cb if cb is not None and cb.pending else None

    def get_account(self, name: str) -> Account | None:
        with self._lock:
            return self._d.accounts.get(name)

    def list_accounts(self) -> list[Account]:
        with self._lock:
            return sorted(self._d.accounts.values(), key=lambda a: a.name)

    def remove_account(self, name: str, now: float | None = None, *,
                       keep_queue: bool = True) -> bool:
        when = time.time() if now is None else now
        with self._op():
            if keep_queue:
                self._release_account(name, when)
            else:
                for m in list(self._d.messages.values()):
                    if m.account == name and m.state in CANCEL_ON_REMOVE:
                        check_transition(m.state, State.CANCELLED)
                        self._put(replace(m, state=State.CANCELLED, final_at=when), when)
            # its API keys go with it: an account added again by that name has none (issue 12)
            for key_id in [k for k, v in self._d.http.api_keys.items() if v.account == name]:
                del self._d.http.api_keys[key_id]
            gone = self._d.accounts.pop(name, None) is not None
            self._bump_accounts()
            return gone

    # --- messages ------------------------------------------------------------------------------
    def insert_messages(self, msgs: Sequence[Message]) -> None:
        with self._op():
            seen: set[str] = set()
            for m in msgs:
                check_new_message(m)
                if m.id in self._d.messages or m.id in seen:
                    raise DuplicateMessage(m.id)
                seen.add(m.id)
            for m in msgs:
                self._d.messages[m.id] = replace(m, extra=dict(m.extra))
                if m.extra:
                    self._d.http.add_callback(None, m, m.submitted_at)

    def get_message(self, message_id: str) -> Message | None:
        with self._lock:
            m = self._d.messages.get(message_id)
            return None if m is None else replace(m, extra=dict(m.extra))

    def _write_final_effects(self, new: Message, now: float) -> None:
        if new.state is State.DELIVERED:
            self._d.deliveries[new.id] = (new.delivered_imsi, new.delivered_msisdn, now)
        if new.state in FINAL_STATES and receipt_wanted(new.registered_delivery, new.state):
            rid = self._d.next_receipt_id
            self._d.next_receipt_id += 1
            self._d.receipts[rid] = Receipt(
                receipt_id=rid,
                message_id=new.id,
                account=new.account,
                state=new.state,
                error=new.error,
                submitted_at=new.submitted_at,
                final_at=now,
                source_addr=new.source_addr,
                source_ton=new.source_ton,
                source_npi=new.source_npi,
                destination=new.destination,
                user_message_reference=receipt_reference(new),
            )
            self._d.receipt_by_message[new.id] = rid

    def _put(self, new: Message, now: float) -> Message:
        old = self._d.messages.get(new.id)
        self._d.messages[new.id] = new
        self._write_final_effects(new, now)
        if old is not None and (old.extra or new.extra):
            self._d.http.add_callback(old, new, now)
        return replace(new, extra=dict(new.extra))

    def transition(
        self,
        message_id: str,
        expected_state: State,
        new_state: State,
        now: float,
        *,
        expected_attempts: int | None = None,
        **changes: object,
    ) -> Message:
        with self._op():
            check_changes(changes)
            check_transition(expected_state, new_state)
            row = self._d.messages.get(message_id)
            if row is None:
                raise UnknownMessage(message_id)
            new = plan_transition(
                row,
                expected_state,
                new_state,
                now,
                expected_attempts,
                changes,
                message_id in self._d.deliveries,
            )
            return self._put(new, now)

    def apply_transitions(
        self, items: Sequence[Transition], now: float
    ) -> list[Message | Exception]:
        return apply_each(self, items, now)

    def plan_finish_attempts(self, items: Sequence[FinishedAttempt]) -> None:
        return None  # nothing to do outside the operation

    def finish_attempts(
        self, items: Sequence[FinishedAttempt], planned: object | None = None
    ) -> list[Message | Exception]:
        out: list[Message | Exception] = []
        with self._op():
            for it in items:
                # plan_finish validates everything before anything is written: a refused item
                # leaves nothing behind without the cost of a snapshot
                try:
                    row = self._d.messages.get(it.claimed.id)
                    if row is None:
                        raise UnknownMessage(it.claimed.id)
                    new = plan_finish(row, it, row.id in self._d.deliveries)
                except (StoreError, ValueError) as e:
                    out.append(e)
                    continue
                out.append(self._put(new, it.now))
                self._d.add_attempt(it.record)
        return out

    def claim_due(self, limit: int, now: float, lease_s: float, owner: str) -> list[Message]:
        with self._op():
            busy = {m.destination for m in self._d.messages.values() if m.state is State.DISPATCHED}
            due = sorted(
                (m for m in self._d.messages.values() if is_due(m, now)), key=claim_order_key
            )
            out: list[Message] = []
            for m in due:
                if len(out) >= limit:
                    break
                if m.destination in busy:
                    continue
                busy.add(m.destination)
                new = replace(
                    m,
                    state=State.DISPATCHED,
                    attempts=m.attempts + 1,
                    lease_until=now + lease_s,
                    lease_owner=owner,
                )
                if takes_scts(m.scts, m.attempts):
                    new = replace(new, scts=self._next_scts(m.destination, now))
                out.append(self._put(new, now))
            return out

    def _next_scts(self, destination: str, now: float) -> int:
        """The next TP-SCTS of one destination; its counter moves on."""
        key = counter_key(destination)
        scts = give_scts(self._d.timestamps.get(key), now)
        self._d.timestamps[key] = scts
        return scts

    def expire_due(self, now: float, limit: int = 1000) -> list[Message]:
        with self._op():
            due = sorted(
                (m for m in self._d.messages.values() if should_expire(m, now)),
                key=lambda m: (m.expires_at, m.id),
            )[:limit]
            return [
                self._put(
                    replace(
                        m, state=State.EXPIRED, final_at=now, lease_until=None, lease_owner=None
                    ),
                    now,
                )
                for m in due
            ]

    def recover_leases(self, now: float) -> int:
        with self._op():
            n = 0
            for m in list(self._d.messages.values()):
                if m.state is State.DISPATCHED and (m.lease_until is None or m.lease_until < now):
                    new = self._d.messages[m.id] = replace(
                        m,
                        state=State.DEFERRED,
                        next_attempt_at=now,
                        lease_until=None,
                        lease_owner=None,
                    )
                    self._d.http.add_callback(m, new, now)
                    n += 1
            return n

    def retry_now(self, destination: str, now: float) -> int:
        with self._op():
            n = 0
            for m in list(self._d.messages.values()):
                if (
                    m.destination == destination
                    and m.state is State.DEFERRED
                    and m.next_attempt_at > now
                ):
                    self._d.messages[m.id] = replace(m, next_attempt_at=now)
                    n += 1
            return n

    def hold_route(self, route: str, now: float) -> int:
        with self._op():
            n = 0
            for m in list(self._d.messages.values()):
                if m.route == route and m.state in QUEUED_STATES:
                    self._d.messages[m.id] = replace(m, state=State.HELD)
                    n += 1
            return n

    def release_route(self, route: str, now: float) -> int:
        with self._op():
            if route in self._d.routes:
                self._d.routes[route] = replace(
                    self._d.routes[route], held=False, held_at=None, reason="", alarms=0
                )
            n = 0
            for m in list(self._d.messages.values()):
                if (m.route == route and m.state is State.HELD
                        and m.id not in self._d.held_by_account):
                    self._d.messages[m.id] = replace(
                        m, state=State.ROUTED, next_attempt_at=min(m.next_attempt_at, now)
                    )
                    n += 1
            return n

    def _owned_pending(self, message_id: str, account: str) -> Message:
        m = self._d.messages.get(message_id)
        if m is None or m.account != account:
            raise UnknownMessage(message_id)
        if m.state not in PENDING_STATES:
            raise NotPending(message_id, m.state)
        return m

    def cancel(self, message_id: str, account: str, now: float) -> Message:
        with self._op():
            m = self._owned_pending(message_id, account)
            return self._put(replace(m, state=State.CANCELLED, final_at=now), now)

    def replace(
        self,
        message_id: str,
        account: str,
        now: float,
        *,
        content: bytes,
        tag: bytes,
        data_coding: int | None = None,
        registered_delivery: int | None = None,
        not_before: float | None = None,
        expires_at: float | None = None,
    ) -> Message:
        with self._op():
            m = self._owned_pending(message_id, account)
            new = replace(
                m,
                content=content,
                tag=tag,
                data_coding=m.data_coding if data_coding is None else data_coding,
                registered_delivery=(
                    m.registered_delivery if registered_delivery is None else registered_delivery
                ),
                not_before=m.not_before if not_before is None else not_before,
                next_attempt_at=(
                    m.next_attempt_at if not_before is None
                    # never attempted: due at the new time, earlier or later; after a failed
                    # attempt the backoff still holds
                    else not_before if m.state is State.ROUTED
                    else max(m.next_attempt_at, not_before)
                ),
                expires_at=m.expires_at if expires_at is None else expires_at,
            )
            if m.scts is not None:  # already stamped: the new content is a new SMS-DELIVER
                new = replace(new, scts=self._next_scts(m.destination, now))
            return self._put(new, now)

    def count_unfinished(self) -> int:
        with self._lock:
            return sum(1 for m in self._d.messages.values() if m.state not in FINAL_STATES)

    def count_by_state(self) -> dict[State, int]:
        with self._lock:
            out = dict.fromkeys(State, 0)
            for m in self._d.messages.values():
                out[m.state] += 1
            return out

    def list_messages(
        self,
        *,
        account: str | None = None,
        destination: str | None = None,
        state: State | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[Message]:
        with self._lock:
            ms = [
                m
                for m in self._d.messages.values()
                if (account is None or m.account == account)
                and (destination is None or m.destination == destination)
                and (state is None or m.state is state)
                and (since is None or m.submitted_at >= since)
                and (until is None or m.submitted_at < until)
            ]
            ms.sort(key=lambda m: (m.submitted_at, m.id))
            return [replace(m, extra=dict(m.extra)) for m in ms[:limit]]

    # --- retention -----------------------------------------------------------------------------
    def _final_before(self, final_before: float) -> list[Message]:
        return sorted(
            (
                m
                for m in self._d.messages.values()
                if m.final_at is not None and m.final_at < final_before
            ),
            key=lambda m: (m.final_at, m.id),
        )

    def purge_content(self, final_before: float, limit: int = 500) -> int:
        with self._op():
            due = [m for m in self._final_before(final_before) if m.content][: max(0, limit)]
            for m in due:
                self._d.messages[m.id] = replace(m, content=b"", tag=b"")
            return len(due)

    def delete_records(self, final_before: float, limit: int = 500) -> DeletedRecords:
        with self._op():
            self._d.episodes = [
                e for e in self._d.episodes
                if e.ended_at is None or e.ended_at >= final_before
            ]
            self._delete_complaints(final_before, limit)  # care (issue 10)
            d = self._d
            gone = self._final_before(final_before)[: max(0, limit)]
            # as SQLite: the newest receipt's message and the newest alarm stay until newer
            # ones exist (there, deleting the highest id would give it again)
            newest = d.receipts[max(d.receipts)].message_id if d.receipts else None
            ids = {m.id for m in gone if m.id != newest}
            unsent: dict[str, int] = {}
            receipts = 0
            for mid in ids:
                rid = d.receipt_by_message.pop(mid, None)
                if rid is None:
                    continue
                r = d.receipts.pop(rid)
                receipts += 1
                if r.sent_at is None:
                    unsent[r.account] = unsent.get(r.account, 0) + 1
            kept = [
                (a, seq) for a, seq in zip(d.attempts, d.attempt_seqs, strict=True)
                if a.message_id not in ids or a.started_at >= final_before
            ]
            attempts = len(d.attempts) - len(kept)
            d.attempts = [a for a, _ in kept]
            d.attempt_seqs = [seq for _, seq in kept]
            deliveries = 0
            for mid in ids:
                row = d.deliveries.get(mid)
                if row is not None and row[2] < final_before:
                    del d.deliveries[mid]
                    deliveries += 1
            for mid in ids:
                del d.messages[mid]
            for key in [k for k in d.forwards if k[0] in ids]:
                del d.forwards[key]
            for cid in [k for k, cb in d.http.callbacks.items() if cb.message_id in ids]:
                del d.http.callbacks[cid]
            newest_alarm = max((a.id for a in d.alarms), default=0)
            old_alarms = sorted(
                (a for a in d.alarms if a.at < final_before and a.id < newest_alarm),
                key=lambda a: (a.at, a.id),
            )[: max(0, limit)]
            gone_alarms = {a.id for a in old_alarms}
            d.alarms = [a for a in d.alarms if a.id not in gone_alarms]
            return DeletedRecords(len(ids), attempts, receipts, deliveries, len(gone_alarms),
                                  unsent)

    # --- receipts ------------------------------------------------------------------------------
    def pending_receipts(self, account: str, limit: int = 100) -> list[Receipt]:
        with self._lock:
            rs = [
                r for r in self._d.receipts.values() if r.account == account and r.sent_at is None
            ]
            rs.sort(key=lambda r: r.receipt_id)
            return rs[:limit]

    def mark_receipt_sent(self, receipt_id: int, now: float) -> bool:
        with self._op():
            r = self._d.receipts.get(receipt_id)
            if r is None or r.sent_at is not None:
                return False
            self._d.receipts[receipt_id] = replace(r, sent_at=now)
            return True

    def mark_receipts_sent(self, receipt_ids: Sequence[int], now: float) -> int:
        with self._op():
            return sum(self.mark_receipt_sent(i, now) for i in receipt_ids)

    # --- audit ---------------------------------------------------------------------------------
    def append_attempt(self, rec: AttemptRecord) -> None:
        with self._op():
            self._d.add_attempt(rec)

    def attempts_between(
        self, t1: float, t2: float, account: str | None = None
    ) -> list[AttemptRecord]:
        with self._lock:
            return sorted(
                (
                    a
                    for a in self._d.attempts
                    if a.started_at < t2
                    and (a.ended_at if a.ended_at is not None else a.started_at) >= t1
                    and (account is None or a.account == account)
                ),
                key=lambda a: a.started_at,
            )

    def attempts_for_message(self, message_id: str) -> list[AttemptRecord]:
        with self._lock:
            return [a for a in self._d.attempts if a.message_id == message_id]

    def mark_addressed(self, message_id: str, attempts: int, imsi: str) -> bool:
        with self._op():
            m = self._d.messages.get(message_id)
            if m is None or m.state is not State.DISPATCHED or m.attempts != attempts:
                return False
            self._d.messages[message_id] = replace(m, addressed_imsi=imsi)
            return True

    def recent_deliveries(self, limit: int) -> list[tuple[str, str, str]]:
        with self._lock:
            rows = [
                (mid, imsi, msisdn)
                for mid, (imsi, msisdn, _at) in self._d.deliveries.items()
                if imsi is not None and msisdn is not None
            ]
            return rows[-limit:] if limit > 0 else []

    # --- health -------------------------------------------------------------------------------
    def write_episode(self, episode: Episode) -> Episode:
        with self._op():
            eps = self._d.episodes
            if episode.id == 0:  # as SQLite's rowid: the highest + 1
                new = replace(episode, id=max((e.id for e in eps), default=0) + 1)
                eps.append(new)
                return new
            for i, e in enumerate(eps):
                if e.id == episode.id and e.ended_at is None:
                    eps[i] = replace(e, ended_at=episode.ended_at, failures=episode.failures)
            return episode

    def episodes(
        self, *, since: float | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Episode]:
        with self._lock:
            eps = [
                e for e in self._d.episodes
                if (since is None or e.started_at >= since) and (not open_only or e.is_open)
            ]
        eps.sort(key=lambda e: (e.started_at, e.id), reverse=True)
        return eps[:limit]

    # --- figures for metrics and readiness ------------------------------------------------------
    def count_unfinished_by_state(self) -> dict[State, int]:
        out = dict.fromkeys(
            (State.ACCEPTED, State.ROUTED, State.DEFERRED, State.DISPATCHED, State.HELD,
             State.FORWARDED), 0
        )
        with self._lock:
            for m in self._d.messages.values():
                if m.state in out:
                    out[m.state] += 1
        return out

    def count_pending_receipts(self) -> int:
        with self._lock:
            return sum(1 for r in self._d.receipts.values() if r.sent_at is None)

    def count_alarms_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._lock:
            for a in self._d.alarms:
                out[a.kind.value] = out.get(a.kind.value, 0) + 1
        return out

    def oldest_due_at(self, now: float) -> float | None:
        with self._lock:
            busy = {m.destination for m in self._d.messages.values()
                    if m.state is State.DISPATCHED}
            dues = [
                max(m.next_attempt_at, m.not_before) for m in self._d.messages.values()
                if m.state in (State.ROUTED, State.DEFERRED) and m.next_attempt_at <= now
                and m.not_before <= now and m.expires_at > now and m.destination not in busy
            ]
        return min(dues) if dues else None

    # --- integrity: alarms, route breakers, faults ----------------------------------------------
    def append_alarm(self, alarm: Alarm) -> Alarm:
        with self._op():
            new = replace(alarm, id=self._d.next_alarm_id, message_ids=tuple(alarm.message_ids))
            self._d.next_alarm_id += 1
            self._d.alarms.append(new)
            if counts_for_breaker(new):
                r = self._route(new.route)
                self._d.routes[new.route] = replace(r, alarms=r.alarms + 1)
            return new

    def alarms_between(self, t1: float, t2: float) -> list[Alarm]:
        with self._lock:
            return [a for a in self._d.alarms if t1 <= a.at < t2]

    def alarm_count(self, route: str | None = None) -> int:
        with self._lock:
            return sum(1 for a in self._d.alarms if route is None or a.route == route)

    def _route(self, name: str) -> RouteStatus:
        return self._d.routes.get(name) or RouteStatus(name, False, None, "", 0)

    def trip_route(self, route: str, reason: str, now: float) -> int:
        with self._op():
            r = self._route(route)
            if not r.held:
                r = replace(r, held=True, held_at=now, reason=reason)
            self._d.routes[route] = r
            n = 0
            for m in list(self._d.messages.values()):
                if m.route == route and m.state in QUEUED_STATES:
                    self._d.messages[m.id] = replace(m, state=State.HELD)
                    n += 1
            return n

    def held_routes(self) -> frozenset[str]:
        with self._lock:
            return frozenset(n for n, r in self._d.routes.items() if r.held)

    def route_status(self) -> list[RouteStatus]:
        with self._lock:
            held: dict[str, int] = {}
            for m in self._d.messages.values():
                if m.state is State.HELD:
                    held[m.route] = held.get(m.route, 0) + 1
            totals: dict[str, int] = {}
            for a in self._d.alarms:
                if a.route:
                    totals[a.route] = totals.get(a.route, 0) + 1
            names = sorted(set(self._d.routes) | set(held) | set(totals))
            return [
                replace(self._route(n), held_messages=held.get(n, 0), alarms_total=totals.get(n, 0))
                for n in names
            ]

    def set_fault(self, setting: FaultSetting) -> None:
        with self._op():
            self._d.faults[setting.name] = replace(setting, params=dict(setting.params))

    def list_faults(self) -> list[FaultSetting]:
        with self._lock:
            return [
                replace(f, params=dict(f.params))
                for f in sorted(self._d.faults.values(), key=lambda f: f.name)
            ]

    # --- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            return self._d.meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._op():
            self._d.meta[key] = value

    # --- canary and attribution (issue 10, helper A) -------------------------
    # (insert below this line)
    def attempts_since(self, after_seq: int, limit: int) -> list[AttemptView]:
        with self._lock:
            d = self._d
            out: list[AttemptView] = []
            for a, seq in zip(d.attempts, d.attempt_seqs, strict=True):
                if seq <= after_seq:
                    continue
                if len(out) >= limit:
                    break
                m = d.messages.get(a.message_id)
                out.append(AttemptView(
                    seq, a.message_id, a.account, a.route, a.serving_node, a.outcome, a.error,
                    a.started_at, a.ended_at, None if m is None else m.submitted_at,
                ))
            return out

    def alarms_since(self, after_id: int, limit: int) -> list[Alarm]:
        with self._lock:
            return [a for a in self._d.alarms if a.id > after_id][: max(0, limit)]

    def append_canary_probes(self, probes: Sequence[CanaryProbe]) -> list[CanaryProbe]:
        with self._op():
            out = []
            for p in probes:
                new = replace(p, id=self._d.next_canary_id)
                self._d.next_canary_id += 1
                self._d.canary_probes.append(new)
                out.append(new)
            return out

    def append_canary_probe(self, probe: CanaryProbe) -> CanaryProbe:
        return self.append_canary_probes([probe])[0]

    def canary_probes_since(self, after_id: int, limit: int) -> list[CanaryProbe]:
        with self._lock:
            return [p for p in self._d.canary_probes if p.id > after_id][: max(0, limit)]

    def canary_states(self, now: float, window_s: float) -> list[CanaryState]:
        with self._lock:
            probes = list(self._d.canary_probes)
        places: dict[tuple[str, str | None], list[CanaryProbe]] = {}
        for p in probes:
            places.setdefault((p.route, p.serving_node), []).append(p)
        out = []
        for (route, node) in sorted(places, key=lambda k: (k[0], k[1] or "")):
            ps = sorted(places[(route, node)], key=lambda p: (p.at, p.id))
            bad = max((p.at for p in ps if p.result != "passed"), default=-1.0)
            since = min((p.at for p in ps if p.result == "passed" and p.at > bad), default=None)
            last = ps[-1]
            out.append(canary_state(
                route, node, [(p.at, p.result) for p in ps if p.at >= now - window_s],
                last.at, last.result, since,
            ))
        return out

    def delete_canary_probes(self, before: float, limit: int = 500) -> int:
        with self._op():
            old = sorted(
                (p for p in self._d.canary_probes if p.at < before), key=lambda p: (p.at, p.id)
            )[: max(0, limit)]
            gone = {p.id for p in old}
            self._d.canary_probes = [p for p in self._d.canary_probes if p.id not in gone]
            return len(gone)


    def delete_canary_records(self, final_before: float, limit: int = 500) -> int:
        with self._op():
            d = self._d
            old = sorted(
                (m for m in d.messages.values() if m.account == CANARY_ACCOUNT
                 and m.final_at is not None and m.final_at < final_before
                 and m.submitted_at < final_before),
                key=lambda m: (m.submitted_at, m.id),
            )[: max(0, limit)]
            ids = {m.id for m in old}
            if not ids:
                return 0
            kept = [(a, seq) for a, seq in zip(d.attempts, d.attempt_seqs, strict=True)
                    if a.message_id not in ids]
            d.attempts = [a for a, _ in kept]
            d.attempt_seqs = [seq for _, seq in kept]
            for mid in ids:
                d.deliveries.pop(mid, None)
                rid = d.receipt_by_message.pop(mid, None)
                if rid is not None:
                    d.receipts.pop(rid, None)
                del d.messages[mid]
            return len(ids)

    # --- alerts (issue 10, helper B) -----------------------------------------
    # (insert below this line)
    def open_alert(self, alert: AlertRecord) -> AlertRecord:
        check_alert(alert)
        with self._op():
            new = replace(alert, id=self._d.next_alert_id, place=dict(alert.place),
                          evidence=dict(alert.evidence))
            self._d.next_alert_id += 1
            self._d.alerts[new.id] = new
            return new

    def update_alert(self, alert: AlertRecord) -> AlertRecord | None:
        check_alert(alert)
        with self._op():
            old = self._d.alerts.get(alert.id)
            if old is None:
                return None
            new = replace(
                old, severity=alert.severity, state=alert.state,
                last_evidence_at=alert.last_evidence_at, resolved_at=alert.resolved_at,
                summary=alert.summary, evidence=dict(alert.evidence),
                alarm_first_id=alert.alarm_first_id, alarm_last_id=alert.alarm_last_id,
            )
            self._d.alerts[alert.id] = new
            return new

    def ack_alert(self, alert_id: int, by: str, note: str, now: float) -> AlertRecord | None:
        check_ack(by, note)
        with self._op():
            old = self._d.alerts.get(alert_id)
            if old is None or old.acked_at is not None:
                return old
            new = replace(old, acked_at=now, acked_by=by, note=note)
            self._d.alerts[alert_id] = new
            return new

    def alert(self, alert_id: int) -> AlertRecord | None:
        with self._lock:
            return self._d.alerts.get(alert_id)

    def alerts(
        self,
        state: str | None = None,
        limit: int = 100,
        *,
        acknowledged: bool | None = None,
        open_only: bool = False,
    ) -> list[AlertRecord]:
        check_alert_filters(state, limit)
        with self._lock:
            out = [
                a for _, a in sorted(self._d.alerts.items(), reverse=True)
                if (state is None or a.state == state)
                and (acknowledged is None or a.acknowledged == acknowledged)
                and (not open_only or a.open)
            ]
        return out[:limit]

    def delete_alerts(self, before: float, limit: int = 500) -> int:
        with self._op():
            gone = sorted(
                (a for a in self._d.alerts.values()
                 if a.acked_at is not None and a.state == "resolved"
                 and a.resolved_at is not None and a.resolved_at < before),
                key=lambda a: (a.resolved_at or 0.0, a.id),
            )[: max(0, limit)]
            for a in gone:
                del self._d.alerts[a.id]
            return len(gone)

    def attempt_outcomes_since(
        self, after_seq: int, limit: int
    ) -> list[tuple[int, str, str, str | None, str, int | None, float, float | None]]:
        return [(v.seq, v.account, v.route, v.serving_node, v.outcome, v.error, v.started_at,
                 v.ended_at) for v in self.attempts_since(after_seq, limit)]

    def last_attempt_seq(self) -> int:
        with self._lock:
            return max(self._d.attempt_seqs, default=0)

    def count_due(self, now: float, limit: int = 100_000) -> int:
        with self._lock:
            n = sum(
                1 for m in self._d.messages.values()
                if m.state in (State.ROUTED, State.DEFERRED) and m.expires_at > now
                and m.next_attempt_at <= now and m.not_before <= now
            )
        return min(n, max(0, limit))


    # --- care and operator views (issue 10, helper C) ------------------------
    # (insert below this line)
    # complaints live beside ``_d`` (kept out of the shared record of savepoints): an append
    # is one step, and a savepoint that rolls back after it leaves it (SQLite would not)
    def _complaints(self) -> list[Complaint]:
        got: list[Complaint] | None = getattr(self, "_complaint_rows", None)
        if got is None:
            got = []
            self._complaint_rows = got
        return got

    def _delete_complaints(self, before: float, limit: int) -> None:
        rows = self._complaints()
        old = sorted((c for c in rows if c.at < before), key=lambda c: (c.at, c.id))
        gone = {c.id for c in old[: max(0, limit)]}
        rows[:] = [c for c in rows if c.id not in gone]

    def add_complaint(self, complaint: Complaint) -> Complaint:
        with self._op():
            rows = self._complaints()
            self._complaint_last_id = getattr(self, "_complaint_last_id", 0) + 1
            new = replace(complaint, id=self._complaint_last_id)
            rows.append(new)
            return new

    def complaints_since(self, after_id: int, limit: int) -> list[Complaint]:
        with self._lock:
            return [c for c in self._complaints() if c.id > after_id][: max(0, limit)]

    def complaint_counts(self) -> dict[tuple[str, str, str], int]:
        out: dict[tuple[str, str, str], int] = {}
        with self._lock:
            for c in self._complaints():
                key = (c.route, c.serving_node, c.verdict)
                out[key] = out.get(key, 0) + 1
        return out

    def messages_of_number(
        self, number: str, sources: Sequence[str], since: float, until: float, limit: int
    ) -> list[Message]:
        with self._lock:
            ms = [
                m for m in self._d.messages.values()
                if (m.destination == number or m.source_addr in sources)
                and since <= m.submitted_at < until
            ]
        ms.sort(key=lambda m: (m.submitted_at, m.id), reverse=True)
        return ms[: max(0, limit)]

    def messages_from_sources(
        self, sources: Sequence[str], since: float, until: float, limit: int
    ) -> list[Message]:
        with self._lock:
            ms = [
                m for m in self._d.messages.values()
                if m.source_addr in sources and since <= m.submitted_at < until
            ]
        ms.sort(key=lambda m: (m.submitted_at, m.id))
        return ms[: max(0, limit)]

    def queue_shape(
        self, now: float, edges_s: Sequence[float]
    ) -> list[tuple[str, str | None, int, int]]:
        counts: dict[tuple[str, str | None, int], int] = {}
        with self._lock:
            last: dict[str, str | None] = {}
            for a in self._d.attempts:
                last[a.message_id] = getattr(a, "serving_node", None)
            for m in self._d.messages.values():
                if m.state in FINAL_STATES:
                    continue
                age = now - m.submitted_at
                b = next((i for i, e in enumerate(edges_s) if age < e), len(edges_s))
                key = (m.route, last.get(m.id), b)
                counts[key] = counts.get(key, 0) + 1
        return sorted(
            ((r, n, b, c) for (r, n, b), c in counts.items()),
            key=lambda t: (t[0], t[1] or "", t[2]),
        )

    def receipt_times(self, message_id: str) -> tuple[str, float, float | None] | None:
        with self._lock:
            rid = self._d.receipt_by_message.get(message_id)
            r = None if rid is None else self._d.receipts.get(rid)
            if r is None:
                return None
            return (r.state.value, r.final_at, r.sent_at)  # created with the final state

    # --- interconnect config: connectors, routes, partner accounts (issue 11, helper E) ---
    # (insert below this line)
    def add_connector(self, cfg: ConnectorConfig) -> ConnectorConfig:
        check_connector(cfg)
        with self._op():
            ic = self._d.interconnect
            if cfg.name in ic.connectors:
                raise ConnectorExists(cfg.name)
            ic.connectors[cfg.name] = cfg
        return cfg

    def get_connector(self, name: str) -> ConnectorConfig | None:
        with self._lock:
            return self._d.interconnect.connectors.get(name)

    def list_connectors(self) -> list[ConnectorConfig]:
        with self._lock:
            return sorted(self._d.interconnect.connectors.values(), key=lambda c: c.name)

    def update_connector(self, cfg: ConnectorConfig) -> bool:
        check_connector(cfg)
        with self._op():
            ic = self._d.interconnect
            old = ic.connectors.get(cfg.name)
            if old is None:
                return False
            ic.connectors[cfg.name] = replace(cfg, created_at=old.created_at)
            return True

    def remove_connector(self, name: str) -> bool:
        with self._op():
            ic = self._d.interconnect
            using = [r.name for r in self._routes_in_order() if name in r.via]
            if using:
                raise ConnectorInUse(name, using)
            ic.statuses.pop(name, None)
            return ic.connectors.pop(name, None) is not None

    def put_connector_statuses(self, statuses: Sequence[ConnectorStatus]) -> None:
        for st in statuses:
            check_connector_status(st)
        with self._op():
            for st in statuses:
                self._d.interconnect.statuses[st.name] = st

    def connector_statuses(self) -> list[ConnectorStatus]:
        with self._lock:
            return sorted(self._d.interconnect.statuses.values(), key=lambda s: s.name)

    def _routes_in_order(self) -> list[RouteConfig]:
        return sorted(self._d.interconnect.routes.values(), key=lambda r: (r.position, r.name))

    def add_route(self, cfg: RouteConfig) -> RouteConfig:
        check_route(cfg)
        with self._op():
            ic = self._d.interconnect
            if cfg.name in ic.routes:
                raise RouteExists(cfg.name)
            missing = [v for v in cfg.via if v not in ic.connectors]
            if missing:
                raise UnknownConnector(missing)
            last = max((r.position for r in ic.routes.values()), default=0)
            position = cfg.position
            if position == 0 or position > last:
                position = last + 1
            else:
                for r in list(ic.routes.values()):
                    if r.position >= position:
                        ic.routes[r.name] = replace(r, position=r.position + 1)
            out = replace(cfg, position=position, via=tuple(cfg.via),
                          prefixes=tuple(cfg.prefixes))
            ic.routes[out.name] = out
        return out

    def list_routes(self) -> list[RouteConfig]:
        with self._lock:
            return self._routes_in_order()

    def remove_route(self, name: str) -> bool:
        with self._op():
            return self._d.interconnect.routes.pop(name, None) is not None

    def final_counts_by_route(
        self, since: float, rows_max: int = 200_000
    ) -> dict[tuple[str, str], int]:
        with self._lock:
            done = sorted((m for m in self._d.messages.values()
                           if m.final_at is not None and m.final_at >= since),
                          key=lambda m: m.final_at or 0.0)
        out: dict[tuple[str, str], int] = {}
        for group in ([m for m in done if m.content], [m for m in done if not m.content]):
            for m in group[:max(0, rows_max)]:
                key = (m.route, m.state.value)
                out[key] = out.get(key, 0) + 1
        return out


    # --- forwards to partners and their receipts (issue 11, main) ---
    # (insert below this line)
    def count_held_receipts(self) -> int:
        with self._lock:
            return len(self._d.held_receipts)

    # the primitives of store.forwards (ForwardTables), inside the caller's savepoint
    def fw_insert(self, parts: Sequence[ForwardPart]) -> None:
        with self._op():
            for p in parts:
                if (p.message_id, p.part) in self._d.forwards:
                    raise ValueError("a part is forwarded once")
            for p in parts:
                self._d.forwards[(p.message_id, p.part)] = p

    def fw_by_partner(self, connector: str, ids: Sequence[str]) -> list[ForwardPart]:
        wanted = set(ids)
        with self._lock:
            return [f for f in self._d.forwards.values()
                    if f.connector == connector and f.partner_id in wanted]

    def fw_messages(self, ids: Sequence[str]) -> dict[str, Message]:
        with self._lock:
            return {i: replace(m, extra=dict(m.extra)) for i in ids
                    if (m := self._d.messages.get(i)) is not None}

    def fw_of_message(self, message_id: str) -> list[ForwardPart]:
        with self._lock:
            return sorted((f for (mid, _), f in self._d.forwards.items() if mid == message_id),
                          key=lambda f: f.part)

    def fw_set(self, part: ForwardPart) -> None:
        with self._op():
            key = (part.message_id, part.part)
            if key in self._d.forwards:
                self._d.forwards[key] = part

    def fw_set_many(self, parts: Sequence[ForwardPart]) -> None:
        for p in parts:
            self.fw_set(p)

    def fw_end_many(
        self, ends: Sequence[tuple[Message, State, Mapping[str, object]]], now: float
    ) -> list[Message]:
        return [self.transition(old.id, State.FORWARDED, final, now, **changes)
                for old, final, changes in ends]

    def held_insert(self, receipt: PartnerReceipt) -> None:
        with self._op():
            self._d.held_receipts[self._d.next_held_id] = receipt
            self._d.next_held_id += 1

    def held_matching(
        self, connector: str, ids: Sequence[str]
    ) -> list[tuple[int, PartnerReceipt]]:
        wanted = set(ids)
        with self._lock:
            return sorted(
                (i, r) for i, r in self._d.held_receipts.items()
                if r.connector == connector and wanted & set(r.candidates)
            )

    def held_delete(self, held_id: int) -> None:
        with self._op():
            self._d.held_receipts.pop(held_id, None)

    def held_before(
        self, received_before: float, limit: int
    ) -> list[tuple[int, PartnerReceipt]]:
        with self._lock:
            return sorted(
                (i, r) for i, r in self._d.held_receipts.items()
                if r.received_at < received_before
            )[: max(0, limit)]

    def forwarded_due(self, expired_before: float, limit: int) -> list[Message]:
        with self._lock:
            due = sorted(
                (m for m in self._d.messages.values()
                 if m.state is State.FORWARDED and m.expires_at < expired_before),
                key=lambda m: (m.expires_at, m.id),
            )[: max(0, limit)]
            return [replace(m, extra=dict(m.extra)) for m in due]


    # --- HTTP senders: API keys, idempotency, callbacks outbox (issue 12, helper S) ---
    # (insert below this line)
    def add_api_key(self, account: str, key_id: str, secret_hash: bytes, now: float) -> None:
        check_api_key(key_id, secret_hash)
        with self._op():
            if account not in self._d.accounts:
                raise UnknownAccount(account)
            if key_id in self._d.http.api_keys:
                raise StoreError(f"api key {key_id} exists")
            self._d.http.api_keys[key_id] = ApiKey(key_id, account, bytes(secret_hash), now)

    def api_key(self, key_id: str) -> ApiKey | None:
        with self._lock:
            return self._d.http.api_keys.get(key_id)

    def api_keys(self, account: str) -> list[ApiKey]:
        with self._lock:
            return sorted((k for k in self._d.http.api_keys.values() if k.account == account),
                          key=lambda k: (k.created_at, k.key_id))

    def revoke_api_key(self, account: str, key_id: str, now: float) -> bool:
        with self._op():
            k = self._d.http.api_keys.get(key_id)
            if k is None or k.account != account or k.revoked_at is not None:
                return False
            self._d.http.api_keys[key_id] = replace(k, revoked_at=now)
            return True

    def set_account_callbacks(
        self, account: str, *, url: str | None, hosts: tuple[str, ...], secret: bytes | None
    ) -> None:
        url, hosts, secret = check_account_callbacks(url, hosts, secret)
        with self._op():
            a = self._d.accounts.get(account)
            if a is None:
                raise UnknownAccount(account)
            self._d.accounts[account] = replace(
                a, callback_url=url, callback_hosts=hosts, webhook_secret=secret
            )

    def idempotency_get(self, account: str, key: str) -> IdempotencyRecord | None:
        with self._lock:
            return self._d.http.idempotency.get((account, key))

    def idempotency_put(
        self, account: str, key: str, body_hash: bytes, status: int, response: str, now: float
    ) -> None:
        check_idempotency(account, key, body_hash, status, response)
        with self._op():
            if (account, key) in self._d.http.idempotency:
                raise IdempotencyExists(account, key)
            self._d.http.idempotency[(account, key)] = IdempotencyRecord(
                account, key, bytes(body_hash), status, response, now
            )

    def prune_idempotency(self, before: float, limit: int = 5000) -> int:
        with self._op():
            old = sorted(
                (r for r in self._d.http.idempotency.values() if r.created_at < before),
                key=lambda r: r.created_at,
            )[: max(0, limit)]
            for r in old:
                del self._d.http.idempotency[(r.account, r.key)]
            return len(old)

    def due_callbacks(self, now: float, limit: int) -> list[Callback]:
        with self._lock:
            oldest: dict[str, Callback] = {}
            for cb in sorted(self._d.http.callbacks.values(), key=lambda c: c.event_id):
                if cb.pending and cb.message_id not in oldest:
                    oldest[cb.message_id] = cb
            due = sorted((cb for cb in oldest.values() if cb.next_attempt_at <= now),
                         key=lambda c: (c.next_attempt_at, c.event_id))
            return due[: max(0, limit)]

    def callbacks_sent(self, event_ids: Sequence[int], now: float) -> None:
        with self._op():
            for i in event_ids:
                cb = self._pending_cb(i)
                if cb is not None:
                    self._d.http.callbacks[i] = replace(cb, sent_at=now, attempts=cb.attempts + 1)

    def callback_retry(
        self, event_id: int, next_attempt_at: float, last_status: int | None
    ) -> None:
        with self._op():
            cb = self._pending_cb(event_id)
            if cb is not None:
                self._d.http.callbacks[event_id] = replace(
                    cb, attempts=cb.attempts + 1, next_attempt_at=next_attempt_at,
                    last_status=last_status,
                )
                for k, later in list(self._d.http.callbacks.items()):  # they wait as long
                    if later.message_id == cb.message_id and k > event_id and later.pending:
                        self._d.http.callbacks[k] = replace(
                            later, next_attempt_at=max(later.next_attempt_at, next_attempt_at))

    def callback_gave_up(self, event_id: int, now: float, last_status: int | None) -> None:
        with self._op():
            cb = self._pending_cb(event_id)
            if cb is not None:
                self._d.http.callbacks[event_id] = replace(
                    cb, attempts=cb.attempts + 1, gave_up_at=now, last_status=last_status
                )

    def callbacks_of_message(self, message_id: str) -> list[Callback]:
        with self._lock:
            return sorted((cb for cb in self._d.http.callbacks.values()
                           if cb.message_id == message_id), key=lambda c: c.event_id)

    def pending_callbacks(self) -> int:
        with self._lock:
            return sum(1 for cb in self._d.http.callbacks.values() if cb.pending)

    def prune_callbacks(self, before: float, limit: int = 5000) -> int:
        with self._op():
            done = sorted(
                (
                    (t, cb.event_id) for cb in self._d.http.callbacks.values()
                    if (t := cb.sent_at if cb.sent_at is not None else cb.gave_up_at)
                    is not None and t < before
                ),
            )[: max(0, limit)]
            for _, cid in done:
                del self._d.http.callbacks[cid]
            return len(done)

    def messages_by_reference(
        self, account: str, client_reference: str, limit: int
    ) -> list[Message]:
        with self._lock:
            found = sorted(
                (m for m in self._d.messages.values()
                 if m.account == account and m.client_reference == client_reference),
                key=lambda m: (m.submitted_at, m.id), reverse=True,
            )[: max(0, limit)]
            return [replace(m, extra=dict(m.extra)) for m in found]

    # --- credential guessing: lockout counters (issue 13, helper bind) ---
    def lockout_rows(self) -> list[LockoutRow]:
        with self._lock:
            return [replace(self._d.lockouts[k]) for k in sorted(self._d.lockouts)]

    def put_lockout_rows(
        self, rows: Sequence[LockoutRow], deleted: Sequence[tuple[str, str, str, str]] = ()
    ) -> None:
        if not rows and not deleted:
            return
        with self._op():
            for r in rows:
                self._d.lockouts[r.key] = replace(r)
            for k in deleted:
                self._d.lockouts.pop(tuple(k), None)  # type: ignore[arg-type]
