"""``adressat connector|route|account --partner`` on a store in tmp, no node needed (issue 11):
what an operator sees, the peers harness's exact commands on a fresh home, and every bad input
refused with one line on stderr and exit 2, nothing changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adressat.core.model import ConnectorStatus, Message, State
from adressat.store.sqlite import SqliteStore
from adressat.testing.server import adressat

PASSWORD = "s3cr3t"  # never printed by any command
_ids = iter(range(1, 10**6))


def config_of(home: Path) -> object:
    """Everything the interconnect commands may change, to compare before and after."""
    store = SqliteStore(home / "adressat.db")
    try:
        return (store.list_connectors(), store.connector_statuses(), store.list_routes(),
                store.list_accounts(), store.route_status())
    finally:
        store.close()


def _msg(route: str, state: State, final_at: float | None = None) -> Message:
    n = next(_ids)
    return Message(id=f"{n:032x}", account="bank", source_addr="BANK",
                   destination=f"4670{n:07d}", content=b"x", submitted_at=1000.0,
                   expires_at=5000.0, not_before=1000.0, next_attempt_at=1000.0, state=state,
                   route=route, tag=b"\x01" * 16, final_at=final_at)


def _ok(home: Path, *args: str) -> str:
    out = adressat(home, *args)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    assert PASSWORD not in out.stdout + out.stderr
    return out.stdout


def _json(home: Path, *args: str) -> object:
    return json.loads(_ok(home, *args, "--json"))


def _refused(home: Path, *args: str) -> str:
    """Exit 2, one line on stderr, nothing on stdout, the store unchanged."""
    before = config_of(home)
    out = adressat(home, *args)
    err = out.stderr.strip()
    assert out.returncode == 2 and len(err.splitlines()) == 1, (args, out.returncode, err)
    assert out.stdout == "" and PASSWORD not in err
    assert config_of(home) == before, args
    return err


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The home every test starts from, made once by the commands themselves."""
    h = tmp_path_factory.mktemp("template") / "home"
    _ok(h, "connector", "add", "sink", "--host", "127.0.0.1", "--port", "2774",
        "--system-id", "bench", "--password", PASSWORD)
    _ok(h, "connector", "add", "backup", "--host", "127.0.0.2", "--port", "2775",
        "--system-id", "adr", "--password", PASSWORD, "--bind", "tx", "--window", "50",
        "--throughput", "200", "--system-type", "VMA", "--enquire-link-s", "15",
        "--payload", "on")
    _ok(h, "account", "add", "bank", "--password", "pw")
    return h


@pytest.fixture
def home(tmp_path: Path, _template: Path) -> Path:
    h = tmp_path / "home"
    shutil.copytree(_template, h)  # a copy of its own (the store is closed between commands)
    return h


def test_the_peers_harness_commands_on_a_fresh_home(tmp_path: Path) -> None:
    """run_peers.sh measure_adressat: ADRESSAT_HOME set, no --home, no node running."""
    home = tmp_path / "fresh" / "home"
    env = {**os.environ, "ADRESSAT_HOME": str(home)}

    def run(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "adressat.cli", *args], env={**env, **more},
                              capture_output=True, text=True, timeout=60, check=False)

    # the password in the environment, as run_peers.sh gives it (never on the command line)
    out = run("connector", "add", "sink", "--host", "127.0.0.1", "--port", "2774",
              "--system-id", "bench", "--bind", "trx", "--window", "100",
              ADRESSAT_PASSWORD="bench")
    assert out.returncode == 0, out.stderr
    out = run("route", "add", "out", "--prefix", "4676", "--via", "sink")
    assert out.returncode == 0, out.stderr
    store = SqliteStore(home / "adressat.db")
    try:
        [c] = store.list_connectors()
        assert (c.name, c.host, c.port, c.system_id, c.password, c.bind, c.window) == (
            "sink", "127.0.0.1", 2774, "bench", "bench", "trx", 100)
        [r] = store.list_routes()
        assert (r.name, r.prefixes, r.via, r.position) == ("out", ("4676",), ("sink",), 1)
    finally:
        store.close()


def test_connector_add_show_and_list(home: Path) -> None:
    rows = _json(home, "connector", "list")
    assert isinstance(rows, list)
    assert [(r["name"], r["state"], r["window"]) for r in rows] == [
        ("backup", "not running", 50), ("sink", "not running", 10)]
    view = _json(home, "connector", "show", "backup")
    assert isinstance(view, dict)
    cfg = view["config"]
    assert cfg == {**cfg, "host": "127.0.0.2", "port": 2775, "system_id": "adr",
                   "bind": "tx", "window": 50, "throughput_per_s": 200, "system_type": "VMA",
                   "enquire_link_s": 15.0, "payload": True, "password": "set"}
    text = _ok(home, "connector", "show", "sink")
    assert "password         set" in text and "state            not running" in text
    table = _ok(home, "connector", "list").splitlines()
    assert table[0].split()[:4] == ["NAME", "ADDRESS", "BIND", "STATE"]
    assert table[2].split()[:4] == ["sink", "127.0.0.1:2774", "trx", "not"]


def test_connector_list_says_the_nodes_state_and_when_it_is_stale(home: Path) -> None:
    now = time.time()
    store = SqliteStore(home / "adressat.db")
    try:
        store.put_connector_statuses([
            ConnectorStatus("sink", "bound", now - 60, sessions=1, window_in_use=3, sent=120,
                            failed=2, receipts=118, updated_at=now),
            ConnectorStatus("backup", "connecting", now - 30, detail="connection refused",
                            updated_at=now - 60),
        ])
    finally:
        store.close()
    rows = {r["name"]: r for r in _json(home, "connector", "list")}  # type: ignore[union-attr]
    assert rows["sink"]["state"] == "bound" and rows["sink"]["fresh"] is True
    assert (rows["sink"]["window_in_use"], rows["sink"]["sent"], rows["sink"]["failed"],
            rows["sink"]["receipts"], rows["sink"]["sessions"]) == (3, 120, 2, 118, 1)
    assert rows["backup"]["state"] == "stale (connecting)" and rows["backup"]["fresh"] is False
    line = next(x for x in _ok(home, "connector", "list").splitlines() if x.startswith("sink"))
    assert "bound" in line and "3/10" in line and " 120 " in line and " 118" in line
    line = next(x for x in _ok(home, "connector", "list").splitlines()
                if x.startswith("backup"))
    assert "stale (connecting)" in line and "connection refused" in line


def test_connector_set_changes_only_what_is_given(home: Path, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("fromfile\nsecond line\n")
    out = _ok(home, "connector", "set", "sink", "--window", "7", "--password-file", str(pw))
    assert "window" in out and "password" in out and "fromfile" not in out
    store = SqliteStore(home / "adressat.db")
    try:
        c = store.get_connector("sink")
        assert c is not None and (c.window, c.password, c.port, c.bind) == (7, "fromfile", 2774,
                                                                            "trx")
        assert c.updated_at >= c.created_at
    finally:
        store.close()


def test_connector_remove_refused_while_a_route_uses_it(home: Path) -> None:
    _ok(home, "route", "add", "out", "--prefix", "4676", "--via", "backup,sink")
    err = _refused(home, "connector", "remove", "sink")
    assert "route out" in err
    _ok(home, "route", "remove", "out")
    assert "removed" in _ok(home, "connector", "remove", "sink")
    assert [r["name"] for r in _json(home, "connector", "list")] == ["backup"]  # type: ignore[union-attr]


def test_route_add_list_in_match_order_with_breakers_and_counts(home: Path) -> None:
    _ok(home, "route", "add", "out", "--prefix", "4676", "--prefix", "+4672,4673",
        "--via", "sink,backup")
    _ok(home, "route", "add", "bank-night", "--account", "bank", "--window", "22:00-06:00",
        "--operator", "tele2", "--via", "backup", "--position", "1")
    now = time.time()
    store = SqliteStore(home / "adressat.db")
    try:
        store.trip_route("out", "tag_mismatch:x", now - 10)
        store.insert_messages([
            _msg("out", State.DELIVERED, now - 60),
            _msg("out", State.UNDELIVERABLE, now - 120),
            _msg("out", State.DELIVERED, now - 7200),  # too old
            _msg("netsim", State.DELIVERED, now - 5),
            _msg("out", State.HELD),
        ])
    finally:
        store.close()
    rows = _json(home, "route", "list")
    assert isinstance(rows, list)
    assert [(r["name"], r["kind"], r["position"]) for r in rows] == [
        ("bank-night", "operator", 1), ("out", "operator", 2), ("netsim", "netsim", None),
        ("unroutable", "unroutable", None)]
    out = rows[1]
    assert out["prefixes"] == ["4676", "4672", "4673"] and out["via"] == ["sink", "backup"]
    assert out["held"] is True and out["reason"] == "tag_mismatch:x"
    assert out["held_at"] == pytest.approx(now - 10) and out["held_messages"] == 1
    assert out["final_last_hour"] == {"DELIVERED": 1, "UNDELIVERABLE": 1}
    assert rows[2]["final_last_hour"] == {"DELIVERED": 1}
    assert (rows[0]["account"], rows[0]["operator"], rows[0]["window"]) == (
        "bank", "tele2", "22:00-06:00")
    lines = _ok(home, "route", "list").splitlines()
    assert [x.split("\t")[0] for x in lines] == ["bank-night", "out", "netsim", "unroutable"]
    assert lines[1].startswith("out\tHELD\theld_messages=1\talarms=0\talarms_total=0")
    assert "reason=tag_mismatch:x" in lines[1] and "held_since=" in lines[1]
    assert "last_hour=DELIVERED:1,UNDELIVERABLE:1" in lines[1]
    assert "match=prefix 4676,4672,4673 via sink,backup" in lines[1]
    assert "match=own network" in lines[2]
    # release as before; a removed route's breaker row is still listed while it knows it
    assert "1 held messages back to ROUTED" in _ok(home, "route", "release", "out")
    assert adressat(home, "route", "release", "out").returncode == 1  # not held
    _ok(home, "route", "remove", "out")
    names = [(r["name"], r["kind"]) for r in _json(home, "route", "list")]  # type: ignore[union-attr]
    assert names == [("bank-night", "operator"), ("netsim", "netsim"),
                     ("unroutable", "unroutable"), ("out", "unconfigured")]


def test_partner_accounts(home: Path) -> None:
    _ok(home, "account", "add", "tele2", "--password", "t2", "--partner", "--ranges",
        "4670,+4673", "--connector", "sink")
    lines = _ok(home, "account", "list").splitlines()
    rest = "\tthroughput_per_s=unlimited\tsessions_max=default\tsenders=any\tallow_ip=any"
    assert lines == ["bank\tenabled" + rest,
                     "tele2\tenabled" + rest + "\tpartner ranges=4670,4673 connectors=sink"]
    store = SqliteStore(home / "adressat.db")
    try:
        a = store.get_account("tele2")
        assert a is not None and a.partner and a.partner_ranges == ("4670", "4673")
        assert a.partner_connectors == ("sink",)
    finally:
        store.close()


@pytest.mark.parametrize(
    "args",
    [
        # connectors
        ("connector", "add", "sink", "--host", "h", "--port", "1", "--system-id", "s",
         "--password", PASSWORD),  # exists
        ("connector", "add", "c", "--host", "h", "--port", "0", "--system-id", "s",
         "--password", "p"),
        ("connector", "add", "c", "--host", "h", "--port", "65536", "--system-id", "s",
         "--password", "p"),
        ("connector", "add", "c", "--host", "h", "--port", "x", "--system-id", "s",
         "--password", "p"),
        ("connector", "add", "c", "--host", "h", "--port", "1", "--system-id", "s"),
        ("connector", "add", "c", "--host", "h", "--port", "1", "--system-id", "s",
         "--password", "p", "--password-file", "/etc/hostname"),
        ("connector", "add", "c", "--host", "h", "--port", "1", "--system-id", "s",
         "--password-file", "/nonexistent/pw"),
        ("connector", "add", "c", "--host", "h", "--port", "1", "--system-id", "s",
         "--password", "p", "--window", "0"),
        ("connector", "add", "c", "--host", "h", "--port", "1", "--system-id", "s",
         "--password", "p", "--throughput", "-1"),
        ("connector", "add", "c", "--host", "h", "--port", "1", "--system-id", "s",
         "--password", "p", "--bind", "rx"),
        ("connector", "add", "c", "--host", "h", "--port", "1", "--system-id", "s",
         "--password", "p", "--enquire-link-s", "0"),
        ("connector", "add", "c", "--host", "h", "--port", "1", "--system-id", "s",
         "--password", "p", "--payload", "yes"),
        ("connector", "add", "bad name", "--host", "h", "--port", "1", "--system-id", "s",
         "--password", "p"),
        ("connector", "add", "c", "--host", "h", "--port", "1", "--system-id", "s",
         "--password", "toolongpw"),
        ("connector", "set", "sink"),  # nothing to change
        ("connector", "set", "sink", "--window", "-3"),
        ("connector", "set", "nope", "--window", "3"),
        ("connector", "show", "nope"),
        ("connector", "remove", "nope"),
        # routes
        ("route", "add", "r", "--via", "nope"),
        ("route", "add", "r", "--via", "sink,nope"),
        ("route", "add", "r", "--via", ""),
        ("route", "add", "r", "--prefix", "46x", "--via", "sink"),
        ("route", "add", "r", "--window", "22:00", "--via", "sink"),
        ("route", "add", "r", "--window", "24:30-06:00", "--via", "sink"),
        ("route", "add", "r", "--account", "nobody", "--via", "sink"),
        ("route", "add", "netsim", "--via", "sink"),
        ("route", "add", "r", "--via", "sink,sink"),
        ("route", "add", "r", "--via", "sink", "--position", "-1"),
        ("route", "add", "r"),  # no --via
        ("route", "remove", "nope"),
        ("route", "remove", "netsim"),
        # partner accounts
        ("account", "add", "p", "--password", "x", "--partner"),
        ("account", "add", "p", "--password", "x", "--ranges", "4670"),
        ("account", "add", "p", "--password", "x", "--connector", "sink"),
        ("account", "add", "p", "--password", "x", "--partner", "--ranges", "46a0"),
        ("account", "add", "p", "--password", "x", "--partner", "--ranges", "4670,"),
        ("account", "add", "p", "--password", "x", "--partner", "--ranges", "4670",
         "--connector", "nope"),
    ],
    ids=lambda a: " ".join(a)[:60],
)
def test_bad_input_is_one_line_exit_2_nothing_changed(home: Path, args: tuple[str, ...]) -> None:
    _refused(home, *args)


def test_route_add_that_exists_is_refused(home: Path) -> None:
    _ok(home, "route", "add", "out", "--via", "sink")
    assert "exists" in _refused(home, "route", "add", "out", "--via", "backup")


def test_connector_commands_need_a_store_except_add(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (("connector", "list"), ("connector", "show", "x"), ("route", "add", "r",
                                                                     "--via", "x")):
        out = adressat(empty, *args)
        assert out.returncode == 2 and "no adressat store" in out.stderr, args
    assert not (empty / "adressat.db").exists()
