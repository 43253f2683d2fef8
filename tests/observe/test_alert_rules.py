"""The alert rules and the alerts' lifecycle, pure: time moved by hand, traffic made up."""

from __future__ import annotations

import random

from adressat.core.alert import AlertRecord
from adressat.core.care import Complaint
from adressat.core.integrity import Alarm, AlarmKind
from adressat.core.model import CanaryProbe
from adressat.observe.alerts import AlertRules, AlertSettings, Change
from adressat.observe.windows import LiveWindows

NODES = ("msc-1", "msc-2", "msc-3", "msc-4")
T0 = 1_000_000


class Sim:
    """Traffic of a made-up network, second by second, judged each second."""

    def __init__(self, settings: AlertSettings | None = None, seed: int = 1) -> None:
        self.s = settings or AlertSettings()
        self.rules = AlertRules(self.s)
        self.w = LiveWindows(window_s=self.s.live_window_s)
        self.rng = random.Random(seed)
        self.t = T0
        self.changes: list[Change] = []
        self._ids = iter(range(1, 10**6))

    def second(self, per_place: dict[tuple[str, str], tuple[int, float, float]]) -> None:
        """One second: per (route, node) (attempts, network failure rate, slow latency s)."""
        for (route, node), (n, fail, slow) in per_place.items():
            for _ in range(n):
                start = self.t + self.rng.random() * 0.9
                r = self.rng.random()
                if r < fail:
                    outcome, error = "TEMPORARY", 4
                elif r < fail + 0.03:
                    outcome, error = "TEMPORARY", 1  # absent: the subscriber's, not a failure
                elif r < fail + 0.035:
                    outcome, error = "TEMPORARY", 2  # memory full
                else:
                    outcome, error = "DELIVERED", 0
                lat = slow if slow else self.rng.uniform(0.001, 0.02)
                if not slow and self.rng.random() < 0.02:
                    lat = self.rng.uniform(0.1, 2.0)  # netsim's slow acknowledgements
                self.w.add_attempt(route, node, outcome, error, start, start + lat)
        self.t += 1
        self.w.advance(self.t)
        for ch in self.rules.evaluate(self.t, self.w):
            self.changes.append(ch)
            if ch.alert.id == 0:
                ch.alert.id = next(self._ids)  # as the evaluator does once stored

    def run(self, seconds: int, per_place: dict[tuple[str, str], tuple[int, float, float]]
            ) -> None:
        for _ in range(seconds):
            self.second(per_place)

    def fired(self, rule: str | None = None) -> list[Change]:
        return [c for c in self.changes if c.event == "firing"
                and (rule is None or c.alert.rule == rule)]


def normal(route: str = "netsim", rate: int = 25, nodes: tuple[str, ...] = NODES
           ) -> dict[tuple[str, str], tuple[int, float, float]]:
    return {(route, n): (rate, 0.0, 0.0) for n in nodes}


def test_normal_traffic_fires_nothing_for_an_hour() -> None:
    sim = Sim()
    traffic = {**normal(), **normal("r2", 10), ("netsim", ""): (3, 0.0, 0.0)}
    sim.run(3600, traffic)
    assert sim.fired() == []


def test_low_noise_on_a_small_place_is_not_an_alert() -> None:
    sim = Sim()
    # a small place with a normal background of occasional system failures (0.5 %)
    sim.run(1800, {("netsim", n): (5, 0.005, 0.0) for n in NODES})
    assert sim.fired() == []


def test_one_node_failing_names_that_node_and_not_the_route() -> None:
    sim = Sim()
    sim.run(300, normal())
    bad = normal()
    bad[("netsim", "msc-2")] = (25, 0.2, 0.0)
    seconds = 0
    while not sim.fired() and seconds < 30:
        sim.second(bad)
        seconds += 1
    (ch,) = sim.fired()
    a = ch.alert
    assert (a.rule, a.route, a.serving_node, a.severity) == ("failure_rate", "netsim", "msc-2",
                                                             "warning")
    assert seconds <= 12  # within the failure window (10 s) and a tick or two
    ev = a.evidence
    assert ev["errors"] == {"4": ev["failures"]} and ev["peer_rate"] < 0.01
    assert "msc-2" in a.summary and "failure rate" in a.summary
    sim.run(20, bad)
    assert len(sim.fired()) == 1  # one alert while it lasts, not one per second
    # the baseline is held still while it fires: it does not learn the fault as normal
    assert sim.rules._baseline_rate(("netsim", "msc-2")) in (None, 0.0)  # noqa: SLF001
    # recovered: resolved once the condition is gone for hold_s, not before
    resolved_at = None
    fault_end = sim.t
    for _ in range(120):
        sim.second(normal())
        res = [c for c in sim.changes if c.event == "resolved"]
        if res:
            resolved_at = sim.t
            break
    assert resolved_at is not None
    assert a.state == "resolved" and a.resolved_at == resolved_at
    assert resolved_at - fault_end >= sim.s.hold_s


def test_a_route_failing_everywhere_names_the_route() -> None:
    sim = Sim()
    traffic = {**normal(), **normal("r2")}
    sim.run(300, traffic)
    bad = {**normal(), **{("r2", n): (25, 0.05, 0.0) for n in NODES}}
    for _ in range(30):
        sim.second(bad)
    fired = sim.fired()
    assert fired, "no alert"
    places = {(c.alert.route, c.alert.serving_node) for c in fired}
    assert ("r2", None) in places
    assert all(route == "r2" for route, _ in places)


def test_the_whole_network_failing_names_every_route() -> None:
    sim = Sim()
    sim.run(300, {**normal(), **normal("r2")})
    bad = {p: (25, 0.1, 0.0) for p in {**normal(), **normal("r2")}}
    sim.run(20, bad)
    places = {(c.alert.route, c.alert.serving_node) for c in sim.fired()}
    assert {("netsim", None), ("r2", None)} <= places


def test_a_single_route_has_no_peers_and_is_judged_on_its_baseline() -> None:
    sim = Sim()
    sim.run(300, normal())
    sim.run(20, {p: (25, 0.05, 0.0) for p in normal()})
    assert ("netsim", None) in {(c.alert.route, c.alert.serving_node) for c in sim.fired()}


def test_latency_anomaly_on_one_node() -> None:
    sim = Sim()
    sim.run(300, normal())
    slow = normal()
    slow[("netsim", "msc-3")] = (25, 0.0, 3.0)
    sim.run(40, slow)
    (ch,) = sim.fired("latency")
    assert (ch.alert.route, ch.alert.serving_node) == ("netsim", "msc-3")
    assert ch.alert.evidence["latency_p95_ms"] >= 2500


def _alarm(i: int, node: str | None = "msc-2", at: float = T0 + 1.0) -> Alarm:
    return Alarm(at=at, kind=AlarmKind.IDENTITY_MISMATCH, message_ids=(f"{i:032x}",),
                 account="acme", route="netsim", id=i, serving_node=node)


def _probe(i: int, result: str, at: float, node: str = "msc-2") -> CanaryProbe:
    return CanaryProbe(at=at, route="netsim", serving_node=node, destination="46701000001",
                       message_id=f"{i:032x}", result=result, id=i)


def test_integrity_alarm_is_critical_at_once_and_accumulates_until_acked() -> None:
    rules = AlertRules(AlertSettings())
    w = LiveWindows()
    rules.on_alarm(_alarm(1))
    rules.on_alarm(_alarm(2))
    (ch,) = [c for c in rules.evaluate(T0 + 1, w) if c.event == "firing"]
    a = ch.alert
    a.id = 7
    assert (a.rule, a.severity, a.route, a.serving_node) == ("integrity", "critical", "netsim",
                                                             "msc-2")
    assert (a.alarm_first_id, a.alarm_last_id, a.evidence["alarms"]) == (1, 2, 2)
    assert a.evidence["kinds"] == {"identity_mismatch": 2} and "msc-2" in a.summary
    # another node: another alert
    rules.on_alarm(_alarm(3, "msc-4"))
    fired = [c for c in rules.evaluate(T0 + 2, w) if c.event == "firing"]
    assert [(c.alert.serving_node) for c in fired] == ["msc-4"]
    # acked: the next alarm on msc-2 opens a new alert
    rules.acknowledged(_acked(a.record()))
    rules.on_alarm(_alarm(4))
    changes = rules.evaluate(T0 + 3, w)
    new = [c.alert for c in changes if c.event == "firing"]
    assert len(new) == 1 and new[0] is not a and new[0].alarm_first_id == 4
    assert a.evidence["alarms"] == 2  # the acked one took nothing more


def _acked(r: AlertRecord) -> AlertRecord:
    from dataclasses import replace

    return replace(r, acked_at=T0 + 2.5, acked_by="ops", note="on it")


def test_integrity_resolves_only_when_the_canaries_pass_again() -> None:
    s = AlertSettings(hold_s=60.0)
    rules = AlertRules(s)
    w = LiveWindows()
    rules.on_probe(_probe(1, "passed", T0 - 10))
    rules.on_alarm(_alarm(1, at=T0))
    (a,) = [c.alert for c in rules.evaluate(T0, w) if c.event == "firing"]
    # hold time over but no canary passed since: still firing
    assert [c for c in rules.evaluate(T0 + 120, w) if c.event == "resolved"] == []
    rules.on_probe(_probe(2, "passed", T0 + 121))
    assert [c for c in rules.evaluate(T0 + 122, w) if c.event == "resolved"] == []  # one pass
    rules.on_probe(_probe(3, "passed", T0 + 126))
    assert [c.alert for c in rules.evaluate(T0 + 127, w) if c.event == "resolved"] == [a]
    assert a.state == "resolved" and a.resolved_at == T0 + 127
    # resolved but not acknowledged: a new alarm fires the same alert again
    rules.on_alarm(_alarm(2, at=T0 + 200))
    again = [c for c in rules.evaluate(T0 + 200, w) if c.event == "firing"]
    assert [c.alert for c in again] == [a] and a.state == "firing" and a.resolved_at is None


def test_canary_rules() -> None:
    rules = AlertRules(AlertSettings())
    w = LiveWindows()
    rules.on_probe(_probe(1, "late", T0))
    assert rules.evaluate(T0, w) == []  # once is not yet an alert
    rules.on_probe(_probe(2, "passed", T0 + 5))
    rules.on_probe(_probe(3, "lost", T0 + 10))
    assert rules.evaluate(T0 + 10, w) == []  # not in a row
    rules.on_probe(_probe(35, "held", T0 + 12))  # held by the breaker: no evidence either way
    assert rules.evaluate(T0 + 12, w) == []
    rules.on_probe(_probe(4, "failed", T0 + 15))
    (ch,) = rules.evaluate(T0 + 15, w)
    assert (ch.event, ch.alert.rule, ch.alert.severity) == ("firing", "canary_failing", "warning")
    assert ch.alert.evidence["in_a_row"] == 2
    rules.on_probe(_probe(5, "passed", T0 + 20))
    assert [c.event for c in rules.evaluate(T0 + 20, w)] == []
    rules.on_probe(_probe(6, "passed", T0 + 25))
    assert [c.event for c in rules.evaluate(T0 + 25, w)] == ["resolved"]
    rules.on_probe(_probe(7, "misdelivered", T0 + 30, node="msc-1"))
    (ch,) = rules.evaluate(T0 + 30, w)
    assert (ch.alert.rule, ch.alert.severity, ch.alert.serving_node) == (
        "canary_misdelivered", "critical", "msc-1")


def _complaint(i: int, route: str, node: str, verdict: str = "unexplained") -> Complaint:
    return Complaint(at=float(T0), number="46701000001", about_at=float(T0 - 60),
                     sender="ACME", message_id=f"{i:032x}", verdict=verdict, route=route,
                     serving_node=node, id=i)


def test_complaints_are_a_warning_on_their_place() -> None:
    rules = AlertRules(AlertSettings(complaint_hold_s=100.0))
    w = LiveWindows()
    rules.on_complaint(_complaint(1, "", ""))  # no place: nothing to say where
    # addressed to the complainant: the sender's data, not the network
    rules.on_complaint(_complaint(3, "netsim", "msc-1", "addressed_to_complainant"))
    assert rules.evaluate(T0, w) == []
    rules.on_complaint(_complaint(2, "netsim", "msc-3"))
    (ch,) = rules.evaluate(T0, w)
    assert (ch.alert.rule, ch.alert.severity, ch.alert.serving_node) == ("complaint", "warning",
                                                                         "msc-3")
    assert ch.alert.evidence["verdicts"] == {"unexplained": 1}
    rules.on_complaint(_complaint(4, "netsim", ""))  # no node known: the route as a whole
    (ch,) = rules.evaluate(T0, w)
    assert (ch.alert.route, ch.alert.serving_node) == ("netsim", None)
    rules.evaluate(T0 + 50, w)
    assert [c.event for c in rules.evaluate(T0 + 101, w)] == ["resolved", "resolved"]


def test_load_resumes_open_alerts_and_bounds_memory() -> None:
    rules = AlertRules(AlertSettings(alerts_in_memory_max=3))
    w = LiveWindows()
    records = [
        AlertRecord(rule="integrity", severity="critical",
                    place={"route": "netsim", "serving_node": f"msc-{i}"}, state="resolved",
                    started_at=1.0, last_evidence_at=1.0, resolved_at=2.0, id=i)
        for i in range(1, 4)
    ]
    rules.load(records)
    assert sorted(rules.unacked_ids()) == [1, 2, 3]
    rules.on_alarm(_alarm(9, "msc-1"))  # fires alert 1 again, no new one
    assert [c.event for c in rules.evaluate(T0, w)] == ["firing"]
    assert rules.open_counts() == {("integrity", "critical"): 3}
    rules.on_alarm(_alarm(10, "msc-9"))  # a fourth: the oldest resolved one leaves memory
    rules.evaluate(T0, w)
    assert len(rules.open_alerts()) == 3 and 2 not in rules.unacked_ids()
