"""The canary prober against the running node (docs/canary.md).

* on a quiet network and on the realistic one (absent and memory-full subscribers), the
  canaries of all four serving nodes pass within seconds, and ``GET /v1/canaries`` says so,
  as the store does;
* with ``fault on swapping_node --node msc-2 --rate 1``, msc-2's probes come out
  misdelivered and the other nodes' still pass;
* canary traffic is not customer traffic: not in ``/metrics`` accepted/final counts, not in
  ``adressat audit``'s figures, no receipt;
* bad input: ``fault on NAME --node nosuch``, ``account add _x``, a bad ``window_s``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from e2e_kit import wait_for

from adressat.store.sqlite import SqliteStore
from adressat.testing.server import ServerProcess, adressat, audit

pytestmark = pytest.mark.slow

NODES = {"msc-1", "msc-2", "msc-3", "msc-4"}
_T = TypeVar("_T")


_R = TypeVar("_R")


def _wait(cond: Callable[[], _R], timeout_s: float, step_s: float = 0.2) -> _R:
    return wait_for(cond, timeout_s, step_s)


def _canaries(server: ServerProcess, query: str = "") -> dict[str, Any]:
    code, body = server.http_get("/v1/canaries" + query)
    assert code == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def _probes(home: Path, since: float = 0.0) -> list[tuple[str, str, float]]:
    conn = sqlite3.connect(f"file:{home / 'adressat.db'}?mode=ro", uri=True)
    try:
        return [(r[0], r[1], r[2]) for r in conn.execute(
            "SELECT serving_node, result, at FROM canary_probes WHERE at >= ? ORDER BY id",
            (since,))]
    finally:
        conn.close()


def _all_pass(server: ServerProcess) -> dict[str, Any] | None:
    body = _canaries(server)
    by_node = {c["serving_node"]: c for c in body["canaries"] if c["route"] == "netsim"}
    if set(by_node) == NODES and all(c["all_passed"] for c in by_node.values()):
        return body
    return None


def _check_passing(server: ServerProcess, started: float) -> None:
    body = _wait(lambda: _all_pass(server), 15.0)
    assert body, _canaries(server)
    assert body["window_s"] == 300.0
    for c in body["canaries"]:
        assert c["probes"] >= 1 and c["passed"] == c["probes"] and c["failed"] == 0
        assert c["last_result"] == "passed"
        assert started - 1 <= c["passing_since"] <= c["last_at"] <= time.time()
    # the store says the same: every place's last probe is there, as the API names it
    rows = _probes(server.home)
    for c in body["canaries"]:
        mine = [(r, at) for n, r, at in rows if n == c["serving_node"]]
        assert (c["last_result"], c["last_at"]) in mine
        assert c["probes"] <= len(mine) <= c["probes"] + 3  # a round or two since
        assert c["passing_since"] == min(at for _, at in mine)
    # the store's own reader agrees with the API on the places and their verdicts
    store = SqliteStore(server.home / "adressat.db")
    try:
        states = {s.serving_node: s for s in store.canary_states(time.time(), 300.0)}
    finally:
        store.close()
    assert set(states) == NODES
    assert all(s.all_passed for s in states.values())
    assert {c["serving_node"]: c["passing_since"] for c in body["canaries"]} == {
        n: s.passing_since for n, s in states.items()}


@pytest.mark.parametrize("network", ["quiet", "realistic"])
def test_canaries_of_every_node_pass(tmp_path: Path, network: str) -> None:
    home = tmp_path / "home"
    args = ["--subscribers", "20000"] + (["--quiet-network"] if network == "quiet" else [])
    started = time.time()
    with ServerProcess(home, None, *args) as server:
        _check_passing(server, started)
        # no probe failed at all, and every result is one of the node's canaries
        assert {r for _, r, _ in _probes(home)} == {"passed"}


def test_in_process_delivery_runs_the_prober_too(tmp_path: Path) -> None:
    home = tmp_path / "home"
    started = time.time()
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "5000",
                       "--delivery-process", "off") as server:
        _check_passing(server, started)


def test_a_misdelivering_node_is_named_and_the_others_pass(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # the breaker would hold the whole route at the first misdelivery (threshold 1), and
    # the other nodes' probes with it: this test looks at the canaries alone
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "20000",
                       "--breaker-alarms-threshold", "0", "--canary-interval-s", "1") as server:
        assert _wait(lambda: _all_pass(server), 15.0), _canaries(server)
        out = adressat(home, "fault", "on", "swapping_node", "--node", "msc-2", "--rate", "1")
        assert out.returncode == 0, out.stderr
        assert "node=msc-2" in out.stdout
        switched = time.time() + 1.0  # the node polls faults every 0.5 s

        def seen() -> bool:
            rows = [(n, r) for n, r, _ in _probes(home, switched)]
            bad = {r for n, r in rows if n == "msc-2"}
            good = {n for n, r in rows if n != "msc-2" and r == "passed"}
            return bool(bad) and good == NODES - {"msc-2"}

        assert _wait(seen, 20.0), _probes(home, switched)
        rows = _probes(home, switched)
        assert {r for n, r, _ in rows if n == "msc-2"} == {"misdelivered"}
        assert {r for n, r, _ in rows if n != "msc-2"} == {"passed"}
        body = _canaries(server, "?window_s=2")
        by = {c["serving_node"]: c for c in body["canaries"]}
        assert by["msc-2"]["all_passed"] is False and by["msc-2"]["passing_since"] is None
        assert by["msc-2"]["last_result"] == "misdelivered"
        listed = json.loads(adressat(home, "fault", "list", "--json").stdout)
        (row,) = [r for r in listed if r["name"] == "swapping_node"]
        assert row["on"] and row["node"] == "msc-2"
        # the store names msc-2 for the attempts and alarms of those probes
        conn = sqlite3.connect(f"file:{home / 'adressat.db'}?mode=ro", uri=True)
        try:
            nodes = {r[0] for r in conn.execute(
                "SELECT serving_node FROM alarms WHERE account = '_canary'")}
            attempt_nodes = {r[0] for r in conn.execute(
                "SELECT DISTINCT serving_node FROM attempts WHERE account = '_canary'")}
        finally:
            conn.close()
        assert nodes == {"msc-2"}
        assert attempt_nodes - {None} == NODES  # None: an attempt no node answered
        # adressat status says it per place, and names msc-2 in an open alert
        lines = _wait(lambda: _status_lines(home, "serving_node=msc-2"), 10.0)
        assert lines, adressat(home, "status").stdout
        assert any(line.startswith("#") and "CRITICAL" in line and "UNACKNOWLEDGED" in line
                   for line in lines["serving_node=msc-2"])
        assert any("FAILING: last misdelivered" in line for line in lines["msc-2 "])
        for node in sorted(NODES - {"msc-2"}):
            assert all("ALL PASSED since" in line for line in lines[node + " "]), lines
        # switched off: msc-2 passes again, and says since when
        assert adressat(home, "fault", "off", "swapping_node").returncode == 0
        off = time.time() + 1.0

        def recovered() -> bool:
            by = {c["serving_node"]: c for c in _canaries(server)["canaries"]}
            since = by["msc-2"]["passing_since"]
            return since is not None and since >= off - 1.0

        assert _wait(recovered, 15.0), _canaries(server)
        lines = _status_lines(home, "msc-2 ")
        assert any("PASSING again since" in line or "ALL PASSED" in line
                   for line in lines["msc-2 "]), lines
    # stopped: status reads the same from the store, and says the node is not running
    out = adressat(home, "status")
    assert out.returncode == 2 and "NOT RUNNING" in out.stdout
    assert "route netsim  msc-2" in out.stdout and "alerts open:" in out.stdout


def _status_lines(home: Path, *keys: str) -> dict[str, list[str]]:
    """The lines of ``adressat status`` that hold each key (empty dict if one has none)."""
    text = adressat(home, "status").stdout
    got = {k: [ln.strip() for ln in text.splitlines() if k in ln] for k in
           (*keys, "msc-1 ", "msc-2 ", "msc-3 ", "msc-4 ")}
    return got if all(got.values()) else {}


def test_canary_traffic_is_not_customer_traffic(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "5000",
                       "--canary-interval-s", "1") as server:
        assert _wait(lambda: len(_probes(home)) >= 8, 15.0)
        code, body = server.http_get("/metrics")
        text = body.decode()
        assert code == 200
        assert 'account="_canary"' not in text
        assert "adressat_canary_probes_total{" in text and 'result="passed"' in text
        assert "adressat_canary_latency_seconds_count{" in text
        figures = audit(home)
        assert figures["total"] == 0 and figures["inbox_records"] == 0
        assert figures["ok"] is True
        canary = figures["canary"]
        assert isinstance(canary, dict) and canary["messages"] >= 8
        assert canary["inbox_records"] >= 8 and canary["inbox_records_elsewhere"] == 0
        report = json.loads(adressat(home, "incident", "report", "--from", "0", "--to",
                                     str(time.time() + 60), "--json").stdout)
        assert report["accounts"] == {}
    conn = sqlite3.connect(home / "adressat.db")
    try:
        assert conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == 0
        assert conn.execute(
            "SELECT COUNT(*) FROM messages WHERE account = '_canary' AND registered_delivery != 0"
        ).fetchone()[0] == 0
    finally:
        conn.close()


def test_bad_input_refused_and_nothing_changes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = adressat(home, "account", "add", "_canary", "--password", "x")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "_" in out.stderr
    out = adressat(home, "account", "add", "_x", "--password", "x")
    assert out.returncode == 2
    assert adressat(home, "account", "list").stdout.strip() == ""
    # a refused `account add` no longer makes the store (issue 13: checked before it opens)
    assert not (home / "adressat.db").exists()
    assert adressat(home, "account", "add", "shop", "--password", "x").returncode == 0
    out = adressat(home, "fault", "on", "swapping_node", "--node", "nosuch")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "unknown serving node 'nosuch'; known: msc-1, msc-2, msc-3, msc-4"]
    out = adressat(home, "fault", "on", "corrupt_pairing", "--node", "msc-1")
    assert out.returncode == 2 and "no --node" in out.stderr
    listed = json.loads(adressat(home, "fault", "list", "--json").stdout)
    assert not any(r["on"] for r in listed)
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "1000") as server:
        for query in ("?window_s=abc", "?window_s=0", "?window_s=-5", "?window_s=1e9",
                      "?window_s=nan", "?nope=1"):
            code, body = server.http_get("/v1/canaries" + query)
            problem = json.loads(body)
            assert code == 400 and problem["status"] == 400 and problem["title"], query
        assert _canaries(server, "?window_s=60")["window_s"] == 60.0
