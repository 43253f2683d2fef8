"""The canary prober's decisions (pure, time passed in), the store facts they read, and one
prober against a real simulated network, a real worker and a real (memory) store."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from adressat.core.model import CANARY_ACCOUNT, AttemptRecord, State
from adressat.core.retry import RetryPolicy
from adressat.delivery.netsim_adapter import NetsimAdapter
from adressat.delivery.worker import DeliveryWorker
from adressat.netsim import FaultSwitchboard, NetsimSettings, Network
from adressat.observe.canary import (
    CanaryProber,
    Facts,
    Track,
    decide,
    facts_of,
    needs_facts,
    netsim_routes,
    on_store,
    probe_content,
    tp_ud_digest,
)
from adressat.routing import Router
from adressat.store import MemoryStore
from adressat.store.commit import GroupCommitter

T = 1000.0
IMSI, NUMBER, DIGEST = "240010000000001", "46701099999", "d" * 64


def track(**kw: object) -> Track:
    base: dict[str, object] = dict(message_id="m1", route="netsim", serving_node="msc-2",
                                   destination=NUMBER, imsi=IMSI, digest=DIGEST, sent_at=T,
                                   deadline_s=10.0, give_up_at=T + 60.0)
    base.update(kw)
    return Track(**base)  # type: ignore[arg-type]


def test_passed_when_the_canary_stored_the_right_content_in_time() -> None:
    t = track()
    assert decide(t, T + 1.0) is None
    on_store(t, IMSI, NUMBER, DIGEST, T + 0.4)
    v = decide(t, T + 0.5)
    assert v is not None and (v.result, v.latency_s) == ("passed", pytest.approx(0.4))


def test_late_when_stored_after_the_deadline() -> None:
    t = track()
    on_store(t, IMSI, NUMBER, DIGEST, T + 12.0)
    v = decide(t, T + 12.1)
    assert v is not None and v.result == "late" and v.latency_s == pytest.approx(12.0)


def test_misdelivered_at_once_by_any_other_handset_even_with_the_right_one_too() -> None:
    t = track()
    on_store(t, "240019999999999", "46701000001", DIGEST, T + 0.1)
    v = decide(t, T + 0.2)  # long before the deadline
    assert v is not None and v.result == "misdelivered" and v.detail == "others=1"
    both = track()
    on_store(both, IMSI, NUMBER, DIGEST, T + 0.1)
    on_store(both, "240019999999999", "46701000001", DIGEST, T + 0.1)
    assert decide(both, T + 0.2).result == "misdelivered"  # type: ignore[union-attr]
    # the right number under another IMSI (a recycled number) is another handset
    recycled = track()
    on_store(recycled, "240018888888888", NUMBER, DIGEST, T + 0.1)
    assert decide(recycled, T + 0.2).result == "misdelivered"  # type: ignore[union-attr]


def test_wrong_content_at_the_right_handset() -> None:
    t = track()
    on_store(t, IMSI, NUMBER, "e" * 64, T + 0.1)
    assert decide(t, T + 0.2).result == "wrong_content"  # type: ignore[union-attr]


def test_after_the_deadline_unstored_it_needs_the_store() -> None:
    t = track()
    assert not needs_facts(t, T + 9.9)
    assert needs_facts(t, T + 10.0)
    assert decide(t, T + 10.0) is None  # no facts read: undecided
    # the node answered a failure: failed
    v = decide(t, T + 10.0, Facts(State.DEFERRED, 8))
    assert v is not None and (v.result, v.detail) == ("failed", "error=8")
    # final without delivery, or DELIVERED while the handset has nothing, or gone: lost
    for state in (State.EXPIRED, State.QUARANTINED, State.UNDELIVERABLE, State.DELIVERED):
        v = decide(t, T + 10.0, Facts(state))
        assert v is not None and v.result == "lost" and state.value in v.detail
    assert decide(t, T + 10.0, Facts(None)).result == "lost"  # type: ignore[union-attr]
    # held by its route's breaker: no evidence either way, said at once
    v = decide(t, T + 10.0, Facts(State.HELD))
    assert v is not None and (v.result, v.detail) == ("held", "route_held")
    # still pending (queued): waits until its validity is over, then lost
    assert decide(t, T + 30.0, Facts(State.DEFERRED)) is None
    v = decide(t, T + 60.0, Facts(State.DEFERRED))
    assert v is not None and v.result == "lost" and "past_validity" in v.detail
    # stored meanwhile: late, whatever the store said
    on_store(t, IMSI, NUMBER, DIGEST, T + 20.0)
    assert not needs_facts(t, T + 20.0)
    assert decide(t, T + 20.0).result == "late"  # type: ignore[union-attr]


def test_facts_from_the_store() -> None:
    store = MemoryStore()
    assert facts_of(store, "nope") == Facts(None, None)

    def rec(outcome: str, error: int | None, node: str | None) -> AttemptRecord:
        return AttemptRecord("m1", CANARY_ACCOUNT, NUMBER, IMSI, "netsim", 1, 1, T, T,
                             outcome, error, serving_node=node)

    store.append_attempt(rec("TEMPORARY", 4, None))  # absent: no node answered
    assert facts_of(store, "m1").node_failure is None
    store.append_attempt(rec("TEMPORARY", 8, "msc-2"))  # the node: System Failure
    assert facts_of(store, "m1").node_failure == 8
    store.append_attempt(rec("DELIVERED", 0, "msc-2"))
    assert facts_of(store, "m1").node_failure == 8  # the latest failure, not a delivery


def test_netsim_routes_of_the_router() -> None:
    plain = Router("own", [(46701000000, 46701099999)], None)
    assert netsim_routes(plain) == ["netsim"]
    ruled = Router("own", [(46701000000, 46701099999)], None,
                   [{"prefix": "4670109", "route": "lab", "kind": "netsim"},
                    {"prefix": "4690", "route": "x", "kind": "smpp"}])
    assert netsim_routes(ruled) == ["lab", "netsim"]


def test_probe_contents_differ_and_digest_is_of_the_packed_tp_ud() -> None:
    a, b = probe_content("0011"), probe_content("0022")
    assert a != b
    assert tp_ud_digest("m", a) != tp_ud_digest("m", b)
    assert len(tp_ud_digest("m", a)) == 64


# --- one prober on a real network, worker and store ----------------------------------------


async def _run_prober(tmp_path: Path, fault: tuple[str, str] | None, seconds: float,
                      breaker: int = 0) -> list[tuple[str, str]]:
    store = MemoryStore()
    committer = GroupCommitter(store, inline=True).start()
    board = FaultSwitchboard(seed=5)
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=2000), faults=board)
    tag_key = b"k" * 32
    adapter = NetsimAdapter(net, tag_key)
    worker = DeliveryWorker(committer, {"netsim": adapter},
                            lambda r: "netsim" if r == "netsim" else "none",
                            RetryPolicy((0.2,), 0.0), owner="t", node=1, rng=random.Random(1),
                            interval_s=0.01, breaker_alarms_threshold=breaker,
                            concurrency_max=50, held_refresh_s=0.05,
                            claim_batch_max=50, lease_s=30.0, delivery_timeout_s=5.0,
                            on_final=lambda m: None)
    prober = CanaryProber(committer, ["netsim"], net.register.canaries(),
                          net.register.identity, tp_ud_digest, worker.wake, tag_key,
                          held=lambda: worker.held_routes, interval_s=0.3, deadline_s=1.0,
                          validity_s=3.0, check_interval_s=0.05)
    net.on_stored(prober.on_stored)
    if fault is not None:
        board.on(fault[0], rate=1.0, node=fault[1])
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(prober.run())]
    await asyncio.sleep(seconds)
    prober.stop()
    worker.stop()
    await asyncio.wait(tasks, timeout=5.0)
    for t in tasks:
        t.cancel()
    await committer.aclose()
    probes = store.canary_probes_since(0, 10_000)
    # no receipt for any probe, every probe a message of the canary account
    assert store.pending_receipts(CANARY_ACCOUNT) == []
    for p in probes:
        m = store.get_message(p.message_id)
        assert m is not None and m.account == CANARY_ACCOUNT and m.registered_delivery == 0
    return [(p.serving_node or "", p.result) for p in probes]


def test_prober_passes_on_a_quiet_network(tmp_path: Path) -> None:
    got = asyncio.run(_run_prober(tmp_path, None, 1.5))
    nodes = {n for n, _ in got}
    assert nodes == {"msc-1", "msc-2", "msc-3", "msc-4"}
    assert {r for _, r in got} == {"passed"}


def test_prober_sees_a_system_failure_at_one_node(tmp_path: Path) -> None:
    got = asyncio.run(_run_prober(tmp_path, ("system_failure", "msc-3"), 2.5))
    at3 = {r for n, r in got if n == "msc-3"}
    others = {r for n, r in got if n != "msc-3"}
    assert at3 == {"failed"}
    assert others == {"passed"}


def test_prober_sees_a_misdelivering_node(tmp_path: Path) -> None:
    got = asyncio.run(_run_prober(tmp_path, ("swapping_node", "msc-2"), 1.5))
    at2 = {r for n, r in got if n == "msc-2"}
    assert at2 == {"misdelivered"}
    assert {r for n, r in got if n != "msc-2"} == {"passed"}


def test_a_held_route_gets_no_probes_and_its_probes_in_flight_are_held_not_failed(
        tmp_path: Path) -> None:
    """The breaker trips at msc-2's first misdelivery and holds the whole route: the other
    nodes' probes say "held" (no evidence), never "lost" or "failed", and none is sent
    while the route is held."""
    got = asyncio.run(_run_prober(tmp_path, ("swapping_node", "msc-2"), 2.5, breaker=1))
    assert ("msc-2", "misdelivered") in got
    assert {r for n, r in got if n != "msc-2"} <= {"passed", "held"}
    # sent every 0.3 s for 2.5 s if nothing held them: 8 rounds; the hold stops them
    assert len([n for n, _ in got if n == "msc-1"]) <= 3
