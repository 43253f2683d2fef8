"""Hooks where seeded faults plug into the simulated network.

``Faults`` is the honest network: every hook passes things through unchanged. A fault model
subclasses it and overrides the hooks it needs; ``Register`` and ``Network`` consult the one
they were given at these points:

- ``on_lookup``: SRI-for-SM answer (stale routing after a SIM swap: return the old IMSI;
  register unavailable: raise ``RegisterUnavailable``).
- ``before_forward``: MT-ForwardSM arrives at a node (node down, system failure, timeouts).
- ``recipients``: which handsets (IMSIs) the node actually delivers to (a node that swaps
  messages between concurrent deliveries, double delivery to a second handset).
- ``on_ack``: the answer on its way back (lost ack -> ``Failure(TIMEOUT)``, late ack).
- ``attach``: called with the ``Network`` the model is given to (its register, clock, sleep
  and late-ack channel).

``FaultSwitchboard`` is the seeded catalogue of realistic faults, switchable by name while
running (``adressat fault list|on|off``); see its docstring for what the SMSC sees.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adressat.netsim.forward import Ack, Failure, FailureReason, NetSms
from adressat.netsim.register import (
    Absent,
    AbsentReason,
    Reachability,
    Register,
    RegisterUnavailable,
    RoutingInfo,
)

if TYPE_CHECKING:
    from adressat.netsim.network import Network

__all__ = [
    "Faults",
    "NO_FAULTS",
    "CATALOGUE",
    "FaultSpec",
    "FaultState",
    "FaultSwitchboard",
    "ParamValue",
]

ParamValue = bool | int | float | str

#: The SMSC's route an MT-ForwardSM dialogue belongs to, set by the delivery adapter around it
#: (several routes of the SMSC may lead into this one network): a fault switched on with
#: ``route=R`` fires only on R's dialogues. Unset: ``route_name``.
ROUTE: ContextVar[str | None] = ContextVar("netsim_route", default=None)


class Faults:
    def attach(self, network: Network) -> None:
        """Called when this fault model is given to ``network`` (to reach its register,
        clock, sleep and late-ack channel)."""

    def on_lookup(self, register: Register, msisdn: str, info: RoutingInfo) -> RoutingInfo:
        return info

    def before_forward(self, imsi: str, node: str, sms: NetSms) -> Failure | None:
        return None

    def recipients(self, imsi: str, node: str, sms: NetSms) -> Sequence[str]:
        return (imsi,)

    async def on_ack(
        self, result: Ack | Failure, imsi: str, node: str, sms: NetSms
    ) -> Ack | Failure:
        return result


NO_FAULTS = Faults()


# -- the seeded, switchable catalogue --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One entry of the catalogue: its name, what it simulates, its parameters (defaults)."""

    name: str
    description: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FaultState:
    """What ``FaultSwitchboard.list()`` reports for one fault.

    ``fired``: how many times it acted (for ``swapping_node``: per misdirected message, so a
    swapped pair counts 2). ``opportunities``: how many times it was drawn for while on.
    Both are cumulative over the switchboard's life, across on/off.
    """

    name: str
    on: bool
    rate: float
    route: str | None
    description: str
    params: Mapping[str, ParamValue]
    fired: int
    opportunities: int
    node: str | None = None


CATALOGUE: tuple[FaultSpec, ...] = (
    FaultSpec(
        "stale_routing",
        "routing info gone stale after a SIM swap: the register answers the retired IMSI",
        {"reassigned": False},
    ),
    FaultSpec(
        "recycled_number",
        "the number is recycled to a new subscriber while a message to it is on its way",
        {"at": "forward"},
    ),
    FaultSpec(
        "swapping_node",
        "a serving node swaps messages between concurrent deliveries",
    ),
    FaultSpec(
        "double_delivery",
        "a serving node delivers one message to the right handset and to a stranger",
        {"ack_from_stranger": 0.0},
    ),
    FaultSpec(
        "ack_lost",
        "the handset stores the message but its acknowledgement never arrives",
    ),
    FaultSpec(
        "ack_duplicated",
        "the acknowledgement arrives twice, the second copy later",
        {"delay_s": 0.5},
    ),
    FaultSpec(
        "ack_late",
        "the acknowledgement arrives after the SMSC stopped waiting",
        {"delay_s": 2.0},
    ),
    FaultSpec(
        "system_failure",
        "the serving node answers MT-ForwardSM with System Failure (temporary for the SMSC)",
    ),
    FaultSpec(
        "register_unavailable",
        "the subscriber register does not answer",
    ),
    FaultSpec(
        "absent_for_hours",
        "the subscriber is detached for hours",
        {"hours": 3.0, "known": True},
    ),
    FaultSpec(
        "memory_full_then_alert",
        "the handset's memory is full, clears after a while, then the network alerts",
        {"seconds": 30.0},
    ),
)

_STRANGER_TRIES_MAX = 64
_IN_FLIGHT_MAX = 10_000


@dataclass(slots=True)
class _Switch:
    spec: FaultSpec
    rng: random.Random
    on: bool = False
    rate: float = 1.0
    route: str | None = None
    params: dict[str, ParamValue] = field(default_factory=dict)
    fired: int = 0
    opportunities: int = 0
    node: str | None = None


@dataclass(slots=True)
class _InFlight:
    """An MT-ForwardSM at a node, between arrival and the handset's store."""

    imsi: str
    node: str
    stored: bool = False
    swap_to: str | None = None  # set when a concurrent delivery took this one's handset


class FaultSwitchboard(Faults):
    """The seeded fault catalogue (``CATALOGUE``), each fault switchable while running.

    ``on(name, rate=1.0, route=None, **params)`` / ``off(name)`` / ``list()``. ``rate`` is
    the probability per opportunity (a lookup, a forward, an acknowledgement: see each fault).
    Each fault draws from its own ``random.Random`` seeded from (``seed``, name): the same
    seed and the same sequence of calls give the same decisions, and switching one fault
    does not change another's draws.

    ``route``: a fault switched on with ``route=R`` fires only where the route name is R.
    ``node``: one switched on with ``node=N`` fires only at serving node N (the node the
    lookup answered, the node a forward goes through); a draw that names no node (the
    SMSC's own faults) never fires a node-scoped fault.
    The hooks of this network use ``route_name`` (``"netsim"``, the one route the simulated
    network has). Other parts of adressat (the SMSC's own faults) may add entries with
    ``define(name, description)`` and draw with ``fires(name, route=...)`` passing their
    route, so one ``adressat fault list`` shows everything.

    ``ack_timeout_s``: how long the simulated SMSC timer waits for an acknowledgement that
    never comes (``ack_lost``, ``ack_late``) before ``forward_sm`` returns
    ``Failure(TIMEOUT)``; 0 returns it at once.

    Usage: ``Network(home, settings, faults=FaultSwitchboard(seed=7))`` or assign
    ``network.faults = board`` later. One event loop thread; ``on``/``off``/``list`` may be
    called from another thread (a lock guards the switches).

    The faults, what fires them and what the SMSC sees (``info`` = the lookup answer the
    SMSC addresses, ``A`` = the destination number):

    - ``stale_routing`` (per lookup; param ``reassigned=False``): if A was never swapped, its
      SIM is swapped now (``register.events`` gets a ``sim_swap``), and ``lookup`` answers
      the RETIRED IMSI at A's node. Signal before sending: ``info.imsi !=
      register.identity(A)`` and ``register.msisdn_for_imsi(info.imsi) is None``. If sent
      anyway: ``Failure(UNIDENTIFIED_SUBSCRIBER)`` (temporary), nobody stores it.
      ``reassigned=True`` (the dangerous variant: the old IMSI now belongs to someone else):
      ``lookup`` answers the CURRENT IMSI and node of another subscriber B; signal before
      sending: ``register.msisdn_for_imsi(info.imsi) == B != A``; if sent anyway, B's
      handset stores it and answers ``Ack(imsi_B, B)``.
    - ``recycled_number`` (param ``at="forward"``): ``at="forward"`` (per forward that
      reaches a handset): after the SMSC's lookup, the node recycles A (``register.events``
      gets a ``recycle``: old = the IMSI the SMSC addressed, new = the new holder's) and the
      NEW holder's handset stores the message: ``Ack(new_imsi, A)``. ``ack.msisdn == A`` and
      ``ack.imsi == register.identity(A)`` (the register already shows the new holder), so
      the only signal is ``ack.imsi != info.imsi`` (the IMSI the SMSC addressed): a message
      meant for the previous holder reached the new one; detectable, not preventable.
      ``at="lookup"`` (per lookup): A is recycled right after the register answered, and
      the SMSC gets the pre-recycle ``info``: same signals as ``stale_routing``
      (preventable; if sent, ``Failure(UNIDENTIFIED_SUBSCRIBER)``).
    - ``swapping_node`` (per forward that reaches a handset): the message goes to the handset
      of a CONCURRENT forward at the same node that has not stored yet, and that forward's
      message comes to this one's handset (both fire); with no concurrent partner, to a
      random other subscriber served by the same node. The receiving handset stores it
      (a real misdelivery, ``network.stats.misdirected``) and acknowledges in its own
      identity: ``Ack(other_imsi, other_msisdn)`` with ``ack.msisdn != A``.
    - ``double_delivery`` (per forward that reaches a handset; param
      ``ack_from_stranger=0.0``): the right handset AND a random stranger at the same node
      both store it. ``forward_sm`` returns ``Ack(right_imsi, A, also=(Ack(stranger_imsi,
      S),))``; with probability ``ack_from_stranger`` the roles are reversed:
      ``Ack(stranger_imsi, S, also=(Ack(right_imsi, A),))``. Signal: ``ack.also`` non-empty.
    - ``ack_lost`` (per Ack): the handset stored it; ``forward_sm`` returns
      ``Failure(TIMEOUT)`` (temporary) after ``ack_timeout_s``. A retry to the same IMSI is
      stored as a duplicate by the handset (``stats.duplicates``, inbox ``duplicate=True``)
      and acknowledged normally.
    - ``ack_late`` (per Ack; param ``delay_s=2.0``, must exceed ``ack_timeout_s``): the
      handset stored it; ``forward_sm`` returns ``Failure(TIMEOUT)`` after ``ack_timeout_s``;
      the real Ack reaches the late-ack channel ``delay_s`` after the store.
    - ``ack_duplicated`` (per Ack; param ``delay_s=0.5``): ``forward_sm`` returns the Ack;
      the same Ack reaches the late-ack channel again ``delay_s`` later.
    - ``system_failure`` (per forward, before it reaches a handset): the node answers
      MT-ForwardSM with the MAP error System Failure (TS 29.002 §17.6.5, the errors of
      mt-ForwardSM, local:44; §12.9.1 MAP_MT_FORWARD_SHORT_MESSAGE: the user error of a
      node that cannot carry the message now): ``Failure(SYSTEM_FAILURE)``, temporary (the
      SMSC defers and retries). Nobody stores it. Scope it to one node with ``node=``.
    - ``register_unavailable`` (per lookup): ``lookup`` raises ``RegisterUnavailable``.
    - ``absent_for_hours`` (per lookup of a reachable subscriber; params ``hours=3.0``,
      ``known=True``): A is detached until now + hours. ``known=True``: IMSI detach, the
      lookup raises ``Absent(IMSI_DETACHED)``; ``known=False``: no paging response, the
      lookup answers and the forward fails ``ABSENT_SUBSCRIBER`` (then lookups raise
      ``Absent(NO_PAGING_RESPONSE)``). Either way the alert (``on_alert``) fires when it
      ends, if the SMSC reported the message waiting (the forward failure does that itself).
    - ``memory_full_then_alert`` (per forward to a reachable handset; param
      ``seconds=30.0``): the handset's memory is full until now + seconds: the forward
      fails ``MEMORY_CAPACITY_EXCEEDED`` (the network sets message waiting), and
      ``process_due`` at or after that time fires the alert for A.
    """

    def __init__(
        self,
        seed: int = 1,
        *,
        route_name: str = "netsim",
        ack_timeout_s: float = 0.0,
        catalogue: Sequence[FaultSpec] = CATALOGUE,
    ) -> None:
        if ack_timeout_s < 0:
            raise ValueError("ack_timeout_s must be >= 0")
        self.seed = seed
        self.route_name = route_name
        self.ack_timeout_s = ack_timeout_s
        self._lock = threading.Lock()
        self._switches: dict[str, _Switch] = {}
        self._any_on = False  # the honest fast path
        for spec in catalogue:
            self.define(spec.name, spec.description, **spec.params)
        self._network: Network | None = None
        self._in_flight: dict[tuple[int, str], _InFlight] = {}

    # -- switching --------------------------------------------------------------------------

    def define(self, name: str, description: str, **params: ParamValue) -> None:
        """Add a fault to the catalogue (off). Its draws come from (seed, name)."""
        with self._lock:
            if name in self._switches:
                raise ValueError(f"fault {name!r} already defined")
            spec = FaultSpec(name, description, dict(params))
            rng = random.Random(f"adressat-fault-{self.seed}-{name}")
            self._switches[name] = _Switch(spec, rng, params=dict(params))

    def on(
        self,
        name: str,
        rate: float = 1.0,
        route: str | None = None,
        node: str | None = None,
        **params: ParamValue,
    ) -> FaultState:
        """Switch ``name`` on (again: new rate, route, node and parameters over the
        defaults). ``node``: only at that serving node (None: every node)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        with self._lock:
            switch = self._switch(name)
            merged = dict(switch.spec.params)
            for key, value in params.items():
                if key not in merged:
                    raise ValueError(f"fault {name!r} has no parameter {key!r}")
                merged[key] = _coerce(name, key, merged[key], value)
            self._check(name, merged)
            switch.on, switch.rate, switch.route, switch.params = True, rate, route, merged
            switch.node = node or None
            self._any_on = True
            return _state(switch)

    def off(self, name: str) -> FaultState:
        with self._lock:
            switch = self._switch(name)
            switch.on = False
            self._any_on = any(s.on for s in self._switches.values())
            return _state(switch)

    def off_all(self) -> None:
        with self._lock:
            for switch in self._switches.values():
                switch.on = False
            self._any_on = False

    def list(self) -> list[FaultState]:  # noqa: A003 - the CLI's verb
        with self._lock:
            return [_state(s) for s in self._switches.values()]

    def state(self, name: str) -> FaultState:
        with self._lock:
            return _state(self._switch(name))

    def is_on(self, name: str) -> bool:
        switch = self._switches.get(name)
        return switch is not None and switch.on

    def fires(self, name: str, route: str | None = None, node: str | None = None) -> bool:
        """One opportunity for ``name`` on ``route`` at serving ``node``: True if it fires
        (counted). A fault scoped to a node is not drawn for elsewhere."""
        switch = self._switches.get(name)
        if switch is None or not switch.on:
            return False
        if switch.route is not None and switch.route != route:
            return False
        if switch.node is not None and switch.node != node:
            return False
        with self._lock:
            switch.opportunities += 1
            if switch.rate >= 1.0 or (switch.rate > 0.0 and switch.rng.random() < switch.rate):
                switch.fired += 1
                return True
            return False

    def param(self, name: str, key: str) -> ParamValue:
        return self._switch(name).params[key]

    def _switch(self, name: str) -> _Switch:
        try:
            return self._switches[name]
        except KeyError:
            raise KeyError(f"no fault named {name!r}") from None

    def _check(self, name: str, params: Mapping[str, ParamValue]) -> None:
        if name == "recycled_number" and params["at"] not in ("forward", "lookup"):
            raise ValueError("recycled_number: at must be 'forward' or 'lookup'")
        if name == "double_delivery" and not 0.0 <= float(params["ack_from_stranger"]) <= 1.0:
            raise ValueError("double_delivery: ack_from_stranger must be within 0..1")
        if name == "ack_late" and float(params["delay_s"]) <= self.ack_timeout_s:
            raise ValueError("ack_late: delay_s must exceed ack_timeout_s")
        for key in ("delay_s", "hours", "seconds"):
            if key in params and float(params[key]) < 0:
                raise ValueError(f"{name}: {key} must be >= 0")

    def _fires(self, name: str, node: str | None = None) -> bool:
        return self.fires(name, ROUTE.get() or self.route_name, node)

    # -- hooks ------------------------------------------------------------------------------

    def attach(self, network: Network) -> None:
        self._network = network

    def on_lookup(self, register: Register, msisdn: str, info: RoutingInfo) -> RoutingInfo:
        if not self._any_on:
            return info
        node = info.node
        if self._fires("register_unavailable", node):
            raise RegisterUnavailable()
        if self.is_on("absent_for_hours") and self._fires("absent_for_hours", node):
            hours = float(self.param("absent_for_hours", "hours"))
            known = bool(self.param("absent_for_hours", "known"))
            reason = AbsentReason.IMSI_DETACHED if known else AbsentReason.NO_PAGING_RESPONSE
            register.detach(msisdn, until=register.clock() + hours * 3600.0, reason=reason)
            if known:
                raise Absent(AbsentReason.IMSI_DETACHED)
            return info
        if self.is_on("stale_routing") and self._fires("stale_routing", node):
            return self._stale(register, msisdn, info)
        if (
            self.is_on("recycled_number")
            and self.param("recycled_number", "at") == "lookup"
            and self._fires("recycled_number", node)
        ):
            try:
                register.recycle(msisdn)
            except RuntimeError:  # identity changes of this number exhausted
                pass
            return info
        return info

    def _stale(self, register: Register, msisdn: str, info: RoutingInfo) -> RoutingInfo:
        index = register.index_of(msisdn)
        if register.generation_of(index) == 0:
            try:
                register.sim_swap(msisdn)
            except RuntimeError:
                return info
        if self.param("stale_routing", "reassigned"):
            switch = self._switches["stale_routing"]
            stranger = _stranger_index(register, index, None, switch.rng)
            if stranger is None:
                return info
            return RoutingInfo(msisdn, register.imsi_of(stranger), register.node_of(stranger))
        retired = register.imsi_of(index, register.generation_of(index) - 1)
        return RoutingInfo(msisdn, retired, register.node_of(index))

    def before_forward(self, imsi: str, node: str, sms: NetSms) -> Failure | None:
        if not self._any_on:
            return None
        if self.is_on("system_failure") and self._fires("system_failure", node):
            return Failure.of(FailureReason.SYSTEM_FAILURE)
        if self.is_on("swapping_node"):
            flights = self._in_flight
            if len(flights) >= _IN_FLIGHT_MAX:  # a forward that never came back: forget it
                del flights[next(iter(flights))]
            flights[(id(sms), imsi)] = _InFlight(imsi, node)
        if self.is_on("memory_full_then_alert") and self._network is not None:
            register = self._network.register
            msisdn = register.msisdn_for_imsi(imsi)
            if (
                msisdn is not None
                and register.state(msisdn).reachability is Reachability.PRESENT
                and self._fires("memory_full_then_alert", node)
            ):
                seconds = float(self.param("memory_full_then_alert", "seconds"))
                register.set_memory_full(msisdn, until=register.clock() + seconds)
        return None

    def recipients(self, imsi: str, node: str, sms: NetSms) -> Sequence[str]:
        if not self._any_on and not self._in_flight:
            return (imsi,)
        network = self._network
        flight = self._in_flight.get((id(sms), imsi)) if self._in_flight else None
        if flight is not None:
            flight.stored = True
        if network is None:
            return (imsi,)
        register = network.register
        target = imsi
        if (
            self.is_on("recycled_number")
            and self.param("recycled_number", "at") == "forward"
            and self._fires("recycled_number", node)
        ):
            msisdn = register.msisdn_for_imsi(imsi)
            if msisdn is not None:
                try:
                    target = register.recycle(msisdn)
                except RuntimeError:
                    pass
        if flight is not None and flight.swap_to is not None:
            target = flight.swap_to  # a concurrent delivery took our handset: we take its
            with self._lock:
                self._switches["swapping_node"].fired += 1
        elif self.is_on("swapping_node") and self._fires("swapping_node", node):
            target = self._swap(register, imsi, node, sms, target)
        if self.is_on("double_delivery") and self._fires("double_delivery", node):
            switch = self._switches["double_delivery"]
            resolved = register.resolve_imsi(target)
            stranger = _stranger_index(register, resolved[0] if resolved else -1, node, switch.rng)
            if stranger is not None:
                other = register.imsi_of(stranger)
                if switch.rng.random() < float(switch.params["ack_from_stranger"]):
                    return (other, target)
                return (target, other)
        return (target,)

    def _swap(self, register: Register, imsi: str, node: str, sms: NetSms, target: str) -> str:
        mine = (id(sms), imsi)
        for key, partner in self._in_flight.items():
            if (
                key != mine
                and partner.node == node
                and not partner.stored
                and partner.swap_to is None
                and partner.imsi != target
            ):
                partner.swap_to = target
                return partner.imsi
        resolved = register.resolve_imsi(target)
        stranger = _stranger_index(
            register, resolved[0] if resolved else -1, node, self._switches["swapping_node"].rng
        )
        return target if stranger is None else register.imsi_of(stranger)

    async def on_ack(
        self, result: Ack | Failure, imsi: str, node: str, sms: NetSms
    ) -> Ack | Failure:
        if self._in_flight:
            self._in_flight.pop((id(sms), imsi), None)
        network = self._network
        if not self._any_on or not isinstance(result, Ack) or network is None:
            return result
        if self.is_on("ack_lost") and self._fires("ack_lost", node):
            return await self._timeout(network)
        if self.is_on("ack_late") and self._fires("ack_late", node):
            delay_s = float(self.param("ack_late", "delay_s"))
            network.report_late_ack(
                sms.smsc_message_id, sms.part_index, result, at=network.clock() + delay_s
            )
            return await self._timeout(network)
        if self.is_on("ack_duplicated") and self._fires("ack_duplicated", node):
            delay_s = float(self.param("ack_duplicated", "delay_s"))
            network.report_late_ack(
                sms.smsc_message_id, sms.part_index, result, at=network.clock() + delay_s
            )
        return result

    async def _timeout(self, network: Network) -> Failure:
        if self.ack_timeout_s > 0:
            await network.sleep(self.ack_timeout_s)
        return Failure.of(FailureReason.TIMEOUT)


def _state(switch: _Switch) -> FaultState:
    return FaultState(
        switch.spec.name,
        switch.on,
        switch.rate,
        switch.route,
        switch.spec.description,
        dict(switch.params),
        switch.fired,
        switch.opportunities,
        switch.node,
    )


def _coerce(name: str, key: str, default: ParamValue, value: object) -> ParamValue:
    """Parameters keep their default's type (a CLI passes strings)."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if isinstance(default, int | float):
            if not isinstance(value, int | float | str):
                raise TypeError
            return float(value) if isinstance(default, float) else int(value)
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"fault {name!r}: bad value for {key!r}") from None


def _stranger_index(
    register: Register, index: int, node: str | None, rng: random.Random
) -> int | None:
    """A random subscriber other than ``index`` (served by ``node`` if given and possible)."""
    n = register.subscribers
    if n < 2:
        return None
    fallback: int | None = None
    for _ in range(_STRANGER_TRIES_MAX):
        other = rng.randrange(n)
        if other == index:
            continue
        if node is None or register.node_of(other) == node:
            return other
        if fallback is None:
            fallback = other
    return fallback
