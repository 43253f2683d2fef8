"""Bounded disk against the running server (docs/architecture.md, "Disk: WAL and retention"):
the WAL stays under its limit under sustained load."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from adressat.testing.load import LoadClient
from adressat.testing.server import ServerProcess, adressat

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
