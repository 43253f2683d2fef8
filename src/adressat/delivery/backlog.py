"""Which routes is the delivery process behind on? Said from its claims, to ingress.

At full load the SMPP process accepted faster than the delivery process forwarded: in the
peers' connector topology (one ESME, window 100) 3,800 submits/s against 2,900 forwards/s,
so ROUTED messages piled up in the store (4,000 after five seconds, the oldest 1.4 s old)
and a receipt that the partner sent one second after the submit reached the sender 2.3 to
3.1 s after it. Every message was accepted and delivered, but late, and later the longer the
load lasted. Ingress cannot see that queue; the worker can, from what a claim brings back:

* a claim that fills its whole limit left more due messages behind it, and
* the youngest message of a route in that claim had been due ``wait`` seconds.

Both together say the route's queue in the store is at least that deep in time. A claim that
comes back short emptied the due queue of every route; messages of a route due just now are a
route that keeps up. Taking the youngest, not the oldest, keeps a message that waited for its
destination (``claim_due`` skips a number with a message in flight) from reading as a queue.
Per route, so that a slow partner slows only the senders who send to it. By default only
routes through connectors are paced: forwarding to a partner is transit, and a queue in front
of it only hides the partner's pace from the sender; the own network's queue is what store and
forward is for (a burst of 20,000 submits to our subscribers is taken at 10,000/s while
delivery does 5,500/s; paced, it was taken at 5,900/s). ``--ingress-pace-own-network on``
paces that route too.

The routes behind are said when they change, and repeated while there are any
(``repeat_s``), so that the listener lets a route lapse when nothing more is said of it (a
process that hangs or dies must not hold ingress up). ingress/pacing.py is the listener.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adressat.core.model import Message


def youngest_waits(msgs: Sequence[Message], now: float) -> dict[str, float]:
    """Per route, how long its most recently due message of a claim had been due."""
    out: dict[str, float] = {}
    for m in msgs:
        wait = now - max(m.next_attempt_at, m.not_before)
        if wait < out.get(m.route, float("inf")):
            out[m.route] = wait
    return out


class ClaimLag:
    """``observe`` each claim; it returns the routes behind (sorted) when that is to be
    said, else None. ``lag_s_max`` <= 0: never behind."""

    def __init__(self, lag_s_max: float, repeat_s: float = 0.1) -> None:
        self.lag_s_max = lag_s_max
        self.repeat_s = repeat_s
        self._behind: dict[str, float] = {}  # route -> when a claim last showed it behind
        self._said: tuple[str, ...] = ()
        self._said_at = float("-inf")

    def observe(self, msgs: Sequence[Message], limit: int, now: float,
                paced: Callable[[str], bool] = lambda route: True) -> tuple[str, ...] | None:
        """``paced(route)`` False: that route is never said behind (its queue is wanted)."""
        behind = self._behind
        if self.lag_s_max <= 0 or len(msgs) < limit or limit <= 0:
            behind.clear()  # the due queue is empty: no route is behind
        else:
            for route, wait in youngest_waits(msgs, now).items():
                if wait > self.lag_s_max and paced(route):
                    behind[route] = now
                else:
                    behind.pop(route, None)
            for route in [r for r, at in behind.items() if now - at > 3 * self.repeat_s]:
                del behind[route]  # not seen in a full claim for a while
        routes = tuple(sorted(behind))
        if routes == self._said and not (routes and now - self._said_at >= self.repeat_s):
            return None
        self._said = routes
        self._said_at = now
        return routes
