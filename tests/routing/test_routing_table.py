"""The running node's routing table (routing/table.py): operator routes first, reloads, kinds
and connectors by route name, and portability overriding numbering-plan rules both ways."""

from __future__ import annotations

from adressat.core.model import RouteConfig
from adressat.routing.portability import PortabilityTable
from adressat.routing.router import Route
from adressat.routing.table import RoutingTable, rules_of

OWN = [(46701000000, 46701099999)]
NOON = 1_800_000_000.0 - (1_800_000_000 % 86400) + 12 * 3600


def table(**kw: object) -> RoutingTable:
    return RoutingTable("own", OWN, **kw)  # type: ignore[arg-type]


def test_operator_routes_match_first_and_expand_prefixes() -> None:
    t = table(file_rules=[{"prefix": "4676", "route": "file-route"}])
    assert t.route("46761234567", "acme", NOON).name == "file-route"
    assert t.update([RouteConfig("out", ("sink", "backup"), prefixes=("4676", "4673"))])
    assert t.route("46761234567", "acme", NOON) == Route("out", "smpp", "unknown")
    assert t.route("46731234567", "acme", NOON).name == "out"
    assert t.route("46701000001", "acme", NOON) == Route("netsim", "netsim", "own")
    assert t.route("4479000000", "acme", NOON).name == "unroutable"
    assert t.kind("out") == "smpp" and t.via("out") == ("sink", "backup")
    assert t.kind("netsim") == "netsim" and t.kind("unroutable") == "none"
    assert not t.update([RouteConfig("out", ("sink", "backup"), prefixes=("4676", "4673"))])
    assert t.update([])  # removed: the file rule again, and the name has no way out
    assert t.kind("out") == "none"
    assert t.route("46761234567", "acme", NOON).name == "file-route"


def test_order_by_position_and_criteria() -> None:
    routes = [
        RouteConfig("bank", ("hub",), prefixes=("4676",), account="bank", position=2),
        RouteConfig("night", ("cheap",), operator="tele2", window="22:00-06:00", position=1),
        RouteConfig("all", ("hub",), position=3),
    ]
    rules = rules_of(routes)
    assert [r["route"] for r in rules] == ["night", "bank", "all"]
    t = table()
    t.update(routes)
    assert t.route("46761234567", "bank", NOON).name == "bank"
    assert t.route("46761234567", "shop", NOON).name == "all"


def test_portability_overrides_plan_rules_both_ways() -> None:
    ported = PortabilityTable.from_text(
        "number 46761234567 own\n"  # ported in: ours now, whatever the prefix route says
        "number 46701000042 tele2\n"  # ported out of our range
    )
    current = {"table": None}
    t = table(portability=lambda now: current["table"])
    t.update([RouteConfig("out", ("sink",), prefixes=("4676",)),
              RouteConfig("tele2", ("t2",), operator="tele2")])
    assert t.route("46761234567", "acme", NOON).name == "out"
    assert t.route("46701000042", "acme", NOON).name == "netsim"
    current["table"] = ported  # type: ignore[assignment]
    assert t.refresh(NOON) and not t.refresh(NOON)
    assert t.route("46761234567", "acme", NOON) == Route("netsim", "netsim", "own")
    assert t.route("46761234568", "acme", NOON).name == "out"  # its neighbour is not ported
    assert t.route("46701000042", "acme", NOON) == Route("tele2", "smpp", "tele2")
    assert t.route("46701000043", "acme", NOON).name == "netsim"


def test_an_account_rule_still_overrides_portability() -> None:
    ported = PortabilityTable.from_text("number 46761234567 own\n")
    t = table(portability=lambda now: ported)
    t.refresh(NOON)
    t.update([RouteConfig("bank-out", ("hub",), prefixes=("4676",), account="bank")])
    assert t.route("46761234567", "bank", NOON).name == "bank-out"
    assert t.route("46761234567", "shop", NOON).name == "netsim"
