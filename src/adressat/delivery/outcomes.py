"""Outcomes of delivery attempts: which store write an outcome becomes (pure), and the
batch that writes the outcomes finished within one loop turn as ONE committer operation.

``OutcomeBatch``: each outcome still gets its own result (written, StaleState,
DuplicateDelivery ...) and only after the commit (I1). Right behind the batch, in the same
committer batch, ``after_flush`` queues the claim for the slots just freed, so one
transaction writes the outcomes and claims what follows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adressat.core.model import Message, State
from adressat.core.retry import RetryPolicy
from adressat.delivery.adapter import Outcome, OutcomeKind
from adressat.delivery.errors import DeliveryError
from adressat.store.base import FinishedAttempt, StoreError
from adressat.store.commit import GroupCommitter

__all__ = ["Plan", "plan_outcome", "OutcomeBatch", "hand_out"]


@dataclass(frozen=True, slots=True)
class Plan:
    """The store write decided for one outcome."""

    new_state: State
    changes: dict[str, object]
    fallback: Plan | None = None  # for HELD: the plan if the route was released meanwhile


def plan_outcome(msg: Message, outcome: Outcome, now: float, *, retry: RetryPolicy,
                 jitter: float, held: frozenset[str]) -> Plan:
    """The store write for an attempt's outcome: DELIVERED with the identity that acked; a
    temporary failure DEFERRED to the next backoff step (EXPIRED when none fits and the
    validity is over, DEFERRED until the end when none fits before it), or HELD when its
    route's breaker is open (with the retry as the fallback, should the route be released
    meanwhile); a permanent failure UNDELIVERABLE; an integrity failure QUARANTINED."""
    plan = _plan_kind(msg, outcome, now, retry=retry, jitter=jitter, held=held)
    if not outcome.attribution:
        return plan
    return _attributed(plan, {**msg.extra, **dict(outcome.attribution)})


def _attributed(plan: Plan, extra: dict[str, object]) -> Plan:
    fallback = None if plan.fallback is None else _attributed(plan.fallback, extra)
    return Plan(plan.new_state, {**plan.changes, "extra": extra}, fallback)


def _plan_kind(msg: Message, outcome: Outcome, now: float, *, retry: RetryPolicy,
               jitter: float, held: frozenset[str]) -> Plan:
    kind = outcome.kind
    if kind is OutcomeKind.FORWARDED:
        return Plan(State.FORWARDED, {"error": int(DeliveryError.OK)})
    if kind is OutcomeKind.DELIVERED:
        return Plan(
            State.DELIVERED,
            {
                "error": int(DeliveryError.OK),
                "delivered_imsi": outcome.imsi,
                "delivered_msisdn": outcome.msisdn,
            },
        )
    if kind is OutcomeKind.TEMPORARY:
        at = retry.next_attempt_at(
            msg.attempts, now, msg.expires_at, jitter=jitter
        )
        if at is None and msg.expires_at <= now:
            later = Plan(State.EXPIRED, {"error": int(outcome.error)})
        else:
            # no backoff step fits before the validity ends: the message stays DEFERRED
            # until then (an alert can still bring it out) and expires exactly at the end
            due = msg.expires_at if at is None else at
            later = Plan(State.DEFERRED, {"error": int(outcome.error), "next_attempt_at": due})
        if msg.route in held:  # fail closed: no retry on a held route
            return Plan(State.HELD, {"error": int(outcome.error)}, later)
        return later
    if kind is OutcomeKind.PERMANENT:
        return Plan(State.UNDELIVERABLE, {"error": int(outcome.error)})
    return Plan(State.QUARANTINED, {"error": int(outcome.error)})


def hand_out(
    batch: asyncio.Future[list[Message | Exception]],
    pending: list[tuple[FinishedAttempt, asyncio.Future[Message]]],
) -> None:
    """Give each outcome of a committed (or failed) ``finish_attempts`` its own result."""
    if batch.cancelled():
        for _, fut in pending:
            fut.cancel()
        return
    error = batch.exception()
    results: Sequence[Message | BaseException] = (
        batch.result() if error is None else [error] * len(pending)
    )
    for (_, fut), result in zip(pending, results, strict=True):
        if fut.done():  # its task was cancelled; the write happened anyway
            continue
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)


class OutcomeBatch:
    """The outcomes finished within one loop turn, written together."""

    def __init__(self, committer: GroupCommitter, *, after_flush: Callable[[], None],
                 on_refused: Callable[[], None]) -> None:
        self.committer = committer
        self.after_flush = after_flush
        self.on_refused = on_refused
        self._finishing: list[tuple[FinishedAttempt, asyncio.Future[Message]]] = []

    def add(self, item: FinishedAttempt) -> asyncio.Future[Message]:
        """The future of this item's own result, set once its batch is committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Message] = loop.create_future()
        self._finishing.append((item, fut))
        if len(self._finishing) == 1:
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        pending, self._finishing = self._finishing, []
        if not pending:
            return
        items = [item for item, _ in pending]
        # planned here, on the loop, so that the batch holds the write lock (which the
        # other process may be waiting for) only for the SQL
        planned = self.committer.store.plan_finish_attempts(items)
        try:
            batch = self.committer.enqueue(lambda s: s.finish_attempts(items, planned))
        except StoreError as e:  # queue full or stopped: nothing written
            for _, fut in pending:
                if not fut.done():
                    fut.set_exception(e)
            self.on_refused()  # their slots are free; the run loop claims (or waits a tick)
            return
        batch.add_done_callback(lambda b: hand_out(b, pending))
        self.after_flush()
