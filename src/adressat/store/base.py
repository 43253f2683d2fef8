"""The ``Store`` interface: every method is one transaction (DESIGN.md, "Storage").

Only ``store/`` writes SQL; only ``core.lifecycle`` decides which transition is legal. Every
back end implements exactly this behaviour and is run against ``tests/store/test_contract.py``.

Units of work: a method called outside :meth:`Store.batch` commits on its own. Inside
``with store.batch():`` nothing commits until the block exits (one commit, one fsync for the
whole batch; an exception escaping the block rolls all of it back). Inside a batch every
method runs in its own savepoint, so a method that raises leaves no partial effect and the
batch can go on; :meth:`Store.savepoint` gives the same isolation to a group of calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from adressat.core.alert import AlertRecord
from adressat.core.callbacks import (
    BadCallbackSpec,
    Callback,
    CallbackEvent,
    CallbackSpec,
    decode_spec,
    event_for,
)
from adressat.core.care import Complaint
from adressat.core.health import Episode
from adressat.core.integrity import Alarm, FaultSetting, RouteStatus
from adressat.core.lifecycle import check_transition
from adressat.core.lockout import LockoutRow
from adressat.core.model import (
    CLIENT_REFERENCE_LENGTH_MAX,
    FINAL_STATES,
    MUTABLE_FIELDS,
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
    evolve,
)
from adressat.store.forwards import ForwardResult, ReceiptResult

_T = TypeVar("_T")

#: the meta key moved on by every account change (issue 13): the running node polls it
ACCOUNTS_VERSION_KEY = "accounts.version"


class StoreError(Exception):
    """Base of every store error. Messages never carry message text (I6)."""


class StoreUnavailable(StoreError):
    """The store cannot do its work now for a reason outside the data: the disk is full, an
    I/O error, the file is read-only, a lock was held past its limit. Nothing of the failed
    operation was written. ``cause`` is a short stable name (``disk_full``, ``io_error``,
    ``read_only``, ``lock_timeout``, ``corrupt``, ``cant_open``, ``store_error``): what an
    alarm, a metric label and ``adressat status`` say."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(cause + (f": {detail}" if detail else ""))
        self.cause = cause


class UnknownMessage(StoreError, KeyError):
    def __init__(self, message_id: str) -> None:
        super().__init__(f"no message {message_id}")
        self.message_id = message_id


class StaleState(StoreError):
    """Compare-and-set failed: the row is not in the state (or attempt) the caller expected."""

    def __init__(self, message_id: str, expected: State, actual: State, detail: str = "") -> None:
        super().__init__(
            f"message {message_id}: expected {expected.value}, is {actual.value}"
            + (f" ({detail})" if detail else "")
        )
        self.message_id = message_id
        self.expected = expected
        self.actual = actual


class DuplicateDelivery(StoreError):
    """A second successful delivery of one message (I3); refused by the database itself."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"message {message_id} was already delivered")
        self.message_id = message_id


class DuplicateMessage(StoreError):
    def __init__(self, message_id: str) -> None:
        super().__init__(f"message id {message_id} already exists")
        self.message_id = message_id


class AccountExists(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"account {name} already exists")
        self.name = name


class UnknownAccount(StoreError, KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no account {name}")
        self.name = name


class IdempotencyExists(StoreError):
    """``idempotency_put`` for an (account, key) that has a record already: another request
    with that key committed first. Nothing of the failed operation is written."""

    def __init__(self, account: str, key: str) -> None:
        super().__init__(f"idempotency key already used by account {account}")
        self.account = account
        self.key = key


class ConnectorExists(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"connector {name} already exists")
        self.name = name


class RouteExists(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"route {name} already exists")
        self.name = name


class ConnectorInUse(StoreError):
    """A connector that a route's ``via`` names cannot be removed (``routes``: those)."""

    def __init__(self, name: str, routes: Sequence[str]) -> None:
        super().__init__(f"connector {name} is in use by route {', '.join(routes)}")
        self.name = name
        self.routes = tuple(routes)


class UnknownConnector(StoreError):
    """A route's ``via`` names a connector that does not exist (``names``: those)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(f"no connector {', '.join(names)}")
        self.names = tuple(names)


@dataclass(frozen=True, slots=True)
class Transition:
    """One item of :meth:`Store.apply_transitions` (same meaning as :meth:`Store.transition`)."""

    message_id: str
    expected_state: State
    new_state: State
    changes: Mapping[str, object] = field(default_factory=dict)
    expected_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class FinishedAttempt:
    """One item of :meth:`Store.finish_attempts`: the outcome of one delivery attempt.

    ``claimed`` is the message exactly as :meth:`Store.claim_due` returned it (DISPATCHED,
    with its ``attempts`` and ``lease_owner``); the outcome is written only if the stored row
    is still that claim. ``changes`` are those of :meth:`Store.transition`; ``record`` is the
    attempt's audit record (for ``claimed``); ``now`` is when the attempt ended (``final_at``
    of a final state, the time of the delivery and receipt rows)."""

    claimed: Message
    new_state: State
    changes: Mapping[str, object]
    record: AttemptRecord
    now: float


@dataclass(frozen=True, slots=True)
class DeletedRecords:
    """What one :meth:`Store.delete_records` batch removed. ``receipts_unsent``: receipts
    never sent, given up with their message at its record retention, per account."""

    messages: int = 0
    attempts: int = 0
    receipts: int = 0
    deliveries: int = 0
    alarms: int = 0
    receipts_unsent: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An HTTP API key of an account (issue 12). The key a sender holds is
    ``adr_<key_id>_<secret>``; only ``sha256(secret)`` is kept (``secret_hash``)."""

    key_id: str
    account: str
    secret_hash: bytes
    created_at: float
    revoked_at: float | None = None

    def __repr__(self) -> str:  # never the hash
        return (f"ApiKey(key_id={self.key_id!r}, account={self.account!r}, "
                f"created_at={self.created_at}, revoked_at={self.revoked_at})")


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The first answer to an ``Idempotency-Key`` of an account (issue 12): the hash of the
    request body it answered, its HTTP status and its body (``response``, JSON text)."""

    account: str
    key: str
    body_hash: bytes
    status: int
    response: str
    created_at: float


#: The longest Idempotency-Key the store keeps (characters).
IDEMPOTENCY_KEY_LENGTH_MAX = 255
#: The longest answer the store keeps for one key (characters; a batch of 1,000 results).
IDEMPOTENCY_RESPONSE_LENGTH_MAX = 1_000_000


def check_idempotency(account: str, key: str, body_hash: bytes, status: int,
                      response: str) -> None:
    """ValueError for what ``idempotency_put`` may not store."""
    if not account or not key or len(key) > IDEMPOTENCY_KEY_LENGTH_MAX:
        raise ValueError(f"idempotency key must be 1..{IDEMPOTENCY_KEY_LENGTH_MAX} characters")
    if not body_hash or len(body_hash) > 64:
        raise ValueError("body_hash must be 1..64 octets")
    if not 100 <= status <= 599:
        raise ValueError("status must be an HTTP status")
    if len(response) > IDEMPOTENCY_RESPONSE_LENGTH_MAX:
        raise ValueError("response too long to keep")


def check_api_key(key_id: str, secret_hash: bytes) -> None:
    if not key_id or len(key_id) > 64 or not key_id.isascii() or not key_id.isalnum():
        raise ValueError("key_id must be 1..64 ASCII letters and digits")
    if len(secret_hash) != 32:
        raise ValueError("secret_hash must be a sha256 (32 octets)")


def planned_callback(
    old: Message | None, new: Message
) -> tuple[CallbackSpec, CallbackEvent] | None:
    """The callback event a store writes with ``new`` (both back ends): for a new message
    (``old`` None) ACCEPTED, for a move into another state ``event_for`` of it; only when the
    message's ``extra["cb"]`` (the new row's, else the old row's: a transition that rewrote
    ``extra`` does not lose what the sender asked for) asks for it. None: nothing to write."""
    cb = new.extra.get("cb") if new.extra else None
    if cb is None and old is not None and old.extra:
        cb = old.extra.get("cb")
    if not isinstance(cb, str):
        return None
    if old is None:
        event: CallbackEvent | None = CallbackEvent.ACCEPTED
    elif old.state is new.state:
        return None
    else:
        event = event_for(new.state)
    if event is None:
        return None
    try:
        spec = decode_spec(cb)
    except BadCallbackSpec:
        return None  # checked at ingress; a transition is never refused over it
    return (spec, event) if event in spec.events else None


@runtime_checkable
class Store(Protocol):
    # --- units of work ---------------------------------------------------------------------
    def batch(self) -> AbstractContextManager[object]: ...
    def savepoint(self) -> AbstractContextManager[object]: ...
    def close(self) -> None: ...

    # --- accounts ----------------------------------------------------------------------------
    # ``partner_ranges`` None: not a partner; else a partner account (issue 11) that submits
    # only to those E.164 prefixes (at least one). ValueError for what may not be stored.
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
    ) -> None: ...
    def get_account(self, name: str) -> Account | None: ...
    def list_accounts(self) -> list[Account]: ...
    # ``keep_queue`` False: its messages not yet final nor in flight end CANCELLED (with their
    # receipts) in the same transaction; True: they stay queued (what a disable held, too).
    def remove_account(self, name: str, now: float | None = None, *,
                       keep_queue: bool = True) -> bool: ...
    # issue 13, helper acct: accounts an operator controls (core/accounts.py: the rules and
    # which moves of the lifecycle they make). Every change moves ``accounts_version`` on in
    # its own transaction (the running node polls it). ``update_account``: the fields of
    # core.accounts.ACCOUNT_FIELDS given, checked (ValueError, nothing written); UnknownAccount.
    # ``disable_account``: no binds, no keys; unless ``keep_queue`` its ROUTED and DEFERRED
    # messages go HELD (held_by account; a route release leaves them), returns how many.
    # ``enable_account``: what the disable held goes back ROUTED; returns how many.
    # ``hold_claimed_of_disabled``: a claimed (DISPATCHED) message of an account that holds
    # its queue goes HELD unsent (None: its account does not, send it).
    # ``accounts_holding_queue``: the accounts disabled without keep_queue.
    def update_account(self, name: str, **changes: Any) -> Account: ...
    def disable_account(self, name: str, now: float, *, keep_queue: bool = False) -> int: ...
    def enable_account(self, name: str, now: float) -> int: ...
    def hold_claimed_of_disabled(self, message_id: str, expected_attempts: int,
                                 now: float) -> Message | None: ...
    def accounts_holding_queue(self) -> frozenset[str]: ...
    def accounts_version(self) -> int: ...

    # --- messages ----------------------------------------------------------------------------
    def insert_messages(self, msgs: Sequence[Message]) -> None: ...
    def get_message(self, message_id: str) -> Message | None: ...
    def transition(
        self,
        message_id: str,
        expected_state: State,
        new_state: State,
        now: float,
        *,
        expected_attempts: int | None = None,
        **changes: object,
    ) -> Message: ...
    def apply_transitions(
        self, items: Sequence[Transition], now: float
    ) -> list[Message | Exception]: ...
    # ``claim_due``: due messages, DISPATCHED under a lease, at most one per destination and
    # none to a destination already in flight. A message claimed for its first attempt takes
    # its destination's next TP-SCTS (``core.scheduling.give_scts``: distinct for every
    # message to that destination, TS 23.040 §6.2) in the same transaction; a resend keeps
    # the stamp it has.
    def claim_due(self, limit: int, now: float, lease_s: float, owner: str) -> list[Message]: ...
    # ``finish_attempts``: the outcomes of claimed attempts, one unit of work. Each item is
    # ``transition(claimed.id, DISPATCHED, new_state, now, expected_attempts=claimed.attempts,
    # **changes)`` plus ``append_attempt(record)`` in its own savepoint, and the row's lease
    # owner, account and destination must still be the claim's (else StaleState). A refused
    # item (StaleState, DuplicateDelivery, UnknownMessage, IllegalTransition, ValueError) is
    # returned in its place, not raised, and leaves nothing behind, not even its attempt
    # record; the others are written. Results are in the order of ``items``.
    #
    # ``plan_finish_attempts``: the part of ``finish_attempts`` that needs neither the store nor
    # a transaction (pure, any thread), so that a caller can do it before the write lock is
    # taken; pass the result to ``finish_attempts(items, planned)`` with the same ``items``
    # object. A back end with nothing to plan returns None; ``finish_attempts`` plans itself
    # when given None (or a plan of other items).
    def plan_finish_attempts(self, items: Sequence[FinishedAttempt]) -> object | None: ...
    def finish_attempts(
        self, items: Sequence[FinishedAttempt], planned: object | None = None
    ) -> list[Message | Exception]: ...
    def expire_due(self, now: float, limit: int = 1000) -> list[Message]: ...
    def recover_leases(self, now: float) -> int: ...
    def retry_now(self, destination: str, now: float) -> int: ...
    def hold_route(self, route: str, now: float) -> int: ...
    def release_route(self, route: str, now: float) -> int: ...
    def cancel(self, message_id: str, account: str, now: float) -> Message: ...
    # ``replace``: a message already stamped (attempted before) takes its destination's next
    # TP-SCTS with its new content: a handset that stored the old content must not take the
    # new one for a resend of it.
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
    ) -> Message: ...
    def count_by_state(self) -> dict[State, int]: ...
    # Messages not yet final (accepted, queued, in flight, held): the queue gauge. It reads
    # only what is unfinished, however many finished messages the store keeps.
    def count_unfinished(self) -> int: ...
    def list_messages(
        self,
        *,
        account: str | None = None,
        destination: str | None = None,
        state: State | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[Message]: ...
    # --- retention (docs/architecture.md, "Disk: WAL and retention") --------------------------
    # ``purge_content``: the text (and the binding tag, an HMAC of it) of at most ``limit``
    # messages final before ``final_before``, earliest final first, emptied; returns how many.
    # Never a message that is not final. Reads only the final messages that still have text.
    #
    # ``delete_records``: at most ``limit`` messages final before ``final_before``, earliest
    # first, deleted with everything of theirs: attempt records, receipt, delivery row; and at
    # most ``limit`` alarms raised before it. A receipt still unsent is given up with its
    # message (it had the whole record retention to go) and counted in ``receipts_unsent``.
    # Never a message that is not final. The message of the newest receipt and the newest
    # alarm stay until newer ones exist (SQLite would give their ids again). The audit tables
    # refuse any other delete (SQLite: triggers against the horizon this call writes in the
    # same transaction, ``meta`` key ``retention_horizon``).
    def purge_content(self, final_before: float, limit: int = 500) -> int: ...
    def delete_records(self, final_before: float, limit: int = 500) -> DeletedRecords: ...

    # --- receipts outbox ---------------------------------------------------------------------
    def pending_receipts(self, account: str, limit: int = 100) -> list[Receipt]: ...
    def mark_receipt_sent(self, receipt_id: int, now: float) -> bool: ...
    # The same for many receipts in one statement; returns how many were newly marked.
    def mark_receipts_sent(self, receipt_ids: Sequence[int], now: float) -> int: ...

    # --- audit (append-only: there is no update or delete) -------------------------------------
    def append_attempt(self, rec: AttemptRecord) -> None: ...
    def attempts_between(
        self, t1: float, t2: float, account: str | None = None
    ) -> list[AttemptRecord]: ...
    def attempts_for_message(self, message_id: str) -> list[AttemptRecord]: ...
    # The last ``limit`` deliveries with a handset identity, oldest first, as (message id,
    # IMSI, MSISDN): what a delivery process remembers of "which IMSI answered for which
    # number" when it starts, so that one IMSI answering for two numbers is seen across a
    # restart too.
    def recent_deliveries(self, limit: int) -> list[tuple[str, str, str]]: ...
    # Before an attempt hands a message to the network: the identity it addresses, on the
    # message while it is in flight under this claim (``attempts``). False: the message is
    # not that claim's any more (nothing may be sent).
    def mark_addressed(self, message_id: str, attempts: int, imsi: str) -> bool: ...

    # --- integrity (DESIGN.md "Identity checks", "Fail closed") -------------------------------
    # Alarms are append-only. ``append_alarm`` returns the alarm with its id; an alarm that
    # counts towards a breaker (``core.breaker.counts``) also bumps its route's ``alarms``.
    # ``trip_route`` marks the route held (keeping the first held_at/reason) AND moves its
    # ROUTED/DEFERRED messages to HELD, in one transaction; ``release_route`` moves HELD back
    # to ROUTED (due now), clears the flag and the alarm count since release.
    def append_alarm(self, alarm: Alarm) -> Alarm: ...
    def alarms_between(self, t1: float, t2: float) -> list[Alarm]: ...
    def alarm_count(self, route: str | None = None) -> int: ...
    def trip_route(self, route: str, reason: str, now: float) -> int: ...
    def held_routes(self) -> frozenset[str]: ...
    def route_status(self) -> list[RouteStatus]: ...
    def set_fault(self, setting: FaultSetting) -> None: ...
    def list_faults(self) -> list[FaultSetting]: ...

    # --- health (DESIGN.md "Heal or shout") ------------------------------------------------------
    # ``write_episode``: an episode with id 0 is inserted (returned with its id); one with an
    # id gets its end and failure count, once (an episode already ended is left as it is).
    # ``episodes``: newest first, started at or after ``since``; ``open_only``: not ended.
    def write_episode(self, episode: Episode) -> Episode: ...
    def episodes(
        self, *, since: float | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Episode]: ...

    # --- figures for metrics and readiness (cheap: partial indexes only) -----------------------
    # The unfinished messages per state (ROUTED, DEFERRED, DISPATCHED, HELD, ACCEPTED).
    def count_unfinished_by_state(self) -> dict[State, int]: ...
    # Receipt outbox rows not yet sent.
    def count_pending_receipts(self) -> int: ...
    # Alarms per kind, over every alarm kept.
    def count_alarms_by_kind(self) -> dict[str, int]: ...
    # The earliest time at which a message claimable now became due (ROUTED/DEFERRED, due,
    # not before its schedule, unexpired, no message to its destination in flight); None when
    # there is none. ``now - oldest_due_at(now)`` is how long the oldest due message waits.
    def oldest_due_at(self, now: float) -> float | None: ...

    # --- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...

    # --- canary and attribution (issue 10, helper A) ---
    # (insert below this line)
    # Attempts with a seq above ``after_seq``, in seq order, at most ``limit``: where each went
    # (account, route, serving node) and how it ended; ``submitted_at`` from its message
    # (None once that row is gone). A reader keeps the last seq it saw.
    def attempts_since(self, after_seq: int, limit: int) -> list[AttemptView]: ...
    # Alarms with an id above ``after_id``, in id order, at most ``limit``.
    def alarms_since(self, after_id: int, limit: int) -> list[Alarm]: ...
    # Canary probe results (observe/canary.py), each given its id; one transaction.
    def append_canary_probes(self, probes: Sequence[CanaryProbe]) -> list[CanaryProbe]: ...
    def append_canary_probe(self, probe: CanaryProbe) -> CanaryProbe: ...
    # Probes with an id above ``after_id``, in id order, at most ``limit``.
    def canary_probes_since(self, after_id: int, limit: int) -> list[CanaryProbe]: ...
    # Per (route, serving node) with a probe kept: the probes of the last ``window_s`` before
    # ``now``, the latest probe, and since when it has been passing (core.model.CanaryState).
    def canary_states(self, now: float, window_s: float) -> list[CanaryState]: ...
    # Retention: probes sent before ``before``, oldest first, at most ``limit``; how many.
    def delete_canary_probes(self, before: float, limit: int = 500) -> int: ...
    def delete_canary_records(self, final_before: float, limit: int = 500) -> int:
        """Delete up to ``limit`` messages of the canary account final before
        ``final_before``, with their attempts, deliveries (and receipts: none are written);
        the number of messages. Customers' rows are untouched (schema v15)."""
        ...



    # --- alerts (issue 10, helper B) ---
    # (insert below this line)
    # Alerts (core.alert, docs/alerts.md). ``open_alert`` inserts one (its id given);
    # ``update_alert`` writes what the evaluator owns (state, severity, times, summary,
    # evidence, alarm ids) of the alert with that id and returns it as stored, with the ack
    # fields as they are there (None: no such alert): never the ack. ``ack_alert`` writes the
    # ack once (by, note, at ``now``): an alert acked before is returned unchanged; None for an
    # unknown id; ValueError for an empty ``by`` or ``note``. ``alerts``: newest first;
    # ``state`` "firing"/"resolved", ``acknowledged`` True/False, ``open_only``: firing or not
    # acknowledged (read through a partial index). ``delete_alerts``: retention, at most
    # ``limit`` alerts resolved and acknowledged before ``before``; how many.
    def open_alert(self, alert: AlertRecord) -> AlertRecord: ...
    def update_alert(self, alert: AlertRecord) -> AlertRecord | None: ...
    def ack_alert(self, alert_id: int, by: str, note: str, now: float) -> AlertRecord | None: ...
    def alert(self, alert_id: int) -> AlertRecord | None: ...
    def alerts(
        self,
        state: str | None = None,
        limit: int = 100,
        *,
        acknowledged: bool | None = None,
        open_only: bool = False,
    ) -> list[AlertRecord]: ...
    def delete_alerts(self, before: float, limit: int = 500) -> int: ...
    # Messages claimable now (ROUTED/DEFERRED, due, not before their schedule, unexpired),
    # counted up to ``limit`` (the live view's queue shape; cheap: the queued partial index).
    def count_due(self, now: float, limit: int = 100_000) -> int: ...
    # The highest attempt seq there is (0: none): where a new alert evaluator starts reading
    # (the live windows want the present, not the history).
    def last_attempt_seq(self) -> int: ...
    # ``attempts_since`` for the alert evaluator's hot path: plain tuples (seq, account,
    # route, serving_node, outcome, error, started_at, ended_at), no join, in seq order.
    def attempt_outcomes_since(
        self, after_seq: int, limit: int
    ) -> list[tuple[int, str, str, str | None, str, int | None, float, float | None]]: ...


    # --- care and operator views (issue 10, helper C) ---
    # (insert below this line)
    # ``add_complaint``: appends one complaint (returned with its id; ids never repeat).
    # ``complaints_since``: those with an id above ``after_id``, oldest first, at most
    # ``limit``. ``complaint_counts``: every complaint kept, per (route, serving_node, verdict).
    def add_complaint(self, complaint: Complaint) -> Complaint: ...
    def complaints_since(self, after_id: int, limit: int) -> list[Complaint]: ...
    def complaint_counts(self) -> dict[tuple[str, str, str], int]: ...
    # Messages submitted in ``[since, until)`` whose destination is ``number`` or whose
    # source_addr is one of ``sources``; newest first, at most ``limit``.
    def messages_of_number(
        self, number: str, sources: Sequence[str], since: float, until: float, limit: int
    ) -> list[Message]: ...
    # Messages submitted in ``[since, until)`` whose source_addr is one of ``sources``,
    # oldest first, at most ``limit`` (the complaint's candidates).
    def messages_from_sources(
        self, sources: Sequence[str], since: float, until: float, limit: int
    ) -> list[Message]: ...
    # The queue (messages not final) as (route, serving node of the last attempt or None,
    # age bucket, count): bucket i counts ages below ``edges_s[i]`` (and at or above the edge
    # before), bucket ``len(edges_s)`` the rest; age is ``now - submitted_at``.
    def queue_shape(
        self, now: float, edges_s: Sequence[float]
    ) -> list[tuple[str, str | None, int, int]]: ...
    # The receipt outbox row of a message as (state, created_at, sent_at), None when none.
    def receipt_times(self, message_id: str) -> tuple[str, float, float | None] | None: ...



    # --- interconnect config: connectors, routes, partner accounts (issue 11, helper E) ---
    # (insert below this line)
    # Each checks with ``core.interconnect`` first (ValueError, nothing written).
    # ``add_connector``: ConnectorExists; stored with the cfg's created_at/updated_at.
    # ``update_connector``: False when there is none; keeps the stored created_at.
    # ``remove_connector``: ConnectorInUse while a route's via names it; its status goes too.
    def add_connector(self, cfg: ConnectorConfig) -> ConnectorConfig: ...
    def get_connector(self, name: str) -> ConnectorConfig | None: ...
    def list_connectors(self) -> list[ConnectorConfig]: ...  # by name
    def update_connector(self, cfg: ConnectorConfig) -> bool: ...
    def remove_connector(self, name: str) -> bool: ...
    # What the running node says of its connectors: upsert by name; all rows, by name.
    def put_connector_statuses(self, statuses: Sequence[ConnectorStatus]) -> None: ...
    def connector_statuses(self) -> list[ConnectorStatus]: ...
    # ``add_route``: RouteExists; UnknownConnector when via names one that does not exist;
    # position 0 -> after the last (max + 1, from 1); a position taken -> inserted there, the
    # routes from it on move one down. Returned with the position it got.
    def add_route(self, cfg: RouteConfig) -> RouteConfig: ...
    def list_routes(self) -> list[RouteConfig]: ...  # by position (first match first)
    def remove_route(self, name: str) -> bool: ...  # its breaker row (held, alarms) stays
    # Messages that reached a final state at or after ``since``, per (route, state), counting
    # at most ``rows_max`` messages (``route list``: the last hour).
    def final_counts_by_route(
        self, since: float, rows_max: int = 200_000
    ) -> dict[tuple[str, str], int]: ...


    # --- forwards to partners and their receipts (issue 11, main) ---
    # (insert below this line)
    # store/forwards.py has the rules. ``record_forwarded``: the attempt's outcome (``item``,
    # DISPATCHED -> FORWARDED, as in ``finish_attempts``) and its parts' partner ids in ONE
    # transaction; a partner id the connector gave another message too raises a
    # ``partner_id_reused`` alarm; receipts held for these ids are applied. Raises what
    # ``finish_attempts`` would return for the item (StaleState, ...).
    # ``apply_partner_receipt``: a receipt from a partner, by (connector, readings of its id):
    # applied, held for its mapping, or alarmed when it matches more than one message.
    # ``expire_held_receipts``: held receipts received before ``received_before`` are given up,
    # one ``partner_receipt_unmatched`` alarm each. ``expire_forwarded``: FORWARDED messages
    # whose validity ended before ``now - grace_s`` end UNKNOWN.
    def record_forwarded(
        self, item: FinishedAttempt, parts: Sequence[ForwardPart]
    ) -> ForwardResult: ...
    # ``record_forwarded_many``: the same for the outcomes of one loop turn, each item's
    # result (or the exception ``finish_attempts`` returned for it) in order.
    def record_forwarded_many(
        self, items: Sequence[tuple[FinishedAttempt, Sequence[ForwardPart]]]
    ) -> list[ForwardResult | Exception]: ...
    def apply_partner_receipt(self, receipt: PartnerReceipt, now: float) -> ReceiptResult: ...
    # ``apply_partner_receipts``: several, in order, in one unit of work (one loop turn's)
    def apply_partner_receipts(
        self, receipts: Sequence[PartnerReceipt], now: float
    ) -> list[ReceiptResult]: ...
    def expire_held_receipts(
        self, received_before: float, now: float, limit: int = 500
    ) -> list[Alarm]: ...
    def expire_forwarded(self, now: float, grace_s: float, limit: int = 500) -> list[Message]: ...
    def forwards_of_message(self, message_id: str) -> list[ForwardPart]: ...
    def count_held_receipts(self) -> int: ...


    # --- HTTP senders: API keys, idempotency, callbacks outbox (issue 12, helper S) ---
    # (insert below this line)
    # API keys: the secret part is 32 random octets, kept as sha256(secret) (``secret_hash``),
    # compared by the caller with hmac.compare_digest. ``add_api_key``: UnknownAccount when
    # there is no such account, ValueError for a bad key_id or hash, StoreError when the
    # key_id exists. ``api_keys``: the account's, oldest first. ``revoke_api_key``: True when
    # it revoked that key of that account now (False: none such, or revoked before).
    # ``set_account_callbacks``: the account's callback settings, all three replaced
    # (``core.callbacks.check_account_callbacks``: ValueError, nothing written);
    # UnknownAccount when there is no such account.
    def add_api_key(self, account: str, key_id: str, secret_hash: bytes, now: float) -> None: ...
    def api_key(self, key_id: str) -> ApiKey | None: ...
    def api_keys(self, account: str) -> list[ApiKey]: ...
    def revoke_api_key(self, account: str, key_id: str, now: float) -> bool: ...
    def set_account_callbacks(
        self, account: str, *, url: str | None, hosts: tuple[str, ...], secret: bytes | None
    ) -> None: ...
    # Idempotency records, kept durably until ``prune_idempotency`` (retention: those created
    # before ``before``, at most ``limit``; how many). ``idempotency_put`` belongs in the unit
    # of work of the ``insert_messages`` it answers for (``batch``/``savepoint``);
    # IdempotencyExists when the (account, key) has one already (nothing written),
    # ValueError for what may not be kept (``check_idempotency``).
    def idempotency_get(self, account: str, key: str) -> IdempotencyRecord | None: ...
    def idempotency_put(
        self, account: str, key: str, body_hash: bytes, status: int, response: str, now: float
    ) -> None: ...
    def prune_idempotency(self, before: float, limit: int = 5000) -> int: ...
    # The callbacks outbox. Written by the store itself in the transaction of the state
    # change, for every message whose ``extra["cb"]`` (core.callbacks.encode_spec) asks for
    # the event (``planned_callback``): ``insert_messages`` writes ACCEPTED, every move to
    # DEFERRED, FORWARDED or a final state its event (transition, apply_transitions,
    # finish_attempts, record_forwarded(_many), apply_partner_receipt(s), expire_due,
    # expire_forwarded, recover_leases, cancel). Account, source and destination are the
    # message's own (I4); ``at`` is the time of the change, ``next_attempt_at`` the same.
    # ``due_callbacks``: per message only its oldest pending event (neither sent nor given
    # up), and only when that one is due; by (next_attempt_at, event_id), at most ``limit``.
    # ``callbacks_sent``, ``callback_retry`` (next try at ``next_attempt_at``) and
    # ``callback_gave_up`` count one attempt each and touch only pending rows.
    # ``prune_callbacks``: rows sent or given up before ``before``, at most ``limit``; how
    # many. Pending rows go only with their message (``delete_records``).
    def due_callbacks(self, now: float, limit: int) -> list[Callback]: ...
    def callbacks_sent(self, event_ids: Sequence[int], now: float) -> None: ...
    def callback_retry(
        self, event_id: int, next_attempt_at: float, last_status: int | None
    ) -> None: ...
    def callback_gave_up(self, event_id: int, now: float, last_status: int | None) -> None: ...
    def callbacks_of_message(self, message_id: str) -> list[Callback]: ...
    def pending_callbacks(self) -> int: ...
    def prune_callbacks(self, before: float, limit: int = 5000) -> int: ...
    # The messages of ``account`` with that client_reference, newest first, at most ``limit``.
    def messages_by_reference(
        self, account: str, client_reference: str, limit: int
    ) -> list[Message]: ...

    # --- credential guessing: lockout counters (issue 13, helper bind) ---
    # The rows of core.lockout, kept so that a restart resets no lockout. ``lockout_rows``:
    # every row, in key order. ``put_lockout_rows``: each row written whole (inserted or
    # replacing the row of its key), then the rows of ``deleted`` keys (realm, scope,
    # principal, address) removed; one unit of work.
    def lockout_rows(self) -> list[LockoutRow]: ...
    def put_lockout_rows(
        self, rows: Sequence[LockoutRow], deleted: Sequence[tuple[str, str, str, str]] = ()
    ) -> None: ...




def check_changes(changes: Mapping[str, object]) -> None:
    bad = set(changes) - MUTABLE_FIELDS
    if bad:
        raise ValueError(f"fields not changeable by a transition: {sorted(bad)}")


def iter_chunks(seq: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class NotPending(StoreError):
    """cancel_sm / replace_sm on a message that is final or in flight."""

    def __init__(self, message_id: str, actual: State) -> None:
        super().__init__(f"message {message_id} is {actual.value}: not cancellable/replaceable")
        self.message_id = message_id
        self.actual = actual


def plan_transition(
    row: Message,
    expected_state: State,
    new_state: State,
    now: float,
    expected_attempts: int | None,
    changes: Mapping[str, object],
    already_delivered: bool,
) -> Message:
    """The shared rules of ``Store.transition``: validate and return the new row value.

    Raises ValueError (unchangeable field), IllegalTransition, DuplicateDelivery, StaleState.
    """
    check_changes(changes)
    check_transition(expected_state, new_state)
    if new_state is State.DELIVERED and (already_delivered or row.state is State.DELIVERED):
        raise DuplicateDelivery(row.id)
    if row.state is not expected_state:
        raise StaleState(row.id, expected_state, row.state)
    if expected_attempts is not None and row.attempts != expected_attempts:
        raise StaleState(row.id, expected_state, row.state, f"attempt {row.attempts}")
    values: dict[str, object] = {}
    if row.state is State.DISPATCHED:
        values["lease_until"] = None
        values["lease_owner"] = None
    values.update(changes)
    values["state"] = new_state
    if new_state in FINAL_STATES:
        values["final_at"] = now
        values["lease_until"] = None
        values["lease_owner"] = None
    if "extra" in values:
        values["extra"] = dict(values["extra"])  # type: ignore[call-overload]
    return evolve(row, values)


def plan_finish(row: Message, item: FinishedAttempt, already_delivered: bool) -> Message:
    """The shared rules of ``Store.finish_attempts`` for one item against the stored ``row``:
    those of :func:`plan_transition` from DISPATCHED at the claim's attempt, then the claim's
    lease owner, account and destination. Returns the new row value."""
    claimed = item.claimed
    if item.record.message_id != claimed.id or row.id != claimed.id:
        raise ValueError("attempt record, claim and row must be of one message")
    new = plan_transition(
        row,
        State.DISPATCHED,
        item.new_state,
        item.now,
        claimed.attempts,
        item.changes,
        already_delivered,
    )
    if row.lease_owner != claimed.lease_owner:
        raise StaleState(row.id, State.DISPATCHED, row.state, "lease owner")
    if row.account != claimed.account or row.destination != claimed.destination:
        raise StaleState(row.id, State.DISPATCHED, row.state, "not the claimed message")
    return new


def apply_each(store: Store, items: Sequence[Transition], now: float) -> list[Message | Exception]:
    """``Store.apply_transitions`` for every back end: one unit of work, each item in its own
    savepoint (a refused item is returned, not raised, and leaves no partial effect)."""
    out: list[Message | Exception] = []
    with store.batch():
        for it in items:
            try:
                out.append(
                    store.transition(
                        it.message_id,
                        it.expected_state,
                        it.new_state,
                        now,
                        expected_attempts=it.expected_attempts,
                        **dict(it.changes),
                    )
                )
            except (StoreError, ValueError) as e:
                out.append(e)
    return out


def check_new_message(msg: Message) -> None:
    if not 0 <= msg.priority <= 3:
        raise ValueError("priority must be 0..3")
    if not msg.id:
        raise ValueError("message id must not be empty")
    ref = msg.client_reference
    if ref is not None and not 0 < len(ref) <= CLIENT_REFERENCE_LENGTH_MAX:
        raise ValueError(f"client_reference must be 1..{CLIENT_REFERENCE_LENGTH_MAX} characters")
