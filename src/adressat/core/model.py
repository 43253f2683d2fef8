"""The message record and its states (DESIGN.md, "Message lifecycle").

A :class:`Message` is an immutable value: every change is a new value written by the store in
one transaction (``dataclasses.replace`` in memory, one UPDATE in SQL). Nothing here touches a
clock, a socket or a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    """Message states. The legal moves between them are the table in ``core.lifecycle``."""

    ACCEPTED = "ACCEPTED"
    ROUTED = "ROUTED"
    DISPATCHED = "DISPATCHED"
    DEFERRED = "DEFERRED"
    HELD = "HELD"
    #: handed to a partner operator over SMPP (it answered ESME_ROK); its fate is the
    #: partner's receipt, or UNKNOWN at validity end plus a grace (issue 11)
    FORWARDED = "FORWARDED"
    DELIVERED = "DELIVERED"
    EXPIRED = "EXPIRED"
    UNDELIVERABLE = "UNDELIVERABLE"
    REJECTED = "REJECTED"
    QUARANTINED = "QUARANTINED"
    CANCELLED = "CANCELLED"  # cancel_sm by the submitter; receipt stat DELETED
    UNKNOWN = "UNKNOWN"  # a partner never said what became of it (receipt stat UNKNOWN)


#: The account of the canary prober's messages (observe/canary.py). Names starting with "_"
#: are the node's own: ``adressat account add`` refuses them, so no ESME can bind as it. Its
#: messages ask for no receipt and are left out of customer figures and incident reports.
CANARY_ACCOUNT = "_canary"

FINAL_STATES: frozenset[State] = frozenset(
    {
        State.DELIVERED,
        State.EXPIRED,
        State.UNDELIVERABLE,
        State.REJECTED,
        State.QUARANTINED,
        State.CANCELLED,
        State.UNKNOWN,
    }
)
#: States the scheduler may claim from (when due).
QUEUED_STATES: frozenset[State] = frozenset({State.ROUTED, State.DEFERRED})
#: States in which the submitter may still cancel or replace a message.
PENDING_STATES: frozenset[State] = frozenset(
    {State.ACCEPTED, State.ROUTED, State.DEFERRED, State.HELD}
)

ExtraValue = int | str


@dataclass(frozen=True, slots=True)
class Message:
    """One short message as durably recorded.

    ``destination`` is E.164 digits without '+'. ``content`` is the short_message (or
    message_payload) exactly as submitted, including the UDH when ``esm_class`` has UDHI.
    ``extra`` keeps JSON-able values to pass on (SAR TLVs, user_message_reference, ...).
    Times are epoch seconds. ``attempts`` counts delivery attempts started (claims).
    ``scts`` is the message's TP-SCTS (TS 23.040 §6.2, §9.2.3.11) as an epoch second: given by
    the store at the claim of its first attempt, distinct for every message to one
    destination (a counter per destination: ``max(now, last + 1 s)``), and kept for every
    resend, so a handset takes a resend for what it is and two different messages to one
    number never look alike to it (None: not yet attempted, or first attempted before schema
    v9). The parts of a long message share it and differ in their concatenation element.
    ``reference`` is the TP-MR such a message was first attempted with before schema v9 (from
    a counter per destination since v4): SMS-DELIVER has no TP-MR, but netsim's handsets
    recognised resends by it then, so a message in flight across the upgrade keeps it for its
    resends (None for everything first attempted since, and before v4).
    ``client_reference`` is the sender's own reference for it (HTTP API, issue 12), by which
    it finds its messages again (``Store.messages_by_reference``).
    ``addressed_imsi`` is the identity the latest attempt was about to be handed to, made
    durable before anything went out: after a crash in the middle of an attempt, the retry goes
    only to that identity (I3), as after a timeout.
    """

    id: str
    account: str
    source_addr: str
    destination: str
    content: bytes
    submitted_at: float
    expires_at: float
    source_ton: int = 0
    source_npi: int = 0
    data_coding: int = 0
    esm_class: int = 0
    registered_delivery: int = 0
    priority: int = 0
    protocol_id: int = 0
    not_before: float = 0.0
    state: State = State.ACCEPTED
    route: str = ""
    attempts: int = 0
    next_attempt_at: float = 0.0
    tag: bytes = b""
    final_at: float | None = None
    error: int | None = None
    delivered_imsi: str | None = None
    delivered_msisdn: str | None = None
    lease_until: float | None = None
    lease_owner: str | None = None
    extra: dict[str, ExtraValue] = field(default_factory=dict, hash=False)
    reference: int | None = None
    addressed_imsi: str | None = None
    scts: int | None = None
    #: the sender's own reference (HTTP API ``client_reference``, at most
    #: CLIENT_REFERENCE_LENGTH_MAX characters; issue 12, schema v18); None: none given
    client_reference: str | None = None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def __repr__(self) -> str:  # never the text (I6)
        return (
            f"Message(id={self.id!r}, account={self.account!r}, "
            f"destination={self.destination!r}, state={self.state.value}, "
            f"route={self.route!r}, attempts={self.attempts}, content=<{len(self.content)} octets>)"
        )


_FIELD_NAMES: tuple[str, ...] = tuple(Message.__dataclass_fields__)
_FIELD_SET: frozenset[str] = frozenset(_FIELD_NAMES)


_SETTERS = tuple(Message.__dict__[name].__set__ for name in _FIELD_NAMES)  # slot descriptors


def message_from_values(values: Sequence[object]) -> Message:
    """A Message from the values of all its fields, in field order (as the store reads a
    row). Half the cost of the frozen dataclass's ``__init__`` (2.9 against 5.6 us), which
    runs for every message accepted and every message claimed."""
    new = object.__new__(Message)
    for set_, value in zip(_SETTERS, values, strict=True):
        set_(new, value)
    return new


def evolve(msg: Message, changes: dict[str, object]) -> Message:
    """``dataclasses.replace`` for the hot path (about ten times cheaper): a copy of ``msg``
    with ``changes`` applied. Unknown field names raise TypeError, as ``replace`` does."""
    unknown = changes.keys() - _FIELD_SET
    if unknown:
        raise TypeError(f"Message has no field(s) {sorted(unknown)}")
    new = object.__new__(Message)
    setattr_ = object.__setattr__
    for name in _FIELD_NAMES:
        setattr_(new, name, changes[name] if name in changes else getattr(msg, name))
    return new


#: Fields a transition may change; everything else is the immutable durable record (I2).
MUTABLE_FIELDS: frozenset[str] = frozenset(
    {
        "route",
        "attempts",
        "next_attempt_at",
        "final_at",
        "error",
        "delivered_imsi",
        "delivered_msisdn",
        "lease_until",
        "lease_owner",
        "extra",
    }
)


def receipt_wanted(registered_delivery: int, final_state: State) -> bool:
    """SMPP 3.4 registered_delivery bits 0-1: 1 = receipt on success or failure,
    2 = receipt on failure only; 0 and 3 (reserved) = none."""
    bits = registered_delivery & 0x03
    if bits == 1:
        return True
    if bits == 2:
        return final_state is not State.DELIVERED
    return False


@dataclass(frozen=True, slots=True)
class Receipt:
    """An outbox row: the final state of a message, owed to its submitting account only (I4).

    ``source_addr``/``destination`` are the original message's; the receipt deliver_sm swaps
    them.
    """

    receipt_id: int
    message_id: str
    account: str
    state: State
    error: int | None
    submitted_at: float
    final_at: float
    source_addr: str
    source_ton: int
    source_npi: int
    destination: str
    sent_at: float | None = None
    user_message_reference: int | None = None  # the submitter's own, echoed (SMPP 3.4 5.3.2.17)


def receipt_reference(msg: Message) -> int | None:
    """The ``user_message_reference`` a submitter gave its message, for its receipt."""
    value = msg.extra.get("user_message_reference")
    return value if isinstance(value, int) else None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One delivery attempt, append-only (DESIGN.md, "Forensics"). No message text."""

    message_id: str
    account: str
    destination: str
    imsi: str | None
    route: str
    node: int
    attempt: int
    started_at: float
    ended_at: float | None
    outcome: str
    error: int | None = None
    #: netsim's MSC/VLR the register answered for this attempt (e.g. "msc-2"); None when
    #: none was answered (unknown, absent, a refusal before the lookup) or before schema v12
    serving_node: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptView:
    """One attempt as the operator's views read it (``Store.attempts_since``): where it went
    (account, route, serving node), how it ended, and when its message was submitted (None
    once the message's row is gone by retention). No number, no text."""

    seq: int
    message_id: str
    account: str
    route: str
    serving_node: str | None
    outcome: str
    error: int | None
    started_at: float
    ended_at: float | None
    submitted_at: float | None


#: Results of a canary probe (observe/canary.py).
CANARY_RESULTS: tuple[str, ...] = (
    "passed", "misdelivered", "wrong_content", "late", "lost", "failed", "held",
)


@dataclass(frozen=True, slots=True)
class CanaryProbe:
    """One canary probe's result. ``id`` is given by the store (0 before it is appended).
    ``at`` is when the probe was sent; ``latency_s`` from then to the canary handset storing
    it (None: not stored). ``detail`` is a short machine-readable string (never text)."""

    id: int
    at: float
    route: str
    serving_node: str | None
    destination: str
    message_id: str
    result: str
    latency_s: float | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CanaryState:
    """The canaries of one (route, serving node) over the last ``window_s``: ``all_passed``
    when there was at least one probe and every one passed; ``passing_since`` the time of
    the first probe that passed after the last one that did not (None when the last one did
    not pass)."""

    route: str
    serving_node: str | None
    probes: int
    passed: int
    failed: int
    last_at: float | None
    last_result: str | None
    all_passed: bool
    passing_since: float | None


def canary_state(
    route: str,
    serving_node: str | None,
    window: Sequence[tuple[float, str]],
    last_at: float | None,
    last_result: str | None,
    passing_since: float | None,
) -> CanaryState:
    """The state of one place from its probes in the window ((at, result), any order), its
    latest probe kept and the start of its current run of passes (both store back ends)."""
    passed = sum(1 for _, r in window if r == "passed")
    failed = len(window) - passed
    return CanaryState(
        route,
        serving_node,
        len(window),
        passed,
        failed,
        last_at,
        last_result,
        bool(window) and failed == 0,
        passing_since if last_result == "passed" else None,
    )


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    password_hash: str
    throughput_per_s: int | None = None
    #: A partner operator's account (issue 11): it submits only to ``partner_ranges``
    #: (E.164 prefixes, digits; anything else ESME_RINVDSTADR), and a message it submitted is
    #: never routed out again through one of ``partner_connectors`` (loop prevention).
    partner: bool = False
    partner_ranges: tuple[str, ...] = ()
    partner_connectors: tuple[str, ...] = ()
    # issue 12, helper S: status callbacks of an HTTP sender. ``callback_url``: the default
    # callback URL; a callback URL (given with a message or this one) is allowed only when its
    # host is ``callback_url``'s host or one of ``callback_hosts``. ``webhook_secret``: the
    # HMAC-SHA256 key of its webhook signatures (core.callbacks.WEBHOOK_SECRET_LENGTH octets).
    callback_url: str | None = None
    callback_hosts: tuple[str, ...] = ()
    webhook_secret: bytes | None = None
    # issue 13 (core/accounts.py has the rules): ``disabled_at`` set: no binds, no HTTP, its
    # sessions ended; ``disabled_keep_queue``: its queued messages still go out meanwhile.
    # ``sessions_max`` None: the node-wide account_sessions_max. ``allow_ip``: networks it may
    # bind or use its HTTP keys from (none: any). ``senders``: its sender rules (none: any).
    disabled_at: float | None = None
    disabled_keep_queue: bool = False
    sessions_max: int | None = None
    allow_ip: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def __repr__(self) -> str:  # never the password hash nor the webhook secret
        return (
            f"Account(name={self.name!r}, partner={self.partner}, "
            f"callback_url={self.callback_url!r}, callback_hosts={self.callback_hosts!r}, "
            f"disabled={self.disabled})"
        )


#: The longest ``Message.client_reference`` (characters).
CLIENT_REFERENCE_LENGTH_MAX = 64

# --- interconnect (issue 11) ---------------------------------------------------------------

#: Connector bind modes: one transceiver session, or a transmitter and a receiver side by side.
CONNECTOR_BINDS: tuple[str, ...] = ("trx", "tx")
#: Live states of a connector (``ConnectorStatus.state``).
CONNECTOR_STATES: tuple[str, ...] = ("bound", "connecting", "down", "stopped")


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """An SMPP client connection to another operator or hub, as the operator configured it
    (``adressat connector add``). ``throughput_per_s`` 0: no limit of ours (the partner may
    still throttle). ``payload``: a long message may go whole in ``message_payload``; else as
    UDH parts, one submit_sm each."""

    name: str
    host: str
    port: int
    system_id: str
    password: str
    bind: str = "trx"
    window: int = 10
    throughput_per_s: int = 0
    system_type: str = ""
    enquire_link_s: float = 30.0
    payload: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    #: how the partner spells a message id in its receipts (core.interconnect.id_candidates)
    receipt_ids: str = "auto"


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    """What a running node last said about one connector (written by the delivery process
    about once a second while something changes; ``updated_at`` tells how fresh)."""

    name: str
    state: str  # CONNECTOR_STATES
    since: float  # in this state since
    sessions: int = 0  # sessions bound now
    window_in_use: int = 0
    sent: int = 0  # submit_sm answered ESME_ROK, since the node started
    failed: int = 0  # refused or unanswered
    receipts: int = 0  # receipts received
    detail: str = ""  # a short reason (the last bind status, "connection refused", ...)
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """One operator-defined route (``adressat route add``): a rule, first match by
    ``position``. Matches when every given criterion does: a destination prefix (any of
    ``prefixes``; none: any), the resolved ``operator``, the submitting ``account``, the local
    time ``window`` ("HH:MM-HH:MM"). ``via``: connector names in failover order."""

    name: str
    via: tuple[str, ...]
    prefixes: tuple[str, ...] = ()
    operator: str | None = None
    account: str | None = None
    window: str | None = None
    position: int = 0
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ForwardPart:
    """One part of a message handed to a partner over one of our connectors (issue 11), keyed
    by (message_id, part). ``partner_id``: the partner's message id for it in canonical form
    (``core.interconnect.canonical_id``); None for a part the partner never accepted (then
    ``state`` is already final). ``state``: FORWARDED until the part's receipt, then the final
    state that receipt said."""

    message_id: str
    part: int  # 1-based
    parts: int
    connector: str
    partner_id: str | None
    state: State = State.FORWARDED
    error: int | None = None
    at: float = 0.0
    receipt_at: float | None = None


@dataclass(frozen=True, slots=True)
class PartnerReceipt:
    """A receipt a partner sent over one of our connectors: the id it names (as sent, with
    every canonical reading of it, the literal one first), the final state it says (None: not
    final, e.g. ENROUTE), the partner's own error text (``err:``, at most 3 characters)."""

    connector: str
    candidates: tuple[str, ...]
    state: State | None
    received_at: float
    partner_err: str = ""
    session: int = 0
    #: the candidate the connector's learned spelling names (core.interconnect
    #: ReceiptSpelling): when the readings match several messages, this one's is taken
    preferred: str | None = None
