"""The commit every way in shares: a Submission in, a durable message id out (I1), or a refusal.

Every way in (SMPP, HTTP, later mobile-originated) calls :meth:`Ingress.accept`. It runs
``core.accept_message`` (validation, E.164, id, binding tag, route), commits through the group
committer and only then returns the id, so the caller's "accepted" is never said before the
message is on disk. A message whose route has no way out (another operator with no connector)
is committed and ended UNDELIVERABLE in the same transaction, so its sender gets a receipt.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from adressat.core.accept import AcceptLimits, Refusal, Refused, Submission, accept_message
from adressat.core.accounts import SenderRules
from adressat.core.ids import IdGenerator
from adressat.core.model import Message, State
from adressat.delivery.errors import DeliveryError
from adressat.observe.metrics import ACCEPTED, FINAL, TurnCounts
from adressat.routing import Route, Router, normalise
from adressat.routing.table import RoutingTable
from adressat.store.base import Store
from adressat.store.commit import CommitQueueFull, GroupCommitter, InsertDone

from .pacing import Pacer
from .refusals import Overloaded

log = logging.getLogger("adressat.ingress")


@dataclass
class QueueGauge:
    """How many messages are not final yet, refreshed now and then from the store."""

    limit: int
    value: int = 0
    refreshed_at: float = 0.0


class Ingress:
    def __init__(
        self,
        committer: GroupCommitter,
        router: Router | RoutingTable,
        *,
        node: int,
        tag_key: bytes,
        limits: AcceptLimits,
        queue_messages_max: int,
        on_committed: Callable[[list[Message]], None],
        clock: Callable[[], float] = time.time,
        hops_max: int = 5,
        pacer: Pacer | None = None,
    ) -> None:
        self.committer = committer
        # while the delivery process is behind, commits wait first (ingress/pacing.py);
        # without one given, never
        self.pacer = pacer if pacer is not None else Pacer(0.0)
        self.router = router
        self.ids = IdGenerator(node)
        # seeded once from the OS: an os.urandom() call per message costs a system call, and
        # the ids' uniqueness across restarts rests on time + node + these bits (core.ids)
        self._entropy = random.Random(os.urandom(32))
        self.tag_key = tag_key
        self.limits = limits
        self.on_committed = on_committed
        self.clock = clock
        self.queue = QueueGauge(queue_messages_max)
        # heal or shout: while the store cannot write, submits are refused at once as a full
        # queue (ESME_RMSGQFUL: temporary, senders retry later) instead of each failing
        self.store_writable: Callable[[], bool] = lambda: True
        self._accepted = TurnCounts(ACCEPTED)
        self._routes: dict[str, Route] = {}
        # interconnect (issue 11): a route's connectors (for loop prevention) and the hop limit
        self.via: Callable[[str], tuple[str, ...]] = lambda name: ()
        self.hops_max = hops_max
        self.accepted = 0
        self.refused = 0
        # issue 13: each account's sender rules (core.accounts.SenderRules), kept by the
        # node's account poll; an account not here may use any source
        self.senders: dict[str, SenderRules] = {}

    def _route_for(self, destination: str, account: str) -> str:
        route = self.router.route(destination, account, self.clock())
        self._routes[route.name] = route
        return route.name

    def _ends_at_once(self, m: Message) -> int | None:
        """The error a message ends UNDELIVERABLE with in its own accepting transaction (its
        sender gets a receipt), or None when it is queued: no way out of its route
        (``UNROUTABLE``), or a way out only back to the partner it came from, or more SMSC
        hops than ``hops_max`` (``ROUTING_LOOP``)."""
        kind = self.route_kind(m.route)
        if kind == "none":
            return int(DeliveryError.UNROUTABLE)
        if kind != "smpp":
            return None
        if int(m.extra.get("hops", 0)) >= self.hops_max:
            return int(DeliveryError.ROUTING_LOOP)
        no_via = m.extra.get("no_via")
        if no_via:
            excluded = set(str(no_via).split(","))
            if all(c in excluded for c in self.via(m.route)):
                return int(DeliveryError.ROUTING_LOOP)
        return None

    def route_kind(self, name: str) -> str:
        route = self._routes.get(name)
        if route is not None:
            return route.kind
        return "netsim" if name == "netsim" else "none"

    def build(self, sub: Submission, now: float) -> Message:
        """Validate and build (not yet durable). Raises Refused."""
        mid = self.ids.next_id(int(now * 1000), self._entropy.randbytes(8))
        msg = accept_message(
            sub,
            now=now,
            message_id=mid,
            normalise_destination=normalise,
            route_for=self._route_for,
            tag_key=self.tag_key,
            limits=self.limits,
        )
        rules = self.senders.get(sub.account)
        if rules is not None and not rules.allows(sub.source_addr):
            # no account poses as a bank or a clinic: the same answer over every way in
            raise Refused(Refusal.SOURCE_NOT_ALLOWED)
        route = self._routes.get(msg.route)
        if route is not None and route.kind == "smpp":  # attribution: which operator
            msg = replace(msg, extra={**msg.extra, "operator": route.operator})
        return msg

    def check_capacity(self) -> None:
        if self.queue.value >= self.queue.limit or not self.store_writable():
            raise Overloaded(queue_full=True)

    async def accept(self, sub: Submission) -> Message:
        """Build, commit, and return the durable message. Raises Refused or Overloaded."""
        self.check_capacity()
        now = self.clock()
        try:
            msg = self.build(sub, now)
        except Refused as e:
            self.refused += 1
            log.debug("refused", extra={"account": sub.account, "reason": e.reason.value})
            raise
        await self.commit([msg])
        return msg

    async def commit(self, msgs: list[Message]) -> None:
        """Commit built messages (one group-commit operation). Raises Overloaded."""
        await self.commit_future(msgs)

    def commit_future(self, msgs: list[Message],
                      also: Callable[[Store], None] | None = None) -> asyncio.Future[None]:
        """As :meth:`commit`, without a coroutine: the future resolves once the messages are
        durable (and the worker has been woken). Raises Overloaded at once. ``also`` runs in
        the same transaction, before the inserts (the HTTP API's idempotency record); if it
        raises, nothing of this commit is written and the future carries its exception."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(error: BaseException | None) -> None:
            if fut.done():
                return
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

        self.commit_then(msgs, done, also, wanted=lambda: not fut.done())
        return fut

    def commit_then(self, msgs: list[Message], done: InsertDone,
                    also: Callable[[Store], None] | None = None,
                    wanted: Callable[[], bool] | None = None) -> None:
        """Commit built messages and call ``done(None)`` once they are durable (and the
        worker has been woken), or ``done(error)``: the per-message path, no future. Raises
        Overloaded at once (nothing queued, ``done`` never called).

        While the delivery process is behind, the commit waits first (ingress/pacing.py);
        ``wanted()`` False when it is let go (the session is gone, the request was given up):
        it is dropped, nothing written, ``done`` never called."""
        if self.pacer.pacing and self.pacer.hold(
                (m.route for m in msgs),
                functools.partial(self._commit_held, msgs, done, also, wanted)):
            return
        self._commit_now(msgs, done, also)

    def _commit_held(self, msgs: list[Message], done: InsertDone,
                     also: Callable[[Store], None] | None,
                     wanted: Callable[[], bool] | None) -> None:
        try:
            if wanted is not None and not wanted():
                self.pacer.dropped += 1
                return
            self._commit_now(msgs, done, also)
        except Exception as e:  # noqa: BLE001 - the sender is answered whatever went wrong
            if not isinstance(e, Overloaded):
                log.exception("held commit failed", extra={"messages": len(msgs)})
            done(e)

    def _commit_now(self, msgs: list[Message], done: InsertDone,
                    also: Callable[[Store], None] | None) -> None:
        ended = [(m.id, err) for m in msgs if (err := self._ends_at_once(m)) is not None]
        queued = len(msgs) - len(ended)
        if self.queue.value + queued > self.queue.limit:
            raise Overloaded(queue_full=True)
        after = functools.partial(self._committed, msgs, queued, ended, done)
        try:
            if ended or also is not None:
                now = self.clock()

                def op(store: Store) -> None:
                    if also is not None:
                        also(store)
                    store.insert_messages(msgs)
                    for mid, error in ended:
                        store.transition(mid, State.ROUTED, State.UNDELIVERABLE, now,
                                         error=error)

                self.committer.enqueue(op).add_done_callback(
                    lambda f: after(asyncio.CancelledError() if f.cancelled()
                                    else f.exception()))
            else:
                # plain inserts of concurrent submits are merged into one executemany
                self.committer.insert_then(msgs, after)
        except CommitQueueFull:
            raise Overloaded(queue_full=False) from None
        self.queue.value += queued  # reserved now, so commits in flight count too

    def _committed(self, msgs: list[Message], queued: int, ended: list[tuple[str, int]],
                   done: InsertDone, error: BaseException | None) -> None:
        if error is not None:
            self.queue.value -= queued
        else:
            self.accepted += len(msgs)
            for m in msgs:
                self._accepted.add(m.account)
            if ended:  # ended at once, in the accepting transaction (decided once, above)
                ids = {mid for mid, _ in ended}
                for m in msgs:
                    if m.id in ids:
                        FINAL.labels(m.account, m.route, State.UNDELIVERABLE.value).inc()
            if log.isEnabledFor(logging.DEBUG):
                for m in msgs:
                    log.debug("accepted", extra={"message_id": m.id, "account": m.account,
                                                "destination": m.destination,
                                                "route": m.route})
            self.on_committed(msgs)
        done(error)

    async def refresh_queue_gauge(self) -> None:
        self.queue.value = await self.committer.run(lambda s: s.count_unfinished())
        self.queue.refreshed_at = self.clock()

