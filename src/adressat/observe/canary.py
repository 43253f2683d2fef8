"""The canary prober (docs/canary.md): every ``canary_interval_s``, one probe message per
(route, serving node) to a canary SIM of that node, checked against what the handsets
themselves stored (netsim's ``on_stored`` observer): exactly the canary's handset (its IMSI
and MSISDN), the right content digest, within ``canary_deadline_s``, and no other handset.

It runs in the delivery process (next to the network it watches). A probe is an ordinary
message of :data:`~adressat.core.model.CANARY_ACCOUNT`: built by ``core.accept_message`` (the
only way in), committed by the process's group committer, then the worker is woken; it asks
for no receipt (registered_delivery 0) and is left out of customer figures.

Results (``CanaryProbe.result``):

* ``passed``: the canary's handset stored it with the right digest within the deadline, and
  no other handset stored it;
* ``misdelivered``: another handset stored it (decided at once, whatever else happened);
* ``wrong_content``: the canary's handset stored something else under the probe's id;
* ``late``: the canary's handset stored it, after the deadline;
* ``failed``: not stored by the deadline, and the node answered an attempt with a failure
  (System Failure and the like: the attempt record names the serving node and the error);
* ``held``: not stored by the deadline because its route's breaker holds it: no evidence
  either way (not a pass, not a failure of the place); while a route is held no probe is
  sent on it, so after an incident the all-clear starts when the route is released;
* ``lost``: not stored by the deadline, and the message is final without delivery, or
  DELIVERED by the SMSC's account while the handset has nothing, or still pending when its
  validity (``canary_validity_s``) is over.

The decisions are pure (:func:`decide`, time passed in); :class:`CanaryProber` wires them to
the network, the store and the metrics. Probes go to every netsim-kind route the router
knows (:func:`netsim_routes`; today the default route ``netsim``); routes of kind ``smpp``
get their canary destinations with the interconnect of a later issue.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram

from adressat.core.accept import AcceptLimits, Submission, accept_message
from adressat.core.ids import IdGenerator
from adressat.core.model import CANARY_ACCOUNT, FINAL_STATES, CanaryProbe, Message, State
from adressat.routing import Router, normalise
from adressat.store.base import Store, StoreError
from adressat.store.commit import GroupCommitter

__all__ = [
    "CANARY_PROBES",
    "CANARY_LATENCY",
    "CANARY_SOURCE",
    "Facts",
    "Track",
    "Verdict",
    "CanaryProber",
    "decide",
    "facts_of",
    "netsim_routes",
    "on_store",
]

log = logging.getLogger("adressat.canary")

#: the originator (TP-OA) of probe messages
CANARY_SOURCE = "adressat"

CANARY_PROBES = Counter("adressat_canary_probes", "Canary probes decided, by place and result",
                        ["route", "serving_node", "result"])
CANARY_LATENCY = Histogram(
    "adressat_canary_latency_seconds", "Canary probe sent to stored by the canary's handset",
    ["route", "serving_node"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)

#: decided probes remembered (to see a stranger store them later); in flight at most
#: ``_IN_FLIGHT_PER_PLACE_MAX`` per place (a stuck place does not grow the prober)
_RECENT_MAX = 1024
#: a probe past its deadline that nobody stored: its message is looked at this often
_FACTS_INTERVAL_S = 1.0
_IN_FLIGHT_PER_PLACE_MAX = 64


@dataclass(slots=True)
class Track:
    """One probe in flight: what was sent where, and what the handsets did with it."""

    message_id: str
    route: str
    serving_node: str
    destination: str  # the canary's MSISDN
    imsi: str  # the canary's IMSI when it was sent
    digest: str  # SHA-256 of the TP-UD the canary's handset must store
    sent_at: float
    deadline_s: float
    give_up_at: float  # the probe's validity: still pending then is lost
    stored_at: float | None = None  # the canary's handset stored the right content
    wrong_content_at: float | None = None
    others: int = 0  # stores by any other handset
    result: str | None = None  # once decided
    facts_at: float = 0.0  # the store's facts were last read then (at most once a second)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the store says about a probe past its deadline: its state (None: no such row),
    and the error of the latest attempt the serving node answered with a failure (None:
    none did)."""

    state: State | None
    node_failure: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    result: str
    latency_s: float | None
    detail: str


def on_store(t: Track, imsi: str, msisdn: str, digest: str, at: float) -> None:
    """A handset stored (a part of) the probe: note who and what."""
    if imsi != t.imsi or msisdn != t.destination:
        t.others += 1
    elif digest != t.digest:
        if t.wrong_content_at is None:
            t.wrong_content_at = at
    elif t.stored_at is None:
        t.stored_at = at


def needs_facts(t: Track, now: float) -> bool:
    """Whether :func:`decide` needs the store's facts for ``t`` now."""
    return (t.others == 0 and t.wrong_content_at is None and t.stored_at is None
            and now >= t.sent_at + t.deadline_s)


def decide(t: Track, now: float, facts: Facts | None = None) -> Verdict | None:
    """The probe's result at ``now``, or None while it is still open. ``facts`` is read
    only for a probe past its deadline that nobody stored (:func:`needs_facts`)."""
    if t.others:
        return Verdict("misdelivered", None, f"others={t.others}")
    if t.wrong_content_at is not None:
        return Verdict("wrong_content", None, "digest_mismatch")
    if t.stored_at is not None:
        latency = max(0.0, t.stored_at - t.sent_at)
        return Verdict("passed" if latency <= t.deadline_s else "late", latency, "")
    if now < t.sent_at + t.deadline_s or facts is None:
        return None
    if facts.node_failure is not None:
        return Verdict("failed", None, f"error={facts.node_failure}")
    if facts.state is None:
        return Verdict("lost", None, "message=gone")
    if facts.state is State.HELD:
        return Verdict("held", None, "route_held")
    if facts.state is State.DELIVERED:  # the SMSC says delivered; the handset has nothing
        return Verdict("lost", None, "state=DELIVERED")
    if facts.state in FINAL_STATES:
        return Verdict("lost", None, f"state={facts.state.value}")
    if now >= t.give_up_at:
        return Verdict("lost", None, f"state={facts.state.value} past_validity")
    return None


def facts_of(store: Store, message_id: str) -> Facts:
    """:class:`Facts` from the store (one message row, its attempt records)."""
    msg = store.get_message(message_id)
    failure: int | None = None
    for a in reversed(store.attempts_for_message(message_id)):
        if a.serving_node and a.outcome in ("TEMPORARY", "PERMANENT") and a.error:
            failure = a.error
            break
    return Facts(None if msg is None else msg.state, failure)


def netsim_routes(router: Router) -> list[str]:
    """Every route of kind netsim the router knows: the default own-network route and the
    rules that name one (routes of kind smpp come with the interconnect)."""
    names = {"netsim"}
    names.update(r.route for r in router.rules if r.kind == "netsim")
    return sorted(names)


def probe_content(nonce: str) -> bytes:
    """A probe's text: GSM 7-bit, unique per probe (never logged)."""
    return f"adressat canary {nonce}".encode("ascii")


@dataclass
class _Place:
    route: str
    node: str
    canaries: list[str]
    turn: int = 0
    in_flight: int = 0


@dataclass
class CanaryProber:
    """Sends the probes and decides them (see the module docstring).

    ``canaries``: serving node -> canary MSISDNs (``register.canaries()``); ``identity``:
    MSISDN -> its current IMSI (the register); ``digest_of(message_id, content)``: the
    SHA-256 of the TP-UD the handset must store (the adapter's encoding); ``wake``: the
    worker's wake-up.
    """

    committer: GroupCommitter
    routes: Sequence[str]
    canaries: Mapping[str, Sequence[str]]
    identity: Callable[[str], str]
    digest_of: Callable[[str, bytes], str]
    wake: Callable[[], None]
    tag_key: bytes
    held: Callable[[], frozenset[str]] = frozenset  # routes a breaker holds (the worker's)
    node_id: int = 1
    interval_s: float = 5.0
    deadline_s: float = 10.0
    validity_s: float = 60.0
    check_interval_s: float = 0.25
    clock: Callable[[], float] = time.time
    tracks: dict[str, Track] = field(default_factory=dict)
    sent: int = 0
    decided: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.deadline_s <= 0 or self.check_interval_s <= 0:
            raise ValueError("canary interval, deadline and check interval must be > 0")
        if self.validity_s < self.deadline_s:
            raise ValueError("canary validity must be at least the deadline")
        self._ids = IdGenerator(self.node_id)
        self._entropy = random.Random(os.urandom(32))
        self._limits = AcceptLimits(validity_s_default=self.validity_s,
                                    validity_s_max=max(self.validity_s, 60.0))
        self._places = [
            _Place(route, node, list(numbers))
            for route in self.routes
            for node, numbers in sorted(self.canaries.items())
            if numbers
        ]
        self._recent: OrderedDict[str, Track] = OrderedDict()
        self._stopping = False

    @property
    def places(self) -> list[tuple[str, str]]:
        return [(p.route, p.node) for p in self._places]

    # --- the network's observer --------------------------------------------------------
    def on_stored(self, imsi: str, msisdn: str, message_id: str, part: int, digest: str) -> None:
        """``network.on_stored`` callback: only notes; decisions are made by the loop."""
        t = self.tracks.get(message_id)
        if t is None:
            t = self._recent.get(message_id)
            if t is None:
                return
        on_store(t, imsi, msisdn, digest, self.clock())

    # --- sending ----------------------------------------------------------------------
    def build(self, place: _Place, now: float) -> tuple[Message, Track]:
        """The next probe of ``place`` (not yet durable)."""
        number = place.canaries[place.turn % len(place.canaries)]
        place.turn += 1
        nonce = self._entropy.randbytes(8).hex()
        content = probe_content(nonce)
        mid = self._ids.next_id(int(now * 1000), self._entropy.randbytes(8))
        msg = accept_message(
            Submission(CANARY_ACCOUNT, CANARY_SOURCE, number, content, source_ton=5,
                       dest_ton=1, dest_npi=1, registered_delivery=0,
                       expires_at=now + self.validity_s),
            now=now,
            message_id=mid,
            normalise_destination=normalise,
            route_for=lambda _d, _a, r=place.route: r,  # type: ignore[misc]
            tag_key=self.tag_key,
            limits=self._limits,
        )
        track = Track(mid, place.route, place.node, msg.destination,
                      self.identity(msg.destination), self.digest_of(mid, content), now,
                      self.deadline_s, now + self.validity_s)
        return msg, track

    async def send_round(self) -> int:
        """One probe per place (a place with too many in flight skips a round)."""
        now = self.clock()
        msgs: list[Message] = []
        tracks: list[tuple[_Place, Track]] = []
        held = self.held()
        for place in self._places:
            if place.in_flight >= _IN_FLIGHT_PER_PLACE_MAX or place.route in held:
                continue
            try:
                msg, track = self.build(place, now)
            except Exception as e:  # noqa: BLE001 - one place must not stop the others
                self.errors += 1
                log.error("canary probe not built", extra={
                    "route": place.route, "serving_node": place.node,
                    "error_type": type(e).__name__})
                continue
            msgs.append(msg)
            tracks.append((place, track))
        if not msgs:
            return 0
        for place, track in tracks:  # before the commit: the worker may deliver at once
            self.tracks[track.message_id] = track
            place.in_flight += 1
        try:
            await self.committer.run(lambda s: s.insert_messages(msgs))
        except StoreError as e:
            self.errors += 1
            for place, track in tracks:
                self.tracks.pop(track.message_id, None)
                place.in_flight -= 1
            log.error("canary probes not written", extra={"error_type": type(e).__name__,
                                                          "count": len(msgs)})
            return 0
        self.sent += len(msgs)
        self.wake()
        return len(msgs)

    # --- deciding ---------------------------------------------------------------------
    async def check(self) -> list[CanaryProbe]:
        """Decide what can be decided now; write the results (one transaction)."""
        now = self.clock()
        out: list[tuple[Track, Verdict]] = []
        for t in list(self.tracks.values()):
            facts = None
            if needs_facts(t, now):
                if now - t.facts_at < _FACTS_INTERVAL_S:
                    continue
                t.facts_at = now
                try:
                    facts = await self.committer.read(lambda s, m=t.message_id: facts_of(s, m))  # type: ignore[misc]
                except StoreError:
                    continue
            verdict = decide(t, now, facts)
            if verdict is not None:
                out.append((t, verdict))
        for t in list(self._recent.values()):  # decided, then a stranger stored it
            if t.others and t.result != "misdelivered":
                out.append((t, Verdict("misdelivered", None,
                                       f"others={t.others} after={t.result}")))
        if not out:
            return []
        probes = [
            CanaryProbe(0, t.sent_at, t.route, t.serving_node, t.destination, t.message_id,
                        v.result, v.latency_s, v.detail)
            for t, v in out
        ]
        try:
            stored = await self.committer.run(lambda s: s.append_canary_probes(probes))
        except StoreError as e:
            self.errors += 1
            log.error("canary results not written", extra={"error_type": type(e).__name__,
                                                           "count": len(probes)})
            return []
        for (t, v), p in zip(out, stored, strict=True):
            self._settle(t, v, p)
        return stored

    def _settle(self, t: Track, v: Verdict, p: CanaryProbe) -> None:
        self.decided += 1
        if self.tracks.pop(t.message_id, None) is not None:
            for place in self._places:
                if place.route == t.route and place.node == t.serving_node:
                    place.in_flight -= 1
        t.result = v.result
        self._recent[t.message_id] = t
        self._recent.move_to_end(t.message_id)
        while len(self._recent) > _RECENT_MAX:
            self._recent.popitem(last=False)
        CANARY_PROBES.labels(t.route, t.serving_node, v.result).inc()
        if v.latency_s is not None:
            CANARY_LATENCY.labels(t.route, t.serving_node).observe(v.latency_s)
        if v.result != "passed":
            log.warning("canary probe failed", extra={
                "probe_id": p.id, "message_id": t.message_id, "route": t.route,
                "serving_node": t.serving_node, "result": v.result,
                "latency_s": v.latency_s, "detail": v.detail})

    # --- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        """A round every ``interval_s``, decisions every ``check_interval_s``, until stopped."""
        next_round = self.clock()
        while not self._stopping:
            try:
                if self.clock() >= next_round:
                    next_round = self.clock() + self.interval_s
                    await self.send_round()
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the prober must not stop delivery
                self.errors += 1
                log.error("canary round failed", extra={"error_type": type(e).__name__})
            await asyncio.sleep(self.check_interval_s)

    def stop(self) -> None:
        self._stopping = True


def all_canaries(canaries: Mapping[str, Iterable[str]]) -> frozenset[str]:
    return frozenset(n for ns in canaries.values() for n in ns)


def tp_ud_digest(message_id: str, content: bytes) -> str:
    """SHA-256 of the TP-UD the netsim adapter sends for a one-part GSM 7-bit probe."""
    from adressat.delivery.netsim_adapter import build_parts

    return hashlib.sha256(build_parts(message_id, content, 0, 0)[0]).hexdigest()
