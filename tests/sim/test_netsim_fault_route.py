"""netsim's faults scoped to one of the SMSC's routes: the adapter names the route of each
MT-ForwardSM dialogue (``netsim.faults.ROUTE``), a fault with ``route=R`` fires only on R."""

from __future__ import annotations

from adressat.netsim.faults import ROUTE, FaultSwitchboard
from adressat.netsim.forward import FailureReason, NetSms


def _sms() -> NetSms:
    return NetSms("ACME", b"\x00" * 7, 0, b"hi", "ab" * 16, "00", False, 0, None)


def test_a_route_scoped_fault_fires_only_on_that_route() -> None:
    board = FaultSwitchboard(seed=1)
    board.on("system_failure", rate=1.0, route="netsim-b")
    assert board.before_forward("240010000000001", "msc-1", _sms()) is None  # unset: "netsim"
    token = ROUTE.set("netsim")
    try:
        assert board.before_forward("240010000000001", "msc-1", _sms()) is None
    finally:
        ROUTE.reset(token)
    token = ROUTE.set("netsim-b")
    try:
        got = board.before_forward("240010000000001", "msc-1", _sms())
        assert got is not None and got.reason is FailureReason.SYSTEM_FAILURE
    finally:
        ROUTE.reset(token)
    assert board.state("system_failure").fired == 1
