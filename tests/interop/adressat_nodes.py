"""adressat nodes for the interop tests: ``adressat account add`` (and any other CLI setup:
``connector add``, ``route add``, ``np load`` ...) in a fresh home, then ``adressat run``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adressat.testing.server import ServerProcess, adressat


@dataclass
class Node:
    """A running adressat node with one ESME account (``system_id``/``password``)."""

    server: ServerProcess
    home: Path
    system_id: str
    password: str

    @property
    def port(self) -> int:
        return self.server.port


def start_node(home: Path, accounts: Sequence[tuple[str, str]],
               setup: Sequence[Sequence[str]] = (), run_args: Sequence[str] = ()
               ) -> ServerProcess:
    """``adressat account add NAME --password PW`` for each account, then each CLI command of
    ``setup`` (e.g. ``["connector", "add", "jasmin", "--host", ...]``), each of which must
    exit 0, then ``adressat run --quiet-network *run_args``."""
    for name, pw in accounts:
        out = adressat(home, "account", "add", name, "--password", pw)
        assert out.returncode == 0, out.stderr
    for args in setup:
        out = adressat(home, *args)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return ServerProcess(home, None, "--quiet-network", *run_args).start()
