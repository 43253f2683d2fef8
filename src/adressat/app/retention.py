"""Retention (DESIGN.md I6 and "Heal or shout": everything that grows has a limit).

A message's text (and its binding tag, an HMAC of the text that would let whoever holds the key
try short texts such as one-time codes) is emptied ``content_retention_s`` after its final
state (0: at the next pass, within ``interval_s``); its rows (the message, its attempt records,
receipt and delivery row) and the alarms are deleted ``record_retention_s`` after it. A
receipt still unsent then is given up with its message: counted, and logged per account.
HTTP senders' records (issue 12): an Idempotency-Key's first answer is deleted
``idempotency_keep_s`` after it was given, a status callback sent or given up
``callback_retention_s`` after that (never longer than the records; a pending one goes only
with its message).

One pass every ``interval_s``, in the SMPP process, off the hot path: each batch of at most
``batch_max`` rows is one operation of the group committer (``committer.run``), so it runs on
the loop inside that loop turn's transaction: no thread waiting for the GIL while it holds the
write lock of both processes (docs/architecture.md, "Two processes, one store"), one fsync
shared with the turn's other writes, and a batch that fails fails alone (its savepoint). The
loop is blocked for the batch's SQL instead: measured over 60,000 finished messages, 100 rows
purged in about 1 ms and deleted in about 2.5 ms (500: 4 and 20 ms), hence batches of 100.
After each batch the pass waits four times as long as the batch took, so that a backlog (the
first pass after an upgrade, a shorter retention) takes at most a fifth of the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from adressat.store.base import DeletedRecords
from adressat.store.commit import GroupCommitter

log = logging.getLogger("adressat.retention")

_DUTY_WAIT_FACTOR = 4.0  # wait this many times a batch's duration after it
_FAILURE_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class RetentionStats:
    """The figures another part exports as metrics; units last."""

    passes_total: int
    failures_total: int
    purged_total: int  # messages whose text was emptied
    deleted_messages_total: int
    deleted_attempts_total: int
    deleted_receipts_total: int
    deleted_alarms_total: int
    receipts_unsent_total: int  # receipts given up at record retention, never sent
    last_pass_s: float  # how long the last pass took
    last_pass_at: float  # when it ended (epoch seconds), 0 before the first
    deleted_idempotency_total: int = 0  # Idempotency-Key records (issue 12)
    deleted_callbacks_total: int = 0  # callbacks sent or given up (issue 12)


class Retention:
    def __init__(
        self,
        committer: GroupCommitter,
        *,
        content_retention_s: float,
        record_retention_s: float,
        interval_s: float = 1.0,
        batch_max: int = 100,
        clock: Callable[[], float] = time.time,
        canary_probes_retention_s: float | None = None,
        idempotency_keep_s: float = 86400.0,
        callback_retention_s: float | None = None,
    ) -> None:
        if content_retention_s < 0 or record_retention_s < 0:
            raise ValueError("retention must be >= 0")
        if interval_s <= 0 or batch_max < 1:
            raise ValueError("interval_s must be > 0 and batch_max >= 1")
        self.committer = committer
        self.content_retention_s = content_retention_s
        self.record_retention_s = record_retention_s
        self.interval_s = interval_s
        self.batch_max = batch_max
        self.clock = clock
        # canary probe results: kept this long, and never longer than the records
        self.canary_probes_retention_s = (
            record_retention_s if canary_probes_retention_s is None
            else min(max(0.0, canary_probes_retention_s), record_retention_s)
        )
        self.canary_probes_deleted = 0
        if idempotency_keep_s < 0:
            raise ValueError("idempotency_keep_s must be >= 0")
        self.idempotency_keep_s = idempotency_keep_s
        # callbacks done: kept this long, and never longer than the records
        self.callback_retention_s = (
            record_retention_s if callback_retention_s is None
            else min(max(0.0, callback_retention_s), record_retention_s)
        )
        self.idempotency_deleted = 0
        self.callbacks_deleted = 0
        self.canary_messages_deleted = 0
        self.passes = 0
        self.failures = 0
        self.purged = 0
        self.deleted = DeletedRecords()
        self.receipts_unsent = 0
        self.last_pass_s = 0.0
        self.last_pass_at = 0.0
        self._failure_logged_at = float("-inf")
        self._stopping = False

    def stats(self) -> RetentionStats:
        d = self.deleted
        return RetentionStats(self.passes, self.failures, self.purged, d.messages, d.attempts,
                              d.receipts, d.alarms, self.receipts_unsent, self.last_pass_s,
                              self.last_pass_at, self.idempotency_deleted,
                              self.callbacks_deleted)

    async def _paced(self, started: float) -> None:
        """After a batch: wait so that batches take at most a fifth of the loop."""
        await asyncio.sleep(_DUTY_WAIT_FACTOR * (time.perf_counter() - started))

    async def run_pass(self) -> None:
        """One pass: the text first, then the records; batch after batch until none is full."""
        t0 = time.perf_counter()
        now = self.clock()
        content_before = now - self.content_retention_s
        record_before = now - self.record_retention_s
        limit = self.batch_max
        unsent: dict[str, int] = {}
        while not self._stopping:
            started = time.perf_counter()
            n = await self.committer.run(lambda s: s.purge_content(content_before, limit))
            self.purged += n
            if n < limit:
                break
            await self._paced(started)
        while not self._stopping:
            started = time.perf_counter()
            d = await self.committer.run(lambda s: s.delete_records(record_before, limit))
            self._count(d, unsent)
            # a full batch of either (the newest receipt's message or alarm may be held back
            # from it: one less), else this pass is done
            if not any(n and n >= limit - 1 for n in (d.messages, d.alarms)):
                break
            await self._paced(started)
        canary_before = now - self.canary_probes_retention_s
        while not self._stopping:
            started = time.perf_counter()
            n = await self.committer.run(lambda s: s.delete_canary_probes(canary_before, limit))
            self.canary_probes_deleted += n
            if n < limit:
                break
            await self._paced(started)
        while not self._stopping:  # and the canary's messages, as soon (schema v15)
            started = time.perf_counter()
            n = await self.committer.run(
                lambda s: s.delete_canary_records(canary_before, limit))
            self.canary_messages_deleted += n
            if n < limit:
                break
            await self._paced(started)
        idempotency_before = now - self.idempotency_keep_s
        while not self._stopping:  # issue 12: Idempotency-Key records
            started = time.perf_counter()
            n = await self.committer.run(
                lambda s: s.prune_idempotency(idempotency_before, limit))
            self.idempotency_deleted += n
            if n < limit:
                break
            await self._paced(started)
        callbacks_before = now - self.callback_retention_s
        while not self._stopping:  # issue 12: callbacks sent or given up
            started = time.perf_counter()
            n = await self.committer.run(lambda s: s.prune_callbacks(callbacks_before, limit))
            self.callbacks_deleted += n
            if n < limit:
                break
            await self._paced(started)
        for account, n in sorted(unsent.items()):  # once per account and pass
            log.warning(
                "receipts given up at record retention: never sent",
                extra={"account": account, "receipts": n,
                       "record_retention_s": self.record_retention_s},
            )
        self.passes += 1
        self.last_pass_s = time.perf_counter() - t0
        self.last_pass_at = self.clock()

    def _count(self, d: DeletedRecords, unsent: dict[str, int]) -> None:
        t = self.deleted
        self.deleted = DeletedRecords(
            t.messages + d.messages,
            t.attempts + d.attempts,
            t.receipts + d.receipts,
            t.deliveries + d.deliveries,
            t.alarms + d.alarms,
        )
        for account, n in d.receipts_unsent.items():
            self.receipts_unsent += n
            unsent[account] = unsent.get(account, 0) + n

    async def run(self) -> None:
        """A pass every ``interval_s`` until stopped; a failing pass is counted and logged
        (at most once a minute) and the next one tries again."""
        while not self._stopping:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - retention must not stop the node
                self.failures += 1
                now = time.monotonic()
                if now - self._failure_logged_at >= _FAILURE_LOG_INTERVAL_S:
                    self._failure_logged_at = now
                    log.error("retention pass failed",
                              extra={"error_type": type(e).__name__,
                                     "failures_total": self.failures})

    def stop(self) -> None:
        self._stopping = True
