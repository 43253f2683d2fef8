"""WAL checkpoints off the commit path: the serving connections never checkpoint themselves,
the checkpointer thread does, and the WAL is reused from its start afterwards."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path

from store_helpers import make_msg

from adressat.store.checkpoint import WalCheckpointer, WalIndex, read_wal_index, shm_descriptor
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


# --- a WAL that stays bounded (docs/architecture.md, "Disk: WAL and retention") -------------------
def _shm_index(db: Path) -> WalIndex:
    # never a descriptor of its own that is closed again: that would release the locks
    # of this process's SQLite connections on the file
    idx = read_wal_index(shm_descriptor(str(db) + "-shm"))
    assert idx is not None
    return idx


def test_the_wal_index_header_says_what_a_checkpoint_says(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    store = SqliteStore(db, autocheckpoint=False)
    try:
        fill(store, 5)
        before = _shm_index(db)
        cp = WalCheckpointer(db)
        conn = cp.connect()
        busy, frames, copied = cp.checkpoint(conn)
        after = _shm_index(db)
        conn.close()
        assert busy == 0 and before.frames == frames == after.frames > 0
        assert before.backfilled < frames and after.backfilled == copied == frames
        assert before.page_size == store.pragma("page_size")
        assert before.wal_bytes == 32 + frames * (before.page_size + 24)
        assert before.wal_bytes == (db.parent / "i.db-wal").stat().st_size
    finally:
        store.close()


def test_restart_starts_the_wal_again_from_its_beginning(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    store = SqliteStore(db, autocheckpoint=False)
    try:
        fill(store, 20)
        cp = WalCheckpointer(db)
        conn = cp.connect()
        frames = _shm_index(db).frames
        assert frames > 500
        assert cp.restart(conn)
        size = (tmp_path / "r.db-wal").stat().st_size
        fill(store, 1, size=1)
        assert _shm_index(db).frames < 20  # the next writer began at the start of the file
        assert (tmp_path / "r.db-wal").stat().st_size == size  # reused, not grown or cut
        st = cp.stats()
        assert st.restarts_total == 1 and st.busy_total == 0 and st.failures_total == 0
        assert 0 < st.last_duration_s == st.max_duration_s < 1.0
        assert st.wal_bytes < 20 * 4200 and st.wal_file_bytes == size and st.db_bytes > 0
        conn.close()
    finally:
        store.close()


def test_restart_waits_for_the_writer_holding_the_write_lock(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = SqliteStore(db, autocheckpoint=False)
    try:
        fill(store, 5)
        cp = WalCheckpointer(db)
        conn = cp.connect()
        fd = os.open(str(db) + ".wlock", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)  # "the other process" is in a write transaction
        done = threading.Event()
        t = threading.Thread(target=lambda: (cp.restart(conn), done.set()))
        t.start()
        assert not done.wait(0.2)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        assert done.wait(5)
        t.join()
        assert cp.restarts == 1 and cp.last_wait_s >= 0.15
        conn.close()
    finally:
        store.close()


def test_restart_gives_up_soon_while_a_reader_stays_and_releases_the_lock(
    tmp_path: Path,
) -> None:
    db = tmp_path / "b.db"
    store = SqliteStore(db, autocheckpoint=False)
    try:
        fill(store, 5)
        reader = sqlite3.connect(db, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM messages").fetchone()  # a read that stays open
        fill(store, 1)
        cp = WalCheckpointer(db, restart_wait_ms=20)
        conn = cp.connect()
        t0 = time.monotonic()
        assert not cp.restart(conn)
        assert time.monotonic() - t0 < 0.5 and cp.last_duration_s < 0.5
        assert cp.busy == 1 and cp.restarts == 0
        fill(store, 1, size=1)  # the write lock is free again
        reader.execute("COMMIT")
        assert cp.restart(conn) and cp.busy == 1 and cp.restarts == 1
        reader.close()
        conn.close()
    finally:
        store.close()


def test_the_checkpointer_keeps_the_wal_bounded_under_unbroken_writes_and_reads(
    tmp_path: Path,
) -> None:
    """Writers and readers that never pause: PASSIVE passes alone never catch up (the WAL is
    never all copied when a writer begins), so the WAL grows as long as they go on; past
    ``wal_checkpoint_bytes`` a restart under the write lock starts it again."""

    def run(limit: int, name: str) -> tuple[int, WalCheckpointer]:
        db = tmp_path / name
        store = SqliteStore(db, autocheckpoint=False)
        reader = SqliteStore(db, autocheckpoint=False)
        cp = WalCheckpointer(db, wal_checkpoint_bytes=limit, poll_s=0.005, interval_s=0.05)
        cp.start()
        stop = threading.Event()

        def write() -> None:
            while not stop.is_set():
                store.insert_messages([make_msg(content=b"x" * 140) for _ in range(5)])

        def read() -> None:
            while not stop.is_set():
                reader.count_unfinished()
                reader.list_messages(limit=20)
                time.sleep(0.001)

        threads = [threading.Thread(target=write), threading.Thread(target=read)]
        for t in threads:
            t.start()
        wal_max = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                wal_max = max(wal_max, (tmp_path / f"{name}-wal").stat().st_size)
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join(5)
        cp.stop()
        reader.close()
        store.close()
        return wal_max, cp

    limit = 256 * 1024
    bounded, cp = run(limit, "bounded.db")
    unbounded, cp_off = run(1 << 40, "unbounded.db")  # a limit never reached: PASSIVE only
    assert cp.restarts > 3 and cp.failures == 0
    assert bounded <= limit + 2 * 1024 * 1024, bounded
    assert unbounded > 4 * bounded and cp_off.restarts == 0, (unbounded, bounded)
