"""The store's write lock with a bounded wait (store/wlock.py), against real flocks.

The holder is another open file description of the same file (a flock of another process,
as far as the lock is concerned), or another process where it matters that it is one.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from store_helpers import make_msg

from adressat.store.base import StoreUnavailable
from adressat.store.sqlite import SqliteStore
from adressat.store.wlock import WriteLock, WriteLockTimeout


def _holder(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _free(path: Path) -> bool:
    """Whether a third description could take the lock now (and gives it back)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing the description lets its flock go
    return True


def test_uncontended_acquire_and_release(tmp_path: Path) -> None:
    path = tmp_path / "db.wlock"
    lock = WriteLock(str(path), 0.5)
    try:
        lock.acquire()
        assert not _free(path)
        lock.release()
        assert _free(path)
    finally:
        lock.close()


def test_a_wait_past_the_bound_fails_and_leaves_the_lock_to_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "db.wlock"
    other = _holder(path)
    lock = WriteLock(str(path), 0.3)
    try:
        t0 = time.monotonic()
        with pytest.raises(WriteLockTimeout) as e:
            lock.acquire()
        waited = time.monotonic() - t0
        assert 0.25 <= waited < 2.0, waited
        assert isinstance(e.value, StoreUnavailable) and "0.3 s" in str(e.value)
        assert lock.timeouts == 1
        # the holder lets go: the helper still blocked in flock takes it for nobody, and
        # gives it back at once
        os.close(other)
        deadline = time.monotonic() + 2.0
        while lock._blocked and time.monotonic() < deadline:  # the helper is done with it
            time.sleep(0.01)
        assert not lock._blocked
        assert _free(path)
        lock.acquire()  # and the next caller gets it
        assert not _free(path)
        lock.release()
    finally:
        lock.close()


def test_a_waiter_is_woken_when_the_holder_lets_go_not_at_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "db.wlock"
    other = _holder(path)
    lock = WriteLock(str(path), 5.0)
    threading.Timer(0.2, os.close, (other,)).start()
    try:
        t0 = time.monotonic()
        lock.acquire()
        waited = time.monotonic() - t0
        assert 0.15 <= waited < 1.0, waited
        assert not _free(path)  # it holds it now
        lock.release()
    finally:
        lock.close()


def test_a_caller_after_a_timeout_waits_for_the_helper_already_in_flock(tmp_path: Path) -> None:
    """The helper's flock from the first (given up) wait is the one the second caller gets:
    it must not take a lock that the helper then lets go under it."""
    path = tmp_path / "db.wlock"
    other = _holder(path)
    lock = WriteLock(str(path), 0.2)
    try:
        with pytest.raises(WriteLockTimeout):
            lock.acquire()
        lock.wait_s = 3.0
        threading.Timer(0.2, os.close, (other,)).start()
        lock.acquire()
        time.sleep(0.2)  # a helper that let go of it now would show here
        assert not _free(path)
        lock.release()
        assert _free(path)
    finally:
        lock.close()


def test_a_store_write_behind_a_stopped_process_fails_as_unavailable(tmp_path: Path) -> None:
    """A real second process holds the lock and is stopped: the write is refused after the
    bound, writes nothing, and the next one goes through once the process is gone."""
    db = tmp_path / "a.db"
    store = SqliteStore(db, lock_wait_s=0.3)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, signal, sys; fd = os.open(sys.argv[1], os.O_RDWR);"
         " fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True);"
         " os.kill(os.getpid(), signal.SIGSTOP)", str(db) + ".wlock"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        m = make_msg()
        with pytest.raises(StoreUnavailable):
            store.insert_messages([m])
        assert store.get_message(m.id) is None
        holder.kill()
        holder.wait(5)
        store.insert_messages([m])
        assert store.get_message(m.id) is not None
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)
        store.close()


def test_a_holder_that_takes_it_again_keeps_it_until_its_last_release(tmp_path: Path) -> None:
    path = tmp_path / "db.wlock"
    lock = WriteLock(str(path), 0.2)
    try:
        lock.acquire(bounded=False)
        lock.acquire()
        lock.release()
        assert not _free(path)  # the inner release leaves the outer hold
        lock.release()
        assert _free(path)
    finally:
        lock.close()


_OPEN_AT_ONCE = """
import sys, time
from adressat.store.sqlite import SqliteStore
t = float(sys.argv[2])
while time.time() < t:
    time.sleep(0.0002)
SqliteStore(sys.argv[1], lock_wait_s=0.05).close()
"""


def test_processes_opening_a_new_database_at_once_all_open_it(tmp_path: Path) -> None:
    """Two connections turning one new file to WAL at once deadlock, and SQLite answers one
    "database is locked" without its busy wait (12 of 100 three-way opens failed before the
    opening steps held the write lock). Real processes, started to open at the same instant;
    the opening waits past lock_wait_s, as a migration may take longer."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for round_ in range(8):
        db = tmp_path / f"r{round_}.db"
        at = time.time() + 0.6
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT_ONCE, str(db), str(at)],
                                  env=env, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
        s = SqliteStore(db)
        assert s.pragma("journal_mode") == "wal"
        s.close()
