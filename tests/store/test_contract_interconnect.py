"""Store contract of the interconnect configuration (schema v17, issue 11), both back ends:
connectors, their status, the operator's routes, partner accounts, final counts per route."""

from __future__ import annotations

from dataclasses import replace

import pytest
from store_helpers import make_msg

from adressat.core.model import ConnectorConfig, ConnectorStatus, RouteConfig, State
from adressat.store import AccountExists, Store
from adressat.store.base import ConnectorExists, ConnectorInUse, RouteExists, UnknownConnector


def _conn(name: str = "sink", **kw: object) -> ConnectorConfig:
    base = ConnectorConfig(name, "127.0.0.1", 2774, "bench", "secret", created_at=100.0,
                           updated_at=100.0)
    return replace(base, **kw)  # type: ignore[arg-type]


def _status(name: str = "sink", **kw: object) -> ConnectorStatus:
    return replace(ConnectorStatus(name, "bound", 10.0), **kw)  # type: ignore[arg-type]


# --- connectors ----------------------------------------------------------------------------------
def test_connectors_round_trip_every_field_by_name(store: Store) -> None:
    b = _conn("b", host="127.0.0.3", port=2775, system_id="sys", password="pw",
              bind="tx", window=100, throughput_per_s=50, system_type="VMA",
              enquire_link_s=7.5, payload=True, created_at=1.5, updated_at=2.5)
    a = _conn("a")
    assert store.add_connector(b) == b
    store.add_connector(a)
    assert store.get_connector("b") == b
    assert store.get_connector("nope") is None
    assert store.list_connectors() == [a, b]


def test_connector_exists_changes_nothing(store: Store) -> None:
    store.add_connector(_conn())
    with pytest.raises(ConnectorExists):
        store.add_connector(_conn(port=9999))
    got = store.get_connector("sink")
    assert got is not None and got.port == 2774


def test_update_connector_keeps_created_at(store: Store) -> None:
    store.add_connector(_conn())
    assert store.update_connector(_conn(window=3, host="10.0.0.1", created_at=999.0,
                                        updated_at=200.0))
    got = store.get_connector("sink")
    assert got == _conn(window=3, host="10.0.0.1", created_at=100.0, updated_at=200.0)
    assert not store.update_connector(_conn("other"))
    assert store.get_connector("other") is None


def test_remove_connector_and_its_status(store: Store) -> None:
    store.add_connector(_conn())
    store.put_connector_statuses([_status()])
    assert store.remove_connector("sink")
    assert not store.remove_connector("sink")
    assert store.get_connector("sink") is None and store.connector_statuses() == []


def test_remove_connector_refused_while_a_route_names_it(store: Store) -> None:
    store.add_connector(_conn("a"))
    store.add_connector(_conn("b"))
    store.add_route(RouteConfig("r1", ("b", "a")))
    store.add_route(RouteConfig("r2", ("a",)))
    with pytest.raises(ConnectorInUse) as e:
        store.remove_connector("a")
    assert e.value.routes == ("r1", "r2") and "r1" in str(e.value)
    assert store.get_connector("a") is not None
    assert store.remove_route("r1") and store.remove_route("r2")
    assert store.remove_connector("a")


@pytest.mark.parametrize(
    "bad",
    [
        {"port": 0}, {"port": 65536}, {"window": 0}, {"throughput_per_s": -1},
        {"bind": "rx"}, {"enquire_link_s": 0.0}, {"enquire_link_s": float("nan")},
        {"name": ""}, {"name": "a b"}, {"name": "x" * 65}, {"host": ""},
        {"system_id": ""}, {"system_id": "s" * 16}, {"password": "p" * 9},
    ],
    ids=lambda d: ",".join(f"{k}={v!r}" for k, v in d.items()),
)
def test_connector_never_stored_invalid(store: Store, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        store.add_connector(_conn(**bad))
    assert store.list_connectors() == []
    store.add_connector(_conn())
    if "name" not in bad:
        with pytest.raises(ValueError):
            store.update_connector(_conn(**bad))
    assert store.get_connector("sink") == _conn()


def test_connector_names_allowed(store: Store) -> None:
    for name in ("a", "A-b_c.9", "x" * 64):
        store.add_connector(_conn(name))
    assert len(store.list_connectors()) == 3


# --- connector status ----------------------------------------------------------------------------
def test_connector_statuses_upsert_by_name(store: Store) -> None:
    assert store.connector_statuses() == []
    a = _status("a", state="connecting", since=5.0, detail="connection refused",
                updated_at=6.0)
    b = _status("b", sessions=2, window_in_use=7, sent=100, failed=3, receipts=90,
                updated_at=11.0)
    store.put_connector_statuses([b, a])
    assert store.connector_statuses() == [a, b]
    a2 = replace(a, state="bound", since=20.0, sessions=1, detail="", updated_at=21.0)
    store.put_connector_statuses([a2])
    assert store.connector_statuses() == [a2, b]
    store.put_connector_statuses([])
    assert store.connector_statuses() == [a2, b]


def test_connector_status_state_checked(store: Store) -> None:
    with pytest.raises(ValueError):
        store.put_connector_statuses([_status("a"), _status("b", state="sleeping")])
    assert store.connector_statuses() == []


# --- routes --------------------------------------------------------------------------------------
def test_routes_in_position_order_appended_and_inserted(store: Store) -> None:
    store.add_connector(_conn("a"))
    store.add_connector(_conn("b"))
    r1 = store.add_route(RouteConfig("first", ("a",), ("4676",), created_at=1.0))
    assert r1.position == 1
    r2 = store.add_route(RouteConfig("second", ("b", "a"), ("47", "45"), operator="tele2",
                                     account="bank", window="22:00-06:00", created_at=2.0))
    assert r2.position == 2
    assert store.list_routes() == [r1, r2]
    # a position that is taken: inserted there, the rest move down
    r0 = store.add_route(RouteConfig("zero", ("b",), position=1))
    assert r0.position == 1
    assert [(r.name, r.position) for r in store.list_routes()] == [
        ("zero", 1), ("first", 2), ("second", 3)]
    got = store.list_routes()[2]
    assert got == replace(r2, position=3)
    # past the end: after the last
    assert store.add_route(RouteConfig("late", ("a",), position=99)).position == 4
    assert store.remove_route("first") and not store.remove_route("first")
    assert [r.name for r in store.list_routes()] == ["zero", "second", "late"]
    assert store.add_route(RouteConfig("new", ("a",))).position == 5


def test_route_exists_and_unknown_connector_change_nothing(store: Store) -> None:
    store.add_connector(_conn("a"))
    store.add_route(RouteConfig("out", ("a",), ("4676",)))
    with pytest.raises(RouteExists):
        store.add_route(RouteConfig("out", ("a",), ("47",)))
    with pytest.raises(UnknownConnector) as e:
        store.add_route(RouteConfig("other", ("a", "ghost", "gone"), position=1))
    assert e.value.names == ("ghost", "gone")
    assert [(r.name, r.prefixes, r.position) for r in store.list_routes()] == [
        ("out", ("4676",), 1)]


@pytest.mark.parametrize(
    "bad",
    [
        {"via": ()}, {"via": ("a", "a")}, {"name": "netsim"}, {"name": "unroutable"},
        {"name": "a/b"}, {"prefixes": ("46x",)}, {"prefixes": ("+46",)}, {"prefixes": ("",)},
        {"window": "25:00-06:00"}, {"window": "22:00"}, {"window": "10:00-10:00"},
        {"window": "10:60-11:00"}, {"position": -1}, {"operator": ""},
    ],
    ids=lambda d: ",".join(f"{k}={v!r}" for k, v in d.items()),
)
def test_route_never_stored_invalid(store: Store, bad: dict[str, object]) -> None:
    store.add_connector(_conn("a"))
    with pytest.raises(ValueError):
        store.add_route(replace(RouteConfig("r", ("a",)), **bad))  # type: ignore[arg-type]
    assert store.list_routes() == []


def test_remove_route_keeps_its_breaker(store: Store) -> None:
    store.add_connector(_conn("a"))
    store.add_route(RouteConfig("out", ("a",)))
    store.trip_route("out", "integrity alarms", 50.0)
    assert store.remove_route("out")
    assert "out" in store.held_routes()  # held messages stay held until released


def test_a_batch_that_fails_rolls_the_config_back(store: Store) -> None:
    with pytest.raises(RuntimeError), store.batch():
        store.add_connector(_conn("a"))
        store.add_route(RouteConfig("out", ("a",)))
        store.put_connector_statuses([_status("a")])
        raise RuntimeError
    assert store.list_connectors() == [] and store.list_routes() == []
    assert store.connector_statuses() == []


# --- partner accounts ----------------------------------------------------------------------------
def test_partner_accounts(store: Store) -> None:
    store.add_account("plain", "h1", 10)
    store.add_account("tele2", "h2", partner_ranges=["4670", "4673"],
                      partner_connectors=("t2-out", "t2-backup"))
    plain = store.get_account("plain")
    assert plain is not None and not plain.partner
    assert plain.partner_ranges == () and plain.partner_connectors == ()
    p = store.get_account("tele2")
    assert p is not None and p.partner and p.throughput_per_s is None
    assert p.partner_ranges == ("4670", "4673")
    assert p.partner_connectors == ("t2-out", "t2-backup")
    assert [a.partner for a in store.list_accounts()] == [False, True]
    assert store.list_accounts()[1] == p
    with pytest.raises(AccountExists):
        store.add_account("tele2", "h3", partner_ranges=["47"])


@pytest.mark.parametrize(
    ("ranges", "connectors"),
    [([], ()), (["46a"], ()), (["+4670"], ()), (["1234567890123456"], ()), (None, ("c",)),
     (["4670"], ("bad name",)), ("4670", ())],
)
def test_partner_account_never_stored_invalid(store: Store, ranges: list[str] | None,
                                              connectors: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        store.add_account("p", "h", partner_ranges=ranges, partner_connectors=connectors)
    assert store.get_account("p") is None


# --- final counts per route ----------------------------------------------------------------------
def test_final_counts_by_route_since(store: Store) -> None:
    ms = [
        make_msg(route="out", state=State.DELIVERED, final_at=1000.0),
        make_msg(route="out", state=State.DELIVERED, final_at=1001.0, content=b""),
        make_msg(route="out", state=State.UNDELIVERABLE, final_at=1002.0),
        make_msg(route="netsim", state=State.DELIVERED, final_at=1003.0),
        make_msg(route="netsim", state=State.DELIVERED, final_at=10.0),  # too old
        make_msg(route="netsim", state=State.ROUTED),  # not final
    ]
    store.insert_messages(ms)
    assert store.final_counts_by_route(500.0) == {
        ("out", "DELIVERED"): 2, ("out", "UNDELIVERABLE"): 1, ("netsim", "DELIVERED"): 1}
    assert store.final_counts_by_route(5000.0) == {}
    assert sum(store.final_counts_by_route(0.0, rows_max=1).values()) == 2  # one per index
