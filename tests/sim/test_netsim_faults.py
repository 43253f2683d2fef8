"""netsim's seeded fault catalogue: each fault's exact network-side effect (inboxes, answers,
late-ack channel, counters), switching, routes and determinism."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adressat.netsim import (
    CATALOGUE,
    NO_FAULTS,
    Absent,
    AbsentReason,
    Ack,
    Failure,
    FailureReason,
    FaultSwitchboard,
    NetsimSettings,
    NetSms,
    Network,
    RegisterUnavailable,
    read_inbox,
)
from adressat.sms import encode_scts

A = "46701000123"
B = "46701000456"
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def sms(ref: int = 1, msg_id: str = "m1", text: bytes = b"code 1234") -> NetSms:
    """SMS-DELIVER number ``ref``: its own TP-SCTS, sent as part ``ref`` of its dialogue."""
    return NetSms("MyBank", encode_scts(int(T0) + ref), 0, text, msg_id, "d", part_index=ref)


def make(
    tmp_path: Path,
    seed: int = 7,
    *,
    ack_timeout_s: float = 0.0,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    **settings: Any,
) -> tuple[Network, FaultSwitchboard, Clock]:
    clock = Clock()
    board = FaultSwitchboard(seed=seed, ack_timeout_s=ack_timeout_s)
    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    net = Network(
        tmp_path,
        NetsimSettings.quiet(subscribers=1000, **settings),
        clock=clock,
        faults=board,
        **kwargs,
    )
    return net, board, clock


def forward(net: Network, msisdn: str, message: NetSms | None = None) -> Ack | Failure:
    info = net.register.lookup(msisdn)
    return asyncio.run(net.forward_sm(info.imsi, info.node, message or sms()))


def holders(net: Network, msg_id: str) -> list[tuple[str, str, bool]]:
    return [
        (r.msisdn, r.imsi, r.duplicate) for r in read_inbox(net.home) if r.smsc_message_id == msg_id
    ]


# -- switching ----------------------------------------------------------------------------------


def test_catalogue_listed_off_with_descriptions(tmp_path: Path) -> None:
    board = FaultSwitchboard(seed=1)
    states = board.list()
    assert [s.name for s in states] == [
        "stale_routing",
        "recycled_number",
        "swapping_node",
        "double_delivery",
        "ack_lost",
        "ack_duplicated",
        "ack_late",
        "system_failure",
        "register_unavailable",
        "absent_for_hours",
        "memory_full_then_alert",
    ]
    assert [s.name for s in states] == [spec.name for spec in CATALOGUE]
    for s in states:
        assert not s.on and s.fired == 0 and s.opportunities == 0
        assert s.description and "\n" not in s.description


def test_on_off_params_and_validation() -> None:
    board = FaultSwitchboard(seed=1)
    st = board.on("absent_for_hours", rate=0.25, route="netsim", hours="0.5", known="false")
    assert (st.on, st.rate, st.route) == (True, 0.25, "netsim")
    assert st.params == {"hours": 0.5, "known": False}
    assert board.state("absent_for_hours").on
    assert not board.off("absent_for_hours").on
    # on again: parameters start over from the defaults
    assert board.on("absent_for_hours").params == {"hours": 3.0, "known": True}
    with pytest.raises(KeyError):
        board.on("no_such_fault")
    with pytest.raises(KeyError):
        board.off("no_such_fault")
    with pytest.raises(ValueError):
        board.on("ack_lost", rate=1.5)
    with pytest.raises(ValueError):
        board.on("ack_lost", colour="red")
    with pytest.raises(ValueError):
        board.on("absent_for_hours", hours="many")
    with pytest.raises(ValueError):
        board.on("recycled_number", at="never")
    with pytest.raises(ValueError):
        FaultSwitchboard(ack_timeout_s=5.0).on("ack_late", delay_s=5.0)
    board.off_all()
    assert not any(s.on for s in board.list())


def test_defined_faults_for_the_smsc_side_and_route_filter() -> None:
    board = FaultSwitchboard(seed=1)
    board.define("pairing_mixup", "the SMSC pairs a message with another's PDU")
    with pytest.raises(ValueError):
        board.define("pairing_mixup", "twice")
    assert not board.fires("pairing_mixup", "netsim")  # off
    board.on("pairing_mixup", route="partner-x")
    assert not board.fires("pairing_mixup", "netsim")  # another route: not an opportunity
    assert board.fires("pairing_mixup", "partner-x")
    st = board.state("pairing_mixup")
    assert (st.fired, st.opportunities) == (1, 1)


def test_route_filter_in_the_network(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    board.on("register_unavailable", route="some-partner")
    net.register.lookup(A)  # not this network's route
    board.on("register_unavailable", route="netsim")
    with pytest.raises(RegisterUnavailable):
        net.register.lookup(A)
    net.close()


def test_rate_zero_never_fires_rate_one_always(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    board.on("register_unavailable", rate=0.0)
    for _ in range(200):
        net.register.lookup(A)
    st = board.state("register_unavailable")
    assert (st.fired, st.opportunities) == (0, 200)
    board.on("register_unavailable", rate=1.0)
    for _ in range(200):
        with pytest.raises(RegisterUnavailable):
            net.register.lookup(A)
    st = board.state("register_unavailable")
    assert (st.fired, st.opportunities) == (200, 400)
    board.off("register_unavailable")
    net.register.lookup(A)
    net.close()


def test_rate_is_a_probability(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    board.on("register_unavailable", rate=0.3)
    for _ in range(2000):
        try:
            net.register.lookup(A)
        except RegisterUnavailable:
            pass
    assert 500 < board.state("register_unavailable").fired < 700
    net.close()


def _run_mixed(tmp_path: Path, seed: int) -> tuple[list[object], list[tuple[str, str, bool]]]:
    net, board, _ = make(tmp_path, seed)
    board.on("double_delivery", rate=0.5)
    board.on("swapping_node", rate=0.3)
    board.on("ack_lost", rate=0.4)
    answers: list[object] = []
    for i in range(40):
        answers.append(forward(net, str(46701000000 + i * 7), sms(i % 256, f"m{i}")))
    inbox = [(r.msisdn, r.smsc_message_id, r.duplicate) for r in read_inbox(tmp_path)]
    answers.append([(s.name, s.fired) for s in board.list()])
    net.close()
    return answers, inbox


def test_same_seed_same_decisions(tmp_path: Path) -> None:
    one = _run_mixed(tmp_path / "a", 11)
    two = _run_mixed(tmp_path / "b", 11)
    other = _run_mixed(tmp_path / "c", 12)
    assert one == two
    assert one != other


def test_one_fault_does_not_shift_anothers_draws(tmp_path: Path) -> None:
    def fired_pattern(home: Path, extra: bool) -> list[bool]:
        net, board, _ = make(home)
        board.on("register_unavailable", rate=0.5)
        if extra:
            board.on("ack_duplicated", rate=0.5)
        pattern = []
        for i in range(50):
            try:
                info = net.register.lookup(A)
            except RegisterUnavailable:
                pattern.append(True)
                continue
            pattern.append(False)
            asyncio.run(net.forward_sm(info.imsi, info.node, sms(i, f"x{i}")))
        net.close()
        return pattern

    assert fired_pattern(tmp_path / "a", False) == fired_pattern(tmp_path / "b", True)


def test_no_faults_default_and_swapping_the_model(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=1000), clock=clock)
    assert net.faults is NO_FAULTS and net.register.faults is None
    ack = forward(net, A)
    assert ack == Ack(net.register.identity(A), A) and ack.also == ()
    board = FaultSwitchboard(seed=3)
    net.faults = board
    assert net.register.faults is board
    board.on("register_unavailable")
    with pytest.raises(RegisterUnavailable):
        net.register.lookup(A)
    net.faults = NO_FAULTS
    net.register.lookup(A)
    net.close()


def test_nothing_on_is_the_honest_network(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    for i in range(20):
        msisdn = str(46701000000 + i)
        assert forward(net, msisdn, sms(i, f"h{i}")) == Ack(net.register.identity(msisdn), msisdn)
    assert net.stats.misdirected == 0 and net.late_acks_pending == 0
    assert all(s.opportunities == 0 for s in board.list())
    net.close()


# -- routing faults -----------------------------------------------------------------------------


def test_stale_routing_answers_the_retired_imsi(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    reg = net.register
    before = reg.identity(A)
    board.on("stale_routing")
    info = reg.lookup(A)
    assert info.imsi == before != reg.identity(A)  # swapped now; the answer is the old SIM
    assert reg.msisdn_for_imsi(info.imsi) is None  # the signal before sending
    [event] = reg.events
    assert (event.kind, event.msisdn, event.old, event.new) == (
        "sim_swap",
        A,
        before,
        reg.identity(A),
    )
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert result == Failure.of(FailureReason.UNIDENTIFIED_SUBSCRIBER)
    assert list(read_inbox(tmp_path)) == []
    # already swapped: no second swap, the same retired IMSI again
    assert reg.lookup(A).imsi == before and len(reg.events) == 1
    board.off("stale_routing")
    assert forward(net, A) == Ack(reg.identity(A), A)
    assert board.state("stale_routing").fired == 2
    net.close()


def test_stale_routing_reassigned_reaches_someone_else(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    reg = net.register
    board.on("stale_routing", reassigned=True)
    info = reg.lookup(A)
    stranger = reg.msisdn_for_imsi(info.imsi)
    assert stranger is not None and stranger != A  # the signal before sending
    assert info.node == reg.node_of(reg.index_of(stranger))
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert result == Ack(info.imsi, stranger)
    assert holders(net, "m1") == [(stranger, info.imsi, False)]
    net.close()


def test_recycled_number_new_holder_acks(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    reg = net.register
    board.on("recycled_number")
    info = reg.lookup(A)
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert isinstance(result, Ack)
    new = reg.identity(A)
    assert new != info.imsi
    # the number and the register's CURRENT identity both match: only the addressed IMSI differs
    assert result == Ack(new, A)
    [event] = reg.events
    assert (event.kind, event.old, event.new) == ("recycle", info.imsi, new)
    assert holders(net, "m1") == [(A, new, False)]
    assert net.stats.misdirected == 1
    assert board.state("recycled_number").fired == 1
    net.close()


def test_recycled_number_at_lookup_is_stale_routing(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    reg = net.register
    board.on("recycled_number", at="lookup")
    info = reg.lookup(A)
    assert info.imsi != reg.identity(A) and reg.msisdn_for_imsi(info.imsi) is None
    assert reg.events[-1].kind == "recycle"
    board.off("recycled_number")
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert result == Failure.of(FailureReason.UNIDENTIFIED_SUBSCRIBER)
    assert list(read_inbox(tmp_path)) == []
    net.close()


def test_register_unavailable(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    board.on("register_unavailable")
    with pytest.raises(RegisterUnavailable):
        net.register.lookup(A)
    assert net.register.identity(A)  # only the routing query fails
    net.close()


# -- node faults --------------------------------------------------------------------------------


def test_swapping_node_without_partner_delivers_to_a_stranger_at_the_node(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    reg = net.register
    board.on("swapping_node")
    info = reg.lookup(A)
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert isinstance(result, Ack) and result.msisdn != A
    assert result.imsi == reg.identity(result.msisdn)
    assert reg.node_of(reg.index_of(result.msisdn)) == info.node
    assert holders(net, "m1") == [(result.msisdn, result.imsi, False)]
    assert net.inbox_of(A) == []
    assert net.stats.misdirected == 1 and board.state("swapping_node").fired == 1
    net.close()


def _same_node_pair(net: Network) -> tuple[str, str]:
    reg = net.register
    node = reg.node_of(reg.index_of(A))
    for i in range(reg.subscribers):
        other = reg.msisdn_of(i)
        if other != A and reg.node_of(i) == node:
            return A, other
    raise AssertionError("no pair")


def test_swapping_node_swaps_concurrent_deliveries(tmp_path: Path) -> None:
    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    net, board, _ = make(tmp_path, sleep=no_wait, ack_latency_ms_min=1.0, ack_latency_ms_max=1.0)
    reg = net.register
    a, b = _same_node_pair(net)
    ia, ib = reg.lookup(a), reg.lookup(b)
    board.on("swapping_node")

    async def both() -> list[Ack | Failure]:
        return list(
            await asyncio.gather(
                net.forward_sm(ia.imsi, ia.node, sms(1, "for-a")),
                net.forward_sm(ib.imsi, ib.node, sms(2, "for-b")),
            )
        )

    to_a, to_b = asyncio.run(both())
    assert to_a == Ack(ib.imsi, b)  # the message for a was stored by b's handset
    assert to_b == Ack(ia.imsi, a)
    assert holders(net, "for-a") == [(b, ib.imsi, False)]
    assert holders(net, "for-b") == [(a, ia.imsi, False)]
    assert net.stats.misdirected == 2
    st = board.state("swapping_node")
    assert (st.fired, st.opportunities) == (2, 1)  # one draw, two misdirected messages
    net.close()


def test_double_delivery_right_handset_and_a_stranger(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    reg = net.register
    board.on("double_delivery")
    info = reg.lookup(A)
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert isinstance(result, Ack)
    assert (result.imsi, result.msisdn) == (info.imsi, A)
    [stray] = result.also
    assert stray.msisdn != A and stray.imsi == reg.identity(stray.msisdn) and stray.also == ()
    assert reg.node_of(reg.index_of(stray.msisdn)) == info.node
    assert holders(net, "m1") == [(A, info.imsi, False), (stray.msisdn, stray.imsi, False)]
    assert net.stats.misdirected == 1 and net.stats.acked == 1
    assert net.late_acks_pending == 0  # the signal is in-band: Ack.also
    net.close()


def test_double_delivery_ack_from_the_stranger(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    board.on("double_delivery", ack_from_stranger=1.0)
    info = net.register.lookup(A)
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert isinstance(result, Ack) and result.msisdn != A
    assert result.also == (Ack(info.imsi, A),)
    assert {m for m, _, _ in holders(net, "m1")} == {A, result.msisdn}
    net.close()


# -- acknowledgement faults ---------------------------------------------------------------------


def test_ack_lost_then_retry_is_a_counted_duplicate(tmp_path: Path) -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    net, board, _ = make(tmp_path, ack_timeout_s=5.0, sleep=sleep)
    board.on("ack_lost")
    info = net.register.lookup(A)
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert result == Failure.of(FailureReason.TIMEOUT) and result.temporary
    assert waits == [5.0]
    assert holders(net, "m1") == [(A, info.imsi, False)]  # stored all the same
    board.off("ack_lost")
    again = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert again == Ack(info.imsi, A)
    assert holders(net, "m1") == [(A, info.imsi, False), (A, info.imsi, True)]
    assert net.stats.duplicates == 1
    assert net.late_acks_pending == 0  # lost means lost
    net.close()


def test_ack_late_arrives_on_the_late_ack_channel(tmp_path: Path) -> None:
    net, board, clock = make(tmp_path)
    late: list[tuple[str, int, Ack]] = []
    net.on_late_ack(lambda mid, part, ack: late.append((mid, part, ack)))
    board.on("ack_late", delay_s=2.0)
    info = net.register.lookup(A)
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms(9, "late-1")))
    assert result == Failure.of(FailureReason.TIMEOUT)
    assert holders(net, "late-1") == [(A, info.imsi, False)]
    assert net.next_late_ack_at() == T0 + 2.0
    clock.t = T0 + 1.9
    net.process_due()
    assert late == []
    clock.t = T0 + 2.0
    net.process_due()
    assert late == [("late-1", 9, Ack(info.imsi, A))]
    net.process_due()
    assert len(late) == 1 and net.stats.late_acks == 1
    net.close()


def test_ack_duplicated(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    late: list[tuple[str, int, Ack]] = []
    net.on_late_ack(lambda mid, part, ack: late.append((mid, part, ack)))
    board.on("ack_duplicated", delay_s=0.5)
    info = net.register.lookup(A)
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms(4, "dup-1")))
    assert result == Ack(info.imsi, A)
    assert net.process_due(T0 + 0.4) == [] and late == []
    net.process_due(T0 + 0.5)
    assert late == [("dup-1", 4, Ack(info.imsi, A))]
    assert holders(net, "dup-1") == [(A, info.imsi, False)]  # stored once
    net.close()


def test_failures_are_not_acks_to_lose(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path)
    board.on("ack_late")
    board.on("stale_routing")
    assert forward(net, A) == Failure.of(FailureReason.UNIDENTIFIED_SUBSCRIBER)
    assert board.state("ack_late").opportunities == 0 and net.late_acks_pending == 0
    net.close()


def test_late_ack_channel_is_bounded(tmp_path: Path) -> None:
    net, board, _ = make(tmp_path, late_acks_pending_max=2)
    board.on("ack_duplicated")
    for i in range(3):
        forward(net, A, sms(i, f"d{i}"))
    assert net.late_acks_pending == 2 and net.stats.late_acks_dropped == 1
    net.close()


def test_late_ack_callback_unregister_and_errors(tmp_path: Path) -> None:
    net, _, _ = make(tmp_path)
    got: list[str] = []

    def broken(mid: str, part: int, ack: Ack) -> None:
        raise RuntimeError("boom")

    net.on_late_ack(broken)
    stop = net.on_late_ack(lambda mid, part, ack: got.append(mid))
    net.report_late_ack("x", 1, Ack("i", "m"))
    net.process_due()
    stop()
    net.report_late_ack("y", 1, Ack("i", "m"))
    net.process_due()
    assert got == ["x"]
    net.close()


# -- reachability faults ------------------------------------------------------------------------


def test_absent_for_hours_known(tmp_path: Path) -> None:
    net, board, clock = make(tmp_path)
    reg = net.register
    alerts: list[str] = []
    net.on_alert(alerts.append)
    board.on("absent_for_hours", hours=2.0)
    with pytest.raises(Absent) as exc:
        reg.lookup(A)
    assert exc.value.reason is AbsentReason.IMSI_DETACHED
    state = reg.state(A)
    assert state.reason is AbsentReason.IMSI_DETACHED and state.until == T0 + 7200.0
    board.off("absent_for_hours")
    with pytest.raises(Absent):
        reg.lookup(A)  # still detached, fault or not
    reg.set_message_waiting(A, AbsentReason.IMSI_DETACHED)  # what the SMSC reports
    clock.t = T0 + 7199.0
    assert net.process_due() == []
    clock.t = T0 + 7200.0
    assert net.process_due() == [A] and alerts == [A]
    assert forward(net, A) == Ack(reg.identity(A), A)
    net.close()


def test_absent_for_hours_unknown_to_the_register(tmp_path: Path) -> None:
    net, board, clock = make(tmp_path)
    reg = net.register
    board.on("absent_for_hours", hours=1.0, known=False)
    info = reg.lookup(A)  # the register does not know yet
    board.off("absent_for_hours")
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert result == Failure.of(FailureReason.ABSENT_SUBSCRIBER)
    with pytest.raises(Absent) as exc:
        reg.lookup(A)
    assert exc.value.reason is AbsentReason.NO_PAGING_RESPONSE
    assert net.process_due(T0 + 3600.0) == [A]
    net.close()


def test_memory_full_then_alert(tmp_path: Path) -> None:
    net, board, clock = make(tmp_path)
    reg = net.register
    alerts: list[str] = []
    net.on_alert(alerts.append)
    board.on("memory_full_then_alert", seconds=30.0)
    info = reg.lookup(A)
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert result == Failure.of(FailureReason.MEMORY_CAPACITY_EXCEEDED)
    assert reg.message_waiting(A) is AbsentReason.MEMORY_CAPACITY_EXCEEDED
    assert list(read_inbox(tmp_path)) == []
    with pytest.raises(Absent) as exc:
        reg.lookup(A)
    assert exc.value.reason is AbsentReason.MEMORY_CAPACITY_EXCEEDED
    assert net.process_due(T0 + 29.0) == []
    clock.t = T0 + 30.0
    assert net.process_due() == [A] and alerts == [A]
    board.off("memory_full_then_alert")
    assert forward(net, A) == Ack(reg.identity(A), A)
    assert board.state("memory_full_then_alert").fired == 1
    net.close()
