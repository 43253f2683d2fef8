"""Live windows: bounded per-second figures per place, what the alert rules and ``/v1/live`` read.

A *place* is where an attempt went: ``(route, serving_node)``, the serving node ``""`` when
the register answered none (unknown or detached subscriber, the register down, a refusal
before the lookup). Per place and second: attempts, attempts by outcome class, the network
failures by error code, and a latency histogram (attempt start to end, log-spaced buckets:
about 9 % wide, fixed size, mergeable). Node-wide per second: accepted, delivered, failed.

Outcome classes (``classify``), decided once here for every reader:

* ``ok``: delivered.
* ``subscriber``: the subscriber's own state: absent (1), memory full (2), unknown
  subscriber (3). Normal life of a network (the simulated one has 3 % absent and 0.5 %
  memory full at any time): NOT a failure of the route or node.
* ``network``: the route or node failed to carry it: system failure (4), timeout (5),
  unidentified subscriber (6: the serving node does not know the IMSI the register gave:
  a register or node out of step), no route (10), and the register's routing answers the
  SMSC refused (34: nothing sent, the answer contradicted the register). These are the
  failure rate of a place.
* ``integrity``: quarantined (30-33, 35): the identity checks caught a wrong recipient. Not a
  failure rate: each one is an integrity alarm, and the alarm is an alert of its own at once.
* ``other``: neither the network's nor the subscriber's doing: content refused (11), expired
  before an attempt (20), an attempt interrupted by a restart.

Canary messages never enter these windows (the evaluator leaves them out): customer figures
only. Everything is bounded: seconds older than ``window_s`` go, a place not seen for
``place_idle_s`` goes, at most ``places_max`` places (the least recently seen go first).
Pure: time is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "OutcomeClass",
    "classify",
    "Place",
    "Figures",
    "LiveWindows",
    "percentile_ms",
    "SUBSCRIBER_ERRORS",
    "NETWORK_ERRORS",
    "INTEGRITY_ERRORS",
]

#: (route, serving_node); serving_node "" when none was answered
Place = tuple[str, str]


class OutcomeClass(StrEnum):
    OK = "ok"
    SUBSCRIBER = "subscriber"
    NETWORK = "network"
    INTEGRITY = "integrity"
    OTHER = "other"


# delivery/errors.py codes
SUBSCRIBER_ERRORS: frozenset[int] = frozenset({1, 2, 3, 44})
# 40..43, 45: a partner refusing, unbound, unanswered, silent, or a loop: the place's fault
# (44, the partner's receipt says its subscriber did not get it, is the subscriber's)
NETWORK_ERRORS: frozenset[int] = frozenset({4, 5, 6, 10, 34, 40, 41, 42, 43, 45})
INTEGRITY_ERRORS: frozenset[int] = frozenset({30, 31, 32, 33, 35})
_CLASSES = tuple(OutcomeClass)
_CLASS_INDEX = {c: i for i, c in enumerate(_CLASSES)}


def classify(outcome: str, error: int | None) -> OutcomeClass:
    """The class of one attempt from its audit record's outcome and error code."""
    if outcome in ("DELIVERED", "FORWARDED"):  # FORWARDED: the partner took it
        return OutcomeClass.OK
    if outcome in ("QUARANTINE", "QUARANTINED") or error in INTEGRITY_ERRORS:
        return OutcomeClass.INTEGRITY
    if error in SUBSCRIBER_ERRORS:
        return OutcomeClass.SUBSCRIBER
    if error in NETWORK_ERRORS:
        return OutcomeClass.NETWORK
    return OutcomeClass.OTHER


# latency histogram: bucket 0 is below 0.5 ms, bucket i >= 1 ends at 0.5 ms * 2**(i/4);
# the last one (about 131 s) takes everything above
_HIST_BUCKETS = 73
_HIST_BASE_MS = 0.5


def _bucket(ms: float) -> int:
    if ms < _HIST_BASE_MS:
        return 0
    i = int(math.ceil(4.0 * math.log2(ms / _HIST_BASE_MS) - 1e-9))
    return max(1, min(_HIST_BUCKETS - 1, i))


def _bucket_mid_ms(i: int) -> float:
    """The geometric middle of bucket ``i`` (within about 9 % of every value in it)."""
    return 0.0 if i <= 0 else _HIST_BASE_MS * 2.0 ** ((i - 0.5) / 4.0)


def percentile_ms(hist: dict[int, float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram, as the middle of its bucket (None: empty)."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for i in sorted(hist):
        seen += hist[i]
        if seen >= rank - 1e-9:
            return round(_bucket_mid_ms(i), 3)
    return round(_bucket_mid_ms(max(hist)), 3)


@dataclass(slots=True)
class _Second:
    attempts: int = 0
    classes: list[int] = field(default_factory=lambda: [0] * len(_CLASSES))
    errors: dict[int, int] = field(default_factory=dict)  # network failures by error code
    hist: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class Figures:
    """One place (or several, added) over a span of seconds."""

    attempts: int = 0
    classes: list[int] = field(default_factory=lambda: [0] * len(_CLASSES))
    errors: dict[int, int] = field(default_factory=dict)
    hist: dict[int, float] = field(default_factory=dict)

    def count(self, cls: OutcomeClass) -> int:
        return self.classes[_CLASS_INDEX[cls]]

    @property
    def failures(self) -> int:
        """Network failures: the place's failure rate counts these only."""
        return self.count(OutcomeClass.NETWORK)

    @property
    def failure_rate(self) -> float | None:
        return None if self.attempts == 0 else self.failures / self.attempts

    def add(self, other: Figures | _Second) -> None:
        self.attempts += other.attempts
        for i, n in enumerate(other.classes):
            self.classes[i] += n
        for code, n in other.errors.items():
            self.errors[code] = self.errors.get(code, 0) + n
        for b, h in other.hist.items():
            self.hist[b] = self.hist.get(b, 0.0) + h

    def latency_ms(self, q: float) -> float | None:
        return percentile_ms(self.hist, q)


@dataclass(slots=True)
class _PlaceWindow:
    seconds: dict[int, _Second] = field(default_factory=dict)
    last_seen: float = 0.0


class LiveWindows:
    """Per-second figures of the last ``window_s`` seconds, per place and node-wide."""

    def __init__(self, *, window_s: int = 120, places_max: int = 512,
                 place_idle_s: float = 600.0) -> None:
        if window_s < 1 or places_max < 1 or place_idle_s <= 0:
            raise ValueError("window_s and places_max must be >= 1, place_idle_s > 0")
        self.window_s = int(window_s)
        self.places_max = places_max
        self.place_idle_s = place_idle_s
        self._places: dict[Place, _PlaceWindow] = {}
        # node-wide per second: [accepted, delivered, failed]
        self._totals: dict[int, list[int]] = {}
        self._newest = 0
        self.dropped_places = 0
        self.dropped_late = 0

    # --- input --------------------------------------------------------------------------------
    def add_attempt(self, route: str, serving_node: str | None, outcome: str, error: int | None,
                    started_at: float, ended_at: float | None) -> OutcomeClass:
        """One customer attempt, filed under the second it ended."""
        end = started_at if ended_at is None else ended_at
        t = int(end)
        cls = classify(outcome, error)
        if t <= self._newest - self.window_s:
            self.dropped_late += 1
            return cls
        self._newest = max(self._newest, t)
        place = (route, serving_node or "")
        pw = self._places.get(place)
        if pw is None:
            if len(self._places) >= self.places_max:
                oldest = min(self._places, key=lambda p: self._places[p].last_seen)
                del self._places[oldest]
                self.dropped_places += 1
            pw = self._places[place] = _PlaceWindow()
        pw.last_seen = max(pw.last_seen, end)
        sec = pw.seconds.get(t)
        if sec is None:
            sec = pw.seconds[t] = _Second()
        sec.attempts += 1
        sec.classes[_CLASS_INDEX[cls]] += 1
        if cls is OutcomeClass.NETWORK and error is not None:
            sec.errors[error] = sec.errors.get(error, 0) + 1
        b = _bucket(max(0.0, end - started_at) * 1000.0)
        sec.hist[b] = sec.hist.get(b, 0) + 1
        tot = self._total(t)
        if cls is OutcomeClass.OK:
            tot[1] += 1
        else:
            tot[2] += 1
        return cls

    def add_accepted(self, at: float, n: int) -> None:
        """``n`` messages accepted (durable) in the second of ``at``."""
        if n <= 0:
            return
        t = int(at)
        if t <= self._newest - self.window_s:
            return
        self._newest = max(self._newest, t)
        self._total(t)[0] += n

    def _total(self, t: int) -> list[int]:
        tot = self._totals.get(t)
        if tot is None:
            tot = self._totals[t] = [0, 0, 0]
        return tot

    def advance(self, now: float) -> None:
        """Drop the seconds older than the window and the places idle too long."""
        t_now = int(now)
        self._newest = max(self._newest, t_now)
        first = self._newest - self.window_s + 1
        for t in [t for t in self._totals if t < first]:
            del self._totals[t]
        for place in list(self._places):
            pw = self._places[place]
            if now - pw.last_seen > self.place_idle_s:
                del self._places[place]
                continue
            for t in [t for t in pw.seconds if t < first]:
                del pw.seconds[t]

    # --- output -------------------------------------------------------------------------------
    def places(self) -> list[Place]:
        return sorted(self._places)

    def figures(self, place: Place, first_s: int, last_s: int) -> Figures:
        """The seconds ``first_s`` .. ``last_s`` (inclusive) of one place."""
        out = Figures()
        pw = self._places.get(place)
        if pw is None:
            return out
        if last_s - first_s + 1 < len(pw.seconds):
            for t in range(first_s, last_s + 1):
                sec = pw.seconds.get(t)
                if sec is not None:
                    out.add(sec)
        else:
            for t, sec in pw.seconds.items():
                if first_s <= t <= last_s:
                    out.add(sec)
        return out

    def sum_figures(self, places: Iterable[Place], first_s: int, last_s: int) -> Figures:
        out = Figures()
        for p in places:
            out.add(self.figures(p, first_s, last_s))
        return out

    def series(self, now: float, span_s: int | None = None) -> dict[str, list[int]]:
        """Per second, the last ``span_s`` (default: the window) full seconds up to ``now``."""
        span = self.window_s if span_s is None else max(1, min(span_s, self.window_s))
        last = int(now)
        ts = list(range(last - span + 1, last + 1))
        zero = [0, 0, 0]
        rows = [self._totals.get(t, zero) for t in ts]
        return {"t": ts, "accepted": [r[0] for r in rows], "delivered": [r[1] for r in rows],
                "failed": [r[2] for r in rows]}
