"""WAL checkpoints off the commit path, and a WAL that stays bounded.

With SQLite's default, the commit that pushes the WAL past 1,000 pages copies it into the
database file and fsyncs it, inside that commit: a submit_sm that happens to land in that
batch waits several milliseconds longer (measured here: commit p99 5.3 ms with autocheckpoint,
2.3 ms without). The serving connections therefore turn automatic checkpoints off
(``SqliteStore(autocheckpoint=False)``) and this thread, on its own connection, runs PASSIVE
checkpoints: they never take the write lock, so writers go on while the pages are copied.

PASSIVE alone let the WAL grow without bound (1.85 GB after 60 s at 300 msg/s). SQLite starts
the WAL again from its beginning only when a writer begins while every frame is copied into the
database *and* no other connection is inside a read transaction; a write transaction is one too,
and two processes commit every millisecond or two. Sampled from the ``-shm`` header during a
load of 300 msg/s: every frame copied in 1 % of the samples, a read mark held in 80 %, one
restart in 10 s. Nothing held a read open for long: the moment simply never comes.

So when the WAL passes ``wal_checkpoint_bytes``: a PASSIVE pass first (it copies what it can
with no lock), then the store's write lock (the ``<db>.wlock`` flock every writer of both
processes takes: they wait for it in order, without SQLite's sleeping busy handler) and a
RESTART checkpoint, which has only the last few frames left to copy and waits a moment for the
readers to leave; the next writer then starts the WAL from its beginning. The file keeps its
size (overwriting a file is cheaper to fsync than growing one: 0.16 against 0.25 ms here) and
is cut back to ``journal_size_limit`` if it ever grew past it.

The locked part runs on the event loop when one is given (``start(loop)``), like the group
committer's batches (docs/architecture.md): a thread that holds the write lock while it waits
for the GIL behind a busy loop holds it for a switch interval longer, each time.

How full the WAL is comes from the wal-index header at the start of the ``-shm`` file
(https://www.sqlite.org/walformat.html: ``mxFrame`` at offset 16, the page size at 14,
``nBackfill`` at 96, two copies of the header to compare): one ``pread``, no lock and no
checkpoint, so it is looked at every ``poll_s``. If it cannot be read, the frame count of the
last PASSIVE pass is used instead. The descriptor is opened once per process and never
closed: closing a descriptor of a file releases every POSIX lock the process holds on it, and
SQLite's connections hold theirs on the ``-shm`` (read marks; the one that tells another
process it is not alone) for as long as they are open.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from adressat.store.wlock import WriteLock, WriteLockTimeout

log = logging.getLogger("adressat.store.checkpoint")

WAL_CHECKPOINT_BYTES_DEFAULT = 16 * 1024 * 1024
_WAL_HEADER_BYTES = 32
_FRAME_HEADER_BYTES = 24
_WAL_INDEX_VERSION = 3007000
_SHM_READ_BYTES = 136  # two WalIndexHdr copies (48 each) and WalCkptInfo up to the locks
_HDR = struct.Struct("=IIIBBHI")  # iVersion, unused, iChange, isInit, bigEndCksum, szPage, mxFrame
_U32 = struct.Struct("=I")


@dataclass(frozen=True, slots=True)
class WalIndex:
    """What the wal-index header says: frames in the WAL, frames already copied, page size."""

    frames: int
    backfilled: int
    page_size: int
    salt: bytes

    @property
    def wal_bytes(self) -> int:
        return _WAL_HEADER_BYTES + self.frames * (self.page_size + _FRAME_HEADER_BYTES) \
            if self.frames else 0


_SHM_FDS: dict[tuple[int, int], int] = {}  # (device, inode) of a -shm file -> descriptor
_SHM_FDS_LOCK = threading.Lock()


def shm_descriptor(path: str) -> int:
    """A read-only descriptor of a ``-shm`` file, one per file and process, never closed
    (see the module docstring). Raises OSError if there is no such file."""
    st = os.stat(path)
    with _SHM_FDS_LOCK:
        fd = _SHM_FDS.get((st.st_dev, st.st_ino))
        if fd is None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            opened = os.fstat(fd)  # the file it is (replaced meanwhile: that one's, kept)
            fd = _SHM_FDS.setdefault((opened.st_dev, opened.st_ino), fd)
        return fd


def read_wal_index(fd: int) -> WalIndex | None:
    """The wal-index header of an open ``-shm`` file, or None (not initialised, another
    format, or a header being written while it was read three times)."""
    for _ in range(3):
        try:
            raw = os.pread(fd, _SHM_READ_BYTES, 0)
        except OSError:
            return None
        if len(raw) < _SHM_READ_BYTES:
            return None
        if raw[:48] != raw[48:96]:
            continue  # a writer is between its two copies
        version, _unused, _change, is_init, _big, page, frames = _HDR.unpack_from(raw, 0)
        if version != _WAL_INDEX_VERSION or not is_init:
            return None
        page_size = 65536 if page == 1 else page
        return WalIndex(frames, _U32.unpack_from(raw, 96)[0], page_size, raw[32:40])
    return None


@dataclass(frozen=True, slots=True)
class CheckpointStats:
    """The figures another part exports as metrics; units last."""

    wal_bytes: int  # the WAL's frames now (what the next restart starts again from)
    wal_file_bytes: int  # the -wal file's size (its high-water mark; reused from its start)
    db_bytes: int
    wal_checkpoint_bytes: int  # the limit
    checkpoints_total: int  # PASSIVE passes
    restarts_total: int  # RESTART checkpoints that completed
    busy_total: int  # RESTARTs that could not complete (a reader stayed, another checkpointer)
    failures_total: int  # checkpoints that raised
    last_duration_s: float  # write lock held by the last restart
    max_duration_s: float  # the longest of them
    last_wait_s: float  # how long the last restart waited for the write lock


class WalCheckpointer:
    def __init__(
        self,
        path: str | Path,
        *,
        interval_s: float = 0.25,
        wal_checkpoint_bytes: int = WAL_CHECKPOINT_BYTES_DEFAULT,
        poll_s: float = 0.01,
        restart_wait_ms: int = 20,
        retry_s_max: float = 1.0,
        lock_wait_s: float | None = None,
    ) -> None:
        """``interval_s``: PASSIVE passes; ``poll_s``: how often the WAL's size is looked at;
        ``restart_wait_ms``: how long a RESTART under the write lock waits for readers to
        leave before it gives up (busy; tried again after a backoff up to ``retry_s_max``);
        ``lock_wait_s``: how long it waits for the write lock (then busy too; None: for ever;
        store/wlock.py)."""
        if interval_s <= 0 or poll_s <= 0:
            raise ValueError("interval_s and poll_s must be > 0")
        if wal_checkpoint_bytes < 64 * 1024:
            raise ValueError("wal_checkpoint_bytes must be >= 65536")
        self.path = str(path)
        self.interval_s = interval_s
        self.wal_checkpoint_bytes = wal_checkpoint_bytes
        self.poll_s = poll_s
        self.restart_wait_ms = restart_wait_ms
        self.retry_s_max = retry_s_max
        self.lock_wait_s = lock_wait_s
        self._wlock: WriteLock | None = None  # opened at the first RESTART, closed at the end
        self.checkpoints = 0
        self.failures = 0
        self.restarts = 0
        self.busy = 0
        self.last_wal_frames = 0
        self.last_duration_s = 0.0
        self.max_duration_s = 0.0
        self.last_wait_s = 0.0
        self._page_size = 4096
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="adressat-wal-checkpoint",
                                        daemon=True)
        self._wal_over_logged = False

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> WalCheckpointer:
        """``loop``: run the part under the write lock there (the serving process's loop)."""
        self._loop = loop
        self._thread.start()
        return self

    # --- the figures ---------------------------------------------------------------------------
    def wal_index(self) -> WalIndex | None:
        try:
            fd = shm_descriptor(self.path + "-shm")
        except OSError:
            return None
        return read_wal_index(fd)

    def wal_bytes(self) -> int:
        idx = self.wal_index()
        if idx is not None:
            return idx.wal_bytes
        frames = self.last_wal_frames
        return _WAL_HEADER_BYTES + frames * (self._page_size + _FRAME_HEADER_BYTES) \
            if frames else 0

    def stats(self) -> CheckpointStats:
        def size(p: str) -> int:
            try:
                return os.stat(p).st_size
            except OSError:
                return 0

        return CheckpointStats(
            wal_bytes=self.wal_bytes(),
            wal_file_bytes=size(self.path + "-wal"),
            db_bytes=size(self.path),
            wal_checkpoint_bytes=self.wal_checkpoint_bytes,
            checkpoints_total=self.checkpoints,
            restarts_total=self.restarts,
            busy_total=self.busy,
            failures_total=self.failures,
            last_duration_s=self.last_duration_s,
            max_duration_s=self.max_duration_s,
            last_wait_s=self.last_wait_s,
        )

    # --- checkpoints ---------------------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # only a RESTART waits (for readers to leave, under the write lock): briefly
        conn.execute(f"PRAGMA busy_timeout = {int(self.restart_wait_ms)}")
        self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        return conn

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, frames in the WAL, frames copied)."""
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        self.last_wal_frames = int(row[1])
        return int(row[0]), int(row[1]), int(row[2])

    def restart(self, conn: sqlite3.Connection) -> bool:
        """Under the store's write lock, a RESTART checkpoint: True if it completed (the next
        writer starts the WAL from its beginning). Waits for the lock up to ``lock_wait_s``
        (False, busy, past it)."""
        if self._wlock is None:
            self._wlock = WriteLock(self.path + ".wlock", self.lock_wait_s)
        wlock = self._wlock
        t0 = time.perf_counter()
        try:
            wlock.acquire()
        except WriteLockTimeout:
            self.busy += 1
            self.last_wait_s = time.perf_counter() - t0
            return False
        t1 = time.perf_counter()
        try:
            row = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            row = (1, -1, -1)  # another checkpointer, or a writer outside the lock
        finally:
            wlock.release()
            t2 = time.perf_counter()
        self.last_wait_s = t1 - t0
        self.last_duration_s = t2 - t1
        self.max_duration_s = max(self.max_duration_s, self.last_duration_s)
        if int(row[0]):
            self.busy += 1
            return False
        self.restarts += 1
        self.last_wal_frames = int(row[1])
        return True

    def _restart_on_loop(self, conn: sqlite3.Connection) -> bool:
        loop = self._loop
        if loop is None:
            return self.restart(conn)
        done = threading.Event()
        result: list[bool] = []
        errors: list[BaseException] = []

        def locked() -> None:
            try:
                result.append(self.restart(conn))
            except BaseException as e:  # noqa: BLE001 - handed back to the thread
                errors.append(e)
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(locked)
        except RuntimeError:  # the loop is closed: the node is stopping
            return False
        # the thread waits for the loop (which runs it between two of its turns); a closed
        # loop never will (the connection is not closed under a restart still running)
        while not done.wait(0.1):
            if loop.is_closed():
                return False
        if errors:
            raise errors[0]
        return bool(result and result[0])

    def _run(self) -> None:
        conn = self.connect()
        try:
            next_passive = time.monotonic() + self.interval_s
            retry_at = 0.0
            backoff_s = self.poll_s
            restarted_salt: bytes | None = None
            while not self._stop.wait(self.poll_s):
                now = time.monotonic()
                try:
                    idx = self.wal_index()
                    wal = idx.wal_bytes if idx is not None else self.wal_bytes()
                    # after a restart the header keeps its frames until the next writer
                    # starts again: not over the limit again until then
                    fresh = idx is None or idx.salt != restarted_salt or \
                        idx.backfilled < idx.frames
                    if wal >= self.wal_checkpoint_bytes and fresh and now >= retry_at:
                        self.checkpoint(conn)  # copy what can be copied without the lock
                        if self._restart_on_loop(conn):
                            after = self.wal_index()
                            restarted_salt = after.salt if after is not None else None
                            backoff_s = self.poll_s
                            self._wal_over_logged = False
                        else:
                            backoff_s = min(self.retry_s_max, backoff_s * 2)
                            retry_at = time.monotonic() + backoff_s
                            self._shout_if_far_over(wal)
                        next_passive = time.monotonic() + self.interval_s
                    elif now >= next_passive:
                        self.checkpoint(conn)
                        next_passive = now + self.interval_s
                except sqlite3.Error as e:
                    self.failures += 1
                    log.error("wal checkpoint failed", extra={
                        "store": str(self.path), "error_type": type(e).__name__,
                        "error_code": getattr(e, "sqlite_errorname", None)})
                    retry_at = time.monotonic() + self.retry_s_max
            try:
                self.checkpoint(conn)  # leave a short WAL behind
            except sqlite3.Error:
                self.failures += 1
        finally:
            conn.close()
            if self._wlock is not None:
                self._wlock.close()
                self._wlock = None

    def _shout_if_far_over(self, wal: int) -> None:
        """Heal or shout: a WAL that stays over its limit (a reader that does not leave)."""
        if wal >= 4 * self.wal_checkpoint_bytes and not self._wal_over_logged:
            self._wal_over_logged = True
            log.error("wal over its limit: restarts busy",
                      extra={"wal_bytes": wal, "wal_checkpoint_bytes": self.wal_checkpoint_bytes,
                             "busy_total": self.busy})

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
