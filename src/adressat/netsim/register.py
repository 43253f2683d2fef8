"""The subscriber register (HLR): identities, serving nodes, reachability, message waiting.

Nothing is stored per subscriber. A subscriber is its index (MSISDN - msisdn_first); its IMSI,
serving node and reachability over time are computed from the seed and the index. Only the
exceptions live in dicts: identity changes (SIM swap, recycling), moved subscribers, forced
states, and the message-waiting list (MWD) of subscribers the SMSC failed to reach.

Reachability over time (``absent_fraction``, ``memory_full_fraction``): time is cut into
slots as long as the longest episode; in each slot a subscriber has an episode with a
probability chosen so that the requested fraction is absent at any moment, starting and
lasting as drawn from a hash of (seed, subscriber, generation, slot). Stateless, O(1), and the
same seed and clock give the same network.

As in a real HLR, the register does not always know a subscriber is unreachable: an absence
is either an IMSI detach (known: ``lookup`` raises ``Absent``) or a missing paging response
(unknown until a delivery fails; then the MNRF flag makes ``lookup`` raise ``Absent``). A
failed delivery puts the subscriber on the message-waiting list; when it becomes reachable
again, ``due_alerts`` names it once (the network then fires alertSC).
"""

from __future__ import annotations

import enum
import heapq
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adressat.netsim.identity import INDEX_SPACE, FeistelPermutation, mix64
from adressat.netsim.settings import NetsimSettings

if TYPE_CHECKING:
    from adressat.netsim.faults import Faults

__all__ = [
    "Register",
    "RoutingInfo",
    "RegisterError",
    "Unknown",
    "Absent",
    "RegisterUnavailable",
    "AbsentReason",
    "Reachability",
    "SubscriberState",
    "RegisterEvent",
]

_EPISODE_CHAIN_MAX = 64
# Identities remembered by ``imsi_of`` / ``resolve_imsi`` (one delivery asks for the same one
# five or six times: routing answer, the SMSC's cross-checks, serving node, handset).
_IDENTITY_ENTRIES_MAX = 65_536
_NODE_UNKNOWN = 0xFF  # in Register._seeded_node: not computed yet


class RegisterError(Exception):
    """Base of the register's answers other than routing information."""


class Unknown(RegisterError):
    """Not a subscriber of this network."""

    def __init__(self) -> None:
        super().__init__("unknown subscriber")


class AbsentReason(enum.Enum):
    IMSI_DETACHED = "imsi_detached"
    NO_PAGING_RESPONSE = "no_paging_response"  # flagged (MNRF) after a failed delivery
    MEMORY_CAPACITY_EXCEEDED = "memory_capacity_exceeded"  # flagged (MCEF)


class Absent(RegisterError):
    """The subscriber is known to be unreachable; the SMSC should wait for an alert."""

    def __init__(self, reason: AbsentReason) -> None:
        super().__init__(f"absent subscriber: {reason.value}")
        self.reason = reason


class RegisterUnavailable(RegisterError):
    """The register did not answer (raised only by faults)."""

    def __init__(self) -> None:
        super().__init__("register unavailable")


class Reachability(enum.Enum):
    PRESENT = "present"
    ABSENT = "absent"
    MEMORY_FULL = "memory_full"


@dataclass(frozen=True, slots=True)
class SubscriberState:
    reachability: Reachability
    reason: AbsentReason | None = None
    until: float | None = None  # when it changes back, if known


_PRESENT = SubscriberState(Reachability.PRESENT)


@dataclass(frozen=True, slots=True)
class RoutingInfo:
    """The SRI-for-SM answer: where to send a message for ``msisdn``."""

    msisdn: str
    imsi: str
    node: str


@dataclass(frozen=True, slots=True)
class RegisterEvent:
    time: float
    kind: str  # "sim_swap", "recycle", "move"
    msisdn: str
    old: str
    new: str


class Register:
    def __init__(
        self,
        settings: NetsimSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        faults: Faults | None = None,
    ) -> None:
        self.settings = s = settings or NetsimSettings()
        self.clock = clock
        self.faults = faults
        self._perm = FeistelPermutation(s.seed)
        self._first = s.msisdn_first
        self._n = s.subscribers
        self._msisdn_len = len(str(s.msisdn_first))
        self._imsi_prefix = s.mcc + s.mnc
        self._nodes = s.nodes
        salts = random.Random(f"netsim-state-{s.seed}")
        self._node_salt = salts.getrandbits(64)
        self._absent_salt = salts.getrandbits(64)
        self._memory_salt = salts.getrandbits(64)
        self._absent_p = _slot_probability(
            s.absent_fraction, s.absent_duration_s_min, s.absent_duration_s_max
        )
        self._memory_p = _slot_probability(
            s.memory_full_fraction, s.memory_full_duration_s_min, s.memory_full_duration_s_max
        )
        self._detached_threshold = int(s.absent_detached_fraction * 2**16)
        # exceptions only
        self._generation: dict[int, int] = {}
        self._node_override: dict[int, str] = {}
        self._forced: dict[int, SubscriberState] = {}
        self._waiting: dict[int, AbsentReason] = {}  # MWD list with MNRF/MCEF flag
        self._alert_heap: list[tuple[float, int]] = []
        self._events: deque[RegisterEvent] = deque(maxlen=s.register_events_max)
        # The seeded serving node of each subscriber (its position in ``nodes``), computed on
        # first use: one byte per subscriber (2.7 MB for the largest network). Safe: it is a
        # pure function of the seed and the index; moves live in _node_override, which
        # node_of consults first, and recycling drops the override, back to the seeded node.
        self._seeded_node: bytearray | None = (
            bytearray([_NODE_UNKNOWN]) * self._n if len(self._nodes) < _NODE_UNKNOWN else None
        )
        # computed identities, remembered both ways (see _remember_imsi: pure, bounded)
        self._imsi_by_key: dict[int, str] = {}
        self._key_by_imsi: dict[str, int] = {}
        self._canaries = self._choose_canaries()
        self._canary_set = frozenset(i for ids in self._canaries.values() for i in ids)

    # -- canary SIMs ----------------------------------------------------------------------

    def _choose_canaries(self) -> dict[str, list[int]]:
        """``canaries_per_node`` subscribers of each node, from the top of the number range
        down (away from the numbers tests and benchmarks start at): the seeded node of each
        index decides. A node with fewer subscribers within the search gets fewer."""
        s = self.settings
        want = s.canaries_per_node
        out: dict[str, list[int]] = {n: [] for n in self._nodes}
        if want <= 0:
            return out
        lowest = max(0, self._n - s.canary_search_subscribers_max)
        for index in range(self._n - 1, lowest - 1, -1):
            ids = out[self.node_of(index)]
            if len(ids) < want:
                ids.append(index)
            if all(len(v) >= want for v in out.values()):
                break
        return out

    def canaries(self) -> dict[str, list[str]]:
        """node -> the MSISDNs of its canary SIMs (as the register chose them at start; a
        canary moved or recycled since is still listed under the node it was chosen for)."""
        return {node: [self.msisdn_of(i) for i in ids] for node, ids in self._canaries.items()}

    def is_canary(self, msisdn: str) -> bool:
        try:
            return self.index_of(msisdn) in self._canary_set
        except Unknown:
            return False

    # -- identity (computed) ------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        return self._n

    def index_of(self, msisdn: str) -> int:
        """Subscriber index of an E.164 number (digits, no '+'); raises ``Unknown``."""
        if len(msisdn) != self._msisdn_len or not msisdn.isdigit():
            raise Unknown()
        index = int(msisdn) - self._first
        if not 0 <= index < self._n:
            raise Unknown()
        return index

    def msisdn_of(self, index: int) -> str:
        return str(self._first + index)

    def generation_of(self, index: int) -> int:
        return self._generation.get(index, 0)

    def imsi_of(self, index: int, generation: int | None = None) -> str:
        g = self._generation.get(index, 0) if generation is None else generation
        key = g * INDEX_SPACE + index
        imsi = self._imsi_by_key.get(key)
        if imsi is None:
            imsi = f"{self._imsi_prefix}{self._perm.permute(key):010d}"
            self._remember_imsi(key, imsi)
        return imsi

    def resolve_imsi(self, imsi: str) -> tuple[int, int] | None:
        """(index, generation) an IMSI of this network was issued for, current or not;
        None if it is not one of ours."""
        key = self._key_by_imsi.get(imsi)
        if key is None:
            if len(imsi) != 15 or not imsi.startswith(self._imsi_prefix) or not imsi.isdigit():
                return None
            key = self._perm.unpermute(int(imsi[5:]))
            if type(imsi) is str and imsi.isascii():  # the canonical text of ``key`` (isdigit
                # admits other digits; a str subclass is not the text imsi_of would give)
                self._remember_imsi(key, imsi)
        generation, index = divmod(key, INDEX_SPACE)
        # checked on every call, never remembered: a SIM swap or recycling moves the
        # current generation on
        if index >= self._n or generation > self._generation.get(index, 0):
            return None
        return index, generation

    def _remember_imsi(self, key: int, imsi: str) -> None:
        """Remember that identity ``key`` (generation * INDEX_SPACE + index) has the IMSI text
        ``imsi``, both ways. Safe under SIM swaps, recycling and moves: the pair is a pure
        function of the seed (a 15-digit IMSI with our prefix is exactly the 10-digit MSIN
        of one key), and which generation is current is looked up on every call, not
        remembered. Bounded: emptied when full, like the permutation's own memory."""
        if len(self._imsi_by_key) >= _IDENTITY_ENTRIES_MAX:
            self._imsi_by_key.clear()
            self._key_by_imsi.clear()
        self._imsi_by_key[key] = imsi
        self._key_by_imsi[imsi] = key

    def node_of(self, index: int) -> str:
        node = self._node_override.get(index)
        if node is not None:
            return node
        table = self._seeded_node
        if table is not None and 0 <= index < self._n:
            k = table[index]
            if k == _NODE_UNKNOWN:
                k = table[index] = mix64(index ^ self._node_salt) % len(self._nodes)
            return self._nodes[k]
        return self._nodes[mix64(index ^ self._node_salt) % len(self._nodes)]

    def is_subscriber(self, msisdn: str) -> bool:
        try:
            self.index_of(msisdn)
        except Unknown:
            return False
        return True

    # -- the SMSC's questions -----------------------------------------------------------

    def identity(self, msisdn: str) -> str:
        """The IMSI currently bound to ``msisdn`` (the SMSC's I2 check); raises ``Unknown``."""
        index = self.index_of(msisdn)
        imsi = self._imsi_by_key.get(self._generation.get(index, 0) * INDEX_SPACE + index)
        return self.imsi_of(index) if imsi is None else imsi

    def msisdn_for_imsi(self, imsi: str) -> str | None:
        """The number a CURRENT IMSI belongs to; None for foreign, unissued or retired IMSIs."""
        key = self._key_by_imsi.get(imsi)  # resolve_imsi's remembered case, written out
        if key is None:
            resolved = self.resolve_imsi(imsi)
            if resolved is None:
                return None
            index, generation = resolved
        else:
            generation, index = divmod(key, INDEX_SPACE)
            if index >= self._n:
                return None
        if generation != self._generation.get(index, 0):
            return None
        return self.msisdn_of(index)

    def lookup(self, msisdn: str) -> RoutingInfo:
        """SRI-for-SM: routing information, or raises ``Unknown`` / ``Absent``.

        Never cached by the register: every call reflects SIM swaps and moves made so far.
        """
        index = self.index_of(msisdn)
        state = self.state_of(index, self.clock())
        if state.reachability is not Reachability.PRESENT:
            flagged = self._waiting.get(index)
            if state.reason is AbsentReason.IMSI_DETACHED:
                raise Absent(AbsentReason.IMSI_DETACHED)
            if flagged is not None:
                raise Absent(flagged)
        info = RoutingInfo(msisdn, self.imsi_of(index), self.node_of(index))
        if self.faults is not None:
            info = self.faults.on_lookup(self, msisdn, info)
        return info

    # -- reachability -------------------------------------------------------------------

    def state(self, msisdn: str, now: float | None = None) -> SubscriberState:
        return self.state_of(self.index_of(msisdn), self.clock() if now is None else now)

    def state_of(self, index: int, now: float) -> SubscriberState:
        forced = self._forced.get(index)
        if forced is not None:
            if forced.until is None or now < forced.until:
                return forced
            del self._forced[index]
        if index in self._canary_set:  # a lab phone: always attached, memory never full
            return _PRESENT
        s = self.settings
        key = self._generation.get(index, 0) * INDEX_SPACE + index
        if self._absent_p:
            episode = _episode(
                key ^ self._absent_salt,
                now,
                self._absent_p,
                s.absent_duration_s_min,
                s.absent_duration_s_max,
            )
            if episode is not None:
                until, bits = episode
                reason = (
                    AbsentReason.IMSI_DETACHED
                    if bits < self._detached_threshold
                    else AbsentReason.NO_PAGING_RESPONSE
                )
                return SubscriberState(Reachability.ABSENT, reason, until)
        if self._memory_p:
            episode = _episode(
                key ^ self._memory_salt,
                now,
                self._memory_p,
                s.memory_full_duration_s_min,
                s.memory_full_duration_s_max,
            )
            if episode is not None:
                return SubscriberState(
                    Reachability.MEMORY_FULL, AbsentReason.MEMORY_CAPACITY_EXCEEDED, episode[0]
                )
        return _PRESENT

    def detach(
        self,
        msisdn: str,
        until: float | None = None,
        reason: AbsentReason = AbsentReason.IMSI_DETACHED,
    ) -> None:
        """Make a subscriber absent (until ``until``, or until ``attach``)."""
        index = self.index_of(msisdn)
        self._forced[index] = SubscriberState(Reachability.ABSENT, reason, until)
        self._reschedule(index, until)

    def set_memory_full(self, msisdn: str, until: float | None = None) -> None:
        index = self.index_of(msisdn)
        self._forced[index] = SubscriberState(
            Reachability.MEMORY_FULL, AbsentReason.MEMORY_CAPACITY_EXCEEDED, until
        )
        self._reschedule(index, until)

    def attach(self, msisdn: str) -> None:
        """Make a subscriber reachable from now on, exempt from the random model (also
        'memory available'). A waiting alert becomes due at once."""
        index = self.index_of(msisdn)
        self._forced[index] = _PRESENT
        self._reschedule(index, self.clock())

    def clear_forced(self, msisdn: str) -> None:
        """Back to the seeded model."""
        index = self.index_of(msisdn)
        self._forced.pop(index, None)
        self._reschedule(index, self.clock())

    # -- message waiting (MWD) and alerts -----------------------------------------------

    def set_message_waiting(self, msisdn: str, reason: AbsentReason) -> None:
        """ReportSM-DeliveryStatus: a delivery failed; alert the SMSC when it is reachable."""
        self.set_message_waiting_index(self.index_of(msisdn), reason)

    def set_message_waiting_index(self, index: int, reason: AbsentReason) -> None:
        self._waiting[index] = reason
        state = self.state_of(index, self.clock())
        self._reschedule(
            index, state.until if state.reachability is not Reachability.PRESENT else self.clock()
        )

    def message_waiting(self, msisdn: str) -> AbsentReason | None:
        return self._waiting.get(self.index_of(msisdn))

    @property
    def message_waiting_count(self) -> int:
        return len(self._waiting)

    def due_alerts(self, now: float | None = None) -> list[str]:
        """Numbers on the message-waiting list that are reachable again (each named once)."""
        now = self.clock() if now is None else now
        due: list[str] = []
        heap = self._alert_heap
        while heap and heap[0][0] <= now:
            _, index = heapq.heappop(heap)
            if index not in self._waiting:
                continue
            state = self.state_of(index, now)
            if state.reachability is Reachability.PRESENT:
                del self._waiting[index]
                due.append(self.msisdn_of(index))
            elif state.until is not None:
                heapq.heappush(heap, (state.until, index))
        return due

    def next_alert_at(self) -> float | None:
        return self._alert_heap[0][0] if self._alert_heap else None

    def _reschedule(self, index: int, at: float | None) -> None:
        if index in self._waiting and at is not None:
            heapq.heappush(self._alert_heap, (at, index))

    # -- ordinary network events ----------------------------------------------------------

    def sim_swap(self, msisdn: str) -> str:
        """The subscriber gets a new SIM: a new IMSI on the same number; the old one is dead."""
        return self._new_identity(msisdn, "sim_swap")

    def recycle(self, msisdn: str) -> str:
        """The number goes to a new subscriber: new IMSI, fresh state, no waiting messages."""
        index = self.index_of(msisdn)
        self._forced.pop(index, None)
        self._waiting.pop(index, None)
        self._node_override.pop(index, None)
        return self._new_identity(msisdn, "recycle")

    def move(self, msisdn: str, node: str) -> None:
        """The subscriber is now served by ``node`` (location update)."""
        index = self.index_of(msisdn)
        old = self.node_of(index)
        self._node_override[index] = node
        self._events.append(RegisterEvent(self.clock(), "move", msisdn, old, node))

    def _new_identity(self, msisdn: str, kind: str) -> str:
        index = self.index_of(msisdn)
        old = self.imsi_of(index)
        generation = self._generation.get(index, 0) + 1
        if generation > self.settings.identity_changes_per_number_max:
            raise RuntimeError("identity changes of this number exhausted")
        self._generation[index] = generation
        new = self.imsi_of(index)
        self._events.append(RegisterEvent(self.clock(), kind, msisdn, old, new))
        return new

    @property
    def events(self) -> tuple[RegisterEvent, ...]:
        """Recent identity changes and moves, oldest first (bounded)."""
        return tuple(self._events)


def _slot_probability(fraction: float, d_min: float, d_max: float) -> float:
    if fraction <= 0 or d_max <= 0:
        return 0.0
    mean = (d_min + d_max) / 2
    return min(1.0, fraction * d_max / mean)


def _episode(key: int, t: float, p: float, d_min: float, d_max: float) -> tuple[float, int] | None:
    """If subscriber ``key`` is inside an episode at ``t``: (end, 16 spare hash bits)."""
    slot_s = d_max
    threshold = int(p * 2**32)
    k = math.floor(t / slot_s)

    def draw(slot: int) -> tuple[float, float, int] | None:
        h = mix64(key ^ mix64(slot & 0xFFFFFFFFFFFF))
        if (h & 0xFFFFFFFF) >= threshold:
            return None
        start = (slot + ((h >> 32) & 0xFFFF) / 65536.0) * slot_s
        end = start + d_min + ((h >> 48) & 0xFFFF) / 65536.0 * (d_max - d_min)
        return start, end, mix64(h) & 0xFFFF

    for slot in (k - 1, k):
        ep = draw(slot)
        if ep is not None and ep[0] <= t < ep[1]:
            end, bits = ep[1], ep[2]
            nxt = slot + 1
            for _ in range(_EPISODE_CHAIN_MAX):  # overlapping later episodes extend it
                follow = draw(nxt)
                if follow is None or follow[0] > end:
                    break
                end = max(end, follow[1])
                nxt += 1
            return end, bits
    return None
