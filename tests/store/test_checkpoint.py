"""WAL checkpoints off the commit path: the serving connections never checkpoint themselves,
the checkpointer thread does, and the WAL is reused from its start afterwards."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from store_helpers import make_msg

from adressat.store.checkpoint import WalCheckpointer
from adressat.store.sqlite import SqliteStore

SQLITE_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default


def fill(store: SqliteStore, batches: int, size: int = 200) -> None:
    for _ in range(batches):
        store.insert_messages([make_msg(content=b"x" * 140) for _ in range(size)])


def wal_frames(path: Path) -> int:
    """Frames in the WAL now (a PASSIVE checkpoint that copies nothing: a reader holds it)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        conn.close()


def test_without_autocheckpoint_the_wal_grows_until_a_checkpointer_runs(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    store = SqliteStore(db, autocheckpoint=False)
    try:
        fill(store, 30)
        cp = WalCheckpointer(db)
        conn = sqlite3.connect(db, isolation_level=None)
        busy, frames, copied = cp.checkpoint(conn)
        assert frames > SQLITE_AUTOCHECKPOINT_PAGES  # nobody checkpointed on commit
        assert busy == 0 and copied == frames  # all of it copied into the database
        fill(store, 1, size=1)  # the next writer starts the WAL again from its beginning
        _, frames_after, _ = cp.checkpoint(conn)
        assert frames_after < 20
        conn.close()
    finally:
        store.close()


def test_default_store_checkpoints_by_itself(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    store = SqliteStore(db)
    try:
        fill(store, 30)
        assert wal_frames(db) <= SQLITE_AUTOCHECKPOINT_PAGES + 400
    finally:
        store.close()


def test_checkpointer_thread_keeps_the_wal_short(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = SqliteStore(db, autocheckpoint=False)
    cp = WalCheckpointer(db, interval_s=0.02).start()
    try:
        for _ in range(30):
            fill(store, 1)
            time.sleep(0.01)
        deadline = time.monotonic() + 5
        while cp.checkpoints < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        fill(store, 1, size=1)
        time.sleep(0.1)
        assert cp.failures == 0 and cp.checkpoints >= 3
        assert wal_frames(db) < SQLITE_AUTOCHECKPOINT_PAGES
    finally:
        cp.stop()
        store.close()
    assert not cp._thread.is_alive()
