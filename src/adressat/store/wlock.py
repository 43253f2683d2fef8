"""The store's write lock (the ``<db>.wlock`` flock) with a bounded wait.

Every writer of both serving processes takes this lock before ``BEGIN IMMEDIATE``
(store/sqlite.py), and the SMPP process takes it on its event loop (the group committer runs
inline there; so does the WAL checkpointer's RESTART). A plain blocking ``flock`` waits for
ever: a delivery process stopped (SIGSTOP, a debugger, a machine swapping) while it held the
lock froze the SMPP process's loop, and with it the watchdog that would have killed the
stopped process. The node stayed frozen, answering nothing, not even ``/health``, until the
stopped process went on (seen in tests/integration/test_e2e_health.py, one CI run in four).

So a waiter gives up after ``wait_s`` and the write fails as ``StoreUnavailable`` (the
submit is refused with a temporary status and nothing is written; the batch hook opens
``store_unwritable``); the loop goes on, the watchdog kills the silent process, and the
kernel releases its lock.

Why a helper thread and not a poll: a blocked ``flock`` is woken by the kernel the moment the
holder lets go, in the order the waiters came; a poll with ``LOCK_NB`` would add its sleep to
every contended commit and lose the lock to a process that is already blocked in ``flock``.
The uncontended case is one non-blocking ``flock``, as before. When it is contended, the
helper thread blocks in ``flock`` on the same open file description (a flock belongs to the
description, so the caller then holds it) and the caller waits for it with a timeout. A helper
that gets the lock after its caller gave up hands it to the next caller, or lets it go.
"""

from __future__ import annotations

import fcntl
import os
import threading

from adressat.store.base import StoreUnavailable


class WriteLockTimeout(StoreUnavailable):
    """Another process has held the store's write lock for longer than the wait allows."""


class WriteLock:
    """An exclusive flock on ``path``; :meth:`acquire` waits at most ``wait_s`` (None: for
    ever). One caller at a time (the store's own lock serialises them). Held again by its
    holder (the store's opening steps hold it around a transaction of their own), it counts:
    the flock is let go at the last :meth:`release`."""

    def __init__(self, path: str, wait_s: float | None = None) -> None:
        self.path = path
        self.wait_s = wait_s
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.timeouts = 0  # waits given up
        self._cv = threading.Condition(threading.Lock())
        self._blocked = False  # the helper is in flock(LOCK_EX) or hands its result over
        self._want = False  # a caller waits for the helper
        self._got = False  # the helper took the lock for the waiting caller
        self._helper: threading.Thread | None = None
        self._closed = False
        self._depth = 0  # holds by the one caller (0: not held)

    def acquire(self, bounded: bool = True) -> None:
        """Raises :class:`WriteLockTimeout` after ``wait_s``; ``bounded=False`` waits for ever
        whatever ``wait_s`` says."""
        if self._depth:
            self._depth += 1
            return
        self._get(self.wait_s if bounded else None)
        self._depth = 1

    def _get(self, wait_s: float | None) -> None:
        cv = self._cv
        with cv:
            if not self._blocked:
                if self._take_now():
                    return
                if wait_s is None:
                    fcntl.flock(self.fd, fcntl.LOCK_EX)
                    return
                self._blocked = True
                if self._helper is None:
                    self._helper = threading.Thread(target=self._wait_in_flock,
                                                    name="adressat-wlock", daemon=True)
                    self._helper.start()
                cv.notify_all()
            self._want = True
            try:
                if cv.wait_for(lambda: self._got, wait_s):
                    return
            finally:
                self._want = False
                self._got = False
            self.timeouts += 1
        raise WriteLockTimeout(
            f"store write lock held by another process for over {wait_s:g} s")

    def _take_now(self) -> bool:
        """The uncontended case: one non-blocking flock."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        os.close(self.fd)

    def _wait_in_flock(self) -> None:
        cv = self._cv
        while True:
            with cv:
                cv.wait_for(lambda: self._blocked or self._closed)
                if self._closed:
                    return
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            except OSError:  # closed under it
                return
            with cv:
                self._blocked = False
                if self._closed:  # the descriptor's number may belong to another file now
                    return
                if self._want:
                    self._got = True
                    cv.notify_all()
                else:  # the caller gave up: let the others write
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
