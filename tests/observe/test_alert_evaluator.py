"""The evaluator against a real store (both back ends): watermarks, alerts kept in the store,
acks written by someone else picked up, canary traffic kept out of customer figures, the
audit's verdict."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adressat.core.integrity import Alarm, AlarmKind
from adressat.core.model import CANARY_ACCOUNT, AttemptRecord, CanaryProbe
from adressat.observe.alerts import (
    WATERMARK_META,
    AlertEvaluator,
    AlertSettings,
    audit_verdict,
    unseen_alarms,
)
from adressat.store import MemoryStore, SqliteStore, Store

T0 = 1_700_000_000.0


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "a.db")
    yield s
    s.close()


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def _evaluator(store: Store, clock: Clock, **kw: Any) -> tuple[AlertEvaluator, list[tuple]]:
    said: list[tuple[str, int, str]] = []

    async def run(fn: Callable[[Any], Any]) -> Any:
        return fn(store)

    ev = AlertEvaluator(run, run, clock, AlertSettings(**kw),
                        on_change=lambda e, r: said.append((e, r.id, r.rule)))
    return ev, said


def _attempt(i: int, *, node: str = "msc-1", error: int = 0, account: str = "acme",
             at: float = T0) -> AttemptRecord:
    return AttemptRecord(
        message_id=f"{i:032x}", account=account, destination="46701000001", imsi="x",
        route="netsim", node=1, attempt=1, started_at=at - 0.01, ended_at=at,
        outcome="DELIVERED" if error == 0 else "TEMPORARY", error=error, serving_node=node,
    )


def _alarm(store: Store, at: float, node: str = "msc-2") -> Alarm:
    return store.append_alarm(Alarm(at=at, kind=AlarmKind.IDENTITY_MISMATCH,
                                    message_ids=("ab" * 16,), account="acme", route="netsim",
                                    serving_node=node))


def test_alarm_to_alert_to_ack_and_the_audit_verdict(store: Store) -> None:
    clock = Clock()
    ev, said = _evaluator(store, clock)
    report = audit_verdict(store, {"ok": True, "lost": 0})
    assert report["ok"] is True
    _alarm(store, T0)
    # before any evaluator saw it, the alarm alone makes the audit not ok
    assert unseen_alarms(store) == 1
    assert audit_verdict(store, {"ok": False, "misdelivered": 1})["ok"] is False
    asyncio.run(ev.tick())
    (a,) = store.alerts()
    assert (a.rule, a.severity, a.state, a.place) == (
        "integrity", "critical", "firing", {"route": "netsim", "serving_node": "msc-2"})
    assert said == [("firing", a.id, "integrity")]
    assert unseen_alarms(store) == 0
    assert '"alarm_id": 1' in (store.get_meta(WATERMARK_META) or "")
    r = audit_verdict(store, {"ok": False, "misdelivered": 1, "misdelivered_undetected": 0})
    assert r["ok"] is False and r["alerts_unacknowledged"] == 1 and r["figures_ok"] is False
    # a second alarm on the same place accumulates; the tick after nothing new writes nothing
    _alarm(store, T0 + 1)
    clock.t += 1
    asyncio.run(ev.tick())
    (a,) = store.alerts()
    assert a.evidence["alarms"] == 2 and a.alarm_last_id == 2
    # acknowledged by the CLI (another writer): picked up, said once
    store.ack_alert(a.id, "ops", "msc-2 taken out", T0 + 2)
    clock.t += 1
    asyncio.run(ev.tick())
    assert said[-1] == ("acknowledged", a.id, "integrity")
    assert audit_verdict(store, {"ok": False, "misdelivered": 1,
                                 "misdelivered_undetected": 0})["ok"] is True
    # an undetected misdelivery stays a breach whatever was acknowledged
    assert audit_verdict(store, {"ok": False, "misdelivered": 2,
                                 "misdelivered_undetected": 1})["ok"] is False
    # a new alarm after the ack: a new alert
    _alarm(store, T0 + 3)
    clock.t += 1
    asyncio.run(ev.tick())
    assert [x.evidence["alarms"] for x in store.alerts()] == [1, 2]
    assert ev.open_counts() == {("integrity", "critical"): 2}  # one acked but firing


def test_a_restarted_evaluator_resumes(store: Store) -> None:
    clock = Clock()
    ev, _ = _evaluator(store, clock)
    _alarm(store, T0)
    asyncio.run(ev.tick())
    ev2, said2 = _evaluator(store, clock)
    _alarm(store, T0 + 1)
    clock.t += 1
    asyncio.run(ev2.tick())
    (a,) = store.alerts()  # the same alert, not a second one
    assert a.evidence["alarms"] == 2
    assert said2 == []  # updated, no new lifecycle change


def test_failure_rate_from_attempts_and_canaries_kept_out(store: Store) -> None:
    clock = Clock()
    ev, said = _evaluator(store, clock)
    asyncio.run(ev.tick())  # running before the traffic: it sees all of it
    i = 0
    for sec in range(40):
        clock.t = T0 + sec
        for n in ("msc-1", "msc-2", "msc-3"):
            for _ in range(10):
                i += 1
                # msc-3 fails 30 % from second 20 on
                fails = n == "msc-3" and sec >= 20 and i % 10 < 3
                store.append_attempt(_attempt(i, node=n, error=4 if fails else 0, at=clock.t))
            # the canary account's attempts fail all the time on msc-1: not customer figures
            i += 1
            store.append_attempt(_attempt(i, node="msc-1", error=4, account=CANARY_ACCOUNT,
                                          at=clock.t))
        asyncio.run(ev.tick())
    fired = [x for x in store.alerts() if x.rule == "failure_rate"]
    assert [(x.place["serving_node"]) for x in fired] == ["msc-3"]
    live = ev.live(clock.t)
    places = {p["serving_node"]: p for p in live["places"]}
    assert places["msc-1"]["failures"] == 0 and places["msc-3"]["failures"] > 0
    assert sum(live["series"]["delivered"]) + sum(live["series"]["failed"]) == 40 * 30


def test_canary_probes_feed_the_canary_rules(store: Store) -> None:
    clock = Clock()
    ev, said = _evaluator(store, clock)
    store.append_canary_probe(CanaryProbe(id=0, at=T0, route="netsim", serving_node="msc-4",
                                          destination="46701000009", message_id="c" * 32,
                                          result="misdelivered", detail="imsi=x"))
    asyncio.run(ev.tick())
    (a,) = store.alerts()
    assert (a.rule, a.severity, a.place["serving_node"]) == ("canary_misdelivered", "critical",
                                                             "msc-4")
    assert a.evidence["last_detail"] == "imsi=x"


def test_complaints_from_the_store_feed_the_complaint_rule(store: Store) -> None:
    from adressat.core.care import Complaint

    clock = Clock()
    ev, said = _evaluator(store, clock)
    for i, verdict in enumerate(("addressed_to_complainant", "unexplained", "unexplained")):
        store.add_complaint(Complaint(at=T0, number="46701000001", about_at=T0 - 60,
                                      sender="ACME", message_id=f"{i:032x}", verdict=verdict,
                                      route="netsim", serving_node="msc-3"))
    asyncio.run(ev.tick())
    (a,) = store.alerts()
    assert (a.rule, a.severity, a.place["serving_node"]) == ("complaint", "warning", "msc-3")
    assert a.evidence["complaints"] == 2 and a.evidence["verdicts"] == {"unexplained": 2}
    assert '"complaint_id": 3' in (store.get_meta(WATERMARK_META) or "")


def test_a_first_evaluator_starts_the_windows_at_the_present(store: Store) -> None:
    clock = Clock()
    for i in range(100):  # history from before any evaluator: the audit's, not the windows'
        store.append_attempt(_attempt(i, node="msc-1", error=4, at=T0))
    _alarm(store, T0 - 3600)  # an old alarm still counts: it becomes an alert
    ev, _ = _evaluator(store, clock)
    asyncio.run(ev.tick())
    assert ev.live(clock.t)["places"] == []
    assert [a.rule for a in store.alerts()] == ["integrity"]
    store.append_attempt(_attempt(1000, node="msc-2", at=T0))
    clock.t += 1
    asyncio.run(ev.tick())
    assert [p["serving_node"] for p in ev.live(clock.t)["places"]] == ["msc-2"]


def test_metric_families_of_what_the_rules_read(store: Store) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    clock = Clock()
    ev, _ = _evaluator(store, clock, attempt_page_max=7, attempt_pages_max=2)
    asyncio.run(ev.tick())
    for i in range(20):
        store.append_attempt(_attempt(i, node="msc-1", error=4 if i % 4 == 0 else 0))
    store.append_attempt(_attempt(99, node="msc-1", error=4, account=CANARY_ACCOUNT))
    asyncio.run(ev.tick())  # two pages of seven a tick: 14 read, the rest next tick
    assert sum(ev.place_counts.values()) == 14
    asyncio.run(ev.tick())
    assert ev.place_counts == {("netsim", "msc-1", "network"): 5,
                               ("netsim", "msc-1", "ok"): 15}

    class _C:
        def collect(self):  # type: ignore[no-untyped-def]
            return ev.families()

    reg = CollectorRegistry()
    reg.register(_C())  # type: ignore[arg-type]
    text = generate_latest(reg).decode()
    assert ('adressat_place_attempts_total{class="network",route="netsim",serving_node="msc-1"}'
            ' 5.0') in text
    assert ('adressat_attempt_latency_seconds_bucket{le="0.01",route="netsim",'
            'serving_node="msc-1"} 20.0') in text
    assert 'adressat_attempt_latency_seconds_count{route="netsim",serving_node="msc-1"} 20.0' \
        in text
