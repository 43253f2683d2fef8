"""netsim for the canary prober (issue 10): canary SIMs per serving node, the stored-SMS
observer, faults scoped to one node, and the ``system_failure`` fault."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adressat.netsim import (
    Ack,
    Failure,
    FailureReason,
    FaultSwitchboard,
    NetsimSettings,
    NetSms,
    Network,
    Reachability,
    read_inbox,
)
from adressat.sms import encode_scts

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def sms(ref: int, msg_id: str, text: bytes = b"canary") -> NetSms:
    return NetSms("adressat", encode_scts(int(T0) + ref), 0, text, msg_id, "d")


def make(tmp_path: Path, **settings: object) -> tuple[Network, FaultSwitchboard, Clock]:
    clock = Clock()
    board = FaultSwitchboard(seed=3)
    kw: dict[str, object] = {"subscribers": 1000}
    kw.update(settings)
    net = Network(tmp_path, NetsimSettings.quiet(**kw), clock=clock, faults=board)
    return net, board, clock


def forward(net: Network, msisdn: str, message: NetSms) -> Ack | Failure:
    info = net.register.lookup(msisdn)
    return asyncio.run(net.forward_sm(info.imsi, info.node, message))


def test_canaries_per_node_are_served_by_their_node(tmp_path: Path) -> None:
    net, _, _ = make(tmp_path, canaries_per_node=3)
    reg = net.register
    can = reg.canaries()
    assert set(can) == {"msc-1", "msc-2", "msc-3", "msc-4"}
    numbers = [n for ns in can.values() for n in ns]
    assert len(numbers) == len(set(numbers)) == 12
    for node, ns in can.items():
        assert len(ns) == 3
        for n in ns:
            assert reg.lookup(n).node == node
            assert reg.is_canary(n)
    assert not reg.is_canary("46701000000") and not reg.is_canary("nonsense")
    # the same seed: the same canaries
    again, _, _ = make(tmp_path / "b", canaries_per_node=3)
    assert again.register.canaries() == can


def test_no_canaries_when_the_setting_is_zero(tmp_path: Path) -> None:
    net, _, _ = make(tmp_path, canaries_per_node=0)
    assert net.register.canaries() == {n: [] for n in ("msc-1", "msc-2", "msc-3", "msc-4")}
    with pytest.raises(ValueError):
        NetsimSettings(canaries_per_node=-1)


def test_canaries_always_attached_on_a_realistic_network(tmp_path: Path) -> None:
    """Absent and memory-full subscribers are everywhere on a realistic network (here a
    third absent, a third memory full); the canary SIMs never are."""
    clock = Clock()
    settings = NetsimSettings(subscribers=1000, absent_fraction=0.3, memory_full_fraction=0.3,
                              ack_latency_ms_min=0.0, ack_latency_ms_max=0.0,
                              slow_ack_fraction=0.0)
    net = Network(tmp_path, settings, clock=clock)
    reg = net.register
    canaries = [n for ns in reg.canaries().values() for n in ns]
    others_unreachable = 0
    for step in range(200):
        clock.t = T0 + step * 97.0
        for n in canaries:
            assert reg.state(n).reachability is Reachability.PRESENT
        others_unreachable += sum(
            1 for i in range(100)
            if reg.state(reg.msisdn_of(i)).reachability is not Reachability.PRESENT
        )
    assert others_unreachable > 1000  # the model does make the others unreachable


def test_faults_still_act_on_canaries(tmp_path: Path) -> None:
    net, _, clock = make(tmp_path)
    canary = net.register.canaries()["msc-1"][0]
    net.register.set_memory_full(canary, until=clock.t + 10)
    assert net.register.state(canary).reachability is Reachability.MEMORY_FULL
    clock.t += 11
    assert net.register.state(canary).reachability is Reachability.PRESENT


def test_on_stored_sees_which_handset_got_what(tmp_path: Path) -> None:
    import hashlib

    net, _, _ = make(tmp_path)
    seen: list[tuple[str, str, str, int, str]] = []
    unregister = net.on_stored(lambda *a: seen.append(a))
    n = net.register.canaries()["msc-2"][0]
    ack = forward(net, n, sms(1, "m1", b"nonce-1"))
    assert isinstance(ack, Ack)
    (imsi, msisdn, mid, part, digest) = seen[0]
    assert (imsi, msisdn, mid, part) == (net.register.identity(n), n, "m1", 0)
    assert digest == hashlib.sha256(b"nonce-1").hexdigest()
    # a resend: stored (and discarded) again, seen again
    forward(net, n, sms(1, "m1", b"nonce-1"))
    assert len(seen) == 2
    # a failing observer changes nothing for the network
    net.on_stored(lambda *a: 1 / 0)  # type: ignore[func-returns-value]
    assert isinstance(forward(net, n, sms(2, "m2")), Ack)
    unregister()
    forward(net, n, sms(3, "m3"))
    assert [s[2] for s in seen] == ["m1", "m1", "m2"]


def test_system_failure_answers_temporary_and_nobody_stores(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    n = net.register.canaries()["msc-3"][0]
    board.on("system_failure")
    got = forward(net, n, sms(1, "m1"))
    assert got == Failure(FailureReason.SYSTEM_FAILURE, False) and got.temporary
    assert [r for r in read_inbox(net.home)] == []
    board.off("system_failure")
    assert isinstance(forward(net, n, sms(1, "m1")), Ack)
    st = board.state("system_failure")
    assert (st.fired, st.opportunities) == (1, 1)


def test_node_scoped_fault_fires_only_at_its_node(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    can = net.register.canaries()
    board.on("system_failure", rate=1.0, node="msc-2")
    assert board.state("system_failure").node == "msc-2"
    for node, numbers in can.items():
        for i, n in enumerate(numbers):
            got = forward(net, n, sms(i + 1, f"{node}-{i}"))
            if node == "msc-2":
                assert isinstance(got, Failure) and got.reason is FailureReason.SYSTEM_FAILURE
            else:
                assert isinstance(got, Ack) and got.msisdn == n
    st = board.state("system_failure")
    assert st.fired == st.opportunities == 2  # only msc-2's forwards were drawn for
    # a draw that names no node never fires a node-scoped fault; switching on again unscoped
    assert not board.fires("system_failure", "netsim")
    board.on("system_failure", rate=1.0)
    assert board.state("system_failure").node is None
    assert board.fires("system_failure", "netsim")


def test_swapping_node_scoped_misdelivers_only_at_its_node(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    can = net.register.canaries()
    board.on("swapping_node", rate=1.0, node="msc-2")
    for node, numbers in can.items():
        n = numbers[0]
        got = forward(net, n, sms(1, f"p-{node}"))
        assert isinstance(got, Ack)
        if node == "msc-2":
            assert got.msisdn != n  # a stranger at msc-2 stored it
            assert net.register.lookup(got.msisdn).node == "msc-2"
        else:
            assert got.msisdn == n
