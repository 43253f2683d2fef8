"""Schema migrations: an ordered list of (version, statements), applied once each.

The SQL is kept plain (TEXT/INTEGER/REAL/BLOB, partial indexes, NOT EXISTS) so that the same
schema ports to PostgreSQL with type renames (REAL -> DOUBLE PRECISION, BLOB -> BYTEA,
INTEGER PRIMARY KEY -> BIGINT GENERATED ALWAYS AS IDENTITY). Statements marked ``sqlite`` are
SQLite-only (the append-only triggers; PostgreSQL would use a rule or REVOKE instead).
"""

from __future__ import annotations

import sqlite3
from typing import Literal

Dialect = Literal["any", "sqlite"]

MESSAGE_COLUMNS: tuple[str, ...] = (
    "id",
    "account",
    "source_addr",
    "destination",
    "content",
    "submitted_at",
    "expires_at",
    "source_ton",
    "source_npi",
    "data_coding",
    "esm_class",
    "registered_delivery",
    "priority",
    "protocol_id",
    "not_before",
    "state",
    "route",
    "attempts",
    "next_attempt_at",
    "tag",
    "final_at",
    "error",
    "delivered_imsi",
    "delivered_msisdn",
    "lease_until",
    "lease_owner",
    "extra",
    "reference",
    "addressed_imsi",
    "scts",
    "client_reference",  # schema v18
)

_V1: list[tuple[Dialect, str]] = [
    ("any", "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"),
    (
        "any",
        """CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            throughput_per_s INTEGER
        )""",
    ),
    (
        "any",
        """CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            account TEXT NOT NULL,
            source_addr TEXT NOT NULL,
            destination TEXT NOT NULL,
            content BLOB NOT NULL,
            submitted_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            source_ton INTEGER NOT NULL,
            source_npi INTEGER NOT NULL,
            data_coding INTEGER NOT NULL,
            esm_class INTEGER NOT NULL,
            registered_delivery INTEGER NOT NULL,
            priority INTEGER NOT NULL,
            protocol_id INTEGER NOT NULL,
            not_before REAL NOT NULL,
            state TEXT NOT NULL,
            route TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at REAL NOT NULL,
            tag BLOB NOT NULL,
            final_at REAL,
            error INTEGER,
            delivered_imsi TEXT,
            delivered_msisdn TEXT,
            lease_until REAL,
            lease_owner TEXT,
            extra TEXT NOT NULL
        )""",
    ),
    (
        "any",
        """CREATE INDEX messages_due ON messages (priority, next_attempt_at, submitted_at, id)
           WHERE state IN ('ROUTED', 'DEFERRED')""",
    ),
    (
        "any",
        """CREATE INDEX messages_expiry ON messages (expires_at)
           WHERE state IN ('ROUTED', 'DEFERRED')""",
    ),
    ("any", "CREATE INDEX messages_destination ON messages (destination, state)"),
    ("any", "CREATE INDEX messages_state ON messages (state, lease_until)"),
    ("any", "CREATE INDEX messages_account ON messages (account, submitted_at)"),
    ("any", "CREATE INDEX messages_route ON messages (route, state)"),
    ("any", "CREATE INDEX messages_final ON messages (final_at) WHERE final_at IS NOT NULL"),
    (
        "any",
        """CREATE TABLE receipts (
            receipt_id INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL UNIQUE,
            account TEXT NOT NULL,
            state TEXT NOT NULL,
            error INTEGER,
            submitted_at REAL NOT NULL,
            final_at REAL NOT NULL,
            source_addr TEXT NOT NULL,
            source_ton INTEGER NOT NULL,
            source_npi INTEGER NOT NULL,
            destination TEXT NOT NULL,
            created_at REAL NOT NULL,
            sent_at REAL
        )""",
    ),
    (
        "any",
        "CREATE INDEX receipts_pending ON receipts (account, receipt_id) WHERE sent_at IS NULL",
    ),
    (
        "any",
        """CREATE TABLE deliveries (
            message_id TEXT PRIMARY KEY,
            imsi TEXT,
            msisdn TEXT,
            at REAL NOT NULL
        )""",
    ),
    (
        "any",
        """CREATE TABLE attempts (
            seq INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL,
            account TEXT NOT NULL,
            destination TEXT NOT NULL,
            imsi TEXT,
            route TEXT NOT NULL,
            node INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            outcome TEXT NOT NULL,
            error INTEGER
        )""",
    ),
    ("any", "CREATE INDEX attempts_time ON attempts (started_at)"),
    ("any", "CREATE INDEX attempts_message ON attempts (message_id)"),
    (
        "sqlite",
        """CREATE TRIGGER attempts_no_update BEFORE UPDATE ON attempts
           BEGIN SELECT RAISE(ABORT, 'attempts are append-only'); END""",
    ),
    (
        "sqlite",
        """CREATE TRIGGER attempts_no_delete BEFORE DELETE ON attempts
           BEGIN SELECT RAISE(ABORT, 'attempts are append-only'); END""",
    ),
    (
        "sqlite",
        """CREATE TRIGGER deliveries_no_update BEFORE UPDATE ON deliveries
           BEGIN SELECT RAISE(ABORT, 'deliveries are write-once'); END""",
    ),
]

#: v2: integrity alarms (append-only), the durable per-route breaker, switchable faults.
_V2: list[tuple[Dialect, str]] = [
    (
        "any",
        """CREATE TABLE alarms (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            message_ids TEXT NOT NULL,
            account TEXT NOT NULL,
            route TEXT NOT NULL,
            node INTEGER NOT NULL,
            adapter TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
    ),
    ("any", "CREATE INDEX alarms_time ON alarms (at)"),
    ("any", "CREATE INDEX alarms_route ON alarms (route)"),
    (
        "sqlite",
        """CREATE TRIGGER alarms_no_update BEFORE UPDATE ON alarms
           BEGIN SELECT RAISE(ABORT, 'alarms are append-only'); END""",
    ),
    (
        "sqlite",
        """CREATE TRIGGER alarms_no_delete BEFORE DELETE ON alarms
           BEGIN SELECT RAISE(ABORT, 'alarms are append-only'); END""",
    ),
    (
        "any",
        """CREATE TABLE routes (
            name TEXT PRIMARY KEY,
            held INTEGER NOT NULL DEFAULT 0,
            held_at REAL,
            reason TEXT NOT NULL DEFAULT '',
            alarms INTEGER NOT NULL DEFAULT 0
        )""",
    ),
    (
        "any",
        """CREATE TABLE faults (
            name TEXT PRIMARY KEY,
            on_ INTEGER NOT NULL,
            rate REAL NOT NULL,
            route TEXT NOT NULL,
            params TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ),
]

#: v3: cheaper state changes. Every claim and every outcome changes ``state``, and each index
#: holding ``state`` moves an entry. ``messages_destination (destination, state)`` did so at
#: random places of a large index (destinations are spread): it becomes ``(destination)``,
#: which a state change leaves alone (``retry_now``, listing by destination), plus the small
#: ``messages_dispatched``, the only thing ``claim_due`` asks of it ("is a message to this
#: destination in flight?"). ``messages_route (route, state)`` served only holding and
#: releasing a route: holding (rare) scans the queued messages through ``messages_state``,
#: releasing and counting held messages use ``messages_held``. Measured on 20,000 claims and
#: outcomes in transactions of 25 over 60,000 older messages: WAL pages per transaction 91
#: -> 40, store time per message about -30 %.
_V3: list[tuple[Dialect, str]] = [
    ("any", "DROP INDEX messages_destination"),
    ("any", "CREATE INDEX messages_destination ON messages (destination)"),
    (
        "any",
        "CREATE INDEX messages_dispatched ON messages (destination) WHERE state = 'DISPATCHED'",
    ),
    ("any", "DROP INDEX messages_route"),
    ("any", "CREATE INDEX messages_held ON messages (route) WHERE state = 'HELD'"),
]

#: v4: the TP-MR is the store's. It used to be 8 bits of a hash of the message id, so two
#: different messages with the same text from one sender to one number looked like a resend to
#: the handset one time in 256 and it dropped the second (acknowledged: DELIVERED, but lost).
#: Now the first claim of a message gives it the next reference of its destination
#: (``destination_references``, keyed by the number as an integer: half the cost of a text key
#: in a claim) and every resend carries the same one. Messages claimed before
#: v4 keep the old derived reference (``reference`` NULL with attempts > 0), so a resend of a
#: message in flight across the upgrade is still recognised.
_V4: list[tuple[Dialect, str]] = [
    ("any", "ALTER TABLE messages ADD COLUMN reference INTEGER"),
    (
        "any",
        """CREATE TABLE destination_references (
            number INTEGER PRIMARY KEY,
            next_reference INTEGER NOT NULL
        )""",
    ),
]

#: v5: a cheaper insert. Every submit
#: inserted an entry into ``messages_destination (destination)`` at a random place of a large
#: index (destinations are spread): on 100 submits over 60,000 messages, 1.7 ms of SQL and
#: 0.9 ms of COMMIT (WAL pages) under the write lock, of which that index alone was about
#: 0.6 + 0.6 ms. Its one hot reader, ``retry_now`` (an alert: "this destination is reachable
#: again"), asks only for DEFERRED messages: it gets ``messages_deferred``, which an insert
#: (ROUTED) and a delivery that succeeds at once never touch. Listing messages by destination
#: (operator tools, not the message path) reads the table instead.
_V5: list[tuple[Dialect, str]] = [
    ("any", "DROP INDEX messages_destination"),
    (
        "any",
        "CREATE INDEX messages_deferred ON messages (destination) WHERE state = 'DEFERRED'",
    ),
]

#: v6: no index of every message by state. ``messages_state (state, lease_until)`` moved an
#: entry at every claim and every outcome (state and lease change both) and took one at every
#: insert, for readers that each have a small partial index of their own: the queue gauge
#: counts the unfinished through the partial indexes of the queued, in-flight, held and
#: accepted messages (it had counted the whole index, finished messages too, every 5 s);
#: lease recovery and listing the in-flight read ``messages_dispatched``; holding a route
#: reads the queued through ``messages_expiry``. Only the audit counts every state, and it
#: reads every message anyway.
_V6: list[tuple[Dialect, str]] = [
    ("any", "DROP INDEX messages_state"),
    ("any", "CREATE INDEX messages_accepted ON messages (id) WHERE state = 'ACCEPTED'"),
]

#: v7: a receipt carries the submitter's ``user_message_reference`` back (deliver_sm TLV), so
#: a sender can match it with its own reference as well as with the message id.
_V7: list[tuple[Dialect, str]] = [
    ("any", "ALTER TABLE receipts ADD COLUMN user_message_reference INTEGER"),
]

#: v8: the identity an attempt addresses is written before the message goes out. A crash in
#: the middle of an attempt (the handset may have stored the message) used to leave an
#: INTERRUPTED attempt with no identity, so the retry went to whoever held the number then:
#: after a SIM swap or a recycled number, a second identity got it, unseen.
_V8: list[tuple[Dialect, str]] = [
    ("any", "ALTER TABLE messages ADD COLUMN addressed_imsi TEXT"),
]

#: v9: SMS-DELIVER carries a TP-SCTS, not a TP-MR (TP-MR belongs to SMS-SUBMIT), and TS 23.040
#: §6.2 makes the SC identify each SMS-DELIVER to an MS by it: distinct for every message to
#: that MS, bumped when two arrive within one second. The first claim of a message gives it
#: ``max(now, last + 1)`` seconds from its destination's ``destination_timestamps`` row
#: (keyed by the number as an integer, as the TP-MR counter was), in the claim's transaction,
#: and every resend carries the same stamp. The TP-MR counter goes; ``messages.reference``
#: stays for the messages first attempted before v9 (``scts`` NULL with attempts > 0): their
#: resends keep the identity the handsets knew them by then.
_V9: list[tuple[Dialect, str]] = [
    ("any", "ALTER TABLE messages ADD COLUMN scts INTEGER"),
    (
        "any",
        """CREATE TABLE destination_timestamps (
            number INTEGER PRIMARY KEY,
            last_scts INTEGER NOT NULL
        )""",
    ),
    ("any", "DROP TABLE destination_references"),
]

#: v10: retention (docs/architecture.md, "Disk: WAL and retention"). The audit tables stay
#: append-only against everything but the retention pass: a row may be deleted only when it is
#: older than the horizon that pass writes into ``meta`` in the same transaction (absent: no
#: row may go), never updated; a message only once final before it; the horizon is never in
#: the future. ``messages_final`` becomes two partial indexes of the final messages by
#: ``final_at``: those that still have their text (the purge reads only them, however many
#: purged messages the store keeps) and those whose text is gone (the deletion reads them).
#: A final state still enters one index entry, as before; a purge moves it from one to the
#: other. (v9 and v11 are other changes' numbers: versions apply in list order, each once.)
RETENTION_HORIZON_META = "retention_horizon"
_HORIZON = (
    "COALESCE((SELECT CAST(value AS REAL) FROM meta WHERE key = 'retention_horizon'), -1e308)"
)
_NOW_S = "((julianday('now') - 2440587.5) * 86400.0)"


def _older_only(table: str, column: str, what: str) -> list[tuple[Dialect, str]]:
    return [
        ("sqlite", f"DROP TRIGGER IF EXISTS {table}_no_delete"),
        (
            "sqlite",
            f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
               WHEN OLD.{column} IS NULL OR OLD.{column} >= {_HORIZON}
               BEGIN SELECT RAISE(ABORT, '{what} (retention deletes only older rows)'); END""",
        ),
    ]


_V10: list[tuple[Dialect, str]] = [
    *_older_only("attempts", "started_at", "attempts are append-only"),
    *_older_only("alarms", "at", "alarms are append-only"),
    *_older_only("deliveries", "at", "deliveries are write-once"),
    *_older_only("messages", "final_at", "a message is deleted only once final"),
    *[
        (
            "sqlite",
            f"""CREATE TRIGGER retention_horizon_{event.lower()} BEFORE {event} ON meta
               WHEN NEW.key = 'retention_horizon' AND CAST(NEW.value AS REAL) > {_NOW_S}
               BEGIN SELECT RAISE(ABORT, 'a retention horizon in the future'); END""",
        )
        for event in ("INSERT", "UPDATE")
    ],
    ("any", "DROP INDEX messages_final"),
    (
        "any",
        """CREATE INDEX messages_final_content ON messages (final_at)
           WHERE final_at IS NOT NULL AND content != x''""",
    ),
    (
        "any",
        """CREATE INDEX messages_final_purged ON messages (final_at)
           WHERE final_at IS NOT NULL AND content = x''""",
    ),
]

#: v11: health episodes (DESIGN.md "Heal or shout"): a failing dependency (the store unable to
#: write, the delivery loop failing, the delivery process down, delivery stalled) with its
#: cause, start and end. Written when it opens if the store can write then, else once whole
#: when it ends; ``ended_at`` is set once. (v9 and v10 are other changes' numbers.)
_V11: list[tuple[Dialect, str]] = [
    (
        "any",
        """CREATE TABLE episodes (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            process TEXT NOT NULL,
            cause TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            failures INTEGER NOT NULL
        )""",
    ),
    ("any", "CREATE INDEX episodes_time ON episodes (started_at)"),
    ("any", "CREATE INDEX episodes_open ON episodes (kind) WHERE ended_at IS NULL"),
]

#: v12: canary probes and attribution of attempts and alarms to the serving node (issue 10).
_V12: list[tuple[Dialect, str]] = [
    # the serving node (netsim's MSC/VLR the register answered, e.g. "msc-2") an attempt
    # went to, and an alarm's; NULL when none was answered, and for rows older than v12
    ("any", "ALTER TABLE attempts ADD COLUMN serving_node TEXT"),
    ("any", "ALTER TABLE alarms ADD COLUMN serving_node TEXT"),
    # a switchable fault's node scope ("" = every node), as ``route`` scopes it to a route
    ("any", "ALTER TABLE faults ADD COLUMN node TEXT NOT NULL DEFAULT ''"),
    (
        "any",
        """CREATE TABLE canary_probes (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            route TEXT NOT NULL,
            serving_node TEXT,
            destination TEXT NOT NULL,
            message_id TEXT NOT NULL,
            result TEXT NOT NULL,
            latency_s REAL,
            detail TEXT NOT NULL
        )""",
    ),
    ("any", "CREATE INDEX canary_probes_time ON canary_probes (at)"),
    ("any", "CREATE INDEX canary_probes_place ON canary_probes (route, serving_node, at)"),
]


#: v13: alerts with their lifecycle (issue 10, docs/alerts.md). The evaluator (SMPP process)
#: opens and updates a row (state, evidence); ``adressat alarm ack`` writes only the ack
#: columns, once. ``place`` and ``evidence`` are JSON. The open ones (firing or not yet
#: acknowledged) have a partial index: the evaluator, ``audit`` and the metrics read only them.
_V13: list[tuple[Dialect, str]] = [
    (
        "any",
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            place TEXT NOT NULL,
            state TEXT NOT NULL,
            started_at REAL NOT NULL,
            last_evidence_at REAL NOT NULL,
            resolved_at REAL,
            acked_at REAL,
            acked_by TEXT,
            note TEXT,
            summary TEXT NOT NULL,
            evidence TEXT NOT NULL,
            alarm_first_id INTEGER,
            alarm_last_id INTEGER
        )""",
    ),
    (
        "any",
        "CREATE INDEX alerts_open ON alerts (id) WHERE state = 'firing' OR acked_at IS NULL",
    ),
    ("any", "CREATE INDEX alerts_closed ON alerts (resolved_at) WHERE acked_at IS NOT NULL"),
]


#: v14: care complaints and the indexes of the operator's views (issue 10).
_V14: list[tuple[Dialect, str]] = [
    (
        "any",
        """CREATE TABLE complaints (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            number TEXT NOT NULL,
            about_at REAL NOT NULL,
            sender TEXT NOT NULL,
            message_id TEXT,
            verdict TEXT NOT NULL,
            route TEXT NOT NULL,
            serving_node TEXT NOT NULL
        )""",
    ),
    ("any", "CREATE INDEX complaints_time ON complaints (at)"),
    # care lookups and complaints by the sender (docs/care.md, "What it costs"): senders are
    # few, so an insert lands at the end of its sender's run (about 0.3 ms per 100 submits).
    # No index by destination: one costs a random B-tree insert per submit (measured: the
    # 100-submit transaction 3.4 -> 6.9 ms) and pulled the claim's in-flight check off
    # messages_dispatched. A lookup to a number reads its time window per account instead,
    # from the index alone: messages_account gets the destination as a third column (an
    # insert still lands at the end of its account's run)
    ("any", "CREATE INDEX messages_account_time ON messages (account, submitted_at, destination)"),
    ("any", "DROP INDEX messages_account"),
    ("any", "CREATE INDEX messages_source ON messages (source_addr, submitted_at)"),
]


#: v15: the canary prober's messages (account ``_canary``, observe/canary.py) go with their
#: probes' retention, not the customers' 90 days: at one probe per node every 5 s that is
#: about 69,000 messages a day, 6 million rows at 90 days for nothing. The audit tables'
#: triggers let a delete pass below the record horizon (v10) and, for rows of the canary
#: account only, below ``canary_horizon``; that horizon is never in the future either.
CANARY_HORIZON_META = "canary_horizon"
_CANARY_HORIZON = (
    "COALESCE((SELECT CAST(value AS REAL) FROM meta WHERE key = 'canary_horizon'), -1e308)"
)
_IS_CANARY_MESSAGE = "(SELECT account FROM messages WHERE id = OLD.message_id) = '_canary'"


def _older_or_canary(table: str, column: str, canary: str, what: str) -> list[tuple[Dialect, str]]:
    return [
        ("sqlite", f"DROP TRIGGER IF EXISTS {table}_no_delete"),
        (
            "sqlite",
            f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
               WHEN (OLD.{column} IS NULL OR OLD.{column} >= {_HORIZON})
                AND NOT ({canary} AND OLD.{column} IS NOT NULL
                         AND OLD.{column} < {_CANARY_HORIZON})
               BEGIN SELECT RAISE(ABORT, '{what} (retention deletes only older rows)'); END""",
        ),
    ]


_V15: list[tuple[Dialect, str]] = [
    *_older_or_canary("attempts", "started_at", _IS_CANARY_MESSAGE, "attempts are append-only"),
    *_older_or_canary("deliveries", "at", _IS_CANARY_MESSAGE, "deliveries are write-once"),
    *_older_or_canary("messages", "final_at", "OLD.account = '_canary'",
                      "a message is deleted only once final"),
    *[
        (
            "sqlite",
            f"""CREATE TRIGGER canary_horizon_{event.lower()} BEFORE {event} ON meta
               WHEN NEW.key = 'canary_horizon' AND CAST(NEW.value AS REAL) > {_NOW_S}
               BEGIN SELECT RAISE(ABORT, 'a canary horizon in the future'); END""",
        )
        for event in ("INSERT", "UPDATE")
    ],
]

#: v16 (issue 11): messages handed to partner operators. ``forwards``: one row per part
#: (the partner's id in canonical form, core.interconnect), looked up by (connector, partner
#: id) when a receipt comes; ``partner_receipts_held``: receipts that came before their
#: mapping was committed, one row per reading of the id (``held_id`` groups them), kept until
#: the mapping commits or they are given up with an alarm. FORWARDED messages are found for
#: their UNKNOWN end through a partial index of their own, like every other unfinished state.
_V16: list[tuple[Dialect, str]] = [
    (
        "any",
        """CREATE TABLE forwards (
            message_id TEXT NOT NULL,
            part INTEGER NOT NULL,
            parts INTEGER NOT NULL,
            connector TEXT NOT NULL,
            partner_id TEXT,
            state TEXT NOT NULL,
            error INTEGER,
            at REAL NOT NULL,
            receipt_at REAL,
            PRIMARY KEY (message_id, part)
        )""",
    ),
    ("any", "CREATE INDEX forwards_partner ON forwards (connector, partner_id)"),
    (
        "any",
        """CREATE TABLE partner_receipts_held (
            held_id INTEGER NOT NULL,
            connector TEXT NOT NULL,
            reading TEXT NOT NULL,
            readings TEXT NOT NULL,
            state TEXT,
            partner_err TEXT NOT NULL DEFAULT '',
            received_at REAL NOT NULL,
            session INTEGER NOT NULL DEFAULT 0
        )""",
    ),
    ("any", "CREATE INDEX partner_receipts_held_reading ON partner_receipts_held"
            " (connector, reading)"),
    ("any", "CREATE INDEX partner_receipts_held_time ON partner_receipts_held"
            " (received_at, held_id)"),
    ("any", "CREATE INDEX messages_forwarded ON messages (expires_at) WHERE state = 'FORWARDED'"),
]

#: v17: the interconnect configuration (issue 11): connectors (SMPP client connections out),
#: what the running node says of them, the operator's routes, and partner accounts.
#: ``route_rules`` is a table of its own, beside ``routes``: ``routes`` is the breaker's
#: (held, reason, alarms; a row appears the first time an alarm or a trip names a route,
#: netsim's and unroutable's too), ``route_rules`` is what the operator configured. They share
#: the name: an operator route's breaker is the ``routes`` row of its name. Kept apart, the
#: breaker's writes (alarms, trips) never meet the configuration's columns, a removed route's
#: breaker state stays with the messages still held on it until they are released, and a
#: route configured under a name that alarms already named takes no special case.
#: Columns ``window_size`` and ``time_window``, not ``window``: WINDOW is a reserved word of
#: PostgreSQL. Lists (prefixes, via, ranges, connectors) are JSON arrays of strings.
#: A connector's password is stored as given: adressat is the client and sends it at bind.
_V17: list[tuple[Dialect, str]] = [
    (
        "any",
        """CREATE TABLE connectors (
            name TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            port INTEGER NOT NULL,
            system_id TEXT NOT NULL,
            password TEXT NOT NULL,
            bind TEXT NOT NULL,
            window_size INTEGER NOT NULL,
            throughput_per_s INTEGER NOT NULL,
            system_type TEXT NOT NULL,
            enquire_link_s REAL NOT NULL,
            payload INTEGER NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ),
    (
        "any",
        """CREATE TABLE connector_status (
            name TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            since REAL NOT NULL,
            sessions INTEGER NOT NULL,
            window_in_use INTEGER NOT NULL,
            sent INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            receipts INTEGER NOT NULL,
            detail TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ),
    (
        "any",
        """CREATE TABLE route_rules (
            name TEXT PRIMARY KEY,
            position INTEGER NOT NULL,
            prefixes TEXT NOT NULL,
            operator TEXT,
            account TEXT,
            time_window TEXT,
            via TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
    ),
    ("any", "CREATE INDEX route_rules_position ON route_rules (position)"),
    ("any", "ALTER TABLE accounts ADD COLUMN partner INTEGER NOT NULL DEFAULT 0"),
    ("any", "ALTER TABLE accounts ADD COLUMN partner_ranges TEXT NOT NULL DEFAULT '[]'"),
    ("any", "ALTER TABLE accounts ADD COLUMN partner_connectors TEXT NOT NULL DEFAULT '[]'"),
]

#: v18 (issue 12, helper S): HTTP senders. API keys (``secret_hash``: sha256 of the key's 32
#: random secret octets; a random 256-bit secret needs no stretching), idempotency records
#: (kept ``idempotency_keep_s``, pruned by retention), the callbacks outbox (one row per event
#: a sender asked for, written by the store in the transaction of the state change; the
#: event_id AUTOINCREMENT so that it never repeats, also once the newest row is pruned: it is
#: the receiver's dedupe id), the sender's own reference on a message, and an account's
#: callback settings (``callback_hosts``: a JSON array of host names).
_V18: list[tuple[Dialect, str]] = [
    ("any", "ALTER TABLE messages ADD COLUMN client_reference TEXT"),
    ("any", "CREATE INDEX messages_reference ON messages (account, client_reference)"
            " WHERE client_reference IS NOT NULL"),
    ("any", "ALTER TABLE accounts ADD COLUMN callback_url TEXT"),
    ("any", "ALTER TABLE accounts ADD COLUMN callback_hosts TEXT NOT NULL DEFAULT '[]'"),
    ("any", "ALTER TABLE accounts ADD COLUMN webhook_secret BLOB"),
    (
        "any",
        """CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY,
            account TEXT NOT NULL,
            secret_hash BLOB NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        )""",
    ),
    ("any", "CREATE INDEX api_keys_account ON api_keys (account, created_at)"),
    (
        "any",
        """CREATE TABLE idempotency (
            account TEXT NOT NULL,
            key TEXT NOT NULL,
            body_hash BLOB NOT NULL,
            status INTEGER NOT NULL,
            response TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (account, key)
        )""",
    ),
    ("any", "CREATE INDEX idempotency_time ON idempotency (created_at)"),
    (
        "any",  # AUTOINCREMENT: an identity column in PostgreSQL
        """CREATE TABLE callbacks (
            event_id INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id TEXT NOT NULL,
            account TEXT NOT NULL,
            kind TEXT NOT NULL,
            url TEXT NOT NULL,
            event TEXT NOT NULL,
            state TEXT NOT NULL,
            error INTEGER,
            at REAL NOT NULL,
            source_addr TEXT NOT NULL,
            destination TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_status INTEGER,
            sent_at REAL,
            gave_up_at REAL
        )""",
    ),
    # pending, by when due (the sender's poll); a message's, in order (its oldest pending
    # first: a message has a handful of events, so one index serves both)
    ("any", "CREATE INDEX callbacks_due ON callbacks (next_attempt_at, event_id)"
            " WHERE sent_at IS NULL AND gave_up_at IS NULL"),
    ("any", "CREATE INDEX callbacks_message ON callbacks (message_id, event_id)"),
    # done (sent or given up), by when: retention
    ("any", "CREATE INDEX callbacks_done ON callbacks (coalesce(sent_at, gave_up_at))"
            " WHERE sent_at IS NOT NULL OR gave_up_at IS NOT NULL"),
]

#: issue 13, helper acct: accounts an operator controls (core/accounts.py). A disabled account
#: (``disabled_at``) binds no session and uses no key; ``disabled_keep_queue`` 1: its queued
#: messages still go out. ``sessions_max`` NULL: the node-wide limit. ``allow_ip``, ``senders``:
#: JSON lists (empty: any). ``messages.held_by`` 'account': HELD because its account is
#: disabled (a route release leaves it; an enable releases it), found by its partial index.
_V21: list[tuple[Dialect, str]] = [
    ("any", "ALTER TABLE accounts ADD COLUMN disabled_at REAL"),
    ("any", "ALTER TABLE accounts ADD COLUMN disabled_keep_queue INTEGER NOT NULL DEFAULT 0"),
    ("any", "ALTER TABLE accounts ADD COLUMN sessions_max INTEGER"),
    ("any", "ALTER TABLE accounts ADD COLUMN allow_ip TEXT NOT NULL DEFAULT '[]'"),
    ("any", "ALTER TABLE accounts ADD COLUMN senders TEXT NOT NULL DEFAULT '[]'"),
    ("any", "ALTER TABLE messages ADD COLUMN held_by TEXT"),
    ("any", "CREATE INDEX messages_held_account ON messages (account)"
            " WHERE state = 'HELD' AND held_by = 'account'"),
]

#: v22 (issue 11): a connector's ``receipt_ids`` (core/interconnect.py: how its partner spells
#: a message id in receipts; ``auto`` tries every reading, as every connector did before)
_V22: list[tuple[Dialect, str]] = [
    ("any", "ALTER TABLE connectors ADD COLUMN receipt_ids TEXT NOT NULL DEFAULT 'auto'"),
]

#: v19 (issue 13, helper bind): the lockout counters of credential guessing (core/lockout.py),
#: one row per (realm, scope, principal, address); "" where a scope has no principal or no
#: address. Bounded by ``credential_rows_max`` (the guard deletes what it prunes).
_V19: list[tuple[Dialect, str]] = [
    (
        "any",
        """CREATE TABLE lockouts (
            realm TEXT NOT NULL,
            scope TEXT NOT NULL,
            principal TEXT NOT NULL,
            address TEXT NOT NULL,
            failures INTEGER NOT NULL,
            window_start REAL NOT NULL,
            lockouts INTEGER NOT NULL,
            locked_until REAL NOT NULL,
            last_failure_at REAL NOT NULL,
            last_success_at REAL,
            PRIMARY KEY (realm, scope, principal, address)
        )""",
    ),
]

MIGRATIONS: list[tuple[int, list[tuple[Dialect, str]]]] = [
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
    (7, _V7),
    (8, _V8),
    (9, _V9),
    (10, _V10),
    (11, _V11),
    (12, _V12),

    (13, _V13),

    (14, _V14),
    (15, _V15),
    # issue 11, main: forwards (v16)
    (16, _V16),

    # issue 11, helper E: interconnect config (v17)
    (17, _V17),
    # issue 12, helper S: API keys, idempotency, callbacks outbox, client_reference (v18)
    (18, _V18),
    # issue 13, helper bind: lockout counters of credential guessing (v19)
    (19, _V19),

    # issue 13, helper acct: accounts an operator controls, sender rules (v21)
    (21, _V21),
    # issue 11: how a connector's partner spells ids in its receipts (v22)
    (22, _V22),
]
SCHEMA_VERSION = max(v for v, _ in MIGRATIONS)


def migrate_sqlite(
    conn: sqlite3.Connection,
    migrations: list[tuple[int, list[tuple[Dialect, str]]]] | None = None,
) -> int:
    """Bring the schema up to date; each version in its own transaction. Returns the version.

    Every version of the list that the database has not recorded is applied, in list order,
    whatever higher versions it has: numbers are taken by changes made side by side, so a
    database may hold 11 before it gets 10. A version the database holds that the list does
    not know is refused (a newer program's schema). ``conn`` must be in autocommit mode
    (``isolation_level=None``).
    """
    migrations = MIGRATIONS if migrations is None else migrations
    known = {v for v, _ in migrations}
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        applied = {int(r[0]) for r in conn.execute("SELECT version FROM schema_version")}
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    unknown = applied - known
    if unknown:
        raise RuntimeError(
            f"database schema has versions this program does not know: {sorted(unknown)}"
        )
    for version, statements in migrations:
        if version in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT 1 FROM schema_version WHERE version = ?", (version,)
            ).fetchone()
            if row is not None:  # another process got there first
                conn.execute("COMMIT")
                applied.add(version)
                continue
            for dialect, sql in statements:
                if dialect in ("any", "sqlite"):
                    conn.execute(sql)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.add(version)
    return max(applied, default=0)
