"""Alerts: rules that say, within seconds, that delivery is going wrong and where (docs/alerts.md).

Two parts:

* :class:`AlertRules` (pure, time passed in): the rules and every alert's lifecycle. Inputs are
  integrity alarms, canary probe results, complaints, and the live windows of customer
  attempts (``observe/windows.py``); output is a list of :class:`Change` (an alert fired,
  was updated with new evidence, resolved, or was acknowledged).
* :class:`AlertEvaluator` (store and clock injected): every ``interval_s`` in the SMPP
  process it reads the store from its watermarks (``attempts_since``, ``alarms_since``,
  ``canary_probes_since``, ``complaints_since`` when the store has it), feeds the windows and
  the rules, writes the changed alerts and the watermarks in one transaction, picks up the
  acknowledgements written by ``adressat alarm ack``, then says each change: a log event
  ("alert firing" / "alert resolved" / "alert acknowledged"), the metrics, and the webhook.

The rules (thresholds in :class:`AlertSettings`, defaults argued in docs/alerts.md):

* ``integrity`` (critical): any integrity alarm, at once, on the alarm's (route, serving
  node). One alert per place accumulates the alarms while it is not acknowledged; an alarm
  after the ack opens a new alert.
* ``canary_misdelivered`` (critical): a canary probe that reached another handset or arrived
  with other content, at once.
* ``canary_failing`` (warning): ``canary_failures_in_row`` probes of one place in a row
  failed, lost or late.
* ``failure_rate`` (warning): the network failures of a place over ``failure_window_s``
  against its own baseline (an EWMA over ``baseline_s`` of the seconds before the window,
  held still while the alert fires) AND against its peers (a node against the other nodes of
  its route; a route, without the nodes already firing, against the other routes that are
  themselves normal), with at least ``failure_attempts_min`` attempts and
  ``failure_failures_min`` failures, an excess of
  ``failure_rate_margin`` and ``failure_rate_ratio`` times the reference, and a binomial
  z-score of ``failure_z_min`` (noise on a small place is not an alert).
* ``latency`` (warning): the p95 attempt latency of a place over ``latency_window_s``, at
  least ``latency_attempts_min`` attempts, above ``latency_p95_ms_floor`` and
  ``latency_ratio`` times its baseline (and its peers', as above).
* ``complaint`` (warning): a complaint about a message (care console), on its place.

Lifecycle: *firing* -> *resolved* by the evidence only: the condition gone for ``hold_s``
(for failure rate and latency: judged on enough attempts, never on silence), and for the
integrity and canary alerts the place's canaries passing again (``canary_passes_min`` passes
since the last evidence). *Acknowledged* by a person with a note, independent of resolved.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from adressat.core.alert import AlertRecord, alert_json
from adressat.core.integrity import Alarm
from adressat.core.model import CANARY_ACCOUNT, CanaryProbe
from adressat.observe.windows import Figures, LiveWindows, OutcomeClass, percentile_ms

__all__ = [
    "AlertSettings",
    "AlertRules",
    "AlertEvaluator",
    "Change",
    "Key",
    "WATERMARK_META",
    "unseen_alarms",
    "audit_verdict",
]

log = logging.getLogger("adressat.alerts")

#: meta key of the evaluator's watermarks (JSON: attempt seq, alarm id, probe id, complaint id)
WATERMARK_META = "alerts.watermark"

FIRED = Counter("adressat_alerts_fired", "Alerts that started firing (new or again), by rule",
                ["rule", "severity"])
#: the buckets of ``adressat_attempt_latency_seconds`` (the evaluator's families())
_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: (rule, route, serving_node); serving_node None: the route as a whole
Key = tuple[str, str, str | None]

SEVERITY = {
    "integrity": "critical",
    "canary_misdelivered": "critical",
    "canary_failing": "warning",
    "failure_rate": "warning",
    "latency": "warning",
    "complaint": "warning",
}
#: rules whose every piece of evidence is an event (an alarm, a probe, a complaint): after an
#: ack, new evidence opens a new alert. The others are conditions: while it lasts it is the
#: same alert, acknowledged or not.
EVENT_RULES = frozenset({"integrity", "canary_misdelivered", "complaint"})
_MISDELIVERED_RESULTS = frozenset({"misdelivered", "wrong_content"})
_BAD_RESULTS = frozenset({"failed", "lost", "late"})
#: probe results that are no evidence either way (the route's breaker held the probe)
_NO_EVIDENCE_RESULTS = frozenset({"held"})
_COMPLAINT_VERDICTS_QUIET = frozenset({"addressed_to_complainant"})
_SAMPLE_IDS_MAX = 10


@dataclass(frozen=True, slots=True)
class AlertSettings:
    interval_s: float = 1.0
    hold_s: float = 60.0
    failure_window_s: int = 10
    failure_attempts_min: int = 50
    failure_failures_min: int = 10  # a handful of failures is never an alert by itself
    failure_rate_margin: float = 0.02
    failure_rate_ratio: float = 2.0
    failure_rate_floor: float = 0.001  # the least reference rate of the z-score
    failure_z_min: float = 4.0
    baseline_s: float = 600.0
    baseline_attempts_min: int = 300
    latency_window_s: int = 30
    latency_attempts_min: int = 100
    latency_p95_ms_floor: float = 1000.0
    latency_ratio: float = 3.0
    canary_failures_in_row: int = 2
    canary_passes_min: int = 2
    complaint_hold_s: float = 600.0
    places_max: int = 512
    place_idle_s: float = 600.0
    live_window_s: int = 120
    live_places_s: int = 60
    alerts_in_memory_max: int = 1000
    read_batch_max: int = 5000  # alarms, probes, complaints read per tick (the rest next)
    attempt_page_max: int = 500  # attempts read at once (the loop is let go between pages)
    attempt_pages_max: int = 40  # pages a tick at most: 20,000 attempts a second
    retention_s: float = 90 * 86400.0  # closed alerts (resolved and acked) kept this long

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.hold_s < 0 or self.baseline_s <= 0:
            raise ValueError("interval_s and baseline_s must be > 0, hold_s >= 0")
        if self.failure_window_s < 1 or self.latency_window_s < 1:
            raise ValueError("windows must be >= 1 s")
        if max(self.failure_window_s, self.latency_window_s) + 2 > self.live_window_s:
            raise ValueError("live_window_s must cover the rule windows")
        if self.canary_failures_in_row < 1 or self.canary_passes_min < 1:
            raise ValueError("canary counts must be >= 1")


@dataclass(slots=True)
class _Alert:
    """An alert as the rules keep it (mutable); ``record()`` is what the store keeps."""

    rule: str
    route: str
    serving_node: str | None
    started_at: float
    last_evidence_at: float
    state: str = "firing"
    summary: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    resolved_at: float | None = None
    acked_at: float | None = None
    acked_by: str | None = None
    note: str | None = None
    alarm_first_id: int | None = None
    alarm_last_id: int | None = None
    id: int = 0
    clear_since: float | None = None  # condition rules: since when the condition is gone

    @property
    def key(self) -> Key:
        return (self.rule, self.route, self.serving_node)

    @property
    def severity(self) -> str:
        return SEVERITY[self.rule]

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    @property
    def closed(self) -> bool:
        return self.state == "resolved" and self.acked

    def record(self) -> AlertRecord:
        return AlertRecord(
            rule=self.rule, severity=self.severity,
            place={"route": self.route, "serving_node": self.serving_node}, state=self.state,
            started_at=self.started_at, last_evidence_at=self.last_evidence_at,
            summary=self.summary, evidence=dict(self.evidence), resolved_at=self.resolved_at,
            acked_at=self.acked_at, acked_by=self.acked_by, note=self.note,
            alarm_first_id=self.alarm_first_id, alarm_last_id=self.alarm_last_id, id=self.id,
        )

    @classmethod
    def from_record(cls, r: AlertRecord) -> _Alert:
        return cls(
            rule=r.rule, route=str(r.place.get("route") or ""),
            serving_node=r.place.get("serving_node"), started_at=r.started_at,
            last_evidence_at=r.last_evidence_at, state=r.state, summary=r.summary,
            evidence=dict(r.evidence), resolved_at=r.resolved_at, acked_at=r.acked_at,
            acked_by=r.acked_by, note=r.note, alarm_first_id=r.alarm_first_id,
            alarm_last_id=r.alarm_last_id, id=r.id,
        )


@dataclass(frozen=True, slots=True)
class Change:
    """``event``: "firing" (new, or again after resolved), "updated" (new evidence, no change
    of state), "resolved", "acknowledged". ``alert`` is the rules' own object: the evaluator
    gives it its id once stored."""

    event: str
    alert: _Alert


@dataclass(slots=True)
class _Baseline:
    """EWMA of the seconds before the judgement window: attempts, network failures and the
    latency histogram, each decayed by ``exp(-1 s / baseline_s)`` per second."""

    attempts: float = 0.0
    failures: float = 0.0
    hist: dict[int, float] = field(default_factory=dict)
    fed_until: int | None = None  # the last second fed

    def feed(self, f: Figures, decay: float, frozen: bool) -> None:
        if frozen:
            return
        self.attempts = self.attempts * decay + f.attempts
        self.failures = self.failures * decay + f.failures
        for b in list(self.hist):
            v = self.hist[b] * decay
            if v < 1e-3:
                del self.hist[b]
            else:
                self.hist[b] = v
        for b, n in f.hist.items():
            self.hist[b] = self.hist.get(b, 0.0) + n


@dataclass(slots=True)
class _CanaryPlace:
    recent: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=32))
    streak_bad: int = 0
    passes_since_bad: int = 0
    first_pass_after_bad: float | None = None
    last_bad_at: float | None = None
    last_at: float = 0.0


def _fmt_rate(r: float | None) -> str:
    return "n/a" if r is None else f"{100.0 * r:.1f}%"


def _where(route: str, node: str | None) -> str:
    return f"route {route}" + ("" if node is None else f", serving node {node or '(none)'}")


class AlertRules:
    """The rules and the alerts' lifecycle (pure)."""

    def __init__(self, settings: AlertSettings) -> None:
        self.s = settings
        self._alerts: dict[Key, list[_Alert]] = {}  # open alerts by key, oldest first
        self._baselines: dict[tuple[str, str | None], _Baseline] = {}
        self._latency_baselines: dict[tuple[str, str | None], _Baseline] = {}
        self._canaries: dict[tuple[str, str | None], _CanaryPlace] = {}
        self._changes: list[Change] = []
        self._decay = math.exp(-1.0 / settings.baseline_s)

    # --- the alerts -----------------------------------------------------------------------------
    def load(self, records: Iterable[AlertRecord]) -> None:
        """The open alerts the store has (at the evaluator's start), oldest first."""
        for r in sorted(records, key=lambda r: r.id):
            if r.rule in SEVERITY and not (r.state == "resolved" and r.acked_at is not None):
                a = _Alert.from_record(r)
                self._alerts.setdefault(a.key, []).append(a)

    def open_alerts(self) -> list[_Alert]:
        return [a for lst in self._alerts.values() for a in lst]

    def unacked_ids(self) -> list[int]:
        return [a.id for a in self.open_alerts() if not a.acked and a.id]

    def open_counts(self) -> dict[tuple[str, str], int]:
        """Open alerts (firing, or not acknowledged) by (rule, severity)."""
        out: dict[tuple[str, str], int] = {}
        for a in self.open_alerts():
            k = (a.rule, a.severity)
            out[k] = out.get(k, 0) + 1
        return out

    def take_changes(self) -> list[Change]:
        out, self._changes = self._changes, []
        return out

    def _firing(self, key: Key) -> _Alert | None:
        for a in reversed(self._alerts.get(key, ())):
            if a.state == "firing":
                return a
        return None

    def _fire(self, key: Key, at: float) -> _Alert:
        """The alert that takes this evidence: the newest one of ``key`` not acknowledged
        (fired again if it had resolved); for a condition, the one still firing even if
        acknowledged; else a new one."""
        rule, route, node = key
        lst = self._alerts.setdefault(key, [])
        newest = lst[-1] if lst else None
        if newest is not None and not newest.acked:
            if newest.state == "resolved":
                newest.state, newest.resolved_at = "firing", None
                self._changes.append(Change("firing", newest))
            else:
                self._changes.append(Change("updated", newest))
            newest.clear_since = None
            return newest
        if newest is not None and rule not in EVENT_RULES and newest.state == "firing":
            newest.clear_since = None
            self._changes.append(Change("updated", newest))
            return newest
        a = _Alert(rule, route, node, started_at=at, last_evidence_at=at)
        lst.append(a)
        self._changes.append(Change("firing", a))
        self._bound()
        return a

    def _resolve(self, key: Key, now: float) -> None:
        for a in self._alerts.get(key, ()):
            if a.state == "firing":
                a.state, a.resolved_at, a.clear_since = "resolved", now, None
                self._changes.append(Change("resolved", a))
        self._forget_closed(key)

    def _forget_closed(self, key: Key) -> None:
        lst = [a for a in self._alerts.get(key, ()) if not a.closed]
        if lst:
            self._alerts[key] = lst
        else:
            self._alerts.pop(key, None)

    def _bound(self) -> None:
        """At most ``alerts_in_memory_max``: the oldest resolved ones go from memory first
        (the store keeps them; a person can still ack them)."""
        over = len(self.open_alerts()) - self.s.alerts_in_memory_max
        if over <= 0:
            return
        resolved = sorted((a for a in self.open_alerts() if a.state == "resolved"),
                          key=lambda a: a.id)
        for a in resolved[:over]:
            self._alerts[a.key].remove(a)
            if not self._alerts[a.key]:
                del self._alerts[a.key]

    def acknowledged(self, record: AlertRecord) -> None:
        """The store says this alert was acknowledged (``adressat alarm ack``)."""
        for a in self.open_alerts():
            if a.id == record.id and not a.acked and record.acked_at is not None:
                a.acked_at, a.acked_by, a.note = record.acked_at, record.acked_by, record.note
                self._changes.append(Change("acknowledged", a))
                self._forget_closed(a.key)
                return

    def forget(self, alert_id: int) -> None:
        """The store no longer has it (deleted): out of memory too."""
        for a in self.open_alerts():
            if a.id == alert_id:
                self._alerts[a.key].remove(a)
                self._forget_closed(a.key)
                return

    # --- event rules ------------------------------------------------------------------------------
    def on_alarm(self, alarm: Alarm) -> None:
        a = self._fire(("integrity", alarm.route, alarm.serving_node), alarm.at)
        ev = a.evidence
        ev["alarms"] = int(ev.get("alarms", 0)) + 1
        kinds = dict(ev.get("kinds", {}))
        kinds[alarm.kind.value] = kinds.get(alarm.kind.value, 0) + 1
        ev["kinds"] = kinds
        ids = list(ev.get("message_ids", []))
        for mid in alarm.message_ids:
            if mid not in ids:
                ids.append(mid)
        ev["message_ids"] = ids[-_SAMPLE_IDS_MAX:]
        if alarm.account:
            accounts = dict(ev.get("accounts", {}))
            accounts[alarm.account] = accounts.get(alarm.account, 0) + 1
            ev["accounts"] = accounts
        if a.alarm_first_id is None:
            a.alarm_first_id = alarm.id
        a.alarm_last_id = max(alarm.id, a.alarm_last_id or 0)
        a.last_evidence_at = max(a.last_evidence_at, alarm.at)
        what = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        a.summary = (f"{ev['alarms']} integrity alarm{'s' if ev['alarms'] != 1 else ''}"
                     f" ({what}) on {_where(a.route, a.serving_node)}")

    def on_probe(self, probe: CanaryProbe) -> None:
        if probe.result in _NO_EVIDENCE_RESULTS:
            return
        place = (probe.route, probe.serving_node)
        cp = self._canaries.setdefault(place, _CanaryPlace())
        cp.last_at = max(cp.last_at, probe.at)
        cp.recent.append((probe.at, probe.result))
        if probe.result == "passed":
            cp.streak_bad = 0
            cp.passes_since_bad += 1
            if cp.first_pass_after_bad is None:
                cp.first_pass_after_bad = probe.at
            return
        cp.streak_bad += 1
        cp.passes_since_bad = 0
        cp.first_pass_after_bad = None
        cp.last_bad_at = probe.at
        if probe.result in _MISDELIVERED_RESULTS:
            a = self._fire(("canary_misdelivered", probe.route, probe.serving_node), probe.at)
            self._probe_evidence(a, probe)
            n = a.evidence["probes"]
            a.summary = (f"canary probe {probe.result} on {_where(a.route, a.serving_node)}"
                         f" ({n} probe{'s' if n != 1 else ''})")
        elif probe.result in _BAD_RESULTS and cp.streak_bad >= self.s.canary_failures_in_row:
            a = self._fire(("canary_failing", probe.route, probe.serving_node), probe.at)
            self._probe_evidence(a, probe)
            a.evidence["in_a_row"] = cp.streak_bad
            a.summary = (f"{cp.streak_bad} canary probes in a row not passed"
                         f" (last: {probe.result}) on {_where(a.route, a.serving_node)}")

    @staticmethod
    def _probe_evidence(a: _Alert, probe: CanaryProbe) -> None:
        ev = a.evidence
        ev["probes"] = int(ev.get("probes", 0)) + 1
        results = dict(ev.get("results", {}))
        results[probe.result] = results.get(probe.result, 0) + 1
        ev["results"] = results
        ev["last_probe_id"] = probe.id
        ev["last_message_id"] = probe.message_id
        if probe.detail:
            ev["last_detail"] = probe.detail
        a.last_evidence_at = max(a.last_evidence_at, probe.at)

    def on_complaint(self, complaint: Any) -> None:
        """A complaint (care console, ``core.care.Complaint``) about a message on a place. A
        verdict that the message was addressed to the complainant (the sender's data, not
        the network) is no alert; ``unexplained`` (the node believes every candidate went to
        its destination: an undetected misdelivery would look like this) and
        ``misdelivered`` are. No place (no route), no alert: there is nowhere to name."""
        route = getattr(complaint, "route", None)
        verdict = str(getattr(complaint, "verdict", "") or "unknown")
        if not route or verdict in _COMPLAINT_VERDICTS_QUIET:
            return
        at = float(getattr(complaint, "at", 0.0))
        node = getattr(complaint, "serving_node", None) or None  # "": the route as a whole
        a = self._fire(("complaint", str(route), node), at)
        ev = a.evidence
        ev["complaints"] = int(ev.get("complaints", 0)) + 1
        verdicts = dict(ev.get("verdicts", {}))
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
        ev["verdicts"] = verdicts
        ev["last_complaint_id"] = getattr(complaint, "id", None)
        mid = getattr(complaint, "message_id", None)
        if mid:
            ids = [i for i in ev.get("message_ids", []) if i != mid] + [mid]
            ev["message_ids"] = ids[-_SAMPLE_IDS_MAX:]
        a.last_evidence_at = max(a.last_evidence_at, at)
        a.summary = (f"{ev['complaints']} complaint{'s' if ev['complaints'] != 1 else ''}"
                     f" about messages on {_where(a.route, a.serving_node)}")

    # --- condition rules --------------------------------------------------------------------------
    def _canaries_pass_since(self, route: str, node: str | None, since: float) -> bool:
        """The canaries of the place (every node of the route for the route as a whole) have
        passed at least ``canary_passes_min`` times since ``since``, none failing after."""
        places: list[tuple[str, str | None]]
        if node is not None:
            places = [(route, node)]
        else:
            places = [p for p in self._canaries if p[0] == route]
        if not places:
            return False
        for p in places:
            cp = self._canaries.get(p)
            after = [r for at, r in (cp.recent if cp else ()) if at > since]
            if len(after) < self.s.canary_passes_min or any(r != "passed" for r in after):
                return False
        return True

    def _failure_anomalous(self, f: Figures, ref: float | None) -> bool:
        s = self.s
        if f.attempts < s.failure_attempts_min or f.failures < s.failure_failures_min:
            return False
        rate = f.failures / f.attempts
        base = 0.0 if ref is None else ref
        if rate < base + s.failure_rate_margin or rate < s.failure_rate_ratio * base:
            return False
        p = max(base, s.failure_rate_floor)
        z = (f.failures - f.attempts * p) / math.sqrt(f.attempts * p * (1.0 - p))
        return z >= s.failure_z_min

    def _latency_anomalous(self, f: Figures, ref_ms: float | None) -> bool:
        s = self.s
        if f.attempts < s.latency_attempts_min:
            return False
        p95 = f.latency_ms(0.95)
        if p95 is None or p95 < s.latency_p95_ms_floor:
            return False
        return ref_ms is None or p95 >= s.latency_ratio * ref_ms

    def _baseline_rate(self, place: tuple[str, str | None]) -> float | None:
        b = self._baselines.get(place)
        if b is None or b.attempts < self.s.baseline_attempts_min:
            return None
        return b.failures / b.attempts

    def _baseline_p95(self, place: tuple[str, str | None]) -> float | None:
        b = self._latency_baselines.get(place)
        if b is None or b.attempts < self.s.baseline_attempts_min:
            return None
        return percentile_ms(b.hist, 0.95)

    def _feed_baselines(self, windows: LiveWindows, now_s: int,
                        groups: dict[tuple[str, str | None], list[tuple[str, str]]]) -> None:
        """The seconds that have left the judgement windows go into the baselines (held still
        while the place's alert fires)."""
        for place, members in groups.items():
            for table, window, rule in ((self._baselines, self.s.failure_window_s,
                                         "failure_rate"),
                                        (self._latency_baselines, self.s.latency_window_s,
                                         "latency")):
                b = table.get(place)
                if b is None:
                    b = table[place] = _Baseline()
                last = now_s - window
                first = last if b.fed_until is None else b.fed_until + 1
                first = max(first, last - windows.window_s + window + 1)
                frozen = self._firing((rule, place[0], place[1])) is not None
                for t in range(first, last + 1):
                    b.feed(windows.sum_figures(members, t, t), self._decay, frozen)
                b.fed_until = max(last, b.fed_until or last)
        for table in (self._baselines, self._latency_baselines):
            for place in [p for p in table if p not in groups]:
                if self._firing(("failure_rate", place[0], place[1])) is None and \
                        self._firing(("latency", place[0], place[1])) is None:
                    del table[place]

    def evaluate(self, now: float, windows: LiveWindows) -> list[Change]:
        """Judge every place on the windows; resolve what the evidence clears. Returns (and
        takes) every change since the last call, events included."""
        s = self.s
        now_s = int(now)
        nodes_of: dict[str, list[tuple[str, str]]] = {}
        for p in windows.places():
            nodes_of.setdefault(p[0], []).append(p)
        groups: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
        for route, members in nodes_of.items():
            groups[(route, None)] = members
            for p in members:
                if p[1]:
                    groups[(route, p[1])] = [p]
        self._judge(now, now_s, windows, nodes_of, "failure_rate", s.failure_window_s)
        self._judge(now, now_s, windows, nodes_of, "latency", s.latency_window_s)
        self._feed_baselines(windows, now_s, groups)
        self._resolve_events(now)
        return self.take_changes()

    def _judge(self, now: float, now_s: int, windows: LiveWindows,
               nodes_of: dict[str, list[tuple[str, str]]], rule: str, window: int) -> None:
        first = now_s - window + 1
        anomalous: Callable[[Figures, Any], bool]
        if rule == "failure_rate":
            anomalous, reference = self._failure_anomalous, self._baseline_rate
        else:
            anomalous, reference = self._latency_anomalous, self._baseline_p95
        # nodes: against their own baseline and the other nodes of their route
        firing_nodes: set[tuple[str, str]] = set()
        judged: dict[Key, tuple[bool, Figures, Any, Any]] = {}
        for route, members in nodes_of.items():
            node_places = [p for p in members if p[1]]
            figs = {p: windows.figures(p, first, now_s) for p in node_places}
            for p in node_places:
                f = figs[p]
                base = reference((route, p[1]))
                peers = Figures()
                for q in node_places:
                    if q != p:
                        peers.add(figs[q])
                peer_ref = self._peer_reference(rule, peers)
                bad = anomalous(f, base) and (peer_ref is None or anomalous(f, peer_ref))
                key: Key = (rule, route, p[1])
                judged[key] = (bad, f, base, peer_ref)
                if bad or (self._firing(key) is not None and not self._cleared(
                        key, f, base, anomalous)):
                    firing_nodes.add(p)
        # routes: without their firing nodes, against their baseline and the normal routes
        route_figs: dict[str, Figures] = {}
        route_base_bad: dict[str, bool] = {}
        for route, members in nodes_of.items():
            f = windows.sum_figures([p for p in members if p not in firing_nodes], first,
                                    now_s)
            route_figs[route] = f
            route_base_bad[route] = anomalous(f, reference((route, None)))
        for route in nodes_of:
            f = route_figs[route]
            base = reference((route, None))
            healthy = Figures()
            for other, of in route_figs.items():
                if other != route and not route_base_bad[other]:
                    healthy.add(of)
            peer_ref = self._peer_reference(rule, healthy)
            bad = route_base_bad[route] and (peer_ref is None or anomalous(f, peer_ref))
            judged[(rule, route, None)] = (bad, f, base, peer_ref)
        for key, (bad, f, base, peer_ref) in judged.items():
            self._apply_condition(key, now, bad, f, base, peer_ref, window, anomalous)
        # alerts of places gone from the windows: no evidence either way, they stay as they are

    def _peer_reference(self, rule: str, peers: Figures) -> float | None:
        if rule == "failure_rate":
            if peers.attempts < self.s.failure_attempts_min:
                return None
            return peers.failures / peers.attempts
        if peers.attempts < self.s.latency_attempts_min:
            return None
        return peers.latency_ms(0.95)

    @staticmethod
    def _cleared(key: Key, f: Figures, base: Any,
                 anomalous: Callable[[Figures, Any], bool]) -> bool:
        return not anomalous(f, base)

    def _apply_condition(self, key: Key, now: float, bad: bool, f: Figures, base: Any,
                         peer_ref: Any, window: int,
                         anomalous: Callable[[Figures, Any], bool]) -> None:
        rule, route, node = key
        firing = self._firing(key)
        if bad:
            a = self._fire(key, now)
            a.last_evidence_at = now
            a.evidence = self._condition_evidence(rule, f, base, peer_ref, window)
            a.summary = self._condition_summary(rule, route, node, a.evidence)
            return
        if firing is None:
            return
        enough = f.attempts >= (self.s.failure_attempts_min if rule == "failure_rate"
                                else self.s.latency_attempts_min)
        if not enough or anomalous(f, base):
            firing.clear_since = None  # no evidence that it is over (or it is not)
            return
        if firing.clear_since is None:
            firing.clear_since = now
        if now - firing.clear_since >= self.s.hold_s:
            self._resolve(key, now)

    @staticmethod
    def _condition_evidence(rule: str, f: Figures, base: Any, peer_ref: Any,
                            window: int) -> dict[str, Any]:
        if rule == "failure_rate":
            return {
                "window_s": window, "attempts": f.attempts, "failures": f.failures,
                "failure_rate": round(f.failures / f.attempts, 4) if f.attempts else None,
                "baseline_rate": None if base is None else round(float(base), 4),
                "peer_rate": None if peer_ref is None else round(float(peer_ref), 4),
                "errors": {str(k): n for k, n in sorted(f.errors.items())},
            }
        return {
            "window_s": window, "attempts": f.attempts,
            "latency_p50_ms": f.latency_ms(0.5), "latency_p95_ms": f.latency_ms(0.95),
            "baseline_p95_ms": base, "peer_p95_ms": peer_ref,
        }

    @staticmethod
    def _condition_summary(rule: str, route: str, node: str | None,
                           ev: dict[str, Any]) -> str:
        if rule == "failure_rate":
            errors = ", ".join(f"error {k} x{n}" for k, n in ev["errors"].items())
            return (f"failure rate {_fmt_rate(ev['failure_rate'])} on {_where(route, node)}"
                    f" ({ev['failures']} of {ev['attempts']} attempts in {ev['window_s']} s;"
                    f" baseline {_fmt_rate(ev['baseline_rate'])},"
                    f" peers {_fmt_rate(ev['peer_rate'])}"
                    + (f"; {errors}" if errors else "") + ")")
        return (f"p95 latency {ev['latency_p95_ms']} ms on {_where(route, node)}"
                f" ({ev['attempts']} attempts in {ev['window_s']} s; baseline"
                f" {ev['baseline_p95_ms']} ms, peers {ev['peer_p95_ms']} ms)")

    def _resolve_events(self, now: float) -> None:
        for key in list(self._alerts):
            rule, route, node = key
            firing = self._firing(key)
            if firing is None:
                continue
            if rule == "canary_failing":
                cp = self._canaries.get((route, node))
                if cp is not None and cp.passes_since_bad >= self.s.canary_passes_min:
                    self._resolve(key, now)
            elif rule in ("integrity", "canary_misdelivered"):
                last = max(a.last_evidence_at for a in self._alerts[key])
                if now - last >= self.s.hold_s and self._canaries_pass_since(route, node, last):
                    self._resolve(key, now)
            elif rule == "complaint":
                last = max(a.last_evidence_at for a in self._alerts[key])
                if now - last >= self.s.complaint_hold_s:
                    self._resolve(key, now)


# --- the evaluator (store and clock injected) ----------------------------------------------------
@dataclass(slots=True)
class _Watermark:
    attempt_seq: int = 0
    alarm_id: int = 0
    probe_id: int = 0
    complaint_id: int = 0

    def dumps(self) -> str:
        return json.dumps({"attempt_seq": self.attempt_seq, "alarm_id": self.alarm_id,
                           "probe_id": self.probe_id, "complaint_id": self.complaint_id},
                          sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> _Watermark:
        if not text:
            return cls()
        try:
            d = json.loads(text)
            return cls(int(d.get("attempt_seq", 0)), int(d.get("alarm_id", 0)),
                       int(d.get("probe_id", 0)), int(d.get("complaint_id", 0)))
        except (ValueError, TypeError, AttributeError):
            return cls()


def _outcomes(after: int, limit: int, st: Any) -> Any:
    return st.attempt_outcomes_since(after, limit)


def _complaints_reader(store: Any) -> Callable[[int, int], Sequence[Any]] | None:
    """``complaints_since`` (care console, issue 10 helper C) when the store has it."""
    fn = getattr(store, "complaints_since", None)
    return fn if callable(fn) else None


#: what the evaluator's store reads run through (GroupCommitter.read / run, or a plain store)
Reader = Callable[[Callable[[Any], Any]], Awaitable[Any]]


class AlertEvaluator:
    """Runs the rules every ``interval_s`` against the store (see the module docstring).

    ``read(fn)`` / ``write(fn)`` run ``fn(store)``: a read outside any transaction, a write
    in one (``GroupCommitter.read`` / ``run``); ``read_bulk(fn)`` the reads of attempts, by
    default ``read`` (the node passes a read connection in an executor thread: a read of
    hundreds of rows on the loop lets go of the GIL at every row and waits to get it back).
    ``clock()`` is the wall clock. ``accepted()``
    (optional) is the node's count of accepted messages, sampled each tick for the live
    series. ``on_change(event, record)`` is called once per lifecycle change after it is
    stored (the webhook)."""

    def __init__(
        self,
        read: Reader,
        write: Reader,
        clock: Callable[[], float],
        settings: AlertSettings | None = None,
        *,
        accepted: Callable[[], int] | None = None,
        on_change: Callable[[str, AlertRecord], None] | None = None,
        read_bulk: Reader | None = None,
    ) -> None:
        self.s = s = settings or AlertSettings()
        self._read = read
        self._read_bulk = read_bulk or read
        self._write = write
        self.clock = clock
        self.rules = AlertRules(s)
        self.windows = LiveWindows(window_s=s.live_window_s, places_max=s.places_max,
                                   place_idle_s=s.place_idle_s)
        self._accepted = accepted
        self._accepted_last: int | None = None
        self.on_change = on_change
        self.wm = _Watermark()
        self._started = False
        self.ticks = 0
        self.failures = 0
        self.last_tick_at: float | None = None
        self._open_counts: dict[tuple[str, str], int] = {}
        self._retention_at = 0.0
        # what the rules read, for Prometheus's own rules (deploy/prometheus): customer
        # attempts (no canary) by place and outcome class, and their latency, cumulative
        self.place_counts: dict[tuple[str, str, str], int] = {}
        self.place_latency: dict[tuple[str, str], list[float]] = {}
        self.last_timing_ms: dict[str, float] = {}
        self.feed_ms_max = 0.0  # the longest the loop was held feeding one page

    # --- reading --------------------------------------------------------------------------------
    async def start(self) -> None:
        def load(st: Any) -> tuple[str | None, list[AlertRecord], int]:
            return (st.get_meta(WATERMARK_META),
                    st.alerts(open_only=True, limit=self.s.alerts_in_memory_max),
                    st.last_attempt_seq())

        text, records, last_seq = await self._read(load)
        self.wm = _Watermark.loads(text)
        if text is None:
            # the first evaluator of this store: the windows start at the present (the
            # attempts' history is the audit's); every alarm, probe and complaint is read
            self.wm.attempt_seq = last_seq
        self.rules.load(records)
        self._open_counts = self.rules.open_counts()
        self._started = True

    def _read_rest(self, st: Any) -> tuple[list[Alarm], list[CanaryProbe], list[Any],
                                           set[int]]:
        n = self.s.read_batch_max
        alarms = list(st.alarms_since(self.wm.alarm_id, n))
        probes = list(st.canary_probes_since(self.wm.probe_id, n))
        complaints_since = _complaints_reader(st)
        complaints = list(complaints_since(self.wm.complaint_id, n)) if complaints_since else []
        unacked = {a.id for a in st.alerts(open_only=True, acknowledged=False,
                                           limit=self.s.alerts_in_memory_max * 2)}
        return alarms, probes, complaints, unacked

    async def _read_attempts(self) -> int:
        """The new attempts, in pages of ``attempt_page_max`` with the loop let go between
        them (the SMPP process serves its sessions on this loop); at most
        ``attempt_pages_max`` pages a tick (behind, it catches up over the next ticks).
        Returns the last seq read."""
        s = self.s
        after = self.wm.attempt_seq
        for i in range(s.attempt_pages_max):
            page = await self._read_bulk(functools.partial(_outcomes, after,
                                                           s.attempt_page_max))
            t0 = time.perf_counter()
            if page:
                self._feed(page)
                after = page[-1][0]
            self.feed_ms_max = max(self.feed_ms_max, 1000 * (time.perf_counter() - t0))
            if len(page) < s.attempt_page_max:
                break
            if i + 1 < s.attempt_pages_max:
                await asyncio.sleep(0)
        return after

    def _feed(self, page: Sequence[tuple[Any, ...]]) -> None:
        add = self.windows.add_attempt
        counts = self.place_counts
        latency = self.place_latency
        bounds = _LATENCY_BUCKETS_S
        for _seq, account, route, serving_node, outcome, error, started, ended in page:
            if account == CANARY_ACCOUNT:  # canary traffic feeds only the canary rule
                continue
            cls = add(route, serving_node, outcome, error, started, ended)
            node = serving_node or ""
            if (route, node) not in latency and len(latency) >= self.s.places_max:
                route, node = "_other", "_other"  # bounded label sets
            key = (route, node, cls.value)
            counts[key] = counts.get(key, 0) + 1
            lat = max(0.0, (started if ended is None else ended) - started)
            h = latency.get((route, node))
            if h is None:
                h = latency[(route, node)] = [0.0] * (len(bounds) + 2)
            h[bisect.bisect_left(bounds, lat)] += 1
            h[-1] += lat

    async def tick(self) -> list[Change]:
        """One evaluation: read, judge, write, say. Returns the changes it made."""
        if not self._started:
            await self.start()
        now = self.clock()
        t0 = time.perf_counter()
        self.feed_ms_max = 0.0
        last_seq = await self._read_attempts()
        t_read = time.perf_counter() - t0
        alarms, probes, complaints, unacked = await self._read(self._read_rest)
        if self._accepted is not None:
            count = self._accepted()
            if self._accepted_last is not None:
                self.windows.add_accepted(now, count - self._accepted_last)
            self._accepted_last = count
        self.windows.advance(now)
        for alarm in alarms:
            self.rules.on_alarm(alarm)
        for probe in probes:
            self.rules.on_probe(probe)
        for c in complaints:
            self.rules.on_complaint(c)
        # acks written by the CLI: an alert we hold unacked that the store no longer lists
        gone = [i for i in self.rules.unacked_ids() if i not in unacked]
        if gone:
            records = await self._read(lambda st: [st.alert(i) for i in gone])
            for alert_id, rec in zip(gone, records, strict=True):
                if rec is None:
                    self.rules.forget(alert_id)
                elif rec.acked_at is not None:
                    self.rules.acknowledged(rec)
        t1 = time.perf_counter()
        changes = self.rules.evaluate(now, self.windows)
        self.last_timing_ms = {"attempts": round(1000 * t_read, 2),
                               "feed_max": round(self.feed_ms_max, 2),
                               "rules": round(1000 * (time.perf_counter() - t1), 2)}
        wm = _Watermark(
            last_seq,
            alarms[-1].id if alarms else self.wm.alarm_id,
            probes[-1].id if probes else self.wm.probe_id,
            int(getattr(complaints[-1], "id", 0)) if complaints else self.wm.complaint_id,
        )
        if changes or wm != self.wm:
            await self._write(lambda st: self._persist(st, changes, wm))
        self.wm = wm
        self._open_counts = self.rules.open_counts()
        self.ticks += 1
        self.last_tick_at = now
        self._say(changes)
        if now - self._retention_at >= 60.0:
            self._retention_at = now
            before = now - self.s.retention_s
            await self._write(lambda st: st.delete_alerts(before, 500))
        return changes

    def _persist(self, st: Any, changes: list[Change], wm: _Watermark) -> None:
        """One transaction: the new and changed alerts, then the watermarks (an alarm is
        never past the watermark without its alert stored)."""
        done: set[int] = set()
        for ch in changes:
            a = ch.alert
            if id(a) in done:
                continue
            done.add(id(a))
            if ch.event == "acknowledged":
                continue  # the CLI wrote it
            if a.id == 0:
                a.id = st.open_alert(a.record()).id
            else:
                stored = st.update_alert(a.record())
                if stored is not None and stored.acked_at is not None and not a.acked:
                    a.acked_at, a.acked_by, a.note = (stored.acked_at, stored.acked_by,
                                                      stored.note)
        st.set_meta(WATERMARK_META, wm.dumps())

    def _say(self, changes: list[Change]) -> None:
        for ch in changes:
            if ch.event == "updated":
                continue
            a = ch.alert
            if ch.event == "firing":
                FIRED.labels(a.rule, a.severity).inc()
                level = logging.CRITICAL if a.severity == "critical" else logging.WARNING
                log.log(level, "alert firing",
                        extra={"alert_id": a.id, "rule": a.rule, "severity": a.severity,
                               "route": a.route, "serving_node": a.serving_node,
                               "summary": a.summary})
            elif ch.event == "resolved":
                log.warning("alert resolved",
                            extra={"alert_id": a.id, "rule": a.rule, "severity": a.severity,
                                   "route": a.route, "serving_node": a.serving_node,
                                   "summary": a.summary})
            elif ch.event == "acknowledged":
                log.warning("alert acknowledged",
                            extra={"alert_id": a.id, "rule": a.rule, "severity": a.severity,
                                   "route": a.route, "serving_node": a.serving_node,
                                   "acked_by": a.acked_by})
            if self.on_change is not None:
                try:
                    self.on_change(ch.event, a.record())
                except Exception:  # noqa: BLE001 - the webhook must not stop the rules
                    log.exception("alert hook failed", extra={"alert_id": a.id})

    async def run(self) -> None:
        """Every ``interval_s`` until cancelled; a failing tick is logged and retried."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the rules must keep running (heal or shout)
                self.failures += 1
                log.error("alert evaluation failed",
                          extra={"error_type": type(e).__name__, "failures": self.failures})
            await asyncio.sleep(self.s.interval_s)

    # --- views ----------------------------------------------------------------------------------
    def families(self) -> list[Metric]:
        """``adressat_place_attempts{route,serving_node,class}`` and
        ``adressat_attempt_latency_seconds{route,serving_node}`` (any thread: snapshots)."""
        attempts = CounterMetricFamily(
            "adressat_place_attempts",
            "Customer delivery attempts by route, serving node and outcome class (ok,"
            " subscriber, network, integrity, other; docs/alerts.md)",
            labels=["route", "serving_node", "class"])
        for labels, n in sorted(dict(self.place_counts).items()):
            attempts.add_metric(list(labels), float(n))
        latency = HistogramMetricFamily(
            "adressat_attempt_latency_seconds",
            "Customer delivery attempts, start to end, by route and serving node",
            labels=["route", "serving_node"])
        for (route, node), counts in sorted(dict(self.place_latency).items()):
            h = list(counts)
            cumulative, buckets = 0.0, []
            for bound, m in zip((*_LATENCY_BUCKETS_S, float("inf")), h[:-1], strict=True):
                cumulative += m
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric([route, node], buckets, h[-1])
        return [attempts, latency]

    def open_counts(self) -> dict[tuple[str, str], int]:
        """Open alerts by (rule, severity), as of the last tick (any thread)."""
        return dict(self._open_counts)

    def live(self, now: float, queue: dict[str, Any] | None = None) -> dict[str, Any]:
        """``GET /v1/live``: the per-second series, the places of the last ``live_places_s``
        and their latency, the queue shape (given), the open alerts."""
        w = self.windows
        last = int(now)
        first = last - self.s.live_places_s + 1
        places = []
        overall = Figures()
        for p in w.places():
            f = w.figures(p, first, last)
            if f.attempts == 0:
                continue
            overall.add(f)
            places.append({
                "route": p[0], "serving_node": p[1], "attempts": f.attempts,
                "failures": f.failures,
                "failure_rate": None if f.failure_rate is None else round(f.failure_rate, 4),
                "subscriber_failures": f.count(OutcomeClass.SUBSCRIBER),
                "quarantined": f.count(OutcomeClass.INTEGRITY),
                "latency_p50_ms": f.latency_ms(0.5), "latency_p95_ms": f.latency_ms(0.95),
                "latency_p99_ms": f.latency_ms(0.99),
            })
        return {
            "at": now,
            "window_s": w.window_s,
            "places_window_s": self.s.live_places_s,
            "series": w.series(now),
            "places": places,
            "latency_ms": {"p50": overall.latency_ms(0.5), "p95": overall.latency_ms(0.95),
                           "p99": overall.latency_ms(0.99)},
            "queue": queue or {"unfinished": None, "due": None, "oldest_due_age_s": None},
            "alerts_open": sum(self._open_counts.values()),
            "evaluator": {"last_tick_at": self.last_tick_at, "ticks": self.ticks,
                          "failures": self.failures, "last_tick_ms": self.last_timing_ms},
        }


# --- audit's verdict ------------------------------------------------------------------------------
def unseen_alarms(store: Any, limit: int = 100_000) -> int:
    """Integrity alarms newer than the evaluator's watermark: no alert stands for them yet
    (an evaluator never ran, or has not caught up)."""
    wm = _Watermark.loads(store.get_meta(WATERMARK_META))
    return len(store.alarms_since(wm.alarm_id, limit))


def audit_verdict(store: Any, report: dict[str, Any]) -> dict[str, Any]:
    """The audit's verdict with alerts (docs/alerts.md): every figure stays; ``ok`` is true
    when nothing is wrong that no person has acknowledged: no open breach the SMSC did not
    detect itself (loss, an undetected misdelivery, a message stored twice), every alert
    acknowledged, and no integrity alarm newer than the evaluator's watermark."""
    figures_ok = bool(report.get("ok"))
    unacked = store.alerts(acknowledged=False, limit=100_000)
    unseen = unseen_alarms(store)
    undetected = (int(report.get("lost", 0)) + int(report.get("misdelivered_undetected", 0))
                  + int(report.get("duplicates_stored", 0)))
    report["figures_ok"] = figures_ok
    report["alerts_unacknowledged"] = len(unacked)
    report["alerts_unacknowledged_ids"] = [a.id for a in unacked[:20]]
    report["alarms_unseen_by_alerts"] = unseen
    report["ok"] = undetected == 0 and not unacked and unseen == 0
    return report


def records_json(records: Iterable[AlertRecord]) -> list[dict[str, Any]]:
    return [alert_json(r) for r in records]
