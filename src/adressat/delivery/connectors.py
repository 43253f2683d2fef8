"""The connectors of a running node (issue 11): one SMPP client per configured connector,
kept in step with the store.

:meth:`ConnectorSet.refresh` reads the connector table (small; about once a second) and
starts the new ones, stops (with a clean unbind) the removed ones and hands a changed
configuration to the running client (``reconfigure``: window and throughput at once, a new
address or credentials re-bind). :meth:`ConnectorSet.write_statuses` writes what each client
says of itself (bound, connecting, down since, window in use, counts) for ``adressat
connector list``, when it changed and at least every ``status_s_max`` seconds, so a reader
can tell a running node's fresh figures from a stopped node's last ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from adressat.core.health import EpisodeKind
from adressat.core.model import ConnectorConfig, ConnectorStatus
from adressat.observe.health import EpisodeRecorder
from adressat.store.commit import GroupCommitter

__all__ = ["ConnectorSet", "Client"]

log = logging.getLogger("adressat.interconnect")

class Client(Protocol):
    """What the set needs of one client (``transport.smpp_client.SmppConnector``)."""

    @property
    def bound(self) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self, timeout_s: float = 5.0) -> None: ...
    def reconfigure(self, config: ConnectorConfig) -> None: ...
    def status(self) -> ConnectorStatus: ...


class ConnectorSet:
    def __init__(
        self,
        committer: GroupCommitter,
        make: Callable[[ConnectorConfig], Client],
        *,
        clock: Callable[[], float],
        status_s_max: float = 2.0,
        health: EpisodeRecorder | None = None,
        down_s_max: float = 10.0,
    ) -> None:
        self.committer = committer
        self.health = health
        self.down_s_max = down_s_max
        self._bound: dict[str, bool] = {}
        self._down_since: dict[str, float] = {}
        self.make = make
        self.clock = clock
        self.status_s_max = status_s_max
        self._clients: dict[str, Client] = {}
        self._configs: dict[str, ConnectorConfig] = {}
        self._written: dict[str, ConnectorStatus] = {}
        self._written_at = 0.0

    def get(self, name: str) -> Client | None:
        return self._clients.get(name)

    def config(self, name: str) -> ConnectorConfig | None:
        return self._configs.get(name)

    def payload_allowed(self, name: str) -> bool:
        cfg = self._configs.get(name)
        return cfg is not None and cfg.payload

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._clients))

    async def refresh(self) -> None:
        """Bring the running clients in step with the store's connector table."""
        configs = {c.name: c for c in await self.committer.read(lambda s: s.list_connectors())}
        for name in [n for n in self._clients if n not in configs]:
            client = self._clients.pop(name)
            self._configs.pop(name, None)
            log.info("connector removed", extra={"connector": name})
            await client.stop()
        for name, cfg in configs.items():
            old = self._configs.get(name)
            if old is None:
                client = self.make(cfg)
                self._clients[name] = client
                self._configs[name] = cfg
                log.info("connector started", extra={"connector": name, "peer":
                                                      f"{cfg.host}:{cfg.port}", "bind": cfg.bind})
                await client.start()
            elif _changed(old, cfg):
                self._configs[name] = cfg
                log.info("connector changed", extra={"connector": name})
                self._clients[name].reconfigure(cfg)

    def _watch(self, statuses: list[ConnectorStatus], now: float) -> None:
        """Heal or shout: a connector going down is a WARNING at once, one down past
        ``down_s_max`` opens a ``connector_down`` episode (node not ready, ``status`` and
        ``audit`` say so) until every connector is bound again."""
        for st in statuses:
            bound = st.state == "bound"
            if bound:
                self._down_since.pop(st.name, None)
            else:  # since the first look that found it unbound (its state flips with retries)
                self._down_since.setdefault(st.name, now)
            was = self._bound.get(st.name)
            if was and not bound:
                log.warning("connector down", extra={"connector": st.name, "state": st.state,
                                                     "reason": st.detail})
            elif was is False and bound:
                log.info("connector up again", extra={"connector": st.name})
            self._bound[st.name] = bound
        for name in [n for n in self._bound if n not in self._clients]:
            del self._bound[name]
            self._down_since.pop(name, None)
        if self.health is None:
            return
        down = sorted(name for name, since in self._down_since.items()
                      if now - since > self.down_s_max)
        if down:
            self.health.failed(EpisodeKind.CONNECTOR_DOWN, ",".join(down)[:120])
        elif self.health.is_open(EpisodeKind.CONNECTOR_DOWN):
            self.health.recovered(EpisodeKind.CONNECTOR_DOWN)

    async def write_statuses(self) -> None:
        now = self.clock()
        statuses = [replace(c.status(), updated_at=now) for c in self._clients.values()]
        self._watch(statuses, now)
        fresh = now - self._written_at >= self.status_s_max
        changed = [s for s in statuses
                   if replace(s, updated_at=0.0) != replace(
                       self._written.get(s.name, s), updated_at=0.0) or s.name not in
                   self._written]
        if not changed and not fresh:
            return
        todo = statuses if fresh else changed
        await self.committer.run(lambda st: st.put_connector_statuses(todo))
        for s in todo:
            self._written[s.name] = s
        if fresh:
            self._written_at = now

    async def stop(self) -> None:
        """Every client unbinds and closes; their last status is written as stopped."""
        for client in list(self._clients.values()):
            await client.stop()
        try:
            await self.write_statuses_now()
        except Exception as e:  # noqa: BLE001 - the store may be gone at a stop
            log.warning("connector status not written at stop",
                        extra={"error_type": type(e).__name__})

    async def write_statuses_now(self) -> None:
        self._written_at = 0.0
        await self.write_statuses()


def _changed(old: ConnectorConfig, new: ConnectorConfig) -> bool:
    return replace(old, created_at=0.0, updated_at=0.0) != replace(
        new, created_at=0.0, updated_at=0.0)
