"""Contract of the lockout counters (issue 13, credentials) on every back end: rows written
whole and read back in key order, replaced by key, deleted by key, in one unit of work that
a batch can roll back, and kept across a reopen of the SQLite file (a restart keeps them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adressat.core.lockout import LockoutRow
from adressat.store import SqliteStore, Store


def _row(scope: str = "pair", principal: str = "acme", address: str = "10.0.0.1",
         **kw: object) -> LockoutRow:
    return LockoutRow("account", scope, principal, address, **kw)  # type: ignore[arg-type]


def test_rows_round_trip_in_key_order(store: Store) -> None:
    assert store.lockout_rows() == []
    rows = [
        _row(failures=2, window_start=10.0, last_failure_at=12.5),
        _row("address", "", "10.0.0.1", failures=2, window_start=10.0, last_failure_at=12.5),
        _row("principal", "acme", "", lockouts=3, locked_until=99.0, last_failure_at=12.5),
        _row(principal="zed", address="::1", last_success_at=5.0),
        LockoutRow("api_key", "pair", "0123456789ab", "10.0.0.1", failures=1),
    ]
    store.put_lockout_rows(rows)
    got = store.lockout_rows()
    assert got == sorted(rows, key=lambda r: r.key)
    assert got[0] is not rows[0]  # a copy: changing it changes nothing stored


def test_a_put_replaces_by_key_and_deletes_by_key(store: Store) -> None:
    store.put_lockout_rows([_row(failures=1), _row(principal="b", failures=1)])
    store.put_lockout_rows([_row(failures=5, lockouts=1, locked_until=70.0)],
                           [("account", "pair", "b", "10.0.0.1")])
    assert store.lockout_rows() == [_row(failures=5, lockouts=1, locked_until=70.0)]
    store.put_lockout_rows([], [("account", "pair", "nothing", "here")])  # no such key: no-op
    assert len(store.lockout_rows()) == 1


def test_a_failed_batch_writes_none_of_it(store: Store) -> None:
    store.put_lockout_rows([_row(failures=1)])
    with pytest.raises(RuntimeError), store.batch():
        store.put_lockout_rows([_row(failures=9)], [("account", "pair", "acme", "10.0.0.1")])
        raise RuntimeError("the rest of the batch failed")
    assert store.lockout_rows() == [_row(failures=1)]


def test_rows_survive_a_reopen(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "adressat.db")
    s.put_lockout_rows([_row(locked_until=1e9, lockouts=2)])
    s.close()
    s = SqliteStore(tmp_path / "adressat.db")
    try:
        assert s.lockout_rows() == [_row(locked_until=1e9, lockouts=2)]
    finally:
        s.close()
