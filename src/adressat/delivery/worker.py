"""The delivery worker: claims due messages, hands each to its route's adapter, and writes the
outcome as ONE store operation (state transition + append-only attempt record).

A thin shell: which transition is legal is ``core.lifecycle``'s business, when to retry is
``core.retry``'s, what is due is the store's (``claim_due``: per destination one at a time,
which keeps per-destination order). Time and randomness are injected (``clock``, ``rng``).

Crash safety: a claim is a lease (DISPATCHED, ``lease_until``). This is the single-node SQLite
deployment, so when :meth:`DeliveryWorker.run` starts no attempt can be in flight: every
DISPATCHED message is put back to DEFERRED (due now) with an ``INTERRUPTED`` attempt record,
and ``recover_leases`` catches anything left. The resend carries the same TP-MR, so a handset
that had stored it discards the copy.

Logs are structured (``extra``: message_id, route, state, error), never message text (I6).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adressat.core.model import AttemptRecord, Message, State
from adressat.core.retry import RetryPolicy
from adressat.delivery.adapter import Adapter, Outcome, OutcomeKind
from adressat.delivery.errors import DeliveryError
from adressat.store.base import DuplicateDelivery, StaleState, Store, StoreError
from adressat.store.commit import GroupCommitter

__all__ = ["DeliveryWorker", "INTERRUPTED"]

log = logging.getLogger(__name__)

#: Outcome name of the attempt record written for an attempt cut short by a crash/restart.
INTERRUPTED = "INTERRUPTED"
_RECOVER_PAGE = 1000
_EXPIRE_PAGES_MAX = 10  # per tick, so expiry never starves delivery


@dataclass(frozen=True, slots=True)
class _Plan:
    """The store write decided for one outcome."""

    new_state: State
    changes: dict[str, object]


class DeliveryWorker:
    def __init__(
        self,
        committer: GroupCommitter,
        adapters: Mapping[str, Adapter],
        route_kind: Callable[[str], str],
        retry: RetryPolicy,
        *,
        owner: str,
        node: int,
        clock: Callable[[], float] = time.time,
        rng: random.Random,
        concurrency_max: int,
        claim_batch_max: int,
        lease_s: float,
        interval_s: float,
        on_final: Callable[[Message], None],
        on_integrity: Callable[[Message, Outcome], None] | None = None,
        delivery_timeout_s: float = 30.0,
        expire_interval_s: float = 1.0,
    ) -> None:
        if concurrency_max < 1 or claim_batch_max < 1:
            raise ValueError("concurrency_max and claim_batch_max must be >= 1")
        if lease_s <= 0 or interval_s <= 0 or delivery_timeout_s <= 0:
            raise ValueError("lease_s, interval_s and delivery_timeout_s must be > 0")
        if delivery_timeout_s >= lease_s:
            raise ValueError("delivery_timeout_s must be shorter than lease_s")
        self.committer = committer
        self.adapters = dict(adapters)
        self.route_kind = route_kind
        self.retry = retry
        self.owner = owner
        self.node = node
        self.clock = clock
        self.rng = rng
        self.concurrency_max = concurrency_max
        self.claim_batch_max = claim_batch_max
        self.lease_s = lease_s
        self.interval_s = interval_s
        self.delivery_timeout_s = delivery_timeout_s
        self.expire_interval_s = expire_interval_s
        self.on_final = on_final
        self.on_integrity = on_integrity
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[Message | None]] = set()
        self._side_tasks: set[asyncio.Task[int]] = set()
        # counters (read by metrics and the audit)
        self.attempts = 0
        self.delivered = 0
        self.deferred = 0
        self.expired = 0
        self.undeliverable = 0
        self.quarantined = 0
        self.stale = 0
        self.recovered = 0
        self.store_errors = 0

    # --- control ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Hint: new or newly due work (ingress commit, network alert, a slot freed)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; :meth:`run` returns once the attempts in flight are written."""
        self._stopping = True
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def alert(self, msisdn: str) -> asyncio.Task[int]:
        """alertSC: ``msisdn`` is reachable again; its deferred messages become due now.
        Safe as a ``Network.on_alert`` callback (it only schedules work on the running loop)."""
        task = asyncio.get_running_loop().create_task(self.retry_destination(msisdn))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)
        return task

    async def retry_destination(self, msisdn: str) -> int:
        now = self.clock()
        n = await self.committer.run(lambda s: s.retry_now(msisdn, now))
        log.info("alert", extra={"destination": msisdn, "retried": n})
        self.wake()
        return n

    # --- main loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Recover, then claim and deliver until :meth:`stop`. Cancelling ``run`` cancels the
        attempts in flight without writing them (what a crash does; the leases recover).
        A worker runs once: after :meth:`stop` make a new one."""
        await self.recover()
        next_expire_at = 0.0
        try:
            while not self._stopping:
                self._wake.clear()
                now = self.clock()
                if now >= next_expire_at:
                    await self._expire(now)
                    next_expire_at = now + self.expire_interval_s
                free = self.concurrency_max - len(self._tasks)
                if free > 0:
                    limit = min(free, self.claim_batch_max)
                    claimed = await self._claim(limit, now)
                    for msg in claimed:
                        self._spawn(msg)
                    if len(claimed) == limit and len(self._tasks) < self.concurrency_max:
                        continue  # more may be due: claim again before sleeping
                if self._stopping:
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
                except TimeoutError:
                    pass
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _claim(self, limit: int, now: float) -> list[Message]:
        def op(store: Store) -> list[Message]:
            return store.claim_due(limit, now, self.lease_s, self.owner)

        try:
            return await self.committer.run(op)
        except StoreError as e:  # queue full or a failed commit: try again next tick
            self.store_errors += 1
            log.error("claim_due failed", extra={"error_type": type(e).__name__})
            return []

    async def recover(self) -> int:
        """Put every DISPATCHED message back to DEFERRED, due now (single node: nothing can be
        in flight when we start), each with an INTERRUPTED attempt record."""
        now = self.clock()
        total = 0
        while True:
            listed, moved = await self.committer.run(lambda s: self._recover_page(s, now))
            total += moved
            if listed < _RECOVER_PAGE or moved == 0:
                break
        total += await self.committer.run(lambda s: s.recover_leases(now + self.lease_s + 1))
        self.recovered += total
        if total:
            log.warning("recovered interrupted attempts", extra={"count": total})
        return total

    def _recover_page(self, store: Store, now: float) -> tuple[int, int]:
        listed = store.list_messages(state=State.DISPATCHED, limit=_RECOVER_PAGE)
        moved = 0
        for msg in listed:
            try:
                with store.savepoint():
                    store.transition(
                        msg.id,
                        State.DISPATCHED,
                        State.DEFERRED,
                        now,
                        expected_attempts=msg.attempts,
                        next_attempt_at=now,
                    )
                    store.append_attempt(
                        AttemptRecord(
                            message_id=msg.id,
                            account=msg.account,
                            destination=msg.destination,
                            imsi=None,
                            route=msg.route,
                            node=self.node,
                            attempt=msg.attempts,
                            started_at=now,
                            ended_at=now,
                            outcome=INTERRUPTED,
                            error=None,
                        )
                    )
            except StoreError as e:
                log.error(
                    "lease not recovered",
                    extra={"message_id": msg.id, "error_type": type(e).__name__},
                )
                continue
            moved += 1
        return len(listed), moved

    async def _expire(self, now: float) -> None:
        limit = self.claim_batch_max
        for _ in range(_EXPIRE_PAGES_MAX):
            try:
                expired = await self.committer.run(lambda s: s.expire_due(now, limit=limit))
            except StoreError as e:
                self.store_errors += 1
                log.error("expire_due failed", extra={"error_type": type(e).__name__})
                return
            for msg in expired:
                self.expired += 1
                self._log_final(msg, "expired")
                self._notify_final(msg)
            if len(expired) < limit:
                return

    def _spawn(self, msg: Message) -> None:
        task = asyncio.get_running_loop().create_task(self.process(msg))
        self._tasks.add(task)

        def done(t: asyncio.Task[Message | None]) -> None:
            self._tasks.discard(t)
            self.wake()  # a slot is free, and the destination may have more queued

        task.add_done_callback(done)

    # --- one message ---------------------------------------------------------------------

    async def process(self, msg: Message) -> Message | None:
        """Deliver one claimed (DISPATCHED) message and write the outcome. Returns the new
        record, or None when someone else had moved it (StaleState) or the store failed."""
        started_at = self.clock()
        if started_at >= msg.expires_at:  # an expired message is never delivered late
            outcome = Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.EXPIRED)
            plan = _Plan(State.EXPIRED, {"error": int(DeliveryError.EXPIRED)})
            return await self._write(msg, outcome, plan, started_at, started_at, sent=False)
        self.attempts += 1
        outcome = await self._attempt(msg)
        ended_at = self.clock()
        return await self._write(
            msg, outcome, self._plan(msg, outcome, ended_at), started_at, ended_at, sent=True
        )

    async def _attempt(self, msg: Message) -> Outcome:
        try:
            kind = self.route_kind(msg.route)
            adapter = self.adapters[kind]
        except (KeyError, LookupError):
            return Outcome.failed(OutcomeKind.PERMANENT, DeliveryError.UNROUTABLE)
        try:
            return await asyncio.wait_for(adapter.deliver(msg), self.delivery_timeout_s)
        except TimeoutError:
            return Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # an adapter bug must not kill the worker; retry later
            log.error(
                "adapter failed",
                extra={"message_id": msg.id, "route": msg.route, "error_type": type(e).__name__},
            )
            return Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.SYSTEM_FAILURE)

    def _plan(self, msg: Message, outcome: Outcome, now: float) -> _Plan:
        kind = outcome.kind
        if kind is OutcomeKind.DELIVERED:
            return _Plan(
                State.DELIVERED,
                {
                    "error": int(DeliveryError.OK),
                    "delivered_imsi": outcome.imsi,
                    "delivered_msisdn": outcome.msisdn,
                },
            )
        if kind is OutcomeKind.TEMPORARY:
            at = self.retry.next_attempt_at(
                msg.attempts, now, msg.expires_at, jitter=self.rng.random()
            )
            if at is None:
                return _Plan(State.EXPIRED, {"error": int(outcome.error)})
            return _Plan(State.DEFERRED, {"error": int(outcome.error), "next_attempt_at": at})
        if kind is OutcomeKind.PERMANENT:
            return _Plan(State.UNDELIVERABLE, {"error": int(outcome.error)})
        return _Plan(State.QUARANTINED, {"error": int(outcome.error)})

    async def _write(
        self,
        msg: Message,
        outcome: Outcome,
        plan: _Plan,
        started_at: float,
        ended_at: float,
        *,
        sent: bool,
    ) -> Message | None:
        record = AttemptRecord(
            message_id=msg.id,
            account=msg.account,
            destination=msg.destination,
            imsi=outcome.imsi,
            route=msg.route,
            node=self.node,
            attempt=msg.attempts,
            started_at=started_at,
            ended_at=ended_at,
            outcome=outcome.kind.value if sent else plan.new_state.value,
            error=int(outcome.error),
        )

        def op(store: Store) -> Message:
            new = store.transition(
                msg.id,
                State.DISPATCHED,
                plan.new_state,
                ended_at,
                expected_attempts=msg.attempts,
                **plan.changes,
            )
            store.append_attempt(record)
            return new

        try:
            new = await self.committer.run(op)
        except StaleState as e:
            self.stale += 1
            log.warning(
                "outcome dropped: message moved by someone else",
                extra={
                    "message_id": msg.id,
                    "route": msg.route,
                    "state": e.actual.value,
                    "outcome": outcome.kind.value,
                    "error": int(outcome.error),
                },
            )
            if sent:  # the attempt happened: keep the forensic record anyway
                await self._append_only(record)
            return None
        except DuplicateDelivery as e:  # I3: the store refuses a second delivery
            self.store_errors += 1
            log.error(
                "second delivery refused by the store",
                extra={"message_id": msg.id, "route": msg.route, "error_type": type(e).__name__},
            )
            if sent:
                await self._append_only(record)
            return None
        except StoreError as e:
            self.store_errors += 1
            log.error(
                "outcome not written",
                extra={"message_id": msg.id, "route": msg.route, "error_type": type(e).__name__},
            )
            if sent:
                await self._append_only(record)
            return None
        self._count(new.state)
        if new.is_final:
            self._log_final(new, outcome.reason)
        else:
            log.info(
                "deferred",
                extra={
                    "message_id": new.id,
                    "route": new.route,
                    "state": new.state.value,
                    "error": new.error,
                    "next_attempt_at": new.next_attempt_at,
                },
            )
        if new.state is State.QUARANTINED and self.on_integrity is not None:
            try:
                self.on_integrity(new, outcome)
            except Exception as e:  # noqa: BLE001 - a broken alarm hook must not stop delivery
                log.error("on_integrity failed", extra={"error_type": type(e).__name__})
        if new.is_final:
            self._notify_final(new)
        return new

    async def _append_only(self, record: AttemptRecord) -> None:
        try:
            await self.committer.run(lambda s: s.append_attempt(record))
        except StoreError as e:
            log.error("attempt record not written", extra={"error_type": type(e).__name__})

    def _count(self, state: State) -> None:
        if state is State.DELIVERED:
            self.delivered += 1
        elif state is State.DEFERRED:
            self.deferred += 1
        elif state is State.EXPIRED:
            self.expired += 1
        elif state is State.UNDELIVERABLE:
            self.undeliverable += 1
        elif state is State.QUARANTINED:
            self.quarantined += 1

    def _notify_final(self, msg: Message) -> None:
        try:
            self.on_final(msg)
        except Exception as e:  # noqa: BLE001 - a broken hint must not stop delivery
            log.error(
                "on_final failed", extra={"message_id": msg.id, "error_type": type(e).__name__}
            )

    @staticmethod
    def _log_final(msg: Message, reason: str) -> None:
        level = logging.ERROR if msg.state is State.QUARANTINED else logging.INFO
        log.log(
            level,
            "final",
            extra={
                "message_id": msg.id,
                "route": msg.route,
                "state": msg.state.value,
                "error": msg.error,
                "reason": reason,
            },
        )
