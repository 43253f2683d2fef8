from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adressat.store import MemoryStore, SqliteStore, Store


def _memory(tmp_path: Path) -> Store:
    return MemoryStore()


def _sqlite(tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "adressat.db")


# Adding a back end (e.g. "postgres") is one entry here.
BACKENDS: dict[str, Callable[[Path], Store]] = {"memory": _memory, "sqlite": _sqlite}


@pytest.fixture(params=list(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = BACKENDS[request.param](tmp_path)
    yield s
    s.close()
