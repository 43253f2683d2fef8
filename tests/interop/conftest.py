"""Session fixtures: real third-party peers on 127.0.0.1, free ports, logs in tmp dirs.
How to use each one: README.md in this folder."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import peer_jasmin as jasmin_mod  # noqa: E402
import peer_kannel as kannel_mod  # noqa: E402
import peer_osmo as osmo_mod  # noqa: E402
from adressat_nodes import Node, start_node  # noqa: E402
from peers import Stack, need  # noqa: E402


def _record(workdir: Path, startup: object) -> None:
    """Startup seconds, kept beside the logs (``startup.json``)."""
    (workdir / "startup.json").write_text(json.dumps(startup) + "\n")


@pytest.fixture
def node_factory(tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[Callable[..., Node]]:
    """``node_factory(accounts=[(name, pw)], setup=[[cli args], ...], run_args=[...])`` starts
    an adressat node in a fresh home (the first account is the Node's system_id/password);
    every node it started is stopped after the test. For the connector tests: ``setup`` holds
    the ``connector add`` / ``route add`` commands (README.md)."""
    started: list[Node] = []

    def make(accounts: Sequence[tuple[str, str]] = (("acme", "pw1"),),
             setup: Sequence[Sequence[str]] = (), run_args: Sequence[str] = ()) -> Node:
        home = tmp_path_factory.mktemp("node")
        srv = start_node(home, accounts, setup, run_args)
        node = Node(srv, home, accounts[0][0], accounts[0][1])
        started.append(node)
        return node

    try:
        yield make
    finally:
        for n in reversed(started):
            n.server.stop()


@pytest.fixture(scope="session")
def kannel_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The adressat node Kannel's bearerbox binds to (account ``kannel``/``kannelpw``)."""
    home = tmp_path_factory.mktemp("kannel-node")
    srv = start_node(home, [("kannel", "kannelpw")])
    try:
        yield Node(srv, home, "kannel", "kannelpw")
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def kannel(kannel_node: Node, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[kannel_mod.Kannel]:
    """Kannel (bearerbox + smsbox) bound as a transceiver ESME to ``kannel_node``."""
    need(kannel_mod.BEARERBOX, kannel_mod.SMSBOX)
    stack = Stack(tmp_path_factory.mktemp("kannel"))
    try:
        k = kannel_mod.start(stack, smsc_port=kannel_node.port,
                             system_id=kannel_node.system_id, password=kannel_node.password)
        _record(stack.workdir, {"total_s": k.startup_s})
        yield k
    finally:
        stack.close()


@pytest.fixture(scope="session")
def jasmin_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The adressat node behind Jasmin: Jasmin's smppc connector binds to it as ESME
    ``jasmin``/``jasminpw``; what Jasmin forwarded is in its inbox (netsim numbers)."""
    home = tmp_path_factory.mktemp("jasmin-upstream")
    srv = start_node(home, [("jasmin", "jasminpw")])
    try:
        yield Node(srv, home, "jasmin", "jasminpw")
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def jasmin(jasmin_upstream: Node, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[jasmin_mod.Jasmin]:
    """Jasmin 0.11.1 (with RabbitMQ, Redis): SMPP server for ``jasmin_mod.USER``, every MT
    routed to ``jasmin_upstream``."""
    need(str(jasmin_mod.JASMIND), jasmin_mod.RABBITMQ_SERVER, jasmin_mod.REDIS_SERVER,
         jasmin_mod.EPMD)
    stack = Stack(tmp_path_factory.mktemp("jasmin"))
    try:
        j = jasmin_mod.start(stack, upstream_port=jasmin_upstream.port,
                             upstream_system_id=jasmin_upstream.system_id,
                             upstream_password=jasmin_upstream.password)
        _record(stack.workdir, j.startup_s)
        yield j
    finally:
        stack.close()


@pytest.fixture(scope="session")
def osmo_msc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[osmo_mod.OsmoMsc]:
    """OsmoMSC's SMSC (with OsmoSTP, OsmoHLR): SMPP server for ``osmo_mod.SYSTEM_ID``."""
    need(osmo_mod.OSMO_MSC, osmo_mod.OSMO_STP, osmo_mod.OSMO_HLR)
    if not osmo_mod.kernel_has_sctp():
        need(osmo_mod.GCC)
    stack = Stack(tmp_path_factory.mktemp("osmo"))
    try:
        o = osmo_mod.start(stack)
        _record(stack.workdir, o.startup_s)
        yield o
    finally:
        stack.close()

