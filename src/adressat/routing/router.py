"""The route table and router (DESIGN.md, Routing steps 2-4).

Decision for a normalised destination (E.164 digits without '+'):

1. The operator: the portability table if it knows the number (a ported number or range wins
   over everything), else ``own_operator`` if the number is in ``own_ranges``, else
   ``"unknown"``.
2. Rules, in order, first match wins (see ``RouteRule``): by submitting account, destination
   prefix, resolved operator and time-of-day window. A matching rule names the route.
3. Without a matching rule: own operator -> ``Route("netsim", "netsim", own)``; another
   operator -> its connector from ``connectors`` (kind "smpp"), else ``default_connector``,
   else ``Route("unroutable", "none", operator)``: the SMSC ends those UNDELIVERABLE with a
   clear receipt error until interconnect exists.

Rules are a small config structure, a list of dicts, validated at construction::

    rules = [
        # all traffic of account "bank" to Norwegian numbers through hub-b
        {"account": "bank", "prefix": "47", "route": "hub-b"},
        # at night, everything to operator tele2 through the backup connector
        {"operator": "tele2", "window": "22:00-06:00", "route": "tele2-backup"},
        # block a prefix (route kind "none": UNDELIVERABLE)
        {"prefix": "4690", "route": "blocked", "kind": "none"},
    ]

Portability overrides the numbering plan both ways: a number the portability table lists as
a single ported number (ported in or out; its ranges are the numbering plan) is routed by
the operator serving it now, so a rule that names only a prefix (a numbering-plan rule) does
not match it; rules that also name an operator, an account or a time window are deliberate
overrides (DESIGN.md, Routing 3) and do.
A number ported into the own network therefore goes to netsim whatever prefix rules say, and
a number of the own range ported out goes to its operator's route.

Keys: ``route`` (required, route name), ``kind`` ("smpp" default, "netsim", "none"),
``account`` (exact system id / API account; absent or "*" = any), ``prefix`` (digits; absent =
any), ``operator`` (resolved operator; absent = any), ``window`` ("HH:MM-HH:MM", start
inclusive, end exclusive, may wrap midnight; evaluated in the router's ``timezone``).
Unknown keys are refused (a typo must not silently widen a rule).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from adressat.routing.portability import PortabilityTable

__all__ = ["Route", "RouteKind", "RouteRule", "Router", "RuleError", "UNKNOWN_OPERATOR"]

RouteKind = Literal["netsim", "smpp", "none"]
_KINDS: tuple[str, ...] = ("netsim", "smpp", "none")
UNKNOWN_OPERATOR = "unknown"
_RULE_KEYS = frozenset({"route", "kind", "account", "prefix", "operator", "window"})


class RuleError(ValueError):
    """A routing rule or router configuration is invalid."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a message goes: ``name`` (connector or "netsim"/"unroutable"), ``kind`` (which
    adapter), and ``operator`` (who serves the destination; for attribution)."""

    name: str
    kind: RouteKind
    operator: str


@dataclass(frozen=True, slots=True)
class RouteRule:
    route: str
    kind: RouteKind = "smpp"
    account: str | None = None
    prefix: str = ""
    operator: str | None = None
    window_min: tuple[int, int] | None = None  # (start, end) minutes after local midnight

    @classmethod
    def from_dict(cls, index: int, spec: Mapping[str, Any]) -> RouteRule:
        where = f"rule {index}"
        if not isinstance(spec, Mapping):
            raise RuleError(f"{where}: not a mapping")
        unknown = set(spec) - _RULE_KEYS
        if unknown:
            raise RuleError(f"{where}: unknown keys {sorted(unknown)}")
        route = spec.get("route")
        if not isinstance(route, str) or not route:
            raise RuleError(f"{where}: 'route' must be a non-empty string")
        kind = spec.get("kind", "smpp")
        if kind not in _KINDS:
            raise RuleError(f"{where}: 'kind' must be one of {list(_KINDS)}")
        account = spec.get("account")
        if account == "*":
            account = None
        if account is not None and (not isinstance(account, str) or not account):
            raise RuleError(f"{where}: 'account' must be a non-empty string")
        prefix = spec.get("prefix", "")
        if isinstance(prefix, str) and prefix.startswith("+"):
            prefix = prefix[1:]
        if not isinstance(prefix, str) or (prefix and not prefix.isdigit()):
            raise RuleError(f"{where}: 'prefix' must be digits")
        operator = spec.get("operator")
        if operator is not None and (not isinstance(operator, str) or not operator):
            raise RuleError(f"{where}: 'operator' must be a non-empty string")
        window = spec.get("window")
        window_min = _parse_window(where, window) if window is not None else None
        return cls(route, kind, account, prefix, operator, window_min)

    @property
    def plan_only(self) -> bool:
        """Only a prefix: a numbering-plan rule, which portability overrides."""
        return bool(self.prefix) and self.operator is None and self.account is None \
            and self.window_min is None

    def matches(self, destination: str, account: str, operator: str, minute: int) -> bool:
        if self.account is not None and account != self.account:
            return False
        if not destination.startswith(self.prefix):
            return False
        if self.operator is not None and operator != self.operator:
            return False
        if self.window_min is not None:
            start, end = self.window_min
            if start <= end:
                return start <= minute < end
            return minute >= start or minute < end
        return True


def _parse_window(where: str, window: object) -> tuple[int, int]:
    try:
        assert isinstance(window, str)
        a, b = window.split("-")
        return _minutes(a), _minutes(b)
    except (AssertionError, ValueError):
        raise RuleError(f"{where}: 'window' must be 'HH:MM-HH:MM'") from None


def _minutes(text: str) -> int:
    h, m = text.strip().split(":")
    hours, minutes = int(h), int(m)
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or hours * 60 + minutes > 1440:
        raise ValueError("out of range")
    return hours * 60 + minutes


class Router:
    """Chooses a ``Route`` for a normalised destination. Immutable; build a new one to reload.

    ``own_ranges``: inclusive (from, to) pairs of E.164 numbers (str or int) of the own network.
    ``connectors``: operator -> connector route name (SMPP interconnect).
    ``default_connector``: route name for other operators without their own connector (a hub).
    ``timezone``: IANA name in which rule windows are evaluated.
    """

    def __init__(
        self,
        own_operator: str,
        own_ranges: Iterable[tuple[str | int, str | int]],
        portability: PortabilityTable | None,
        rules: Sequence[Mapping[str, Any] | RouteRule] = (),
        *,
        connectors: Mapping[str, str] | None = None,
        default_connector: str | None = None,
        timezone: str = "UTC",
    ) -> None:
        if not own_operator:
            raise RuleError("own_operator must be non-empty")
        self.own_operator = own_operator
        ranges = sorted((int(lo), int(hi)) for lo, hi in own_ranges)
        for (_, hi), (lo2, _) in zip(ranges, ranges[1:], strict=False):
            if lo2 <= hi:
                raise RuleError("own ranges overlap")
        for lo, hi in ranges:
            if lo > hi:
                raise RuleError("own range start after end")
        self._own_starts = [lo for lo, _ in ranges]
        self._own_ends = [hi for _, hi in ranges]
        self.portability = portability
        self.rules: tuple[RouteRule, ...] = tuple(
            r if isinstance(r, RouteRule) else RouteRule.from_dict(i, r)
            for i, r in enumerate(rules)
        )
        self.connectors = dict(connectors or {})
        self.default_connector = default_connector
        self._tz = ZoneInfo(timezone)
        self._netsim = Route("netsim", "netsim", own_operator)

    def is_own_number(self, e164: str) -> bool:
        """In the own numbering ranges (ignoring portability)."""
        if not e164.isdigit():
            return False
        value = int(e164)
        i = bisect.bisect_right(self._own_starts, value) - 1
        return i >= 0 and value <= self._own_ends[i]

    def operator_for(self, e164: str) -> str:
        """Portability first, then the own ranges; ``"unknown"`` otherwise."""
        if self.portability is not None:
            operator = self.portability.operator_for(e164)
            if operator is not None:
                return operator
        if self.is_own_number(e164):
            return self.own_operator
        return UNKNOWN_OPERATOR

    def route(self, destination_e164: str, account: str, now: float) -> Route:
        """The route for a destination submitted by ``account`` at wall-clock time ``now``
        (seconds since the epoch; only used for rule windows)."""
        ported = (None if self.portability is None
                  else self.portability.ported_number(destination_e164))
        operator = ported if ported is not None else self.operator_for(destination_e164)
        if self.rules:
            minute = -1
            for rule in self.rules:
                if ported is not None and rule.plan_only:
                    continue  # a ported number is not where its prefix says (see above)
                if rule.window_min is not None and minute < 0:
                    local = datetime.fromtimestamp(now, self._tz)
                    minute = local.hour * 60 + local.minute
                if rule.matches(destination_e164, account, operator, minute):
                    return Route(rule.route, rule.kind, operator)
        if operator == self.own_operator:
            return self._netsim
        connector = self.connectors.get(operator)
        if connector is not None:
            return Route(connector, "smpp", operator)
        if self.default_connector is not None:
            return Route(self.default_connector, "smpp", operator)
        return Route("unroutable", "none", operator)
