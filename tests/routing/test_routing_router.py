"""Router: own vs other operator, ported in/out, connectors, rules override."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from adressat.routing.portability import PortabilityTable
from adressat.routing.router import Route, Router, RuleError

OWN = [("46701000000", "46703699999")]
PORT = PortabilityTable.from_text(
    """
range 46730000000 46739999999 telia
range 46760000000 46769999999 tele2
number 46701234567 tele2
number 46735555555 own
"""
)
NOON = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Stockholm")).timestamp()
NIGHT = datetime(2026, 6, 1, 23, 30, tzinfo=ZoneInfo("Europe/Stockholm")).timestamp()


def make(rules: list[dict[str, str]] | None = None, **kw: object) -> Router:
    return Router(
        "own",
        OWN,
        PORT,
        rules or [],
        connectors={"telia": "telia-smpp"},
        timezone="Europe/Stockholm",
        **kw,
    )  # type: ignore[arg-type]


def test_own_and_other_operators() -> None:
    r = make()
    assert r.route("46701000001", "acc", NOON) == Route("netsim", "netsim", "own")
    assert r.route("46731234567", "acc", NOON) == Route("telia-smpp", "smpp", "telia")
    assert r.route("46761234567", "acc", NOON) == Route("unroutable", "none", "tele2")
    assert r.route("4915112345678", "acc", NOON) == Route("unroutable", "none", "unknown")


def test_ported_out_and_in() -> None:
    r = make()
    assert r.is_own_number("46701234567")
    assert r.route("46701234567", "acc", NOON) == Route("unroutable", "none", "tele2")
    assert r.route("46735555555", "acc", NOON) == Route("netsim", "netsim", "own")


def test_no_portability_table_uses_own_ranges() -> None:
    r = Router("own", OWN, None)
    assert r.route("46701234567", "a", 0.0).kind == "netsim"
    assert r.route("46731234567", "a", 0.0) == Route("unroutable", "none", "unknown")


def test_default_connector() -> None:
    r = make(default_connector="hub")
    assert r.route("46761234567", "acc", NOON) == Route("hub", "smpp", "tele2")
    assert r.route("46731234567", "acc", NOON) == Route("telia-smpp", "smpp", "telia")


def test_rules_override_in_order() -> None:
    rules = [
        {"account": "bank", "prefix": "4673", "route": "hub-b"},
        {"operator": "own", "window": "23:00-01:00", "route": "maintenance", "kind": "none"},
        {"prefix": "+4676", "route": "tele2-direct"},
        {"account": "*", "prefix": "4670100", "route": "netsim", "kind": "netsim"},
    ]
    r = make(rules)
    assert r.route("46731234567", "bank", NOON) == Route("hub-b", "smpp", "telia")
    assert r.route("46731234567", "shop", NOON) == Route("telia-smpp", "smpp", "telia")
    assert r.route("46701000001", "shop", NIGHT) == Route("maintenance", "none", "own")
    assert r.route("46701000001", "shop", NOON) == Route("netsim", "netsim", "own")
    assert r.route("46761234567", "shop", NOON) == Route("tele2-direct", "smpp", "tele2")
    # ported out of the own range: operator tele2, and no rule matches this prefix
    assert r.route("46701234567", "shop", NOON) == Route("unroutable", "none", "tele2")


def test_window_without_wrap() -> None:
    r = make([{"window": "09:00-17:00", "route": "day"}])
    assert r.route("46761234567", "a", NOON).name == "day"
    assert r.route("46761234567", "a", NIGHT).name == "unroutable"


@pytest.mark.parametrize(
    "rule",
    [
        {"prefix": "46"},
        {"route": "x", "kind": "carrier-pigeon"},
        {"route": "x", "prefx": "46"},
        {"route": "x", "prefix": "46a"},
        {"route": "x", "window": "25:00-26:00"},
        {"route": "x", "window": "morning"},
        {"route": "", "prefix": "46"},
    ],
)
def test_bad_rules_refused(rule: dict[str, str]) -> None:
    with pytest.raises(RuleError):
        make([rule])


def test_overlapping_own_ranges_refused() -> None:
    with pytest.raises(RuleError):
        Router("own", [("46701000000", "46702000000"), ("46701500000", "46703000000")], None)
