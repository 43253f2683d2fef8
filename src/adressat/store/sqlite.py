"""SQLite back end: one file, WAL, synchronous=FULL, one connection serialised by a lock.

Every public method is one transaction (BEGIN IMMEDIATE ... COMMIT), or, inside ``batch()``,
one SAVEPOINT of the batch's single transaction (one commit, one fsync for the batch).

Reads share the connection and its lock, so a reader on another thread waits for a running
batch to commit (a few ms); it never sees uncommitted data.

Several processes write one file (the SMPP process, the delivery process, the CLI): each write
transaction first takes an exclusive ``flock`` on ``<db>.wlock``. SQLite's own busy handler
polls with sleeps of 1, 2, 5, 10 ... ms, which would put those sleeps into submit latency; a
blocked ``flock`` wakes the moment the other writer commits (and releases the GIL meanwhile).

``claim_due`` reads, per priority level, at most ``4 * limit + 64`` candidates in due order
(index ``messages_due``; destinations with a DISPATCHED message are excluded in SQL) and keeps
the first per destination. It never breaks per-destination ordering; if the head of the queue
is dominated by a few destinations it may return fewer than ``limit`` (the rest come on the
next claims). MemoryStore has no such cap.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adressat.core.accounts import (
    CANCEL_ON_REMOVE,
    HELD_BY_ACCOUNT,
    HOLD_CLAIMED,
    HOLD_ON_DISABLE,
    RELEASE_ON_ENABLE,
    check_account_fields,
)
from adressat.core.alert import AlertRecord, check_ack, check_alert, check_alert_filters
from adressat.core.breaker import counts as counts_for_breaker
from adressat.core.callbacks import Callback, CallbackEvent, check_account_callbacks
from adressat.core.care import Complaint
from adressat.core.health import Episode, EpisodeKind
from adressat.core.integrity import Alarm, AlarmKind, FaultSetting, RouteStatus
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
    message_from_values,
    receipt_reference,
    receipt_wanted,
)
from adressat.core.scheduling import counter_key, give_scts, takes_scts
from adressat.store.base import (
    ACCOUNTS_VERSION_KEY,
    AccountExists,
    ApiKey,
    ConnectorExists,
    ConnectorInUse,
    DeletedRecords,
    DuplicateDelivery,
    DuplicateMessage,
    FinishedAttempt,
    IdempotencyExists,
    IdempotencyRecord,
    NotPending,
    RouteExists,
    StaleState,
    StoreError,
    StoreUnavailable,
    Transition,
    UnknownAccount,
    UnknownConnector,
    UnknownMessage,
    apply_each,
    check_api_key,
    check_changes,
    check_idempotency,
    check_new_message,
    iter_chunks,
    plan_finish,
    plan_transition,
    planned_callback,
)
from adressat.store.content_crypto import (
    OVERHEAD_OCTETS,
    ContentCipher,
    KeyringError,
    blob_key_id,
    keyring_path,
)
from adressat.store.forwards import ForwardingStore
from adressat.store.migrations import (
    CANARY_HORIZON_META,
    MESSAGE_COLUMNS,
    RETENTION_HORIZON_META,
    migrate_sqlite,
)
from adressat.store.wlock import WriteLock

_COLS = ", ".join(MESSAGE_COLUMNS)
_PLACEHOLDERS = ", ".join("?" for _ in MESSAGE_COLUMNS)
_QUEUED = "('ROUTED', 'DEFERRED')"
_PENDING = "('ACCEPTED', 'ROUTED', 'DEFERRED', 'HELD')"
_RECEIPT_COLS = (
    "receipt_id, message_id, account, state, error, submitted_at, final_at, "
    "source_addr, source_ton, source_npi, destination, sent_at, user_message_reference"
)
_ATTEMPT_COLS = (
    "message_id, account, destination, imsi, route, node, attempt, started_at, ended_at, "
    "outcome, error, serving_node"
)
_ACCOUNT_COLS = (
    "name, password_hash, throughput_per_s, partner, partner_ranges, partner_connectors,"
    " callback_url, callback_hosts, webhook_secret,"
    " disabled_at, disabled_keep_queue, sessions_max, allow_ip, senders"
)
_CONNECTOR_COLS = (
    "name, host, port, system_id, password, bind, window_size, throughput_per_s, system_type,"
    " enquire_link_s, payload, created_at, updated_at, receipt_ids"
)
_STATUS_COLS = (
    "name, state, since, sessions, window_in_use, sent, failed, receipts, detail, updated_at"
)
_ROUTE_COLS = "name, via, prefixes, operator, account, time_window, position, created_at"
_ALARM_COLS = "id, at, kind, message_ids, account, route, node, adapter, detail, serving_node"
_CANARY_COLS = "id, at, route, serving_node, destination, message_id, result, latency_s, detail"
#: what a forwarded message's final transition writes (as ``transition`` names them)
_FORWARD_END_NAMES = frozenset(("state", "error", "extra", "lease_until", "lease_owner",
                                "final_at"))
_STATE_IDX = MESSAGE_COLUMNS.index("state")
_EXTRA_IDX = MESSAGE_COLUMNS.index("extra")


_MESSAGE_VALUES = operator.attrgetter(*MESSAGE_COLUMNS)


def _to_row(m: Message, cipher: ContentCipher) -> tuple[Any, ...]:
    values: list[Any] = list(_MESSAGE_VALUES(m))
    values[_STATE_IDX] = m.state.value
    values[_CONTENT_IDX] = cipher.encrypt(m.content, m.id)
    extra = m.extra
    values[_EXTRA_IDX] = json.dumps(extra, separators=(",", ":"), sort_keys=True) if extra else "{}"
    return tuple(values)


_STATES = {s.value: s for s in State}
_CONTENT_IDX = MESSAGE_COLUMNS.index("content")
_TAG_IDX = MESSAGE_COLUMNS.index("tag")
assert tuple(MESSAGE_COLUMNS) == tuple(Message.__dataclass_fields__), "columns = fields, in order"


def _from_row(row: Sequence[Any], cipher: ContentCipher) -> Message:
    values = list(row)
    values[_STATE_IDX] = _STATES[values[_STATE_IDX]]
    extra = values[_EXTRA_IDX]
    values[_EXTRA_IDX] = {} if extra == "{}" else json.loads(extra)
    if type(values[_TAG_IDX]) is not bytes:
        values[_TAG_IDX] = bytes(values[_TAG_IDX])
    values[_CONTENT_IDX] = cipher.decrypt(bytes(values[_CONTENT_IDX]), values[0])
    return message_from_values(values)  # the columns are the fields, in order


def _column_value(name: str, value: object) -> object:
    """A column's value as stored, for every column but ``content`` (``_message_value``)."""
    if name == "extra":
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, State):
        return value.value
    return value


_DEST_IDX = MESSAGE_COLUMNS.index("destination")
_ATTEMPTS_IDX = MESSAGE_COLUMNS.index("attempts")
_LEASE_UNTIL_IDX = MESSAGE_COLUMNS.index("lease_until")
_LEASE_OWNER_IDX = MESSAGE_COLUMNS.index("lease_owner")
_SCTS_IDX = MESSAGE_COLUMNS.index("scts")


def _message_value(name: str, m: Message, cipher: ContentCipher) -> object:
    """Column ``name`` of ``m`` as stored: the content encrypted (under the message's id)."""
    if name == "content":
        return cipher.encrypt(m.content, m.id)
    return _column_value(name, getattr(m, name))


def _claimed_from_row(
    row: Sequence[Any], lease_until: float, owner: str, scts: int | None,
    cipher: ContentCipher,
) -> Message:
    """The message of a queued row as ``claim_due`` leaves it: DISPATCHED, one attempt more,
    under the lease, with its TP-SCTS (one Message built, not two)."""
    values = list(row)
    values[_STATE_IDX] = State.DISPATCHED
    values[_ATTEMPTS_IDX] += 1
    values[_LEASE_UNTIL_IDX] = lease_until
    values[_LEASE_OWNER_IDX] = owner
    values[_SCTS_IDX] = scts
    extra = values[_EXTRA_IDX]
    values[_EXTRA_IDX] = {} if extra == "{}" else json.loads(extra)
    if type(values[_TAG_IDX]) is not bytes:
        values[_TAG_IDX] = bytes(values[_TAG_IDX])
    values[_CONTENT_IDX] = cipher.decrypt(bytes(values[_CONTENT_IDX]), values[0])
    return message_from_values(values)


def _move_timestamps(c: sqlite3.Connection, moves: Sequence[tuple[int, int]]) -> None:
    c.executemany(
        "INSERT INTO destination_timestamps (number, last_scts) VALUES (?, ?)"
        " ON CONFLICT (number) DO UPDATE SET last_scts = excluded.last_scts",
        moves,
    )


def _next_scts(c: sqlite3.Connection, destination: str, now: float) -> int:
    """The next TP-SCTS of one destination, its counter moved on (in ``c``'s transaction)."""
    key = counter_key(destination)
    row = c.execute(
        "SELECT last_scts FROM destination_timestamps WHERE number = ?", (key,)
    ).fetchone()
    scts = give_scts(None if row is None else row[0], now)
    _move_timestamps(c, ((key, scts),))
    return scts


# what an account's disable holds is the queue the partial index messages_expiry covers
assert {State(v.strip(" '")) for v in _QUEUED.strip("()").split(",")} == HOLD_ON_DISABLE


def _bump_accounts(c: sqlite3.Connection) -> None:
    """``accounts.version`` moves on in the transaction of every account change: the running
    node polls it (app/node.py) and applies the change within a second or two."""
    c.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE"
              " SET value = CAST(value AS INTEGER) + 1", (ACCOUNTS_VERSION_KEY,))


def _holds_queue(c: sqlite3.Connection, account: str) -> bool:
    return c.execute("SELECT 1 FROM accounts WHERE name = ? AND disabled_at IS NOT NULL"
                     " AND disabled_keep_queue = 0", (account,)).fetchone() is not None


# the queued messages of a route, found through the partial index of the queued (schema v6:
# there is no index of every message by state), never by reading every message
_HOLD_QUEUED = (
    "UPDATE messages INDEXED BY messages_expiry SET state = 'HELD'"
    f" WHERE route = ? AND state IN {_QUEUED}"
)
# each term counts one partial index (schema v6), never the finished messages
_COUNT_UNFINISHED = (
    "SELECT (SELECT COUNT(*) FROM messages INDEXED BY messages_expiry"
    f"  WHERE state IN {_QUEUED})"
    " + (SELECT COUNT(*) FROM messages INDEXED BY messages_dispatched"
    "  WHERE state = 'DISPATCHED')"
    " + (SELECT COUNT(*) FROM messages INDEXED BY messages_held WHERE state = 'HELD')"
    " + (SELECT COUNT(*) FROM messages INDEXED BY messages_accepted WHERE state = 'ACCEPTED')"
    " + (SELECT COUNT(*) FROM messages INDEXED BY messages_forwarded"
    "  WHERE state = 'FORWARDED')"
)

_COMPLAINT_COLS = "id, at, number, about_at, sender, message_id, verdict, route, serving_node"
#: the unfinished messages (id, route, submitted_at), each state through its partial index
_UNFINISHED = (
    "SELECT id, route, submitted_at FROM messages INDEXED BY messages_expiry"
    f" WHERE state IN {_QUEUED}"
    " UNION ALL SELECT id, route, submitted_at FROM messages INDEXED BY messages_dispatched"
    " WHERE state = 'DISPATCHED'"
    " UNION ALL SELECT id, route, submitted_at FROM messages INDEXED BY messages_held"
    " WHERE state = 'HELD'"
    " UNION ALL SELECT id, route, submitted_at FROM messages INDEXED BY messages_accepted"
    " WHERE state = 'ACCEPTED'"
    " UNION ALL SELECT id, route, submitted_at FROM messages INDEXED BY messages_forwarded"
    " WHERE state = 'FORWARDED'"
)
#: the serving node of a message's last attempt (attempts.serving_node: schema v12)
_LAST_SERVING_NODE = (
    "(SELECT a.serving_node FROM attempts AS a INDEXED BY attempts_message"
    " WHERE a.message_id = u.id ORDER BY a.seq DESC LIMIT 1)"
)

_COUNT_UNFINISHED_BY_STATE = (
    "SELECT state, COUNT(*) FROM messages INDEXED BY messages_expiry"
    f"  WHERE state IN {_QUEUED} GROUP BY state"
    " UNION ALL SELECT 'DISPATCHED', COUNT(*) FROM messages INDEXED BY messages_dispatched"
    "  WHERE state = 'DISPATCHED'"
    " UNION ALL SELECT 'HELD', COUNT(*) FROM messages INDEXED BY messages_held"
    "  WHERE state = 'HELD'"
    " UNION ALL SELECT 'ACCEPTED', COUNT(*) FROM messages INDEXED BY messages_accepted"
    "  WHERE state = 'ACCEPTED'"
    " UNION ALL SELECT 'FORWARDED', COUNT(*) FROM messages INDEXED BY messages_forwarded"
    "  WHERE state = 'FORWARDED'"
)
_DUE_SCAN_MAX = 1000
_OLDEST_DUE = (
    "SELECT MIN(MAX(next_attempt_at, not_before)) FROM (SELECT next_attempt_at, not_before,"
    "  destination FROM messages"
    f"  WHERE state IN {_QUEUED} AND priority = ? AND next_attempt_at <= ?"
    "  AND not_before <= ? AND expires_at > ?"
    f"  ORDER BY next_attempt_at, submitted_at, id LIMIT {_DUE_SCAN_MAX}) AS q"
    " WHERE NOT EXISTS (SELECT 1 FROM messages AS d"
    "  WHERE d.destination = q.destination AND d.state = 'DISPATCHED')"
)

# retention (schema v10): each reads one partial index of the final messages from its start,
# so it never reads what an earlier pass purged or what is not final
_PURGE_CONTENT = (
    "UPDATE messages SET content = x'', tag = x'' WHERE rowid IN ("
    " SELECT rowid FROM messages INDEXED BY messages_final_content"
    " WHERE final_at IS NOT NULL AND content != x'' AND final_at < ?"
    " ORDER BY final_at LIMIT ?)"
)
_FINAL_PURGED = (
    "SELECT rowid, id FROM messages INDEXED BY messages_final_purged"
    " WHERE final_at IS NOT NULL AND content = x'' AND final_at < ? ORDER BY final_at LIMIT ?"
)
_FINAL_CONTENT = (
    "SELECT rowid, id FROM messages INDEXED BY messages_final_content"
    " WHERE final_at IS NOT NULL AND content != x'' AND final_at < ? ORDER BY final_at LIMIT ?"
)
_OLD_ALARMS = (
    "SELECT id FROM alarms INDEXED BY alarms_time WHERE at < ?"
    " AND id < (SELECT MAX(id) FROM alarms) ORDER BY at LIMIT ?"
)
_NEWEST_RECEIPT = (
    "SELECT message_id FROM receipts WHERE receipt_id = (SELECT MAX(receipt_id) FROM receipts)"
)

_INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({_ATTEMPT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_DELIVERY = "INSERT INTO deliveries (message_id, imsi, msisdn, at) VALUES (?, ?, ?, ?)"
# The account (and everything else) is copied from the message row itself: I4 by construction.
_INSERT_RECEIPT = (
    "INSERT INTO receipts (message_id, account, state, error, submitted_at, final_at,"
    " source_addr, source_ton, source_npi, destination, created_at, sent_at,"
    " user_message_reference)"
    " SELECT id, account, state, error, submitted_at, final_at,"
    " source_addr, source_ton, source_npi, destination, ?, NULL, ?"
    " FROM messages WHERE id = ?"
)

# issue 12: a callback event, its account, source and destination copied from the message row
# as just written (I4 by construction), as its state and error
_CALLBACK_COLS = (
    "event_id, message_id, account, kind, url, event, state, error, at, source_addr,"
    " destination, attempts, next_attempt_at, last_status, sent_at, gave_up_at"
)
# A later event of a message is never due before an earlier one still pending (its
# next_attempt_at is at least theirs): the sender's poll then never reads the events waiting
# behind one being retried (``due_callbacks`` stays a read of what is due).
_INSERT_CALLBACK = (
    "INSERT INTO callbacks (message_id, account, kind, url, event, state, error, at,"
    " source_addr, destination, attempts, next_attempt_at)"
    " SELECT id, account, ?, ?, ?, state, error, ?, source_addr, destination, 0,"
    " max(?, coalesce((SELECT max(o.next_attempt_at) FROM callbacks AS o"
    "  INDEXED BY callbacks_message WHERE o.message_id = messages.id"
    "  AND o.sent_at IS NULL AND o.gave_up_at IS NULL), 0))"
    " FROM messages WHERE id = ?"
)
_CB_PENDING = "sent_at IS NULL AND gave_up_at IS NULL"
# a new message's ACCEPTED: nothing of it is pending before it; its row's values as inserted
_INSERT_ACCEPTED = (
    "INSERT INTO callbacks (message_id, account, kind, url, event, state, error, at,"
    " source_addr, destination, attempts, next_attempt_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"
)
_EVENTS = {e.value: e for e in CallbackEvent}


def _effect_rows(old: Message, new: Message, now: float, deliveries: list[tuple[Any, ...]],
                 receipts: list[tuple[float, int | None, str]],
                 callbacks: list[tuple[Any, ...]]) -> None:
    """The rows a transition ``old`` -> ``new`` adds beside the message's own (what
    ``_final_effects`` and the callback insert of ``_write_transition`` write), appended
    for an executemany of many transitions."""
    state = new.state
    if state is State.DELIVERED:
        deliveries.append((new.id, new.delivered_imsi, new.delivered_msisdn, now))
    if state in FINAL_STATES and receipt_wanted(new.registered_delivery, state):
        receipts.append((now, receipt_reference(new), new.id))
    if old.extra or new.extra:
        cb = _callback_params(old, new, now)
        if cb is not None:
            callbacks.append(cb)


def _callback_params(old: Message | None, new: Message, now: float) -> tuple[Any, ...] | None:
    planned = planned_callback(old, new)
    if planned is None:
        return None
    spec, event = planned
    return (spec.kind, spec.url, event.value, now, now, new.id)


def _callback(r: Sequence[Any]) -> Callback:
    return Callback(int(r[0]), r[1], r[2], r[3], r[4], _EVENTS[r[5]], _STATES[r[6]], r[7],
                    float(r[8]), r[9], r[10], int(r[11]), float(r[12]), r[13], r[14], r[15])


def _attempt_row(rec: AttemptRecord) -> tuple[Any, ...]:
    return (
        rec.message_id,
        rec.account,
        rec.destination,
        rec.imsi,
        rec.route,
        rec.node,
        rec.attempt,
        rec.started_at,
        rec.ended_at,
        rec.outcome,
        rec.error,
        rec.serving_node,
    )


_FINISH_NAMES: dict[tuple[frozenset[str], bool], tuple[str, ...]] = {}


def _finish_names(it: FinishedAttempt) -> tuple[str, ...]:
    """The columns a finished attempt writes (as ``transition`` from DISPATCHED would), in
    column order."""
    final = it.new_state in FINAL_STATES
    key = (frozenset(it.changes), final)
    names = _FINISH_NAMES.get(key)
    if names is None:
        wanted = {*it.changes, "state", "lease_until", "lease_owner"}
        if final:
            wanted.add("final_at")
        names = tuple(n for n in MESSAGE_COLUMNS if n in wanted)
        if len(_FINISH_NAMES) < 256:
            _FINISH_NAMES[key] = names
    return names


class _Refused(Exception):
    """Inside ``finish_attempts``: the items cannot all be written together."""


@dataclass(slots=True, frozen=True)
class _FinishPlan:
    """``SqliteStore.plan_finish_attempts``: the statement parameters of a batch of outcomes
    (for ``items``, that very object), made before the transaction."""

    items: Sequence[FinishedAttempt]
    news: list[Message]
    updates: dict[tuple[str, ...], list[tuple[Any, ...]]]
    deliveries: list[tuple[Any, ...]]
    receipts: list[tuple[float, int | None, str]]
    attempts: list[tuple[Any, ...]]
    callbacks: list[tuple[Any, ...]]


def _receipt(row: Sequence[Any]) -> Receipt:
    return Receipt(
        receipt_id=row[0],
        message_id=row[1],
        account=row[2],
        state=_STATES[row[3]],
        error=row[4],
        submitted_at=row[5],
        final_at=row[6],
        source_addr=row[7],
        source_ton=row[8],
        source_npi=row[9],
        destination=row[10],
        sent_at=row[11],
        user_message_reference=row[12],
    )


#: SQLite's primary result codes (``sqlite3.Error.sqlite_errorname`` up to the first "_" after
#: the prefix) -> the cause a StoreUnavailable names
_UNAVAILABLE_CAUSES = {
    "SQLITE_FULL": "disk_full",
    "SQLITE_IOERR": "io_error",
    "SQLITE_READONLY": "read_only",
    "SQLITE_BUSY": "lock_timeout",
    "SQLITE_LOCKED": "lock_timeout",
    "SQLITE_CORRUPT": "corrupt",
    "SQLITE_NOTADB": "corrupt",
    "SQLITE_CANTOPEN": "cant_open",
    "SQLITE_PROTOCOL": "lock_timeout",
}


_FORWARD_COLS = "message_id, part, parts, connector, partner_id, state, error, at, receipt_at"


def _forward_row(p: ForwardPart) -> tuple[Any, ...]:
    return (p.message_id, p.part, p.parts, p.connector, p.partner_id, p.state.value, p.error,
            p.at, p.receipt_at)


def _forward(r: Sequence[Any]) -> ForwardPart:
    return ForwardPart(r[0], int(r[1]), int(r[2]), r[3], r[4], State(r[5]), r[6], float(r[7]),
                       r[8])


def _held(r: Sequence[Any]) -> tuple[int, PartnerReceipt]:
    return int(r[0]), PartnerReceipt(
        r[1], tuple(r[2].split(",")), None if r[3] is None else State(r[3]), float(r[5]),
        r[4], int(r[6]),
    )


def unavailable(e: sqlite3.Error) -> StoreUnavailable | None:
    """The StoreUnavailable an SQLite error stands for (the disk, the file, a lock), or None
    for an error of the data or of the statement (a constraint, a bug)."""
    if isinstance(e, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return None
    name = str(getattr(e, "sqlite_errorname", "") or "")
    primary = "_".join(name.split("_")[:2])
    cause = _UNAVAILABLE_CAUSES.get(primary)
    if cause is None:
        if not isinstance(e, sqlite3.OperationalError):
            return None
        cause = "store_error"
    return StoreUnavailable(cause, name)


@contextmanager
def _translated() -> Iterator[None]:
    """sqlite3 errors of the disk, the file or a lock leave as StoreUnavailable."""
    try:
        yield
    except sqlite3.Error as e:
        u = unavailable(e)
        if u is None:
            raise
        raise u from e


WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024  # a WAL reset truncates the file to this
#: ``meta`` key present once every stored text is encrypted (its value: the format)
CONTENT_ENCRYPTION_META = "content_encryption"
CONTENT_ENCRYPTION = "aes-256-gcm/1"
#: a replaced writing key may be retired only this long after the rotation: every running
#: process looks at the keyring every KEYRING_RELOAD_INTERVAL_S (2 s) before it writes
CONTENT_KEY_RETIRE_AFTER_S = 30.0


def _owner_only(path: str) -> None:
    """The database file 0600 whatever the umask, before its -wal and -shm exist (SQLite gives
    them the database file's mode; app/home.py). By chmod, never by opening the file: closing
    any descriptor of it would release every POSIX lock this process holds on it, those of
    SQLite's connections included (another process could then take itself for the last
    connection and delete the WAL under them)."""
    try:
        st = os.stat(path)
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(path, st.st_mode & 0o700)
    except OSError:
        pass  # not ours to change: the directory (0700) still keeps it private


class SqliteStore(ForwardingStore):
    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = 10_000,
        autocheckpoint: bool = True,
        cipher: ContentCipher | None = None,
        lock_wait_s: float | None = None,
    ) -> None:
        """``autocheckpoint=False``: this connection never checkpoints the WAL itself (a
        ``store.checkpoint.WalCheckpointer`` does, off the commit path); the serving
        processes use it so that no commit pays for copying the WAL into the database.

        ``cipher``: how message texts are encrypted at rest (store/content_crypto.py). By
        default the keys of ``ADRESSAT_CONTENT_KEY``, else of the keyring ``content.keys``
        beside the database (made at the first start), and for ``:memory:`` a key of this
        process's own. A database written before encryption has its texts encrypted here,
        once, in one transaction (:meth:`_encrypt_plain_texts`).

        ``lock_wait_s``: how long a write waits for the store's write lock while another
        process holds it, then fails as StoreUnavailable (store/wlock.py); None: for ever.
        The serving processes bound it (a writer on an event loop must not wait for ever)."""
        self.path = str(path)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            _owner_only(self.path)
        self._lock = threading.RLock()
        self._depth = 0
        self.commits = 0
        self._wlock = (None if self.path == ":memory:"
                       else WriteLock(self.path + ".wlock", lock_wait_s))
        try:
            # the opening steps hold the write lock, with no bound on the wait: two
            # connections that turn one new file to WAL at once deadlock, and SQLite answers
            # one of them "database is locked" at once, without its busy wait (three stores
            # opened together: one failed, in CI); the migration and the encryption of old
            # texts may take longer than lock_wait_s, and no event loop waits on an opening
            if self._wlock is not None:
                self._wlock.acquire(bounded=False)
            try:
                self._open(busy_timeout_ms, autocheckpoint, cipher)
            finally:
                if self._wlock is not None:
                    self._wlock.release()
        except BaseException:
            self.close()
            raise
        self.commits = 0  # the callers' transactions (the marker's, at the first open, not)

    def _open(self, busy_timeout_ms: int, autocheckpoint: bool,
              cipher: ContentCipher | None) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if self.path != ":memory:" and str(mode).lower() != "wal":
            raise StoreError(f"could not enable WAL (journal_mode={mode})")
        c.execute("PRAGMA synchronous = FULL")
        # statement journals (the savepoints of a group commit) in memory: on disk each
        # transaction created, wrote and unlinked a temporary file (they need no durability:
        # they only undo a savepoint of a transaction still open)
        c.execute("PRAGMA temp_store = MEMORY")
        c.execute("PRAGMA foreign_keys = ON")
        c.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        if not autocheckpoint:
            c.execute("PRAGMA wal_autocheckpoint = 0")
        self.schema_version = migrate_sqlite(c)
        self.cipher = cipher if cipher is not None else (
            ContentCipher.ephemeral() if self.path == ":memory:"
            else ContentCipher.open(keyring_path(self.path),
                                    may_create=self._holds_no_encrypted_text))
        self._encrypt_plain_texts()

    # --- units of work -------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _translated():
            c = self._conn
            if self._depth == 0:
                if self._wlock is not None:
                    self._wlock.acquire()
                try:
                    c.execute("BEGIN IMMEDIATE")
                    self._depth = 1
                    try:
                        yield c
                    except BaseException:
                        self._depth = 0
                        if c.in_transaction:
                            try:
                                c.execute("ROLLBACK")
                            except sqlite3.Error:
                                pass  # the transaction is gone with the failure itself
                        raise
                    try:
                        c.execute("COMMIT")
                    except BaseException:
                        if c.in_transaction:
                            c.execute("ROLLBACK")
                        raise
                    finally:
                        self._depth = 0
                finally:
                    if self._wlock is not None:
                        self._wlock.release()
                self.commits += 1
            else:
                name = f"sp{self._depth}"
                self._depth += 1
                c.execute(f"SAVEPOINT {name}")
                try:
                    yield c
                except BaseException:
                    c.execute(f"ROLLBACK TO {name}")
                    c.execute(f"RELEASE {name}")
                    raise
                else:
                    c.execute(f"RELEASE {name}")
                finally:
                    self._depth -= 1

    @contextmanager
    def _one_statement(self) -> Iterator[sqlite3.Connection]:
        """For methods that write with ONE statement: SQLite rolls a failing statement back
        by itself, so inside a transaction no savepoint is needed (two round trips saved on
        the per-message path); outside one it is its own transaction."""
        with self._lock:
            if self._depth:
                yield self._conn
            else:
                with self._tx() as c:
                    yield c

    def batch(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._tx()

    def savepoint(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._tx()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._wlock is not None:
                self._wlock.close()
                self._wlock = None

    def pragma(self, name: str) -> Any:
        """Read a PRAGMA (for checks and tests)."""
        if not name.replace("_", "").isalpha():
            raise ValueError("bad pragma name")
        with self._lock:
            return self._conn.execute(f"PRAGMA {name}").fetchone()[0]

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock, _translated():
            return self._conn.execute(sql, params).fetchall()

    # --- encryption at rest (store/content_crypto.py) ------------------------------------------
    def _holds_no_encrypted_text(self) -> bool:
        """True unless texts were encrypted here (so a new keyring could not read them)."""
        if self.get_meta(CONTENT_ENCRYPTION_META) is None:
            return True
        return not self._read("SELECT 1 FROM messages WHERE content != x'' LIMIT 1")

    def _encrypt_plain_texts(self) -> None:
        """Texts written before encryption at rest are plain, and a plain text may begin with
        any octet, so a row cannot say which it holds: ``meta.content_encryption`` does, for
        the whole table. Absent, every non-empty text is plain: all are encrypted in ONE
        transaction that also writes the marker (another process that opens the file
        meanwhile waits for the write lock, then finds the marker and does nothing). A
        database begun since gets the marker with no row to change."""
        if self.get_meta(CONTENT_ENCRYPTION_META) is not None:
            return
        cipher = self.cipher
        with self._tx() as c:
            if c.execute("SELECT 1 FROM meta WHERE key = ?",
                         (CONTENT_ENCRYPTION_META,)).fetchone():
                return
            after = 0
            while True:
                rows = c.execute(
                    "SELECT rowid, id, content FROM messages WHERE rowid > ? AND content != x''"
                    " ORDER BY rowid LIMIT 1000", (after,)).fetchall()
                if not rows:
                    break
                c.executemany("UPDATE messages SET content = ? WHERE rowid = ?",
                              [(cipher.encrypt(bytes(t), i), r) for r, i, t in rows])
                after = rows[-1][0]
            c.execute("INSERT INTO meta (key, value) VALUES (?, ?)",
                      (CONTENT_ENCRYPTION_META, CONTENT_ENCRYPTION))

    def content_keys_in_use(self) -> dict[str, int]:
        """How many stored texts each key id encrypts (reads every message: operator tools
        only)."""
        out: dict[str, int] = {}
        for head, n in self._read(
            "SELECT substr(content, 1, 5), COUNT(*) FROM messages WHERE content != x''"
            " GROUP BY 1"
        ):
            key_id = blob_key_id(bytes(head) + bytes(OVERHEAD_OCTETS)) or "?"
            out[key_id] = out.get(key_id, 0) + int(n)
        return out

    def rewrap_content(self, batch_max: int = 500, after_rowid: int = 0) -> tuple[int, int]:
        """Encrypt again under the writing key up to ``batch_max`` texts written under an
        older key, from ``after_rowid`` on, in one transaction (the node keeps serving between
        batches). Returns (texts rewritten, the rowid to go on after; 0: done)."""
        if batch_max <= 0:
            raise ValueError("batch_max must be positive")
        cipher = self.cipher
        current = bytes.fromhex(cipher.current_id)
        with self._tx() as c:
            rows = c.execute(
                "SELECT rowid, id, content FROM messages WHERE rowid > ? AND content != x''"
                " AND substr(content, 2, 4) != ? ORDER BY rowid LIMIT ?",
                (after_rowid, current, batch_max)).fetchall()
            c.executemany(
                "UPDATE messages SET content = ? WHERE rowid = ?",
                [(cipher.encrypt(cipher.decrypt(bytes(t), i), i), r) for r, i, t in rows])
        return len(rows), (rows[-1][0] if len(rows) == batch_max else 0)

    def retire_content_key(self, key_id: str, now: float) -> None:
        """Remove an older key from the keyring; refused while a stored text uses it, and
        within ``CONTENT_KEY_RETIRE_AFTER_S`` of the rotation that replaced it (a running
        process may not have seen the rotation yet and still write under it)."""
        keys = {k.id_hex: k for k in self.cipher.keys()}
        if key_id not in keys:
            raise KeyringError(f"no key {key_id} in the keyring")
        if key_id == self.cipher.current_id:
            raise KeyringError(f"key {key_id} is the writing key: rotate first")
        since = keys[self.cipher.current_id].created_at
        if since is not None and now - since < CONTENT_KEY_RETIRE_AFTER_S:
            raise KeyringError(f"the writing key is {now - since:.0f} s old: a running process"
                               f" may still write under {key_id}; retire it after"
                               f" {CONTENT_KEY_RETIRE_AFTER_S:.0f} s")
        used = self.content_keys_in_use().get(key_id, 0)
        if used:
            raise KeyringError(f"{used} stored texts use key {key_id}: `adressat key rewrap`"
                               " first")
        self.cipher.retire(key_id)

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
        fields = check_account_fields(throughput_per_s=throughput_per_s,
                                      sessions_max=sessions_max, allow_ip=allow_ip,
                                      senders=senders)
        with self._tx() as c:
            try:
                c.execute(
                    "INSERT INTO accounts (name, password_hash, throughput_per_s, partner,"
                    " partner_ranges, partner_connectors, sessions_max, allow_ip, senders)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, password_hash, fields["throughput_per_s"],
                     int(partner_ranges is not None),
                     json.dumps(list(partner_ranges or ())), json.dumps(list(partner_connectors)),
                     fields["sessions_max"], json.dumps(list(fields["allow_ip"])),
                     json.dumps(list(fields["senders"]))),
                )
            except sqlite3.IntegrityError:
                raise AccountExists(name) from None
            _bump_accounts(c)

    @staticmethod
    def _account(row: Sequence[Any]) -> Account:
        return Account(row[0], row[1], row[2], bool(row[3]), tuple(json.loads(row[4])),
                       tuple(json.loads(row[5])), row[6], tuple(json.loads(row[7])),
                       None if row[8] is None else bytes(row[8]), row[9], bool(row[10]),
                       row[11], tuple(json.loads(row[12])), tuple(json.loads(row[13])))

    def get_account(self, name: str) -> Account | None:
        rows = self._read(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE name = ?", (name,))
        return self._account(rows[0]) if rows else None

    def list_accounts(self) -> list[Account]:
        rows = self._read(f"SELECT {_ACCOUNT_COLS} FROM accounts ORDER BY name")
        return [self._account(r) for r in rows]

    def remove_account(self, name: str, now: float | None = None, *,
                       keep_queue: bool = True) -> bool:
        with self._tx() as c:
            if not keep_queue:
                self._cancel_queue(c, name, time.time() if now is None else now)
            else:
                self._release_account(c, name, time.time() if now is None else now)
            # its API keys go with it: an account added again by that name has none (issue 12)
            c.execute("DELETE FROM api_keys WHERE account = ?", (name,))
            gone = c.execute("DELETE FROM accounts WHERE name = ?", (name,)).rowcount > 0
            _bump_accounts(c)
            return gone

    # issue 13, helper acct: accounts an operator controls
    def update_account(self, name: str, **changes: Any) -> Account:
        checked = check_account_fields(**changes)
        cols = {k: (json.dumps(list(v)) if k in ("allow_ip", "senders") else v)
                for k, v in checked.items()}
        with self._tx() as c:
            if cols:
                sets = ", ".join(f"{k} = ?" for k in cols)
                n = c.execute(f"UPDATE accounts SET {sets} WHERE name = ?",
                              (*cols.values(), name)).rowcount
            else:
                n = int(c.execute("SELECT 1 FROM accounts WHERE name = ?",
                                  (name,)).fetchone() is not None)
            if n == 0:
                raise UnknownAccount(name)
            _bump_accounts(c)
            row = c.execute(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE name = ?",
                            (name,)).fetchone()
        return self._account(row)

    def disable_account(self, name: str, now: float, *, keep_queue: bool = False) -> int:
        with self._tx() as c:
            n = c.execute(
                "UPDATE accounts SET disabled_at = COALESCE(disabled_at, ?),"
                " disabled_keep_queue = ? WHERE name = ?", (now, int(keep_queue), name)).rowcount
            if n == 0:
                raise UnknownAccount(name)
            _bump_accounts(c)
            if keep_queue:
                return self._release_account(c, name, now)
            held = c.execute(
                f"UPDATE messages INDEXED BY messages_expiry SET state = 'HELD', held_by = ?"
                f" WHERE state IN {_QUEUED} AND account = ?",
                (HELD_BY_ACCOUNT, name)).rowcount
            # held by a route's breaker already: a release of the route leaves it held
            c.execute("UPDATE messages INDEXED BY messages_held SET held_by = ?"
                      " WHERE state = 'HELD' AND account = ? AND held_by IS NULL",
                      (HELD_BY_ACCOUNT, name))
            return held

    def enable_account(self, name: str, now: float) -> int:
        with self._tx() as c:
            n = c.execute("UPDATE accounts SET disabled_at = NULL, disabled_keep_queue = 0"
                          " WHERE name = ?", (name,)).rowcount
            if n == 0:
                raise UnknownAccount(name)
            _bump_accounts(c)
            return self._release_account(c, name, now)

    @staticmethod
    def _release_account(c: sqlite3.Connection, name: str, now: float) -> int:
        """What the account's disable held goes back to the queue (a held route's breaker
        holds it again at its claim)."""
        old, new = RELEASE_ON_ENABLE
        # literals: the partial index messages_held_account is used only for its own terms
        return c.execute(
            "UPDATE messages INDEXED BY messages_held_account SET state = ?, held_by = NULL,"
            " next_attempt_at = MIN(next_attempt_at, ?)"
            f" WHERE account = ? AND state = '{old.value}' AND held_by = '{HELD_BY_ACCOUNT}'",
            (new.value, now, name)).rowcount

    def _cancel_queue(self, c: sqlite3.Connection, name: str, now: float) -> int:
        ids = [r[0] for r in c.execute(
            f"SELECT id FROM messages INDEXED BY messages_expiry WHERE state IN {_QUEUED}"
            " AND account = ?"
            " UNION ALL SELECT id FROM messages INDEXED BY messages_held WHERE state = 'HELD'"
            " AND account = ?"
            " UNION ALL SELECT id FROM messages INDEXED BY messages_accepted"
            " WHERE state = 'ACCEPTED' AND account = ?", (name, name, name))]
        for mid in ids:
            old = self._get(c, mid)
            if old is None or old.state not in CANCEL_ON_REMOVE:
                continue
            check_transition(old.state, State.CANCELLED)
            self._write_transition(c, old, replace(old, state=State.CANCELLED, final_at=now),
                                   now)
        return len(ids)

    def hold_claimed_of_disabled(self, message_id: str, expected_attempts: int,
                                 now: float) -> Message | None:
        with self._tx() as c:
            m = self._get(c, message_id)
            if m is None or not _holds_queue(c, m.account):
                return None
            new = self.transition(message_id, HOLD_CLAIMED[0], HOLD_CLAIMED[1], now,
                                  expected_attempts=expected_attempts,
                                  attempts=expected_attempts - 1, lease_until=None,
                                  lease_owner=None)
            c.execute("UPDATE messages SET held_by = ? WHERE id = ?",
                      (HELD_BY_ACCOUNT, message_id))
            return new

    def accounts_holding_queue(self) -> frozenset[str]:
        return frozenset(r[0] for r in self._read(
            "SELECT name FROM accounts WHERE disabled_at IS NOT NULL"
            " AND disabled_keep_queue = 0"))

    def accounts_version(self) -> int:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (ACCOUNTS_VERSION_KEY,))
        return int(rows[0][0]) if rows else 0

    # --- messages ------------------------------------------------------------------------------
    def insert_messages(self, msgs: Sequence[Message]) -> None:
        for m in msgs:
            check_new_message(m)
        with self._tx() as c:
            try:
                c.executemany(
                    f"INSERT INTO messages ({_COLS}) VALUES ({_PLACEHOLDERS})",
                    [_to_row(m, self.cipher) for m in msgs],
                )
            except sqlite3.IntegrityError:
                ids = [m.id for m in msgs]
                dup = next(
                    (i for n, i in enumerate(ids) if i in ids[:n]), None
                ) or self._first_existing(c, ids)
                raise DuplicateMessage(dup or "?") from None
            accepted = [
                (m.id, m.account, spec.kind, spec.url, event.value, m.state.value, m.error,
                 m.submitted_at, m.source_addr, m.destination, m.submitted_at)
                for m in msgs
                if m.extra and "cb" in m.extra
                and (planned := planned_callback(None, m)) is not None
                for spec, event in (planned,)
            ]
            if accepted:
                c.executemany(_INSERT_ACCEPTED, accepted)

    @staticmethod
    def _first_existing(c: sqlite3.Connection, ids: Sequence[str]) -> str | None:
        for i in ids:
            if c.execute("SELECT 1 FROM messages WHERE id = ?", (i,)).fetchone():
                return i
        return None

    def _get(self, c: sqlite3.Connection, message_id: str) -> Message | None:
        row = c.execute(f"SELECT {_COLS} FROM messages WHERE id = ?", (message_id,)).fetchone()
        return None if row is None else _from_row(row, self.cipher)

    def get_message(self, message_id: str) -> Message | None:
        with self._lock, _translated():
            return self._get(self._conn, message_id)

    def _final_effects(self, c: sqlite3.Connection, new: Message, now: float) -> None:
        if new.state is State.DELIVERED:
            try:
                c.execute(
                    _INSERT_DELIVERY, (new.id, new.delivered_imsi, new.delivered_msisdn, now)
                )
            except sqlite3.IntegrityError:
                raise DuplicateDelivery(new.id) from None
        if new.state in FINAL_STATES and receipt_wanted(new.registered_delivery, new.state):
            c.execute(_INSERT_RECEIPT, (now, receipt_reference(new), new.id))

    def _write_transition(
        self,
        c: sqlite3.Connection,
        old: Message,
        new: Message,
        now: float,
        extra_where: str = "",
        extra_params: Sequence[Any] = (),
        *,
        names: set[str] | None = None,
    ) -> None:
        if names is None:
            names_l = [
                n for n in MESSAGE_COLUMNS if n != "id" and getattr(old, n) != getattr(new, n)
            ]
        else:
            names_l = [n for n in MESSAGE_COLUMNS if n in names]
        if "state" not in names_l:
            names_l.append("state")
        names = set(names_l)
        sets = ", ".join(f"{n} = ?" for n in names_l)
        params = [_message_value(n, new, self.cipher) for n in names_l]
        cur = c.execute(
            f"UPDATE messages SET {sets} WHERE id = ? AND state = ?{extra_where}",
            (*params, old.id, old.state.value, *extra_params),
        )
        if cur.rowcount != 1:  # cannot happen under the lock; kept as a guard
            raise StaleState(old.id, old.state, new.state, "row changed")
        self._final_effects(c, new, now)
        if old.extra or new.extra:
            cb = _callback_params(old, new, now)
            if cb is not None:
                c.execute(_INSERT_CALLBACK, cb)

    def _delivered(self, c: sqlite3.Connection, message_id: str) -> bool:
        row = c.execute("SELECT 1 FROM deliveries WHERE message_id = ?", (message_id,)).fetchone()
        return row is not None

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
        check_changes(changes)
        check_transition(expected_state, new_state)
        with self._tx() as c:
            row = self._get(c, message_id)
            if row is None:
                raise UnknownMessage(message_id)
            # a deliveries row without a DELIVERED message cannot exist (same transaction);
            # should it, the UNIQUE constraint still refuses the second delivery below
            new = plan_transition(
                row, expected_state, new_state, now, expected_attempts, changes, False
            )
            names = set(changes)
            names.add("state")
            if row.state is State.DISPATCHED or new_state in FINAL_STATES:
                names.update(("lease_until", "lease_owner"))
            if new_state in FINAL_STATES:
                names.add("final_at")
            self._write_transition(c, row, new, now, names=names)
            return new

    def apply_transitions(
        self, items: Sequence[Transition], now: float
    ) -> list[Message | Exception]:
        return apply_each(self, items, now)

    def plan_finish_attempts(self, items: Sequence[FinishedAttempt]) -> _FinishPlan | None:
        """Everything :meth:`finish_attempts` can do without the database: the new rows,
        planned from the claims in hand, as statement parameters. Pure (no connection, any
        thread): the delivery worker calls it before its batch takes the write lock, which
        the other process is waiting for. None when an item is refused at once (each item is
        then written on its own)."""
        news: list[Message] = []
        updates: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        deliveries: list[tuple[Any, ...]] = []
        receipts: list[tuple[float, int | None, str]] = []
        callbacks: list[tuple[Any, ...]] = []
        for it in items:
            m = it.claimed
            try:
                new = plan_finish(m, it, False)
            except (StoreError, ValueError):
                return None
            names = _finish_names(it)
            updates.setdefault(names, []).append(
                (
                    *[_message_value(n, new, self.cipher) for n in names],
                    m.id,
                    m.attempts,
                    m.lease_owner,
                    m.account,
                    m.destination,
                )
            )
            _effect_rows(m, new, it.now, deliveries, receipts, callbacks)
            news.append(new)
        attempts = [_attempt_row(it.record) for it in items]
        return _FinishPlan(items, news, updates, deliveries, receipts, attempts, callbacks)

    def finish_attempts(
        self, items: Sequence[FinishedAttempt], planned: object | None = None
    ) -> list[Message | Exception]:
        """All items in a few statements (:meth:`_finish_together`, with the plan made
        beforehand by :meth:`plan_finish_attempts` or here); if any of them is refused, that
        is rolled back and every item is written on its own, so each gets its exact
        result."""
        if not items:
            return []
        plan = (
            planned
            if isinstance(planned, _FinishPlan) and planned.items is items
            else self.plan_finish_attempts(items)
        )
        with self._tx() as c:
            if plan is not None:
                try:
                    with self._tx():
                        self._finish_together(c, plan)
                        return list(plan.news)
                except _Refused:
                    pass
            out: list[Message | Exception] = []
            for it in items:
                try:
                    with self._tx():
                        out.append(self._finish_one(c, it))
                except (StoreError, ValueError) as e:
                    out.append(e)
            return out

    def _finish_together(self, c: sqlite3.Connection, plan: _FinishPlan) -> None:
        """Every UPDATE is a compare-and-set on the claim (DISPATCHED, same attempt, lease
        owner, account and destination: a DISPATCHED row changes only through its claim's
        outcome), so a row that is not what the claim says changes nothing and raises
        _Refused (as does a second delivery, refused by the deliveries table's key).
        Receipts copy the row itself."""
        for names, rows in plan.updates.items():
            sets = ", ".join(f"{n} = ?" for n in names)
            cur = c.executemany(
                f"UPDATE messages SET {sets} WHERE id = ? AND state = 'DISPATCHED'"
                " AND attempts = ? AND lease_owner IS ? AND account = ? AND destination = ?",
                rows,
            )
            if cur.rowcount != len(rows):
                raise _Refused
        try:
            if plan.deliveries:
                c.executemany(_INSERT_DELIVERY, plan.deliveries)
            if plan.receipts:
                c.executemany(_INSERT_RECEIPT, plan.receipts)
        except sqlite3.IntegrityError:
            raise _Refused from None
        c.executemany(_INSERT_ATTEMPT, plan.attempts)
        if plan.callbacks:
            c.executemany(_INSERT_CALLBACK, plan.callbacks)

    def _finish_one(self, c: sqlite3.Connection, it: FinishedAttempt) -> Message:
        row = self._get(c, it.claimed.id)
        if row is None:
            raise UnknownMessage(it.claimed.id)
        new = plan_finish(row, it, False)  # a second delivery: refused by the deliveries key
        self._write_transition(c, row, new, it.now, names=set(_finish_names(it)))
        c.execute(_INSERT_ATTEMPT, _attempt_row(it.record))
        return new

    def claim_due(self, limit: int, now: float, lease_s: float, owner: str) -> list[Message]:
        if limit <= 0:
            return []
        scan_max = limit * 4 + 64
        lease_until = now + lease_s
        rows: list[Sequence[Any]] = []
        taken: set[str] = set()
        with self._tx() as c:
            for priority in (3, 2, 1, 0):
                if len(rows) >= limit:
                    break
                # rows are read lazily: reading stops at the limit, not at scan_max
                cur = c.execute(
                    f"SELECT {_COLS} FROM messages AS m"
                    f" WHERE state IN {_QUEUED} AND priority = ? AND next_attempt_at <= ?"
                    " AND not_before <= ? AND expires_at > ?"
                    " AND NOT EXISTS (SELECT 1 FROM messages AS d"
                    "   WHERE d.destination = m.destination AND d.state = 'DISPATCHED')"
                    " ORDER BY next_attempt_at, submitted_at, id LIMIT ?",
                    (priority, now, now, now, scan_max),
                )
                try:
                    for r in cur:
                        dest = r[_DEST_IDX]
                        if dest in taken:
                            continue
                        taken.add(dest)
                        rows.append(r)
                        if len(rows) >= limit:
                            break
                finally:
                    cur.close()
            stamps = [r[_SCTS_IDX] for r in rows]
            self._give_timestamps(c, rows, stamps, now)
            c.executemany(
                "UPDATE messages SET state = 'DISPATCHED', attempts = attempts + 1,"
                " lease_until = ?, lease_owner = ?, scts = ? WHERE id = ? AND state = ?",
                [
                    (lease_until, owner, scts, r[0], r[_STATE_IDX])
                    for r, scts in zip(rows, stamps, strict=True)
                ],
            )
        # the messages are built after the commit: the write lock is held for the SQL only
        return [
            _claimed_from_row(r, lease_until, owner, scts, self.cipher)
            for r, scts in zip(rows, stamps, strict=True)
        ]

    @staticmethod
    def _give_timestamps(
        c: sqlite3.Connection,
        rows: Sequence[Sequence[Any]],
        stamps: list[int | None],
        now: float,
    ) -> None:
        """Each row claimed for its first attempt (at most one per destination) takes its
        destination's next TP-SCTS into ``stamps``; the counters move on in the same
        transaction."""
        new = [i for i, r in enumerate(rows) if takes_scts(r[_SCTS_IDX], r[_ATTEMPTS_IDX])]
        if not new:
            return
        keys = [counter_key(rows[i][_DEST_IDX]) for i in new]
        last: dict[int, int] = {}
        for part in iter_chunks(keys, 500):
            last.update(
                c.execute(
                    "SELECT number, last_scts FROM destination_timestamps"
                    f" WHERE number IN ({', '.join('?' * len(part))})",
                    tuple(part),
                ).fetchall()
            )
        moves: list[tuple[int, int]] = []
        for i, key in zip(new, keys, strict=True):
            stamps[i] = scts = give_scts(last.get(key), now)
            moves.append((key, scts))
        _move_timestamps(c, moves)

    def expire_due(self, now: float, limit: int = 1000) -> list[Message]:
        out: list[Message] = []
        with self._tx() as c:
            # INDEXED BY: left to itself, the planner may prefer another index of the queued
            # and read every queued message (30 ms for 200,000, under the write lock, once a
            # second) instead of only the expired ones
            rows = c.execute(
                f"SELECT {_COLS} FROM messages INDEXED BY messages_expiry"
                f" WHERE state IN {_QUEUED} AND expires_at <= ?"
                " ORDER BY expires_at, id LIMIT ?",
                (now, limit),
            ).fetchall()
            for r in rows:
                old = _from_row(r, self.cipher)
                new = replace(
                    old, state=State.EXPIRED, final_at=now, lease_until=None, lease_owner=None
                )
                self._write_transition(c, old, new, now)
                out.append(new)
        return out

    def recover_leases(self, now: float) -> int:
        with self._tx() as c:
            # the recovered that asked for callbacks (their DEFERRED event), read first
            # through the partial index of the in flight
            asked = [
                _from_row(r, self.cipher) for r in c.execute(
                    f"SELECT {_COLS} FROM messages INDEXED BY messages_dispatched"
                    " WHERE state = 'DISPATCHED' AND (lease_until IS NULL OR lease_until < ?)"
                    " AND extra LIKE '%\"cb\":%'",
                    (now,),
                )
            ]
            n = c.execute(
                "UPDATE messages SET state = 'DEFERRED', next_attempt_at = ?,"
                " lease_until = NULL, lease_owner = NULL"
                " WHERE state = 'DISPATCHED' AND (lease_until IS NULL OR lease_until < ?)",
                (now, now),
            ).rowcount
            callbacks = [
                p for m in asked
                if (p := _callback_params(m, replace(m, state=State.DEFERRED), now)) is not None
            ]
            if callbacks:
                c.executemany(_INSERT_CALLBACK, callbacks)
            return n

    def retry_now(self, destination: str, now: float) -> int:
        with self._tx() as c:
            return c.execute(
                "UPDATE messages SET next_attempt_at = ?"
                " WHERE destination = ? AND state = 'DEFERRED' AND next_attempt_at > ?",
                (now, destination, now),
            ).rowcount

    def hold_route(self, route: str, now: float) -> int:
        with self._tx() as c:
            return c.execute(_HOLD_QUEUED, (route,)).rowcount

    def release_route(self, route: str, now: float) -> int:
        with self._tx() as c:
            c.execute(
                "UPDATE routes SET held = 0, held_at = NULL, reason = '', alarms = 0"
                " WHERE name = ?",
                (route,),
            )
            return c.execute(
                "UPDATE messages SET state = 'ROUTED',"
                " next_attempt_at = MIN(next_attempt_at, ?)"
                " WHERE route = ? AND state = 'HELD' AND held_by IS NULL",
                (now, route),
            ).rowcount

    def _owned_pending(self, c: sqlite3.Connection, message_id: str, account: str) -> Message:
        m = self._get(c, message_id)
        if m is None or m.account != account:
            raise UnknownMessage(message_id)
        if m.state.value not in _PENDING:
            raise NotPending(message_id, m.state)
        return m

    def cancel(self, message_id: str, account: str, now: float) -> Message:
        with self._tx() as c:
            old = self._owned_pending(c, message_id, account)
            new = replace(old, state=State.CANCELLED, final_at=now)
            self._write_transition(c, old, new, now)
            return new

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
        with self._tx() as c:
            m = self._owned_pending(c, message_id, account)
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
                new = replace(new, scts=_next_scts(c, m.destination, now))
            self._write_transition(c, m, new, now)
            return new

    def count_unfinished(self) -> int:
        return int(self._read(_COUNT_UNFINISHED)[0][0])

    def count_by_state(self) -> dict[State, int]:
        out = dict.fromkeys(State, 0)
        for state, n in self._read("SELECT state, COUNT(*) FROM messages GROUP BY state"):
            out[State(state)] = n
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
        where: list[str] = []
        params: list[Any] = []
        for cond, value in (
            ("account = ?", account),
            ("destination = ?", destination),
            ("submitted_at >= ?", since),
            ("submitted_at < ?", until),
        ):
            if value is not None:
                where.append(cond)
                params.append(value)
        if state is not None:
            # a literal (an enum's value, never input), so that the partial index of that
            # state serves the query (the in-flight at recovery: messages_dispatched)
            where.append(f"state = '{State(state).value}'")
        sql = f"SELECT {_COLS} FROM messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY submitted_at, id LIMIT ?"
        return [_from_row(r, self.cipher) for r in self._read(sql, (*params, limit))]

    # --- retention -----------------------------------------------------------------------------
    def purge_content(self, final_before: float, limit: int = 500) -> int:
        if limit <= 0:
            return 0
        with self._one_statement() as c:
            return c.execute(_PURGE_CONTENT, (final_before, limit)).rowcount

    def delete_records(self, final_before: float, limit: int = 500) -> DeletedRecords:
        if limit <= 0:
            return DeletedRecords()
        with self._tx() as c:
            rows = c.execute(_FINAL_PURGED, (final_before, limit)).fetchall()
            if len(rows) < limit:  # final with text still (a purge behind, or none)
                rows += c.execute(_FINAL_CONTENT, (final_before, limit - len(rows))).fetchall()
            # the message of the newest receipt stays until a newer receipt exists (as the
            # newest alarm does): SQLite gives a new row the highest id + 1, so deleting the
            # row with the highest id would give its id again (the receipt sender knows
            # receipts by id)
            newest = c.execute(_NEWEST_RECEIPT).fetchone()
            if newest is not None:
                rows = [r for r in rows if r[1] != newest[0]]
            alarm_ids = [r[0] for r in c.execute(_OLD_ALARMS, (final_before, limit))]
            # health episodes over before the horizon go too (no trigger guards them)
            c.execute(
                "DELETE FROM episodes WHERE id IN (SELECT id FROM episodes INDEXED BY"
                " episodes_time WHERE started_at < ? AND ended_at IS NOT NULL"
                " AND ended_at < ? ORDER BY started_at LIMIT ?)",
                (final_before, final_before, limit),
            )
            # care complaints recorded before the horizon go too (issue 10)
            c.execute(
                "DELETE FROM complaints WHERE id IN (SELECT id FROM complaints INDEXED BY"
                " complaints_time WHERE at < ? ORDER BY at LIMIT ?)",
                (final_before, limit),
            )
            if not rows and not alarm_ids:
                return DeletedRecords()
            # the horizon the audit tables' triggers let deletes pass below, set in this very
            # transaction (schema v10)
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (RETENTION_HORIZON_META, repr(float(final_before))),
            )
            unsent: dict[str, int] = {}
            attempts = receipts = deliveries = messages = 0
            for part in iter_chunks(rows, 500):
                ids = [r[1] for r in part]
                marks = ", ".join("?" * len(ids))
                for account, n in c.execute(
                    f"SELECT account, COUNT(*) FROM receipts WHERE message_id IN ({marks})"
                    " AND sent_at IS NULL GROUP BY account",
                    ids,
                ):
                    unsent[account] = unsent.get(account, 0) + int(n)
                receipts += c.execute(
                    f"DELETE FROM receipts WHERE message_id IN ({marks})", ids
                ).rowcount
                # "older than the horizon" too: what the triggers allow, so that a row they
                # would refuse (none can be: an attempt starts before its message's final
                # state) stays behind instead of failing every batch that holds it
                attempts += c.execute(
                    f"DELETE FROM attempts WHERE message_id IN ({marks}) AND started_at < ?",
                    (*ids, final_before),
                ).rowcount
                deliveries += c.execute(
                    f"DELETE FROM deliveries WHERE message_id IN ({marks}) AND at < ?",
                    (*ids, final_before),
                ).rowcount
                c.execute(f"DELETE FROM forwards WHERE message_id IN ({marks})", ids)
                c.execute(f"DELETE FROM callbacks WHERE message_id IN ({marks})", ids)
                messages += c.execute(
                    f"DELETE FROM messages WHERE rowid IN ({marks})", [r[0] for r in part]
                ).rowcount
            alarms = 0
            for part_ids in iter_chunks(alarm_ids, 500):
                alarms += c.execute(
                    f"DELETE FROM alarms WHERE id IN ({', '.join('?' * len(part_ids))})",
                    list(part_ids),
                ).rowcount
            return DeletedRecords(messages, attempts, receipts, deliveries, alarms, unsent)

    # --- receipts ------------------------------------------------------------------------------
    def pending_receipts(self, account: str, limit: int = 100) -> list[Receipt]:
        rows = self._read(
            f"SELECT {_RECEIPT_COLS} FROM receipts WHERE account = ? AND sent_at IS NULL"
            " ORDER BY receipt_id LIMIT ?",
            (account, limit),
        )
        return [_receipt(r) for r in rows]

    def mark_receipt_sent(self, receipt_id: int, now: float) -> bool:
        with self._one_statement() as c:
            return (
                c.execute(
                    "UPDATE receipts SET sent_at = ? WHERE receipt_id = ? AND sent_at IS NULL",
                    (now, receipt_id),
                ).rowcount
                == 1
            )

    def mark_receipts_sent(self, receipt_ids: Sequence[int], now: float) -> int:
        with self._one_statement() as c:
            return c.executemany(
                "UPDATE receipts SET sent_at = ? WHERE receipt_id = ? AND sent_at IS NULL",
                [(now, i) for i in receipt_ids],
            ).rowcount

    # --- audit ---------------------------------------------------------------------------------
    def append_attempt(self, rec: AttemptRecord) -> None:
        with self._one_statement() as c:
            c.execute(_INSERT_ATTEMPT, _attempt_row(rec))

    def attempts_between(
        self, t1: float, t2: float, account: str | None = None
    ) -> list[AttemptRecord]:
        sql = (
            f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE started_at < ?"
            " AND COALESCE(ended_at, started_at) >= ?"
        )
        params: list[Any] = [t2, t1]
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        sql += " ORDER BY started_at, seq"
        return [AttemptRecord(*r) for r in self._read(sql, params)]

    def attempts_for_message(self, message_id: str) -> list[AttemptRecord]:
        rows = self._read(
            f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE message_id = ? ORDER BY seq",
            (message_id,),
        )
        return [AttemptRecord(*r) for r in rows]

    def mark_addressed(self, message_id: str, attempts: int, imsi: str) -> bool:
        with self._tx() as c:
            return c.execute(
                "UPDATE messages SET addressed_imsi = ?"
                " WHERE id = ? AND state = 'DISPATCHED' AND attempts = ?",
                (imsi, message_id, attempts),
            ).rowcount == 1

    def recent_deliveries(self, limit: int) -> list[tuple[str, str, str]]:
        if limit <= 0:
            return []
        rows = self._read(
            "SELECT message_id, imsi, msisdn FROM deliveries"
            " WHERE imsi IS NOT NULL AND msisdn IS NOT NULL ORDER BY rowid DESC LIMIT ?",
            (limit,),
        )
        return [(r[0], r[1], r[2]) for r in reversed(rows)]

    # --- integrity: alarms, route breakers, faults ----------------------------------------------
    def append_alarm(self, alarm: Alarm) -> Alarm:
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO alarms (at, kind, message_ids, account, route, node, adapter, detail,"
                " serving_node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alarm.at,
                    alarm.kind.value,
                    json.dumps(list(alarm.message_ids)),
                    alarm.account,
                    alarm.route,
                    alarm.node,
                    alarm.adapter,
                    alarm.detail,
                    alarm.serving_node,
                ),
            )
            if counts_for_breaker(alarm):
                c.execute(
                    "INSERT INTO routes (name, held, reason, alarms) VALUES (?, 0, '', 1)"
                    " ON CONFLICT (name) DO UPDATE SET alarms = alarms + 1",
                    (alarm.route,),
                )
            return replace(alarm, id=int(cur.lastrowid or 0), message_ids=tuple(alarm.message_ids))

    @staticmethod
    def _alarm(row: Sequence[Any]) -> Alarm:
        return Alarm(
            at=row[1],
            kind=AlarmKind(row[2]),
            message_ids=tuple(json.loads(row[3])),
            account=row[4],
            route=row[5],
            node=row[6],
            adapter=row[7],
            detail=row[8],
            id=row[0],
            serving_node=row[9],
        )

    def alarms_between(self, t1: float, t2: float) -> list[Alarm]:
        rows = self._read(
            f"SELECT {_ALARM_COLS} FROM alarms WHERE at >= ? AND at < ? ORDER BY id",
            (t1, t2),
        )
        return [self._alarm(r) for r in rows]

    def alarm_count(self, route: str | None = None) -> int:
        if route is None:
            rows = self._read("SELECT COUNT(*) FROM alarms")
        else:
            rows = self._read("SELECT COUNT(*) FROM alarms WHERE route = ?", (route,))
        return int(rows[0][0])

    def trip_route(self, route: str, reason: str, now: float) -> int:
        with self._tx() as c:
            c.execute(
                "INSERT INTO routes (name, held, held_at, reason, alarms) VALUES (?, 1, ?, ?, 0)"
                " ON CONFLICT (name) DO UPDATE SET held = 1,"
                " held_at = CASE WHEN held = 1 THEN held_at ELSE excluded.held_at END,"
                " reason = CASE WHEN held = 1 THEN reason ELSE excluded.reason END",
                (route, now, reason),
            )
            return c.execute(_HOLD_QUEUED, (route,)).rowcount

    def held_routes(self) -> frozenset[str]:
        return frozenset(r[0] for r in self._read("SELECT name FROM routes WHERE held = 1"))

    def route_status(self) -> list[RouteStatus]:
        with self._lock:
            routes = {
                r[0]: RouteStatus(r[0], bool(r[1]), r[2], r[3], r[4])
                for r in self._conn.execute(
                    "SELECT name, held, held_at, reason, alarms FROM routes"
                ).fetchall()
            }
            held = dict(
                self._conn.execute(
                    "SELECT route, COUNT(*) FROM messages WHERE state = 'HELD' GROUP BY route"
                ).fetchall()
            )
            totals = dict(
                self._conn.execute(
                    "SELECT route, COUNT(*) FROM alarms WHERE route != '' GROUP BY route"
                ).fetchall()
            )
        out = []
        for name in sorted(set(routes) | set(held) | set(totals)):
            r = routes.get(name) or RouteStatus(name, False, None, "", 0)
            out.append(
                replace(r, held_messages=held.get(name, 0), alarms_total=totals.get(name, 0))
            )
        return out

    def set_fault(self, setting: FaultSetting) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO faults (name, on_, rate, route, params, updated_at, node)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " on_ = excluded.on_, rate = excluded.rate, route = excluded.route,"
                " params = excluded.params, updated_at = excluded.updated_at,"
                " node = excluded.node",
                (
                    setting.name,
                    int(setting.on),
                    setting.rate,
                    setting.route,
                    json.dumps(setting.params, sort_keys=True),
                    setting.updated_at,
                    setting.node,
                ),
            )

    def list_faults(self) -> list[FaultSetting]:
        rows = self._read(
            "SELECT name, on_, rate, route, params, updated_at, node FROM faults ORDER BY name"
        )
        return [
            FaultSetting(r[0], bool(r[1]), r[2], r[3], json.loads(r[4]), r[5], r[6])
            for r in rows
        ]

    # --- health -------------------------------------------------------------------------------
    def write_episode(self, episode: Episode) -> Episode:
        with self._tx() as c:
            if episode.id == 0:
                cur = c.execute(
                    "INSERT INTO episodes (kind, process, cause, started_at, ended_at, failures)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (episode.kind.value, episode.process, episode.cause, episode.started_at,
                     episode.ended_at, episode.failures),
                )
                return replace(episode, id=int(cur.lastrowid or 0))
            c.execute(
                "UPDATE episodes SET ended_at = ?, failures = ? WHERE id = ? AND ended_at IS NULL",
                (episode.ended_at, episode.failures, episode.id),
            )
            return episode

    def episodes(
        self, *, since: float | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Episode]:
        where, params = [], []
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        if open_only:
            where.append("ended_at IS NULL")
        sql = "SELECT id, kind, process, cause, started_at, ended_at, failures FROM episodes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
        return [
            Episode(EpisodeKind(r[1]), r[2], r[3], r[4], r[5], r[6], r[0])
            for r in self._read(sql, (*params, limit))
        ]

    # --- figures for metrics and readiness ------------------------------------------------------
    def count_unfinished_by_state(self) -> dict[State, int]:
        out = dict.fromkeys(
            (State.ACCEPTED, State.ROUTED, State.DEFERRED, State.DISPATCHED, State.HELD), 0
        )
        for state, n in self._read(_COUNT_UNFINISHED_BY_STATE):
            out[_STATES[state]] = int(n)
        return out

    def count_pending_receipts(self) -> int:
        return int(self._read(
            "SELECT COUNT(*) FROM receipts INDEXED BY receipts_pending WHERE sent_at IS NULL"
        )[0][0])

    def count_alarms_by_kind(self) -> dict[str, int]:
        return {k: int(n) for k, n in self._read("SELECT kind, COUNT(*) FROM alarms GROUP BY kind")}

    def oldest_due_at(self, now: float) -> float | None:
        best: float | None = None
        for priority in (3, 2, 1, 0):
            # the earliest due of this priority, among at most _DUE_SCAN_MAX candidates in
            # due order (a destination with a message in flight waits for it: not counted)
            row = self._read(_OLDEST_DUE, (priority, now, now, now))[0]
            if row[0] is not None and (best is None or row[0] < best):
                best = float(row[0])
        return best

    # --- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- canary and attribution (issue 10, helper A) -------------------------
    # (insert below this line)
    def attempts_since(self, after_seq: int, limit: int) -> list[AttemptView]:
        if limit <= 0:
            return []
        rows = self._read(
            "SELECT a.seq, a.message_id, a.account, a.route, a.serving_node, a.outcome,"
            " a.error, a.started_at, a.ended_at, m.submitted_at"
            " FROM attempts a LEFT JOIN messages m ON m.id = a.message_id"
            " WHERE a.seq > ? ORDER BY a.seq LIMIT ?",
            (after_seq, limit),
        )
        return [AttemptView(*r) for r in rows]

    def alarms_since(self, after_id: int, limit: int) -> list[Alarm]:
        if limit <= 0:
            return []
        rows = self._read(
            f"SELECT {_ALARM_COLS} FROM alarms WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [self._alarm(r) for r in rows]

    def append_canary_probes(self, probes: Sequence[CanaryProbe]) -> list[CanaryProbe]:
        out = []
        with self._tx() as c:
            for p in probes:
                cur = c.execute(
                    "INSERT INTO canary_probes (at, route, serving_node, destination,"
                    " message_id, result, latency_s, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (p.at, p.route, p.serving_node, p.destination, p.message_id, p.result,
                     p.latency_s, p.detail),
                )
                out.append(replace(p, id=int(cur.lastrowid or 0)))
        return out

    def append_canary_probe(self, probe: CanaryProbe) -> CanaryProbe:
        return self.append_canary_probes([probe])[0]

    @staticmethod
    def _canary(r: Sequence[Any]) -> CanaryProbe:
        return CanaryProbe(*r)

    def canary_probes_since(self, after_id: int, limit: int) -> list[CanaryProbe]:
        if limit <= 0:
            return []
        rows = self._read(
            f"SELECT {_CANARY_COLS} FROM canary_probes WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [self._canary(r) for r in rows]

    def canary_states(self, now: float, window_s: float) -> list[CanaryState]:
        out = []
        with self._lock:
            c = self._conn
            places = c.execute(
                "SELECT DISTINCT route, serving_node FROM canary_probes"
                " INDEXED BY canary_probes_place ORDER BY route, serving_node"
            ).fetchall()
            for route, node in places:
                window = c.execute(
                    "SELECT at, result FROM canary_probes INDEXED BY canary_probes_place"
                    " WHERE route = ? AND serving_node IS ? AND at >= ?",
                    (route, node, now - window_s),
                ).fetchall()
                last = c.execute(
                    "SELECT at, result FROM canary_probes INDEXED BY canary_probes_place"
                    " WHERE route = ? AND serving_node IS ? ORDER BY at DESC, id DESC LIMIT 1",
                    (route, node),
                ).fetchone()
                bad = c.execute(
                    "SELECT MAX(at) FROM canary_probes INDEXED BY canary_probes_place"
                    " WHERE route = ? AND serving_node IS ? AND result != 'passed'",
                    (route, node),
                ).fetchone()[0]
                since = c.execute(
                    "SELECT MIN(at) FROM canary_probes INDEXED BY canary_probes_place"
                    " WHERE route = ? AND serving_node IS ? AND at > ? AND result = 'passed'",
                    (route, node, -1.0 if bad is None else bad),
                ).fetchone()[0]
                out.append(canary_state(
                    route, node, [(r[0], r[1]) for r in window],
                    None if last is None else last[0], None if last is None else last[1],
                    since,
                ))
        return out

    def delete_canary_probes(self, before: float, limit: int = 500) -> int:
        if limit <= 0:
            return 0
        with self._one_statement() as c:
            return c.execute(
                "DELETE FROM canary_probes WHERE id IN (SELECT id FROM canary_probes"
                " INDEXED BY canary_probes_time WHERE at < ? ORDER BY at LIMIT ?)",
                (before, limit),
            ).rowcount


    def delete_canary_records(self, final_before: float, limit: int = 500) -> int:
        if limit <= 0:
            return 0
        with self._tx() as c:
            ids = [r[0] for r in c.execute(
                "SELECT id FROM messages INDEXED BY messages_account_time WHERE account = ?"
                " AND submitted_at < ? AND final_at IS NOT NULL AND final_at < ?"
                " ORDER BY submitted_at LIMIT ?",
                (CANARY_ACCOUNT, final_before, final_before, limit),
            )]
            if not ids:
                return 0
            # the horizon the triggers let the canary account's rows go below (schema v15)
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (CANARY_HORIZON_META, repr(float(final_before))),
            )
            marks = ", ".join("?" * len(ids))
            c.execute(f"DELETE FROM attempts WHERE message_id IN ({marks})", ids)
            c.execute(f"DELETE FROM deliveries WHERE message_id IN ({marks})", ids)
            c.execute(f"DELETE FROM receipts WHERE message_id IN ({marks})", ids)
            return int(c.execute(f"DELETE FROM messages WHERE id IN ({marks})", ids).rowcount)

    # --- alerts (issue 10, helper B) -----------------------------------------
    # (insert below this line)
    _ALERT_COLS = (
        "id, rule, severity, place, state, started_at, last_evidence_at, resolved_at,"
        " acked_at, acked_by, note, summary, evidence, alarm_first_id, alarm_last_id"
    )

    @staticmethod
    def _alert(row: Sequence[Any]) -> AlertRecord:
        return AlertRecord(
            rule=row[1], severity=row[2], place=json.loads(row[3]), state=row[4],
            started_at=row[5], last_evidence_at=row[6], resolved_at=row[7], acked_at=row[8],
            acked_by=row[9], note=row[10], summary=row[11], evidence=json.loads(row[12]),
            alarm_first_id=row[13], alarm_last_id=row[14], id=int(row[0]),
        )

    def open_alert(self, alert: AlertRecord) -> AlertRecord:
        check_alert(alert)
        with self._one_statement() as c:
            cur = c.execute(
                "INSERT INTO alerts (rule, severity, place, state, started_at, last_evidence_at,"
                " resolved_at, acked_at, acked_by, note, summary, evidence, alarm_first_id,"
                " alarm_last_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (alert.rule, alert.severity, json.dumps(dict(alert.place), sort_keys=True),
                 alert.state, alert.started_at, alert.last_evidence_at, alert.resolved_at,
                 alert.acked_at, alert.acked_by, alert.note, alert.summary,
                 json.dumps(dict(alert.evidence), sort_keys=True), alert.alarm_first_id,
                 alert.alarm_last_id),
            )
            return replace(alert, id=int(cur.lastrowid or 0))

    def update_alert(self, alert: AlertRecord) -> AlertRecord | None:
        check_alert(alert)
        with self._tx() as c:
            n = c.execute(
                "UPDATE alerts SET severity = ?, state = ?, last_evidence_at = ?,"
                " resolved_at = ?, summary = ?, evidence = ?, alarm_first_id = ?,"
                " alarm_last_id = ? WHERE id = ?",
                (alert.severity, alert.state, alert.last_evidence_at, alert.resolved_at,
                 alert.summary, json.dumps(dict(alert.evidence), sort_keys=True),
                 alert.alarm_first_id, alert.alarm_last_id, alert.id),
            ).rowcount
            if n != 1:
                return None
            row = c.execute(
                f"SELECT {self._ALERT_COLS} FROM alerts WHERE id = ?", (alert.id,)
            ).fetchone()
            return self._alert(row)

    def ack_alert(self, alert_id: int, by: str, note: str, now: float) -> AlertRecord | None:
        check_ack(by, note)
        with self._tx() as c:
            c.execute(
                "UPDATE alerts SET acked_at = ?, acked_by = ?, note = ?"
                " WHERE id = ? AND acked_at IS NULL",
                (now, by, note, alert_id),
            )
            row = c.execute(
                f"SELECT {self._ALERT_COLS} FROM alerts WHERE id = ?", (alert_id,)
            ).fetchone()
            return None if row is None else self._alert(row)

    def alert(self, alert_id: int) -> AlertRecord | None:
        rows = self._read(f"SELECT {self._ALERT_COLS} FROM alerts WHERE id = ?", (alert_id,))
        return self._alert(rows[0]) if rows else None

    def alerts(
        self,
        state: str | None = None,
        limit: int = 100,
        *,
        acknowledged: bool | None = None,
        open_only: bool = False,
    ) -> list[AlertRecord]:
        check_alert_filters(state, limit)
        where: list[str] = []
        params: list[Any] = []
        source = "alerts"
        if open_only:
            source = "alerts INDEXED BY alerts_open"
            where.append("(state = 'firing' OR acked_at IS NULL)")
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if acknowledged is not None:
            where.append("acked_at IS NOT NULL" if acknowledged else "acked_at IS NULL")
        sql = f"SELECT {self._ALERT_COLS} FROM {source}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [self._alert(r) for r in self._read(sql, params)]

    def delete_alerts(self, before: float, limit: int = 500) -> int:
        with self._one_statement() as c:
            return c.execute(
                "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts INDEXED BY alerts_closed"
                " WHERE acked_at IS NOT NULL AND state = 'resolved' AND resolved_at < ?"
                " ORDER BY resolved_at LIMIT ?)",
                (before, max(0, limit)),
            ).rowcount

    def attempt_outcomes_since(
        self, after_seq: int, limit: int
    ) -> list[tuple[int, str, str, str | None, str, int | None, float, float | None]]:
        if limit <= 0:
            return []
        return self._read(
            "SELECT seq, account, route, serving_node, outcome, error, started_at, ended_at"
            " FROM attempts WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )

    def last_attempt_seq(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(seq), 0) FROM attempts")[0][0])

    def count_due(self, now: float, limit: int = 100_000) -> int:
        return int(self._read(
            "SELECT COUNT(*) FROM (SELECT 1 FROM messages INDEXED BY messages_expiry"
            f" WHERE state IN {_QUEUED} AND expires_at > ? AND next_attempt_at <= ?"
            " AND not_before <= ? LIMIT ?)",
            (now, now, now, max(0, limit)),
        )[0][0])


    # --- care and operator views (issue 10, helper C) ------------------------
    # (insert below this line)
    def add_complaint(self, complaint: Complaint) -> Complaint:
        with self._one_statement() as c:
            cur = c.execute(
                "INSERT INTO complaints (at, number, about_at, sender, message_id, verdict,"
                " route, serving_node) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (complaint.at, complaint.number, complaint.about_at, complaint.sender,
                 complaint.message_id, complaint.verdict, complaint.route,
                 complaint.serving_node),
            )
            return replace(complaint, id=int(cur.lastrowid or 0))

    def complaints_since(self, after_id: int, limit: int) -> list[Complaint]:
        rows = self._read(
            f"SELECT {_COMPLAINT_COLS} FROM complaints WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, max(0, limit)),
        )
        return [Complaint(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], int(r[0]))
                for r in rows]

    def complaint_counts(self) -> dict[tuple[str, str, str], int]:
        rows = self._read(
            "SELECT route, serving_node, verdict, COUNT(*) FROM complaints"
            " GROUP BY route, serving_node, verdict"
        )
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}

    def messages_of_number(
        self, number: str, sources: Sequence[str], since: float, until: float, limit: int
    ) -> list[Message]:
        marks = ", ".join("?" * len(sources)) or "NULL"
        # no index by destination (schema v14): the window is read per account through
        # messages_account_time (index only), the accounts found by skipping through it
        sql = (
            "WITH RECURSIVE acc(name) AS (SELECT MIN(account) FROM messages"
            " UNION ALL SELECT (SELECT MIN(account) FROM messages WHERE account > acc.name)"
            " FROM acc WHERE acc.name IS NOT NULL)"
            f" SELECT {_COLS} FROM messages WHERE rowid IN ("
            " SELECT m.rowid FROM acc JOIN messages AS m INDEXED BY messages_account_time"
            "  ON m.account = acc.name"
            "  WHERE m.submitted_at >= ? AND m.submitted_at < ? AND m.destination = ?"
            " UNION SELECT rowid FROM messages INDEXED BY messages_source"
            f"  WHERE source_addr IN ({marks}) AND submitted_at >= ? AND submitted_at < ?)"
            " ORDER BY submitted_at DESC, id DESC LIMIT ?"
        )
        params = (since, until, number, *sources, since, until, max(0, limit))
        return [_from_row(r, self.cipher) for r in self._read(sql, params)]

    def messages_from_sources(
        self, sources: Sequence[str], since: float, until: float, limit: int
    ) -> list[Message]:
        if not sources:
            return []
        marks = ", ".join("?" * len(sources))
        rows = self._read(
            f"SELECT {_COLS} FROM messages INDEXED BY messages_source"
            f" WHERE source_addr IN ({marks}) AND submitted_at >= ? AND submitted_at < ?"
            " ORDER BY submitted_at, id LIMIT ?",
            (*sources, since, until, max(0, limit)),
        )
        return [_from_row(r, self.cipher) for r in rows]

    def queue_shape(
        self, now: float, edges_s: Sequence[float]
    ) -> list[tuple[str, str | None, int, int]]:
        bucket = "CASE" + "".join(
            f" WHEN ? - submitted_at < ? THEN {i}" for i in range(len(edges_s))
        ) + f" ELSE {len(edges_s)} END"
        params: list[Any] = []
        for edge in edges_s:
            params += [now, float(edge)]
        rows = self._read(
            f"SELECT route, node, {bucket} AS b, COUNT(*) FROM ("
            f"SELECT u.route, u.submitted_at, {_LAST_SERVING_NODE} AS node"
            f" FROM ({_UNFINISHED}) AS u"
            ") GROUP BY route, node, b ORDER BY route, node, b",
            params,
        )
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    def receipt_times(self, message_id: str) -> tuple[str, float, float | None] | None:
        rows = self._read(
            "SELECT state, created_at, sent_at FROM receipts WHERE message_id = ?", (message_id,)
        )
        return None if not rows else (rows[0][0], float(rows[0][1]), rows[0][2])

    # --- interconnect config: connectors, routes, partner accounts (issue 11, helper E) ---
    # (insert below this line)
    @staticmethod
    def _connector(row: Sequence[Any]) -> ConnectorConfig:
        return ConnectorConfig(row[0], row[1], int(row[2]), row[3], row[4], row[5], int(row[6]),
                               int(row[7]), row[8], float(row[9]), bool(row[10]),
                               float(row[11]), float(row[12]), row[13])

    @staticmethod
    def _connector_values(cfg: ConnectorConfig) -> tuple[Any, ...]:
        return (cfg.name, cfg.host, cfg.port, cfg.system_id, cfg.password, cfg.bind,
                cfg.window, cfg.throughput_per_s, cfg.system_type, float(cfg.enquire_link_s),
                int(cfg.payload), float(cfg.created_at), float(cfg.updated_at),
                cfg.receipt_ids)

    def add_connector(self, cfg: ConnectorConfig) -> ConnectorConfig:
        check_connector(cfg)
        with self._one_statement() as c:
            try:
                c.execute(f"INSERT INTO connectors ({_CONNECTOR_COLS})"
                          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          self._connector_values(cfg))
            except sqlite3.IntegrityError:
                raise ConnectorExists(cfg.name) from None
        return cfg

    def get_connector(self, name: str) -> ConnectorConfig | None:
        rows = self._read(f"SELECT {_CONNECTOR_COLS} FROM connectors WHERE name = ?", (name,))
        return self._connector(rows[0]) if rows else None

    def list_connectors(self) -> list[ConnectorConfig]:
        rows = self._read(f"SELECT {_CONNECTOR_COLS} FROM connectors ORDER BY name")
        return [self._connector(r) for r in rows]

    def update_connector(self, cfg: ConnectorConfig) -> bool:
        check_connector(cfg)
        v = self._connector_values(cfg)
        with self._one_statement() as c:
            return c.execute(
                "UPDATE connectors SET host = ?, port = ?, system_id = ?, password = ?, bind = ?,"
                " window_size = ?, throughput_per_s = ?, system_type = ?, enquire_link_s = ?,"
                " payload = ?, updated_at = ?, receipt_ids = ? WHERE name = ?",
                (*v[1:11], v[12], v[13], cfg.name),
            ).rowcount > 0

    def remove_connector(self, name: str) -> bool:
        with self._tx() as c:
            using = [r for (r, via) in c.execute("SELECT name, via FROM route_rules"
                                                " ORDER BY position, name").fetchall()
                     if name in json.loads(via)]
            if using:
                raise ConnectorInUse(name, using)
            c.execute("DELETE FROM connector_status WHERE name = ?", (name,))
            return c.execute("DELETE FROM connectors WHERE name = ?", (name,)).rowcount > 0

    def put_connector_statuses(self, statuses: Sequence[ConnectorStatus]) -> None:
        for st in statuses:
            check_connector_status(st)
        if not statuses:
            return
        with self._one_statement() as c:
            c.executemany(
                f"INSERT INTO connector_status ({_STATUS_COLS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " state = excluded.state, since = excluded.since, sessions = excluded.sessions,"
                " window_in_use = excluded.window_in_use, sent = excluded.sent,"
                " failed = excluded.failed, receipts = excluded.receipts,"
                " detail = excluded.detail, updated_at = excluded.updated_at",
                [(st.name, st.state, st.since, st.sessions, st.window_in_use, st.sent, st.failed,
                  st.receipts, st.detail, st.updated_at) for st in statuses],
            )

    def connector_statuses(self) -> list[ConnectorStatus]:
        rows = self._read(f"SELECT {_STATUS_COLS} FROM connector_status ORDER BY name")
        return [ConnectorStatus(r[0], r[1], float(r[2]), int(r[3]), int(r[4]), int(r[5]),
                                int(r[6]), int(r[7]), r[8], float(r[9])) for r in rows]

    @staticmethod
    def _route(row: Sequence[Any]) -> RouteConfig:
        return RouteConfig(row[0], tuple(json.loads(row[1])), tuple(json.loads(row[2])), row[3],
                           row[4], row[5], int(row[6]), float(row[7]))

    def add_route(self, cfg: RouteConfig) -> RouteConfig:
        check_route(cfg)
        with self._tx() as c:
            if c.execute("SELECT 1 FROM route_rules WHERE name = ?", (cfg.name,)).fetchone():
                raise RouteExists(cfg.name)
            known = {r[0] for r in c.execute("SELECT name FROM connectors").fetchall()}
            missing = [v for v in cfg.via if v not in known]
            if missing:
                raise UnknownConnector(missing)
            last = int(c.execute("SELECT COALESCE(MAX(position), 0) FROM route_rules")
                       .fetchone()[0])
            position = cfg.position
            if position == 0 or position > last:
                position = last + 1
            else:
                c.execute("UPDATE route_rules SET position = position + 1 WHERE position >= ?",
                          (position,))
            out = replace(cfg, position=position, via=tuple(cfg.via),
                          prefixes=tuple(cfg.prefixes))
            c.execute(
                f"INSERT INTO route_rules ({_ROUTE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (out.name, json.dumps(list(out.via)), json.dumps(list(out.prefixes)),
                 out.operator, out.account, out.window, out.position, float(out.created_at)),
            )
        return out

    def list_routes(self) -> list[RouteConfig]:
        rows = self._read(f"SELECT {_ROUTE_COLS} FROM route_rules ORDER BY position, name")
        return [self._route(r) for r in rows]

    def remove_route(self, name: str) -> bool:
        with self._one_statement() as c:
            return c.execute("DELETE FROM route_rules WHERE name = ?", (name,)).rowcount > 0

    def final_counts_by_route(
        self, since: float, rows_max: int = 200_000
    ) -> dict[tuple[str, str], int]:
        # the final messages of the window from the two partial indexes of final_at (texts
        # kept, texts purged), each read up to ``rows_max``: no scan of the whole table
        rows = self._read(
            "SELECT route, state, COUNT(*) FROM ("
            " SELECT * FROM (SELECT route, state FROM messages INDEXED BY messages_final_content"
            "  WHERE final_at >= ? AND final_at IS NOT NULL AND content != x'' LIMIT ?)"
            " UNION ALL"
            " SELECT * FROM (SELECT route, state FROM messages INDEXED BY messages_final_purged"
            "  WHERE final_at >= ? AND final_at IS NOT NULL AND content = x'' LIMIT ?)"
            ") GROUP BY route, state",
            (since, max(0, rows_max), since, max(0, rows_max)),
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}


    # --- forwards to partners and their receipts (issue 11, main) ---
    # (insert below this line)
    def count_held_receipts(self) -> int:
        return int(self._read("SELECT COUNT(DISTINCT held_id) FROM partner_receipts_held")[0][0])

    # the primitives of store.forwards (ForwardTables), inside the caller's transaction
    def fw_insert(self, parts: Sequence[ForwardPart]) -> None:
        with self._tx() as c:
            c.executemany(
                f"INSERT INTO forwards ({_FORWARD_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_forward_row(p) for p in parts],
            )

    def fw_by_partner(self, connector: str, ids: Sequence[str]) -> list[ForwardPart]:
        marks = ", ".join("?" * len(ids))
        rows = self._read(
            f"SELECT {_FORWARD_COLS} FROM forwards INDEXED BY forwards_partner"
            f" WHERE connector = ? AND partner_id IN ({marks})",
            (connector, *ids),
        )
        return [_forward(r) for r in rows]

    def fw_messages(self, ids: Sequence[str]) -> dict[str, Message]:
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        rows = self._read(f"SELECT {_COLS} FROM messages WHERE id IN ({marks})", tuple(ids))
        return {m.id: m for m in (_from_row(r, self.cipher) for r in rows)}

    def fw_of_message(self, message_id: str) -> list[ForwardPart]:
        rows = self._read(
            f"SELECT {_FORWARD_COLS} FROM forwards WHERE message_id = ? ORDER BY part",
            (message_id,),
        )
        return [_forward(r) for r in rows]

    def fw_set(self, part: ForwardPart) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE forwards SET state = ?, error = ?, receipt_at = ?"
                " WHERE message_id = ? AND part = ?",
                (part.state.value, part.error, part.receipt_at, part.message_id, part.part),
            )

    def fw_set_many(self, parts: Sequence[ForwardPart]) -> None:
        if not parts:
            return
        with self._one_statement() as c:
            c.executemany(
                "UPDATE forwards SET state = ?, error = ?, receipt_at = ?"
                " WHERE message_id = ? AND part = ?",
                [(p.state.value, p.error, p.receipt_at, p.message_id, p.part) for p in parts],
            )

    def fw_end_many(
        self, ends: Sequence[tuple[Message, State, Mapping[str, object]]], now: float
    ) -> list[Message]:
        """Each ``transition(id, FORWARDED, final, now, **changes)`` of ``ends``, in a few
        statements: the UPDATE is a compare-and-set on FORWARDED, so a row that is not (any
        more) refuses the whole batch (StaleState), and a second delivery is refused by the
        deliveries key (DuplicateDelivery)."""
        if not ends:
            return []
        news = [plan_transition(old, State.FORWARDED, final, now, None, changes, False)
                for old, final, changes in ends]
        names = [n for n in MESSAGE_COLUMNS if n in _FORWARD_END_NAMES]
        sets = ", ".join(f"{n} = ?" for n in names)
        with self._tx() as c:
            cur = c.executemany(
                f"UPDATE messages SET {sets} WHERE id = ? AND state = 'FORWARDED'",
                [(*[_message_value(n, new, self.cipher) for n in names], new.id)
                 for new in news],
            )
            if cur.rowcount != len(news):
                raise StaleState(news[0].id, State.FORWARDED, news[0].state, "row changed")
            delivered: list[tuple[Any, ...]] = []
            receipts: list[tuple[float, int | None, str]] = []
            callbacks: list[tuple[Any, ...]] = []
            for (old, _, _), new in zip(ends, news, strict=True):
                _effect_rows(old, new, now, delivered, receipts, callbacks)
            try:
                if delivered:
                    c.executemany(_INSERT_DELIVERY, delivered)
            except sqlite3.IntegrityError:
                raise DuplicateDelivery(delivered[0][0]) from None
            if receipts:
                c.executemany(_INSERT_RECEIPT, receipts)
            if callbacks:
                c.executemany(_INSERT_CALLBACK, callbacks)
        return news

    def held_insert(self, receipt: PartnerReceipt) -> None:
        with self._tx() as c:
            row = c.execute(
                "SELECT COALESCE(MAX(held_id), 0) + 1 FROM partner_receipts_held"
            ).fetchone()
            held_id = int(row[0])
            readings = ",".join(receipt.candidates)
            state = None if receipt.state is None else receipt.state.value
            c.executemany(
                "INSERT INTO partner_receipts_held (held_id, connector, reading, readings,"
                " state, partner_err, received_at, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (held_id, receipt.connector, reading, readings, state,
                     receipt.partner_err, receipt.received_at, receipt.session)
                    for reading in receipt.candidates
                ],
            )

    def held_matching(
        self, connector: str, ids: Sequence[str]
    ) -> list[tuple[int, PartnerReceipt]]:
        marks = ", ".join("?" * len(ids))
        rows = self._read(
            "SELECT DISTINCT held_id, connector, readings, state, partner_err, received_at,"
            " session FROM partner_receipts_held INDEXED BY partner_receipts_held_reading"
            f" WHERE connector = ? AND reading IN ({marks}) ORDER BY held_id",
            (connector, *ids),
        )
        return [_held(r) for r in rows]

    def held_delete(self, held_id: int) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM partner_receipts_held WHERE held_id = ?", (held_id,))

    def held_before(
        self, received_before: float, limit: int
    ) -> list[tuple[int, PartnerReceipt]]:
        rows = self._read(
            "SELECT held_id, connector, readings, state, partner_err, received_at, session"
            " FROM partner_receipts_held INDEXED BY partner_receipts_held_time"
            " WHERE received_at < ? GROUP BY held_id ORDER BY held_id LIMIT ?",
            (received_before, limit),
        )
        return [_held(r) for r in rows]

    def forwarded_due(self, expired_before: float, limit: int) -> list[Message]:
        rows = self._read(
            f"SELECT {_COLS} FROM messages INDEXED BY messages_forwarded"
            " WHERE state = 'FORWARDED' AND expires_at < ? ORDER BY expires_at LIMIT ?",
            (expired_before, limit),
        )
        return [_from_row(r, self.cipher) for r in rows]


    # --- HTTP senders: API keys, idempotency, callbacks outbox (issue 12, helper S) ---
    # (insert below this line)
    def add_api_key(self, account: str, key_id: str, secret_hash: bytes, now: float) -> None:
        check_api_key(key_id, secret_hash)
        with self._tx() as c:
            if c.execute("SELECT 1 FROM accounts WHERE name = ?", (account,)).fetchone() is None:
                raise UnknownAccount(account)
            try:
                c.execute(
                    "INSERT INTO api_keys (key_id, account, secret_hash, created_at, revoked_at)"
                    " VALUES (?, ?, ?, ?, NULL)",
                    (key_id, account, bytes(secret_hash), now),
                )
            except sqlite3.IntegrityError:
                raise StoreError(f"api key {key_id} exists") from None

    @staticmethod
    def _api_key(r: Sequence[Any]) -> ApiKey:
        return ApiKey(r[0], r[1], bytes(r[2]), float(r[3]), r[4])

    def api_key(self, key_id: str) -> ApiKey | None:
        rows = self._read(
            "SELECT key_id, account, secret_hash, created_at, revoked_at FROM api_keys"
            " WHERE key_id = ?",
            (key_id,),
        )
        return self._api_key(rows[0]) if rows else None

    def api_keys(self, account: str) -> list[ApiKey]:
        rows = self._read(
            "SELECT key_id, account, secret_hash, created_at, revoked_at FROM api_keys"
            " WHERE account = ? ORDER BY created_at, key_id",
            (account,),
        )
        return [self._api_key(r) for r in rows]

    def revoke_api_key(self, account: str, key_id: str, now: float) -> bool:
        with self._one_statement() as c:
            return c.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND account = ?"
                " AND revoked_at IS NULL",
                (now, key_id, account),
            ).rowcount == 1

    def set_account_callbacks(
        self, account: str, *, url: str | None, hosts: tuple[str, ...], secret: bytes | None
    ) -> None:
        url, hosts, secret = check_account_callbacks(url, hosts, secret)
        with self._one_statement() as c:
            n = c.execute(
                "UPDATE accounts SET callback_url = ?, callback_hosts = ?, webhook_secret = ?"
                " WHERE name = ?",
                (url, json.dumps(list(hosts)), secret, account),
            ).rowcount
        if n == 0:
            raise UnknownAccount(account)

    def idempotency_get(self, account: str, key: str) -> IdempotencyRecord | None:
        rows = self._read(
            "SELECT account, key, body_hash, status, response, created_at FROM idempotency"
            " WHERE account = ? AND key = ?",
            (account, key),
        )
        if not rows:
            return None
        r = rows[0]
        return IdempotencyRecord(r[0], r[1], bytes(r[2]), int(r[3]), r[4], float(r[5]))

    def idempotency_put(
        self, account: str, key: str, body_hash: bytes, status: int, response: str, now: float
    ) -> None:
        check_idempotency(account, key, body_hash, status, response)
        with self._one_statement() as c:
            try:
                c.execute(
                    "INSERT INTO idempotency (account, key, body_hash, status, response,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (account, key, bytes(body_hash), status, response, now),
                )
            except sqlite3.IntegrityError:
                raise IdempotencyExists(account, key) from None

    def prune_idempotency(self, before: float, limit: int = 5000) -> int:
        if limit <= 0:
            return 0
        with self._one_statement() as c:
            return c.execute(
                "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency"
                " INDEXED BY idempotency_time WHERE created_at < ? ORDER BY created_at"
                " LIMIT ?)",
                (before, limit),
            ).rowcount

    def due_callbacks(self, now: float, limit: int) -> list[Callback]:
        if limit <= 0:
            return []
        rows = self._read(
            f"SELECT {_CALLBACK_COLS} FROM callbacks AS c INDEXED BY callbacks_due"
            f" WHERE {_CB_PENDING} AND next_attempt_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM callbacks AS o INDEXED BY callbacks_message"
            "  WHERE o.message_id = c.message_id AND o.event_id < c.event_id"
            "  AND o.sent_at IS NULL AND o.gave_up_at IS NULL)"
            " ORDER BY next_attempt_at, event_id LIMIT ?",
            (now, limit),
        )
        return [_callback(r) for r in rows]

    def callbacks_sent(self, event_ids: Sequence[int], now: float) -> None:
        if not event_ids:
            return
        with self._one_statement() as c:
            c.executemany(
                f"UPDATE callbacks SET sent_at = ?, attempts = attempts + 1"
                f" WHERE event_id = ? AND {_CB_PENDING}",
                [(now, int(i)) for i in event_ids],
            )

    def callback_retry(
        self, event_id: int, next_attempt_at: float, last_status: int | None
    ) -> None:
        with self._tx() as c:
            row = c.execute(
                "UPDATE callbacks SET attempts = attempts + 1, next_attempt_at = ?,"
                f" last_status = ? WHERE event_id = ? AND {_CB_PENDING} RETURNING message_id",
                (next_attempt_at, last_status, event_id),
            ).fetchone()
            if row is not None:  # the events behind it wait as long
                c.execute(
                    "UPDATE callbacks INDEXED BY callbacks_message"
                    " SET next_attempt_at = max(next_attempt_at, ?)"
                    f" WHERE message_id = ? AND event_id > ? AND {_CB_PENDING}",
                    (next_attempt_at, row[0], event_id),
                )

    def callback_gave_up(self, event_id: int, now: float, last_status: int | None) -> None:
        with self._one_statement() as c:
            c.execute(
                "UPDATE callbacks SET attempts = attempts + 1, gave_up_at = ?, last_status = ?"
                f" WHERE event_id = ? AND {_CB_PENDING}",
                (now, last_status, event_id),
            )

    def callbacks_of_message(self, message_id: str) -> list[Callback]:
        rows = self._read(
            f"SELECT {_CALLBACK_COLS} FROM callbacks INDEXED BY callbacks_message"
            " WHERE message_id = ? ORDER BY event_id",
            (message_id,),
        )
        return [_callback(r) for r in rows]

    def pending_callbacks(self) -> int:
        return int(self._read(
            f"SELECT COUNT(*) FROM callbacks INDEXED BY callbacks_due WHERE {_CB_PENDING}"
        )[0][0])

    def prune_callbacks(self, before: float, limit: int = 5000) -> int:
        if limit <= 0:
            return 0
        with self._one_statement() as c:
            return c.execute(
                "DELETE FROM callbacks WHERE event_id IN (SELECT event_id FROM callbacks"
                " INDEXED BY callbacks_done WHERE (sent_at IS NOT NULL OR gave_up_at IS NOT NULL)"
                " AND coalesce(sent_at, gave_up_at) < ? ORDER BY coalesce(sent_at, gave_up_at)"
                " LIMIT ?)",
                (before, limit),
            ).rowcount

    def messages_by_reference(
        self, account: str, client_reference: str, limit: int
    ) -> list[Message]:
        rows = self._read(
            f"SELECT {_COLS} FROM messages INDEXED BY messages_reference"
            " WHERE account = ? AND client_reference = ? AND client_reference IS NOT NULL"
            " ORDER BY submitted_at DESC, id DESC LIMIT ?",
            (account, client_reference, max(0, limit)),
        )
        return [_from_row(r, self.cipher) for r in rows]

    # --- credential guessing: lockout counters (issue 13, helper bind) ---
    def lockout_rows(self) -> list[LockoutRow]:
        rows = self._read(
            f"SELECT {_LOCKOUT_COLS} FROM lockouts ORDER BY realm, scope, principal, address")
        return [LockoutRow(r[0], r[1], r[2], r[3], int(r[4]), float(r[5]), int(r[6]),
                           float(r[7]), float(r[8]), None if r[9] is None else float(r[9]))
                for r in rows]

    def put_lockout_rows(
        self, rows: Sequence[LockoutRow], deleted: Sequence[tuple[str, str, str, str]] = ()
    ) -> None:
        if not rows and not deleted:
            return
        with self._tx() as c:
            c.executemany(
                f"INSERT OR REPLACE INTO lockouts ({_LOCKOUT_COLS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.realm, r.scope, r.principal, r.address, r.failures, r.window_start,
                  r.lockouts, r.locked_until, r.last_failure_at, r.last_success_at)
                 for r in rows],
            )
            c.executemany(
                "DELETE FROM lockouts WHERE realm = ? AND scope = ? AND principal = ?"
                " AND address = ?",
                [tuple(k) for k in deleted],
            )


_LOCKOUT_COLS = ("realm, scope, principal, address, failures, window_start, lockouts,"
                 " locked_until, last_failure_at, last_success_at")
