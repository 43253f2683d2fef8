"""A node that cannot read its routes or accounts any more says so as an episode (issue 13's
closing note: these failures were only logged).

The failures are real ones of the store, made from beside the running node with sqlite3: the
routes table renamed away (a botched manual migration), and a version counter that no longer
parses. While they last the node serves by what it read last: the episodes are advisory
(``/health/ready`` stays 200 and names them); the repair ends them without a restart.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from e2e_kit import Esme, close_all, wait_for

from adressat.store.base import ACCOUNTS_VERSION_KEY
from adressat.testing.server import ServerProcess, adressat

ROUTES = "routes_refresh_failing"
ACCOUNTS = "accounts_refresh_failing"


def _ready(server: ServerProcess) -> tuple[int, dict[str, object]]:
    code, body = server.http_get("/health/ready")
    return code, json.loads(body)


def _open(server: ServerProcess) -> list[tuple[str, str]]:
    """(kind, cause) of every open episode, the delivery process's too."""
    return sorted((str(e["kind"]), str(e["cause"]))  # type: ignore[index]
                  for e in _ready(server)[1]["episodes_open"])  # type: ignore[attr-defined]


def _sql(db: Path, *statements: str) -> None:
    con = sqlite3.connect(db, timeout=10)
    try:
        for st in statements:
            con.execute(st)
        con.commit()
    finally:
        con.close()


def test_unreadable_routes_and_accounts_are_episodes_and_end_when_repaired(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert adressat(home, "account", "add", "demo", "--password", "demo").returncode == 0
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "1000") as server:
        assert wait_for(lambda: _ready(server)[0] == 200, 15), _ready(server)
        assert _open(server) == []
        db = home / "adressat.db"

        _sql(db, "ALTER TABLE route_rules RENAME TO route_rules_aside",
             f"UPDATE meta SET value = 'x' WHERE key = '{ACCOUNTS_VERSION_KEY}'")
        # both processes read the routes; the SMPP process alone the accounts
        want = [(ACCOUNTS, "ValueError"), (ROUTES, "store_error"),
                (ROUTES, "store_error")]
        assert wait_for(lambda: _open(server) == want, 15), _open(server)
        code, ready = _ready(server)
        assert code == 200 and ready["ready"] is True, ready  # said, and still serving
        try:  # by what it read last
            esme = Esme(server.port, "demo", "demo")
            assert esme.resp(esme.submit("46701000123")).status == 0
        finally:
            close_all()
        out = adressat(home, "status")
        assert ROUTES in out.stdout and ACCOUNTS in out.stdout, out.stdout
        log = server.log_path.read_text()
        assert "episode started" in log and "refresh failed" in log

        _sql(db, "ALTER TABLE route_rules_aside RENAME TO route_rules",
             f"UPDATE meta SET value = '1000' WHERE key = '{ACCOUNTS_VERSION_KEY}'")
        assert wait_for(lambda: _open(server) == [], 15), _open(server)
        status = json.loads(adressat(home, "status", "--json").stdout)
        recent = {(e["kind"], e["ended_at"] is not None)
                  for e in status["health"]["episodes_recent"]}
        assert {(ROUTES, True), (ACCOUNTS, True)} <= recent, recent
        assert "episode ended" in server.log_path.read_text()
