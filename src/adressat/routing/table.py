"""The routes of a running node (issue 11): the operator's routes from the store, the rules
file, the own network and the portability table, as one :class:`~adressat.routing.router.Router`
rebuilt whenever one of them changes.

Both processes hold one: the SMPP process routes at ingress (``route``), the delivery process
needs a route's kind and connectors (``kind``, ``via``). Each polls the store's route list
about once a second (``update``) and the portability snapshot (``refresh``), so a route added
with ``adressat route add`` or a table loaded with ``adressat np load`` takes effect within
two seconds, without a restart. The Router itself stays immutable; only the reference moves.

Order of the rules: the operator's routes (``adressat route add``, by position), then the
rules file (``--routing-rules``), then the built-in own-network route and ``unroutable``.
A route with several prefixes is one rule per prefix, same name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from adressat.core.model import RouteConfig
from adressat.routing.portability import PortabilityTable
from adressat.routing.router import Route, Router

__all__ = ["RoutingTable", "rules_of"]


def rules_of(routes: Sequence[RouteConfig]) -> list[dict[str, Any]]:
    """The router rules of the operator's routes, in match order."""
    out: list[dict[str, Any]] = []
    for r in sorted(routes, key=lambda r: (r.position, r.name)):
        base: dict[str, Any] = {"route": r.name, "kind": "smpp"}
        if r.operator:
            base["operator"] = r.operator
        if r.account:
            base["account"] = r.account
        if r.window:
            base["window"] = r.window
        for prefix in r.prefixes or ("",):
            rule = dict(base)
            if prefix:
                rule["prefix"] = prefix
            out.append(rule)
    return out


class RoutingTable:
    def __init__(
        self,
        own_operator: str,
        own_ranges: Iterable[tuple[str | int, str | int]],
        file_rules: Sequence[Mapping[str, Any]] = (),
        *,
        portability: Callable[[float], PortabilityTable | None] | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.own_operator = own_operator
        self.own_ranges = tuple(own_ranges)
        self.file_rules = tuple(dict(r) for r in file_rules)
        self._portability_source = portability
        self._portability: PortabilityTable | None = None
        self._timezone = timezone
        self._routes: tuple[RouteConfig, ...] = ()
        self._by_name: dict[str, RouteConfig] = {}
        self._netsim = {"netsim"} | {str(r.get("route")) for r in self.file_rules
                                     if r.get("kind") == "netsim"}
        self.router = self._build()
        self.rebuilt = 0

    def _build(self) -> Router:
        return Router(
            self.own_operator, self.own_ranges, self._portability,
            [*rules_of(self._routes), *self.file_rules], timezone=self._timezone,
        )

    # --- keeping it current -----------------------------------------------------------
    def update(self, routes: Sequence[RouteConfig]) -> bool:
        """The store's routes now; True when they changed (the router was rebuilt)."""
        new = tuple(sorted(routes, key=lambda r: (r.position, r.name)))
        if new == self._routes:
            return False
        self._routes = new
        self._by_name = {r.name: r for r in new}
        self.router = self._build()
        self.rebuilt += 1
        return True

    def refresh(self, now: float) -> bool:
        """The portability table now (its source reloads a changed snapshot); True when it
        changed."""
        if self._portability_source is None:
            return False
        table = self._portability_source(now)
        if table is self._portability:
            return False
        self._portability = table
        self.router = self._build()
        self.rebuilt += 1
        return True

    # --- answers ------------------------------------------------------------------------
    def route(self, destination_e164: str, account: str, now: float) -> Route:
        return self.router.route(destination_e164, account, now)

    def operator_for(self, e164: str) -> str:
        return self.router.operator_for(e164)

    def kind(self, name: str) -> str:
        """The adapter a route's messages go to: ``netsim``, ``smpp`` or ``none``."""
        if name in self._netsim:
            return "netsim"
        if name in self._by_name:
            return "smpp"
        return "none"

    def via(self, name: str) -> tuple[str, ...]:
        """A route's connectors in failover order (none for a route that is not the
        operator's)."""
        r = self._by_name.get(name)
        return () if r is None else r.via

    @property
    def routes(self) -> tuple[RouteConfig, ...]:
        return self._routes
