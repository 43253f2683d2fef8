"""Faults inside adressat itself, switchable while running (``adressat fault on NAME``).

``corrupt_pairing``: a switch that corrupts the in-memory pairing between messages and the
PDUs going out on the delivery path, the kind of software fault that "a restart fixes"
(reused buffers, a cache keyed wrongly, a buffer shared between concurrent messages). When
it fires for a message about to be handed to its adapter, the message keeps its id and binding
tag but carries the destination and content of ANOTHER message in flight at the same moment.
The adapter's binding-tag check must stop every such message before anything goes out
(QUARANTINED, error 30, alarm ``tag_mismatch``, route breaker).

Seeded: each fault draws from its own ``random.Random`` seeded from (seed, name), so a seed and
a sequence of calls replay exactly. ``on``/``off``/``list`` may be called from another thread.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

__all__ = ["InternalFaults", "InternalFaultState", "INTERNAL_FAULTS", "UnknownFault"]

#: name -> what it simulates
INTERNAL_FAULTS: dict[str, str] = {
    "corrupt_pairing": (
        "the delivery path pairs a message with another in-flight message's destination"
        " and content (in-memory mix-up)"
    ),
}


class UnknownFault(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown fault {self.name!r}; known: {', '.join(self.known)}"


@dataclass(frozen=True, slots=True)
class InternalFaultState:
    name: str
    description: str
    on: bool
    rate: float
    route: str | None
    fired: int
    opportunities: int


@dataclass(slots=True)
class _Switch:
    rng: random.Random
    on: bool = False
    rate: float = 1.0
    route: str | None = None
    params: dict[str, object] = field(default_factory=dict)
    fired: int = 0
    opportunities: int = 0


class InternalFaults:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._switches = {
            name: _Switch(random.Random(f"adressat-fault-{seed}-{name}"))
            for name in INTERNAL_FAULTS
        }

    def names(self) -> list[str]:
        return sorted(self._switches)

    def _switch(self, name: str) -> _Switch:
        try:
            return self._switches[name]
        except KeyError:
            raise UnknownFault(name, self.names()) from None

    def on(self, name: str, rate: float = 1.0, route: str | None = None, **params: object) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        with self._lock:
            s = self._switch(name)
            s.on, s.rate, s.route, s.params = True, rate, route or None, dict(params)

    def off(self, name: str) -> None:
        with self._lock:
            self._switch(name).on = False

    def is_on(self, name: str) -> bool:
        s = self._switches.get(name)
        return s is not None and s.on

    def fires(self, name: str, route: str | None = None) -> bool:
        """Draw once for ``name`` at this opportunity (False when off or for another route)."""
        with self._lock:
            s = self._switch(name)
            if not s.on or (s.route is not None and route != s.route):
                return False
            s.opportunities += 1
            if s.rate >= 1.0 or s.rng.random() < s.rate:
                s.fired += 1
                return True
            return False

    def list(self) -> list[InternalFaultState]:  # noqa: A003 - the CLI's verb
        with self._lock:
            return [
                InternalFaultState(
                    n, INTERNAL_FAULTS[n], s.on, s.rate, s.route, s.fired, s.opportunities
                )
                for n, s in sorted(self._switches.items())
            ]
