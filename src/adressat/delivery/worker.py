"""The delivery worker: claims due messages, hands each to its route's adapter, and writes the
outcome as ONE store operation (state transition + append-only attempt record).

Its rooms: this module is the scheduling loop (self-healing: a failing turn is retried with
backoff and said as an episode) and one attempt; ``delivery.outcomes`` decides which store
write an outcome becomes and batches the writes of a loop turn; ``delivery.alarms`` makes,
records and logs integrity alarms (and trips breakers); ``delivery.recovery`` brings back
attempts cut short.

The outcomes that finish within one turn of the event loop and need no alarm are written
together: ONE committer operation, ``Store.finish_attempts`` (a few statements for all of
them, each row a compare-and-set on its claim); each message still gets its own result
(written, StaleState, DuplicateDelivery ...) and only after the commit. Integrity outcomes
(alarm, breaker) and the held-route case stay one operation per message.

A message's concurrency slot is given back when its attempt is over and its outcome is
handed to the flush, not when the outcome is durable: the flush queues a ``claim_due`` for
the free slots right behind it, so ONE transaction writes the outcomes and claims what
follows (before, a claim and a flush alternated, each a commit and an fsync of its own).
Nothing is weakened: the task still waits for its durable result, :meth:`DeliveryWorker.stop`
still waits for every queued outcome, and an outcome lost to a crash leaves its message
DISPATCHED (recovered as DEFERRED with an INTERRUPTED attempt, resent with the same TP-SCTS).

A thin shell: which transition is legal is ``core.lifecycle``'s business, when to retry is
``core.retry``'s, what is due is the store's (``claim_due``: per destination one at a time,
which keeps per-destination order). Time and randomness are injected (``clock``, ``rng``).

Crash safety: a claim is a lease (DISPATCHED, ``lease_until``). This is the single-node SQLite
deployment, so when :meth:`DeliveryWorker.run` starts no attempt can be in flight: every
DISPATCHED message is put back to DEFERRED (due now) with an ``INTERRUPTED`` attempt record,
and ``recover_leases`` catches anything left. The resend carries the same TP-SCTS, so a handset
that had stored it discards the copy.

Logs are structured (``extra``: message_id, route, state, error), never message text (I6).

Integrity (DESIGN.md "Identity checks", "Fail closed"):

* A QUARANTINE outcome is written as ONE store operation: QUARANTINED (never retried towards
  anyone; the failure receipt is an outbox row of the same transaction), the attempt record,
  the alarm (``alarms`` table, and a line on the ``adressat.alarm`` logger at ERROR), and, when
  the route's alarms since its last release reach ``breaker_alarms_threshold``, the route's
  breaker trip (route marked held, its ROUTED/DEFERRED messages HELD).
* IMSI conflict (one IMSI answered for two numbers): "quarantines both messages". The current
  message goes QUARANTINED. The earlier one was already DELIVERED, and a final state is written
  once, so it is not rewritten: the alarm names both ids, and the incident report lists the
  earlier one as ``suspect`` (and the audit counts a misdelivery to it as detected).
* Held routes: the worker caches the set of held routes (refreshed from the store every
  ``held_refresh_s`` and at once on a trip; with a threshold of 1, already when an integrity
  outcome comes back, before its transaction commits, so the claimed messages that have not
  started yet are held rather than sent meanwhile). A claimed message whose route is held is moved
  DISPATCHED -> HELD without being sent (not rerouted, not expired early: ``expire_due`` never
  touches HELD); a temporary failure on a held route goes to HELD instead of DEFERRED. The
  cache is only a hint: the move to HELD re-checks the store in the same transaction, so a
  route released a moment ago is sent normally.
* Retry after a timeout (the handset may have stored it): only towards the identity
  addressed then; if the destination's identity changed meanwhile, nothing is sent:
  QUARANTINED (``RETRY_IDENTITY_CHANGED``, alarm ``retry_identity_changed``). I3: "a second
  attempt towards a different identity is an alarm".
* Routing mismatch (``DeliveryError.ROUTING_MISMATCH``, the adapter refused to send because
  the register's answer is not the destination's current identity): a TEMPORARY outcome
  (DEFERRED after backoff, or HELD), written in ONE store operation with its
  ``routing_mismatch`` alarm and, at the threshold, the route's breaker trip.
* Answers outside their attempt (``on_network_answer``, registered on netsim's late-ack
  channel): never applied, always an alarm (``delivery.answers``). A stray ack (a stranger's
  identity) trips the route's breaker; if the message is still DEFERRED it is quarantined.
* ``faults`` (``delivery.faults.InternalFaults``): the ``corrupt_pairing`` switch mixes a
  message with another one in flight right before the adapter sees it; the binding tag must
  stop it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from adressat.core.health import Backoff, Episode, EpisodeKind
from adressat.core.integrity import Alarm, AlarmKind
from adressat.core.model import CANARY_ACCOUNT, AttemptRecord, ForwardPart, Message, State
from adressat.core.retry import RetryPolicy
from adressat.delivery.adapter import Adapter, Outcome, OutcomeKind
from adressat.delivery.alarms import (
    ALARM_KINDS,
    ALARMED_TEMPORARY,
    alarm_for,
    log_alarm,
    record_alarm,
)
from adressat.delivery.answers import NetworkAnswer, classify_answer
from adressat.delivery.errors import DeliveryError
from adressat.delivery.faults import InternalFaults
from adressat.delivery.outcomes import OutcomeBatch, Plan, plan_outcome
from adressat.delivery.recovery import INTERRUPTED, interrupted
from adressat.observe.health import EpisodeRecorder, failure_cause
from adressat.observe.metrics import (
    ALARMS,
    ATTEMPTS,
    DELIVERY_LATENCY,
    FINAL,
    HELD,
    PARTNER_SUBMITS,
    TurnCounts,
)
from adressat.store.base import (
    DuplicateDelivery,
    FinishedAttempt,
    StaleState,
    Store,
    StoreError,
    StoreUnavailable,
)
from adressat.store.commit import GroupCommitter
from adressat.store.forwards import ForwardResult

__all__ = ["DeliveryWorker", "INTERRUPTED", "WorkerFailed", "ALARM_KINDS", "log_alarm",
           "record_alarm"]  # the last three live in delivery.alarms

log = logging.getLogger(__name__)
alarm_log = logging.getLogger("adressat.alarm")

class WorkerFailed(Exception):
    """The loop cannot go on (it failed ``loop_failures_max`` turns in a row for a reason
    that is not the store's): :meth:`DeliveryWorker.run` raises it, the delivery process
    exits non-zero and the SMPP process starts a new one."""


_RECOVER_PAGE = 1000
_EXPIRE_PAGES_MAX = 10  # per tick, so expiry never starves delivery


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
        breaker_alarms_threshold: int = 1,
        held_refresh_s: float = 1.0,
        faults: InternalFaults | None = None,
        current_imsi: Callable[[str], str | None] | None = None,
        loop_failures_max: int = 20,
        backoff_s_max: float = 5.0,
        on_episode: Callable[[Episode], None] | None = None,
        forwarded_grace_s: float = 3600.0,
        partner_receipt_hold_s: float = 300.0,
        on_claim: Callable[[list[Message], int], None] | None = None,
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
        # every claim: (the messages claimed, its limit); delivery/backlog.py tells ingress
        # from it which routes delivery is behind on
        self.on_claim = on_claim
        if breaker_alarms_threshold < 0:
            raise ValueError("breaker_alarms_threshold must be >= 0")
        self.breaker_alarms_threshold = breaker_alarms_threshold
        self.held_refresh_s = held_refresh_s
        self.faults = faults
        self.current_imsi = current_imsi
        self.forwarded_grace_s = forwarded_grace_s
        self.partner_receipt_hold_s = partner_receipt_hold_s
        if loop_failures_max < 1:
            raise ValueError("loop_failures_max must be >= 1")
        # heal or shout: a failed turn is an episode (opened at the first failure, closed by
        # the first turn that works again), retried with backoff; only failures that are not
        # the store's, ``loop_failures_max`` turns in a row, end the loop (WorkerFailed)
        self.loop_failures_max = loop_failures_max
        self.health = EpisodeRecorder("delivery", committer, clock, on_episode)
        self._backoff = Backoff(delay_s_min=interval_s, delay_s_max=max(interval_s, backoff_s_max))
        self._turn_failures: list[BaseException] = []
        # outcomes the store failed to take, written again once it works (at most one per
        # concurrency slot; beyond that, lease recovery brings the message back)
        self._unwritten: list[tuple[Message, Outcome, Plan, float, float, bool]] = []
        self._unexpected_in_row = 0
        self.next_lease_check_at = 0.0
        self._held: frozenset[str] = frozenset()
        # accounts disabled with their queue held (issue 13): refreshed with the held routes
        self._holding: frozenset[str] = frozenset()
        self._in_flight: dict[str, Message] = {}  # claimed, about to go or going out
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[Message | None]] = set()
        # concurrency: a slot is taken by a claimed message until its attempt is over (its
        # outcome handed to the flush, or its task done), and reserved by a claim in flight
        self._slots: set[str] = set()
        self._reserved = 0
        self._claims: set[asyncio.Future[list[Message]]] = set()  # claims queued by a flush
        self._closed = False  # run() has ended: claimed messages are no longer started
        # outcomes waiting for the next flush (one committer operation per loop turn)
        self._outcomes = OutcomeBatch(committer, after_flush=self._claim_after_flush,
                                      on_refused=self.wake)
        self._side_tasks: set[asyncio.Task[Any]] = set()
        # FORWARDED outcomes waiting for the next flush (one committer operation per turn)
        self._forwarding: list[tuple[FinishedAttempt, tuple[ForwardPart, ...],
                                     asyncio.Future[ForwardResult]]] = []
        # counters (read by metrics and the audit)
        self.attempts = 0
        self.delivered = 0
        self.deferred = 0
        self.expired = 0
        self.undeliverable = 0
        self.quarantined = 0
        self.forwarded = 0
        self.stale = 0
        self.recovered = 0
        self.store_errors = 0
        self.loop_failures = 0
        self._finals = TurnCounts(FINAL)
        self._attempt_counts = TurnCounts(ATTEMPTS)
        self.held = 0
        self.alarms = 0
        self.trips = 0

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
        log.debug("alert", extra={"destination": msisdn, "retried": n})
        self.wake()
        return n

    # --- main loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Recover, then claim and deliver until :meth:`stop`. Cancelling ``run`` cancels the
        attempts in flight without writing them (what a crash does; the leases recover).
        A worker runs once: after :meth:`stop` make a new one.

        It never stops by itself for a store failure: a turn whose store steps fail is
        retried with backoff, the failure is an episode (log, ``health``, ``on_episode``)
        until a turn works again. Raises WorkerFailed when turns keep failing for another
        reason (a bug): the process then exits non-zero and is started anew."""
        await self._recover_until_done()
        next_expire_at = 0.0
        next_held_at = 0.0
        try:
            while not self._stopping:
                self._wake.clear()
                now = self.clock()
                more = False
                try:
                    if now >= next_held_at:
                        await self.refresh_held()
                        next_held_at = now + self.held_refresh_s
                    if now >= next_expire_at:
                        await self._expire(now)
                        next_expire_at = now + self.expire_interval_s
                    if now >= self.next_lease_check_at:
                        await self._recover_expired_leases(now)
                    free = self._free()
                    if free > 0:
                        limit = min(free, self.claim_batch_max)
                        claimed = await self._claim(limit, now)
                        more = len(claimed) == limit and self._free() > 0
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - a turn that fails is retried, loudly
                    self._failed(e, "loop")
                    if not isinstance(e, StoreError):
                        self._unexpected_in_row += 1
                        if self._unexpected_in_row >= self.loop_failures_max:
                            log.critical("delivery loop cannot go on",
                                         extra={"error_type": type(e).__name__,
                                                "failures": self._unexpected_in_row})
                            raise WorkerFailed(type(e).__name__) from e
                delay = self._turn_over()
                if self._stopping:
                    break
                if delay is not None:  # backoff: the store (or something) is failing
                    await asyncio.sleep(delay)
                    continue
                if more:
                    continue  # more may be due: claim again before sleeping
                try:
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
                except TimeoutError:
                    pass
            while self._tasks or self._claims:  # a claim answered meanwhile starts its own
                await asyncio.gather(*self._tasks, *self._claims, return_exceptions=True)
        finally:
            self._closed = True
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- heal or shout -----------------------------------------------------------------------

    def _failed(self, e: BaseException, step: str) -> None:
        """A store step (or the turn) failed: counted, and the episode opens (logged,
        written to the store when it can be)."""
        self.loop_failures += 1
        self._turn_failures.append(e)
        self.health.failed(EpisodeKind.DELIVERY_LOOP_FAILING, failure_cause(e), step=step,
                           error_type=type(e).__name__)

    def _turn_over(self) -> float | None:
        """End of a turn: the backoff delay if something failed in it, else None (and the
        episode, if one was open, is over)."""
        failures, self._turn_failures = self._turn_failures, []
        if failures:
            return self._backoff.failed(self.rng.random())
        self._backoff.succeeded()
        self._unexpected_in_row = 0
        self.health.recovered(EpisodeKind.DELIVERY_LOOP_FAILING)
        if self._unwritten:
            self._write_again()
        return None

    def _write_again(self) -> None:
        """The outcomes that could not be written (the store failed), written now."""
        pending, self._unwritten = self._unwritten, []
        log.warning("writing outcomes again", extra={"count": len(pending)})
        for msg, outcome, plan, started_at, ended_at, sent in pending:
            task = asyncio.get_running_loop().create_task(
                self._write(msg, outcome, plan, started_at, ended_at, sent=sent))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _recover_until_done(self) -> None:
        """:meth:`recover`, retried with backoff while the store fails."""
        while True:
            try:
                await self.recover()
            except StoreError as e:
                self._failed(e, "recover")
                delay = self._turn_over()
                await asyncio.sleep(delay or self.interval_s)
                if self._stopping:
                    return
                continue
            self._turn_over()
            return

    @property
    def held_routes(self) -> frozenset[str]:
        return self._held

    async def refresh_held(self) -> frozenset[str]:
        """Re-read the held routes from the store (an operator may have released one)."""
        try:
            self._held, self._holding = await self.committer.run(
                lambda s: (s.held_routes(), s.accounts_holding_queue()))
        except StoreError as e:
            self.store_errors += 1
            self._failed(e, "held_routes")
        return self._held

    def _free(self) -> int:
        """Concurrency slots neither taken by a claimed message nor reserved by a claim."""
        return self.concurrency_max - len(self._slots) - self._reserved

    def _enqueue_claim(self, limit: int, now: float) -> asyncio.Future[list[Message]]:
        """Queue ``claim_due`` for the next committer batch, ``limit`` slots reserved until
        it is answered; the claimed messages are started then (:meth:`_claimed`). Raises
        StoreError (queue full, committer stopped)."""
        lease_s, owner = self.lease_s, self.owner
        fut = self.committer.enqueue(lambda s: s.claim_due(limit, now, lease_s, owner))
        self._reserved += limit
        fut.add_done_callback(lambda f: self._claimed(f, limit))
        return fut

    def _claimed(self, fut: asyncio.Future[list[Message]], limit: int) -> None:
        self._reserved -= limit
        self._claims.discard(fut)
        if fut.cancelled():
            return
        error = fut.exception()
        if error is not None:  # a failed commit: nothing was claimed; next tick
            self.store_errors += 1
            self._failed(error, "claim_due")
            return
        if self._closed:  # run() was cancelled: they stay DISPATCHED, as after a crash
            return
        msgs = fut.result()
        if self.on_claim is not None:
            self.on_claim(msgs, limit)
        for msg in msgs:
            self._spawn(msg)

    async def _claim(self, limit: int, now: float) -> list[Message]:
        try:
            fut = self._enqueue_claim(limit, now)
        except StoreError as e:  # queue full or stopped: try again next tick
            self.store_errors += 1
            self._failed(e, "claim_due")
            return []
        try:
            return await asyncio.shield(fut)
        except StoreError:  # counted and reported by _claimed
            return []

    def _claim_after_flush(self) -> None:
        """Right after a flush is queued: claim for the slots free now (those of the flushed
        outcomes among them), in the same committer batch, after the flush (ops run in queue
        order). So one transaction writes the outcomes and claims what follows, and a
        destination whose message is written there is already free to claim (``claim_due``
        skips a destination only while it has a DISPATCHED message)."""
        if self._stopping or self._closed:
            return
        free = self._free()
        if free <= 0:
            return
        try:
            fut = self._enqueue_claim(min(free, self.claim_batch_max), self.clock())
        except StoreError as e:
            self.store_errors += 1
            self._failed(e, "claim_due")
            return
        self._claims.add(fut)

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
        return len(listed), self._interrupted(store, listed, now)

    def _interrupted(self, store: Store, listed: Sequence[Message], now: float) -> int:
        return interrupted(store, listed, now, self.node)

    async def _recover_expired_leases(self, now: float) -> int:
        """While running: a DISPATCHED message whose lease is over and that no attempt of this
        worker holds (its outcome could not be written: the store failed) comes back DEFERRED
        with an INTERRUPTED attempt, as after a crash. Checked every quarter lease."""
        self.next_lease_check_at = now + self.lease_s / 4
        listed = await self.committer.read(
            lambda s: s.list_messages(state=State.DISPATCHED, limit=_RECOVER_PAGE)
        )
        expired = [
            m for m in listed
            if m.lease_until is not None and m.lease_until < now and m.id not in self._slots
        ]
        if not expired:
            return 0
        moved = await self.committer.run(lambda s: self._interrupted(s, expired, now))
        self.recovered += moved
        if moved:
            log.warning("recovered attempts whose outcome was not written",
                        extra={"count": moved})
        return moved

    async def _expire(self, now: float) -> None:
        limit = self.claim_batch_max
        for _ in range(_EXPIRE_PAGES_MAX):
            try:
                expired = await self.committer.run(lambda s: s.expire_due(now, limit=limit))
            except StoreError as e:
                self.store_errors += 1
                self._failed(e, "expire_due")
                return
            for msg in expired:
                self.expired += 1
                self._log_final(msg, "expired", None)
                self._notify_final(msg)
            if len(expired) < limit:
                break
        await self._expire_forwarded(now)

    async def _expire_forwarded(self, now: float) -> None:
        """Interconnect (issue 11): FORWARDED messages no receipt ended by validity end plus
        ``forwarded_grace_s`` end UNKNOWN (the sender is told so); receipts held longer than
        ``partner_receipt_hold_s`` for a mapping that never came are given up, alarmed."""
        limit = self.claim_batch_max
        grace_s, hold_s = self.forwarded_grace_s, self.partner_receipt_hold_s
        try:
            ended = await self.committer.run(lambda s: s.expire_forwarded(now, grace_s, limit))
            alarms = await self.committer.run(
                lambda s: s.expire_held_receipts(now - hold_s, now, limit))
        except StoreError as e:
            self.store_errors += 1
            self._failed(e, "expire_forwarded")
            return
        for msg in ended:
            self._log_final(msg, "partner_no_receipt", None)
            self._notify_final(msg)
        for alarm in alarms:
            self._after_alarm(alarm, False)

    def _spawn(self, msg: Message) -> None:
        task = asyncio.get_running_loop().create_task(self.process(msg))
        self._tasks.add(task)
        self._slots.add(msg.id)

        def done(t: asyncio.Task[Message | None]) -> None:
            self._tasks.discard(t)
            if msg.id in self._slots:  # not given back by a flush (which claims itself)
                self._slots.discard(msg.id)
                self.wake()  # a slot is free, and the destination may have more queued

        task.add_done_callback(done)

    # --- one message ---------------------------------------------------------------------

    async def process(self, msg: Message) -> Message | None:
        """Deliver one claimed (DISPATCHED) message and write the outcome. Returns the new
        record, or None when someone else had moved it (StaleState) or the store failed."""
        started_at = self.clock()
        if msg.route in self._held:
            handled, held = await self._hold_claimed(msg, started_at)
            if handled:
                return held
        if msg.account in self._holding:
            handled, held = await self._hold_of_disabled(msg, started_at)
            if handled:
                return held
        if started_at >= msg.expires_at:  # an expired message is never delivered late
            outcome = Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.EXPIRED)
            plan = Plan(State.EXPIRED, {"error": int(DeliveryError.EXPIRED)})
            return await self._write(msg, outcome, plan, started_at, started_at, sent=False)
        refused = await self._retry_identity_check(msg)
        if refused is not None:
            plan = self._plan(msg, refused, started_at)
            return await self._write(msg, refused, plan, started_at, started_at, sent=False)
        self.attempts += 1
        self._in_flight[msg.id] = msg
        try:
            outcome = await self._attempt(self._pairing(msg))
        finally:
            self._in_flight.pop(msg.id, None)
        if msg.account != CANARY_ACCOUNT:  # the prober's own have their metrics
            self._attempt_counts.add(msg.route, outcome.kind.value, outcome.node or "")
        if self._trips_at_once(msg, outcome):
            # Hint before the commit: claimed messages of this route that have not started
            # yet are held instead of sent while the alarm's transaction is in the group
            # commit (the store decides; a refresh corrects the cache if it did not trip).
            self._held = self._held | {msg.route}
        ended_at = self.clock()
        return await self._write(
            msg, outcome, self._plan(msg, outcome, ended_at), started_at, ended_at, sent=True
        )

    async def _retry_identity_check(self, msg: Message) -> Outcome | None:
        """I3 for retries: after an attempt that timed out or was interrupted by a crash (the
        handset may have stored it), the retry may only go to the identity addressed then
        (for an interrupted one, the identity written before it went out). If the
        destination's identity has changed since (SIM swap, recycled number), nothing is
        sent: QUARANTINE (``RETRY_IDENTITY_CHANGED``) with its alarm. Costs a store read per
        retry (never for a first attempt)."""
        if msg.attempts <= 1:
            return None  # a first attempt
        if (msg.error is None or msg.error == 0) and msg.addressed_imsi is None:
            return None  # nothing went wrong before, and nothing was addressed
        if self.current_imsi is None or self._adapter_name(msg.route) != "netsim":
            return None  # a partner's route: the adapter pins the retry to its connector
        try:
            attempts = await self.committer.run(lambda s: s.attempts_for_message(msg.id))
        except StoreError:
            return None
        timeout = int(DeliveryError.TIMEOUT)
        previous = next(
            (
                a.imsi
                for a in reversed(attempts)
                if a.imsi and (a.error == timeout or a.outcome == INTERRUPTED)
            ),
            None,
        )
        if previous is None:
            return None
        try:
            current = self.current_imsi(msg.destination)
        except Exception:  # noqa: BLE001 - the register may be down: let the adapter decide
            return None
        if current is None or current == previous:
            return None
        return Outcome.failed(
            OutcomeKind.QUARANTINE,
            DeliveryError.RETRY_IDENTITY_CHANGED,
            imsi=current,
            msisdn=msg.destination,
            reason="retry_identity_changed",
            addressed_imsi=previous,
        )

    def _trips_at_once(self, msg: Message, outcome: Outcome) -> bool:
        """Whether this outcome's alarm trips the route by itself (threshold 1)."""
        if self.breaker_alarms_threshold != 1 or not msg.route:
            return False
        return outcome.kind is OutcomeKind.QUARANTINE or int(outcome.error) in ALARMED_TEMPORARY

    async def _hold_claimed(self, msg: Message, now: float) -> tuple[bool, Message | None]:
        """DISPATCHED -> HELD without sending, if the route is held in the store (checked in
        the same transaction). (False, None): the route was released meanwhile; send it."""

        def op(store: Store) -> Message | None:
            if msg.route not in store.held_routes():
                return None
            return store.transition(
                msg.id,
                State.DISPATCHED,
                State.HELD,
                now,
                expected_attempts=msg.attempts,
                attempts=msg.attempts - 1,  # nothing was attempted
                lease_until=None,
                lease_owner=None,
            )

        try:
            new = await self.committer.run(op)
        except StoreError as e:
            self.store_errors += 1
            log.error(
                "not moved to HELD",
                extra={"message_id": msg.id, "route": msg.route, "error_type": type(e).__name__},
            )
            return True, None
        if new is None:
            self._held = self._held - {msg.route}
            return False, None
        self.held += 1
        if msg.account != CANARY_ACCOUNT:
            HELD.labels(msg.account, msg.route).inc()
        log.debug(
            "held: route breaker open",
            extra={"message_id": msg.id, "account": msg.account, "route": msg.route,
                   "state": new.state.value},
        )
        return True, new

    async def _hold_of_disabled(self, msg: Message, now: float) -> tuple[bool, Message | None]:
        """DISPATCHED -> HELD without sending: its account is disabled and its queue held
        (issue 13; in flight at the disable and deferred since, or released from a route's
        hold). (False, None): enabled meanwhile; send it."""
        try:
            new = await self.committer.run(
                lambda s: s.hold_claimed_of_disabled(msg.id, msg.attempts, now))
        except StoreError as e:
            self.store_errors += 1
            log.error("not moved to HELD", extra={"message_id": msg.id, "account": msg.account,
                                                  "error_type": type(e).__name__})
            return True, None
        if new is None:
            self._holding = self._holding - {msg.account}
            return False, None
        self.held += 1
        log.debug("held: account disabled", extra={"message_id": msg.id,
                                                   "account": msg.account})
        return True, new

    def _pairing(self, msg: Message) -> Message:
        """What the adapter is handed. Normally ``msg`` itself; with the internal fault
        ``corrupt_pairing`` firing, ``msg`` mixed with another message in flight (its own id
        and tag, the other one's destination and content)."""
        faults = self.faults
        if faults is None or not faults.is_on("corrupt_pairing"):
            return msg
        others = [m for mid, m in self._in_flight.items() if mid != msg.id]
        if not others or not faults.fires("corrupt_pairing", msg.route):
            return msg
        other = others[self.rng.randrange(len(others))]
        return replace(
            msg,
            destination=other.destination,
            content=other.content,
            data_coding=other.data_coding,
            esm_class=other.esm_class,
        )

    async def _mark_addressed(self, msg: Message, imsi: str) -> bool:
        """The adapter's ``addressed`` hook: the identity this attempt is about to use, made
        durable on the message (with the others of this loop turn: one commit) before it goes
        out. False (nothing is sent) when the store fails or the message moved meanwhile."""
        message_id, attempts = msg.id, msg.attempts
        try:
            return await self.committer.run(
                lambda s: s.mark_addressed(message_id, attempts, imsi)
            )
        except StoreError as e:
            self.store_errors += 1
            log.error("addressed identity not written",
                      extra={"message_id": message_id, "error_type": type(e).__name__})
            return False

    async def _attempt(self, msg: Message) -> Outcome:
        try:
            kind = self.route_kind(msg.route)
            adapter = self.adapters[kind]
        except (KeyError, LookupError):
            return Outcome.failed(OutcomeKind.PERMANENT, DeliveryError.UNROUTABLE)
        try:
            return await asyncio.wait_for(
                adapter.deliver(msg, lambda imsi: self._mark_addressed(msg, imsi)),
                self.delivery_timeout_s,
            )
        except TimeoutError:
            return Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # an adapter bug must not kill the worker; retry later
            log.error(
                "adapter failed",
                extra={"message_id": msg.id, "account": msg.account, "route": msg.route,
                       "error_type": type(e).__name__},
            )
            return Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.SYSTEM_FAILURE)

    def _plan(self, msg: Message, outcome: Outcome, now: float) -> Plan:
        return plan_outcome(msg, outcome, now, retry=self.retry, jitter=self.rng.random(),
                            held=self._held)

    async def _write(
        self,
        msg: Message,
        outcome: Outcome,
        plan: Plan,
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
            serving_node=outcome.node,
        )
        if outcome.kind is OutcomeKind.FORWARDED and plan.new_state is State.FORWARDED:
            return await self._write_forwarded(msg, outcome, plan, record, started_at, ended_at)

        alarmed = plan.new_state is State.QUARANTINED or (
            sent and int(outcome.error) in ALARMED_TEMPORARY
        )
        alarm = self._alarm_for(msg, outcome, ended_at) if alarmed else None
        stored_alarm: Alarm | None = None
        tripped = False

        def op(store: Store) -> Message:
            nonlocal stored_alarm, tripped
            chosen = plan
            if plan.fallback is not None and msg.route not in store.held_routes():
                chosen = plan.fallback  # released since the cache was refreshed
            new = store.transition(
                msg.id,
                State.DISPATCHED,
                chosen.new_state,
                ended_at,
                expected_attempts=msg.attempts,
                **chosen.changes,
            )
            store.append_attempt(record)
            if alarm is not None:  # the same transaction: state, attempt, alarm, breaker
                stored_alarm, tripped = record_alarm(
                    store, alarm, self.breaker_alarms_threshold, ended_at
                )
                if tripped and not new.is_final:  # the trip just held it
                    new = store.get_message(msg.id) or new
            return new

        try:
            if alarm is None and plan.fallback is None:  # the common case, coalesced
                new = await self._finish(
                    FinishedAttempt(msg, plan.new_state, plan.changes, record, ended_at)
                )
            else:
                new = await self.committer.run(op)
        except StaleState as e:
            self.stale += 1
            log.warning(
                "outcome dropped: message moved by someone else",
                extra={
                    "message_id": msg.id,
                    "account": msg.account, "serving_node": outcome.node,
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
                extra={"message_id": msg.id, "account": msg.account, "route": msg.route,
                       "serving_node": outcome.node, "error_type": type(e).__name__},
            )
            dup = Alarm(
                at=ended_at,
                kind=AlarmKind.DUPLICATE_DELIVERY_REFUSED,
                message_ids=(msg.id,),
                account=msg.account,
                route=msg.route,
                node=self.node,
                adapter=self._adapter_name(msg.route),
                detail=f"imsi={outcome.imsi} msisdn={outcome.msisdn}",
                serving_node=outcome.node,
            )

            def dup_op(store: Store) -> tuple[Alarm, bool]:
                if sent:
                    store.append_attempt(record)
                return record_alarm(store, dup, self.breaker_alarms_threshold, ended_at)

            await self._alarm_op(dup_op)
            return None
        except StoreError as e:
            self.store_errors += 1
            log.error(
                "outcome not written",
                extra={"message_id": msg.id, "account": msg.account, "route": msg.route,
                       "error_type": type(e).__name__},
            )
            if isinstance(e, StoreUnavailable):
                # the message stays DISPATCHED: its outcome is written again by the first turn
                # that works (so a delivered message is not sent again and the one queued
                # behind it to the same number need not wait for the lease); if this process
                # ends first, lease recovery brings it back as after a crash
                if len(self._unwritten) < self.concurrency_max:
                    self._unwritten.append((msg, outcome, plan, started_at, ended_at, sent))
                self._failed(e, "outcome")
                return None
            if sent:
                await self._append_only(record)
            return None
        if stored_alarm is not None:
            self._after_alarm(stored_alarm, tripped)
        self._count(new.state)
        if new.state is State.HELD and new.account != CANARY_ACCOUNT:
            HELD.labels(new.account, new.route).inc()
        if new.is_final:
            self._log_final(new, outcome.reason, outcome.node)
        else:
            log.debug(
                "deferred",
                extra={
                    "message_id": new.id,
                    "account": new.account, "serving_node": outcome.node, "reason": outcome.reason,
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
                log.error("on_integrity failed",
                          extra={"message_id": new.id, "error_type": type(e).__name__})
        if new.is_final:
            self._notify_final(new)
        return new

    async def _write_forwarded(
        self, msg: Message, outcome: Outcome, plan: Plan, record: AttemptRecord,
        started_at: float, ended_at: float,
    ) -> Message | None:
        """A partner accepted it: FORWARDED with its parts' partner ids in ONE transaction
        (``Store.record_forwarded``); receipts that came first are applied in it."""
        item = FinishedAttempt(msg, plan.new_state, plan.changes, record, ended_at)
        try:
            result = await self._forward(item, outcome.forwards)
        except StaleState as e:
            self.stale += 1
            log.warning("outcome dropped: message moved by someone else",
                        extra={"message_id": msg.id, "account": msg.account,
                               "route": msg.route, "state": e.actual.value,
                               "outcome": outcome.kind.value})
            await self._append_only(record)
            return None
        except StoreError as e:
            self.store_errors += 1
            log.error("outcome not written",
                      extra={"message_id": msg.id, "account": msg.account, "route": msg.route,
                             "error_type": type(e).__name__})
            if isinstance(e, StoreUnavailable) and len(self._unwritten) < self.concurrency_max:
                # the partner has it: written again once the store works, never resent
                self._unwritten.append((msg, outcome, plan, started_at, ended_at, True))
                self._failed(e, "outcome")
            return None
        for alarm in result.alarms:
            self._after_alarm(alarm, False)
        if result.reused and outcome.forwards:
            PARTNER_SUBMITS.labels(outcome.forwards[0].connector, "id_reused").inc(result.reused)
        new = result.message
        self.forwarded += 1
        for m in result.applied:
            if m.is_final:
                self._notify_final(m)
        if new.is_final and all(m.id != new.id for m in result.applied):
            self._notify_final(new)
        return new

    def _forward(
        self, item: FinishedAttempt, parts: tuple[ForwardPart, ...]
    ) -> asyncio.Future[ForwardResult]:
        """Write one FORWARDED outcome with the others of this loop turn (ONE committer
        operation, ``Store.record_forwarded_many``); its future is set after the commit."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[ForwardResult] = loop.create_future()
        self._forwarding.append((item, parts, fut))
        if len(self._forwarding) == 1:
            loop.call_soon(self._flush_forwarded)
        return fut

    def _flush_forwarded(self) -> None:
        pending, self._forwarding = self._forwarding, []
        if not pending:
            return
        items = [(item, parts) for item, parts, _ in pending]
        futures = [fut for _, _, fut in pending]

        def hand_out(batch: asyncio.Future[list[ForwardResult | Exception]]) -> None:
            error = None if batch.cancelled() else batch.exception()
            results: list[ForwardResult | BaseException] = (
                [asyncio.CancelledError()] * len(futures) if batch.cancelled()
                else [error] * len(futures) if error is not None else list(batch.result()))
            for fut, result in zip(futures, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

        try:
            batch = self.committer.enqueue(lambda s: s.record_forwarded_many(items))
        except Exception as e:  # noqa: BLE001 - the queue is full or closed: each is told
            for fut in futures:
                if not fut.done():
                    fut.set_exception(StoreUnavailable("commit_queue", type(e).__name__)
                                      if not isinstance(e, StoreError) else e)
            return
        batch.add_done_callback(hand_out)

    def _finish(self, item: FinishedAttempt) -> asyncio.Future[Message]:
        """Write one outcome together with the others finished in this loop turn (ONE
        committer operation); its future is set once the batch is committed (I1)."""
        self._slots.discard(item.claimed.id)  # the attempt is over: the flush claims anew
        return self._outcomes.add(item)

    # --- integrity ---------------------------------------------------------------------------

    def _adapter_name(self, route: str) -> str:
        try:
            return self.route_kind(route)
        except (KeyError, LookupError):
            return ""

    def _alarm_for(self, msg: Message, outcome: Outcome, now: float) -> Alarm:
        return alarm_for(msg, outcome, now, self.node, self._adapter_name(msg.route))

    def _after_alarm(self, alarm: Alarm, tripped: bool) -> None:
        self.alarms += 1
        ALARMS.labels(alarm.kind.value).inc()
        log_alarm(alarm)
        if tripped:
            self.trips += 1
            self._held = self._held | {alarm.route}
            alarm_log.error(
                "route breaker tripped",
                extra={
                    "route": alarm.route,
                    "alarm_id": alarm.id,
                    "kind": alarm.kind.value,
                    "message_ids": list(alarm.message_ids),
                    "node": self.node,
                },
            )

    async def _alarm_op(self, fn: Callable[[Store], tuple[Alarm, bool]]) -> Alarm | None:
        try:
            stored, tripped = await self.committer.run(fn)
        except StoreError as e:
            self.store_errors += 1
            log.error("alarm not written", extra={"error_type": type(e).__name__})
            return None
        self._after_alarm(stored, tripped)
        return stored

    async def raise_alarm(self, alarm: Alarm) -> Alarm | None:
        """Record an alarm (and trip its route if the threshold is reached), one transaction."""
        now = alarm.at
        return await self._alarm_op(
            lambda s: record_alarm(s, alarm, self.breaker_alarms_threshold, now)
        )

    def on_late_ack(self, smsc_message_id: str, part_index: int, ack: object) -> None:
        """``Network.on_late_ack`` callback: ``ack`` has ``imsi``, ``msisdn`` (and maybe
        ``also``: further handsets that stored it, each a stray answer of its own). Only
        schedules work on the running loop."""
        answers = [ack, *getattr(ack, "also", ())]
        for a in answers:
            answer = NetworkAnswer(
                smsc_message_id,
                part_index,
                str(getattr(a, "imsi", "")),
                str(getattr(a, "msisdn", "")),
            )
            task = asyncio.get_running_loop().create_task(self.on_network_answer(answer))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def on_network_answer(self, answer: NetworkAnswer) -> Alarm | None:
        """An answer outside its attempt: never applied; an alarm, one transaction. A stray
        ack (a stranger's identity) quarantines the message if it is still DEFERRED, names it
        in the alarm (``suspect`` in the incident report when it was DELIVERED) and counts
        towards the route's breaker."""
        now = self.clock()
        msg_id = answer.smsc_message_id
        current: str | None = None
        threshold = self.breaker_alarms_threshold
        pre = await self.committer.run(lambda s: s.get_message(msg_id))
        if pre is not None and pre.state is not State.DELIVERED and self.current_imsi:
            try:
                current = self.current_imsi(pre.destination)
            except Exception:  # noqa: BLE001 - the register may be down: unknown identity
                current = None

        def op(store: Store) -> tuple[Alarm, bool]:
            msg = store.get_message(msg_id)
            kind = classify_answer(msg, answer, current)
            detail = (
                f"part={answer.part_index} imsi={answer.imsi} msisdn={answer.msisdn}"
                + ("" if msg is None else f" state={msg.state.value}")
            )
            if kind is AlarmKind.STRAY_ACK and msg is not None and msg.state is State.DEFERRED:
                store.transition(
                    msg.id,
                    State.DEFERRED,
                    State.QUARANTINED,
                    now,
                    error=int(DeliveryError.IDENTITY_MISMATCH),
                )
                detail += " quarantined"
            # where it went: the serving node of the message's latest attempt that had one
            serving = next(
                (a.serving_node for a in reversed(store.attempts_for_message(msg_id))
                 if a.serving_node),
                None,
            ) if msg is not None else None
            alarm = Alarm(
                at=now,
                kind=kind,
                message_ids=(msg_id,),
                account="" if msg is None else msg.account,
                route="" if msg is None else msg.route,
                node=self.node,
                adapter="" if msg is None else self._adapter_name(msg.route),
                detail=detail,
                serving_node=serving,
            )
            return record_alarm(store, alarm, threshold, now)

        stored = await self._alarm_op(op)
        if stored is not None and "quarantined" in stored.detail:
            self.quarantined += 1
            m = await self.committer.run(lambda s: s.get_message(msg_id))
            if m is not None:
                self._notify_final(m)
        return stored

    async def _append_only(self, record: AttemptRecord) -> None:
        try:
            await self.committer.run(lambda s: s.append_attempt(record))
        except StoreError as e:
            log.error("attempt record not written", extra={
                "message_id": record.message_id, "route": record.route,
                "error_type": type(e).__name__})

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
        elif state is State.HELD:
            self.held += 1

    def finished_elsewhere(self, msg: Message) -> None:
        """A message that reached its final state outside an attempt (a partner's receipt):
        counted, logged and hinted like the others."""
        self._count(msg.state)
        self._log_final(msg, "partner_receipt", None)
        self._notify_final(msg)

    def alarm_recorded(self, alarm: Alarm) -> None:
        """An alarm the store recorded outside an attempt (a partner's receipt)."""
        self._after_alarm(alarm, False)

    def _notify_final(self, msg: Message) -> None:
        if msg.account != CANARY_ACCOUNT:  # customer figures leave the prober's out
            self._finals.add(msg.account, msg.route, msg.state.value)
            if msg.final_at is not None:
                DELIVERY_LATENCY.observe(max(0.0, msg.final_at - msg.submitted_at))
        try:
            self.on_final(msg)
        except Exception as e:  # noqa: BLE001 - a broken hint must not stop delivery
            log.error(
                "on_final failed", extra={"message_id": msg.id, "error_type": type(e).__name__}
            )

    @staticmethod
    def _log_final(msg: Message, reason: str, serving_node: str | None) -> None:
        level = logging.ERROR if msg.state is State.QUARANTINED else logging.DEBUG
        if not log.isEnabledFor(level):  # every message passes here: not even the dict
            return
        log.log(
            level,
            "final",
            extra={
                "message_id": msg.id,
                "account": msg.account, "serving_node": serving_node,
                "route": msg.route,
                "state": msg.state.value,
                "error": msg.error,
                "reason": reason,
            },
        )
