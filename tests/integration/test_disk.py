"""Bounded disk against the running server (docs/architecture.md, "Disk: WAL and retention"):
the WAL stays under its limit under sustained load, text and then records go at their
retention (and nothing that is not final), and every file and directory the node and the CLI
create in the data directory is its owner's only."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from e2e_kit import wait_for

from adressat.smpp.times import format_relative
from adressat.store.sqlite import SqliteStore
from adressat.testing.esme import EsmeClient
from adressat.testing.load import LoadClient
from adressat.testing.server import ServerProcess, adressat, audit

pytestmark = pytest.mark.slow

FIRST = 46701000000
MIB = 1024 * 1024


def _account(home: Path, name: str = "disk") -> None:
    out = adressat(home, "account", "add", name, "--password", name)
    assert out.returncode == 0, out.stderr


class Sampler:
    """The size of one file every ``step_s``, on a thread of its own."""

    def __init__(self, path: Path, step_s: float = 0.05) -> None:
        self.path = path
        self.step_s = step_s
        self.sizes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.step_s):
            try:
                self.sizes.append(self.path.stat().st_size)
            except FileNotFoundError:
                self.sizes.append(0)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _load(port: int, n: int, rate_per_s: float, account: str = "disk") -> tuple[int, int]:
    """n submits at a rate, receipts awaited: (accepted, receipts missing)."""

    async def run() -> tuple[int, int]:
        c = await LoadClient.connect("127.0.0.1", port, account, account)
        dests = [str(FIRST + i % 9000) for i in range(n)]
        r = await c.submit_all(dests, registered_delivery=1, window=100, rate_per_s=rate_per_s)
        missing = await c.wait_receipts(r.message_ids(), timeout_s=60)
        await c.close()
        return len(r.acked()), len(missing)

    return asyncio.run(run())


def test_the_wal_stays_bounded_under_sustained_load(tmp_path: Path) -> None:
    """500 msg/s for 4 s, with receipts (both processes write all along), a 1 MiB limit:
    the -wal file, sampled every 50 ms, never passes the limit plus 2 MiB of slack (what the
    node writes in about 200 ms at this rate: the checkpointer's poll, its PASSIVE pass, the
    wait for the write lock behind the other process's batch). Before, the WAL was restarted
    only by chance and grew to tens of MB in these 4 s."""
    home = tmp_path / "h"
    _account(home)
    limit = 1 * MIB
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "10000",
                       "--wal-checkpoint-bytes", str(limit)) as server:
        with Sampler(home / "adressat.db-wal") as wal:
            accepted, missing = _load(server.port, 2000, 500.0)
    assert accepted == 2000 and missing == 0
    assert len(wal.sizes) > 40
    assert max(wal.sizes) <= limit + 2 * MIB, max(wal.sizes)


@contextmanager
def _db(home: Path) -> Iterator[sqlite3.Connection]:
    """The running node's store, read only (what an operator with a SQLite shell would see)."""
    with closing(sqlite3.connect(f"file:{home / 'adressat.db'}?mode=ro", uri=True)) as conn:
        yield conn


def _rows(home: Path, ids: list[str]) -> dict[str, int]:
    marks = ", ".join("?" * len(ids))
    with _db(home) as c:
        return {
            table: c.execute(f"SELECT COUNT(*) FROM {table} WHERE {col} IN ({marks})",
                             ids).fetchone()[0]
            for table, col in (("messages", "id"), ("attempts", "message_id"),
                               ("receipts", "message_id"), ("deliveries", "message_id"))
        }


def _texts(home: Path, ids: list[str]) -> list[bytes]:
    marks = ", ".join("?" * len(ids))
    with _db(home) as c:
        return [bytes(r[0]) for r in c.execute(
            f"SELECT content FROM messages WHERE id IN ({marks})", ids)]


def test_text_goes_at_the_final_state_and_records_after_their_retention(tmp_path: Path) -> None:
    """``--content-retention 0 --record-retention 3s``: the text of delivered messages is
    gone within a retention pass of their final state, their rows (message, attempts,
    receipt, delivery) a little after 3 s and not before; a message not final keeps all."""
    home = tmp_path / "h"
    _account(home)
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "10000",
                       "--content-retention", "0", "--record-retention", "3s") as server:

        async def submit(items: list[dict[str, object]]) -> list[str]:
            c = EsmeClient("127.0.0.1", server.port, "disk", "disk", window=20)
            await c.connect(timeout_s=10)
            recs = await c.submit_many(items)
            ids = [r.message_id for r in recs if r.message_id]
            wanted = [i for i, it in zip(ids, items, strict=True)
                      if "schedule_delivery_time" not in it]
            missing = await c.wait_receipts(wanted, timeout_s=30)
            await c.close()
            assert len(ids) == len(items) and not missing
            return ids

        later = format_relative(3600)  # scheduled in an hour: not final meanwhile
        [*done, waiting] = asyncio.run(submit(
            [{"dest": str(FIRST + 100 + i), "content": b"secret %d" % i,
              "registered_delivery": 1} for i in range(20)]
            + [{"dest": str(FIRST + 99), "content": b"not yet", "registered_delivery": 1,
                "schedule_delivery_time": later}]
        ))
        final_at = time.time()  # the receipts are in: every one of them is final
        assert wait_for(lambda: set(_texts(home, done)) == {b""}, 5.0)
        assert time.time() - final_at < 2.5
        assert _rows(home, done) == dict.fromkeys(("messages", "attempts", "receipts",
                                                   "deliveries"), 20)  # kept for 3 s
        time.sleep(1.0)
        # a later message, so that the first ones' newest receipt is not the newest one
        asyncio.run(submit([{"dest": str(FIRST + 200), "registered_delivery": 1}]))
        assert wait_for(lambda: not any(_rows(home, done).values()), 10.0)
        assert time.time() - final_at >= 3.0
        # kept, encrypted at rest (issue 13): its row is not empty, and reads as it was sent
        assert _texts(home, [waiting]) != [b""]
        store = SqliteStore(home / "adressat.db")
        try:
            assert store.get_message(waiting).content == b"not yet"  # type: ignore[union-attr]
        finally:
            store.close()
        assert _rows(home, [waiting])["messages"] == 1
    report = audit(home)
    assert report["ok"] and report["misdelivered"] == 0 and report["lost"] == 0
    assert report["inbox_beyond_retention"] >= 20  # what the handsets got, judged no more
    assert report["states"]["ROUTED"] == 1  # type: ignore[index]


def test_every_file_and_directory_in_the_data_directory_is_the_owners_only(
    tmp_path: Path,
) -> None:
    """From a home an older version left 0755 with an 0644 database, after traffic with
    receipts and the CLI's commands: every file 0600 or stricter, every directory 0700."""
    home = tmp_path / "h"
    home.mkdir()
    home.chmod(0o755)
    old = os.umask(0o022)  # what a login shell has: the node must not depend on it
    try:
        _account(home)
        (home / "adressat.db").chmod(0o644)
        with ServerProcess(home, None, "--quiet-network", "--subscribers", "10000") as server:
            accepted, missing = _load(server.port, 50, 200.0)
            assert accepted == 50 and missing == 0
            for args in (("audit", "--json"), ("fault", "list"), ("route", "list"),
                         ("account", "list")):
                assert adressat(home, *args).returncode == 0, args
    finally:
        os.umask(old)
    seen = []
    for path in [home, *sorted(home.rglob("*"))]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        seen.append(path.relative_to(home).as_posix())
        if path.is_dir():
            assert mode == 0o700, (path, oct(mode))
        else:
            assert mode & 0o077 == 0, (path, oct(mode))
    assert {"adressat.db", "adressat.db.wlock", "tag.key", "delivery.lock", "netsim",
            "netsim/inbox.log"} <= set(seen), seen
