"""Ingress pacing: while the delivery process is behind on a route, new commits of messages
for that route wait (bounded).

delivery/backlog.py says which routes have a queue in the store deeper than
``--ingress-pace-lag-s``. A submit (SMPP, HTTP, sendsms) for such a route that passed every
check waits here, BEFORE its commit, until the delivery process has caught up on the route,
at most ``hold_s_max``; then it is committed as usual. An ESME's window, or an HTTP client's
concurrency, paces the sender to what delivery forwards, and the queue in the store stays
short instead of growing for as long as the load lasts (the latency of every message behind
it with it). Messages for other routes go on at once.

Why wait and not refuse: the load client of the peers' harness, and many ESMEs, count an
ESME_RTHROTTLED as a failed message rather than retrying it; a slower answer is what window
flow control is for. Why before the commit: a held submit is nothing durable, so a session
that goes away while it waits loses nothing the sender was told was accepted (the message is
dropped, the sender never got an answer and sends it again), and nothing is committed for a
sender that can no longer hear the answer.

Seen: under a steady overload "behind" and "caught up" alternate many times a second, so a
route's episode is logged once when it begins (WARNING, the route named) and once when it has
not been behind for ``episode_quiet_s`` (with the submits held meanwhile); every hold is in
``adressat_ingress_held`` and ``adressat_ingress_hold_seconds``.

Bounded everywhere: a route behind lapses ``fresh_s`` after it was last said (a delivery
process that hangs or dies holds nothing up), no submit waits longer than ``hold_s_max``, and
at most ``held_max`` wait at once (beyond that, commits go through at once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

from adressat.observe.metrics import INGRESS_HELD, INGRESS_HOLD_SECONDS

log = logging.getLogger("adressat.ingress")

_Held = tuple[float, float, Callable[[], None]]  # (held at, let go by, the commit)


class Pacer:
    def __init__(self, hold_s_max: float, *, fresh_s: float = 0.3, held_max: int = 10_000,
                 episode_quiet_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if hold_s_max < 0 or fresh_s <= 0 or held_max < 0:
            raise ValueError("hold_s_max >= 0, fresh_s > 0, held_max >= 0")
        self.hold_s_max = hold_s_max
        self.fresh_s = fresh_s
        self.held_max = held_max
        self.clock = clock
        self._behind: dict[str, float] = {}  # route -> until when it counts as behind
        self._held: dict[str, deque[_Held]] = {}
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.held_total = 0
        self.dropped = 0  # held commits given up when let go (their session gone)
        self.episodes = 0  # times a route was said behind after episode_quiet_s without
        # route -> [when it was last said behind, submits held in its episode]
        self._episodes: dict[str, list[float]] = {}
        self.episode_quiet_s = episode_quiet_s
        self._episode_timer: asyncio.TimerHandle | None = None

    @property
    def held(self) -> int:
        return self._count

    @property
    def pacing(self) -> bool:
        """Some route is (or was lately) said behind: the cheap test before :meth:`hold`."""
        return bool(self._behind)

    def behind(self) -> list[str]:
        now = self.clock()
        return sorted(r for r, until in self._behind.items() if until > now)

    def report(self, routes: Iterable[str]) -> None:
        """The routes the delivery process is behind on now (delivery.backlog.ClaimLag);
        every other route has caught up."""
        now = self.clock()
        routes = set(routes)
        for route in [r for r in self._behind if r not in routes]:
            del self._behind[route]
            self._release(route, now, all_=True)
        for route in routes:
            self._behind[route] = now + self.fresh_s
            if route not in self._episodes:
                # behind and caught up alternate many times a second under a steady
                # overload: one line when it starts, one when it has been over a while
                self.episodes += 1
                self._episodes[route] = [now, 0]
                log.warning("delivery behind on a route: its new submits wait before their"
                            " commit", extra={"route": route, "hold_s_max": self.hold_s_max})
            self._episodes[route][0] = now
        if self._episodes and self._episode_timer is None:
            self._episode_timer = asyncio.get_running_loop().call_later(
                self.episode_quiet_s, self._end_episodes)
        self._arm()

    def _end_episodes(self) -> None:
        self._episode_timer = None
        now = self.clock()
        for route, (last, held) in list(self._episodes.items()):
            if now - last >= self.episode_quiet_s and route not in self._behind:
                del self._episodes[route]
                log.info("delivery caught up on a route", extra={
                    "route": route, "held": int(held), "quiet_s": self.episode_quiet_s})
        if self._episodes:
            self._episode_timer = asyncio.get_running_loop().call_later(
                self.episode_quiet_s / 2, self._end_episodes)

    def hold(self, routes: Iterable[str], go: Callable[[], None]) -> bool:
        """Take ``go`` (the commit of messages for ``routes``) to call later and return True
        while delivery is behind on one of them; False: call it now."""
        if self.hold_s_max <= 0 or not self._behind or self._count >= self.held_max:
            return False
        now = self.clock()
        route = next((r for r in routes if self._behind.get(r, 0.0) > now), None)
        if route is None:
            return False
        self._held.setdefault(route, deque()).append((now, now + self.hold_s_max, go))
        episode = self._episodes.get(route)
        if episode is not None:
            episode[1] += 1
        self._count += 1
        self.held_total += 1
        INGRESS_HELD.inc()
        self._arm()
        return True

    def _arm(self) -> None:
        """The timer at the earliest moment something held may go: a later hold (its bound
        is later than every one before) or a longer "behind" keeps the timer as it is, and
        the timer, when it fires early, arms again."""
        if not self._count:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        at = min(min(q[0][1], self._behind.get(r, 0.0)) for r, q in self._held.items())
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(max(0.0, at - self.clock()),
                                                            self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.clock()
        for route in list(self._held):
            lapsed = self._behind.get(route, 0.0) <= now
            if lapsed:
                self._behind.pop(route, None)
            self._release(route, now, all_=lapsed)
        self._arm()

    def _release(self, route: str, now: float, all_: bool) -> None:
        q = self._held.get(route)
        while q and (all_ or q[0][1] <= now):
            since, _until, go = q.popleft()
            self._count -= 1
            INGRESS_HOLD_SECONDS.observe(now - since)
            try:
                go()
            except Exception:  # noqa: BLE001 - one commit's failure must not keep the rest
                log.exception("held commit failed")
        if q is not None and not q:
            del self._held[route]
