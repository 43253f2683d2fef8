"""The simulated operator network: register (HLR), serving nodes and handsets.

The SMSC's two steps, as on a real network:

1. SRI-for-SM: ``network.register.lookup(msisdn) -> RoutingInfo(msisdn, imsi, node)``
   (raises ``Unknown`` / ``Absent``).
2. MT-ForwardSM: ``await network.forward_sm(imsi, node, sms) -> Ack | Failure``, addressed
   by IMSI and node only. The handset that stores the message answers with ITS OWN identity
   (``Ack(imsi, msisdn)``) after its evidence record is written.

A handset stores each SMS-DELIVER once: one with the TP-OA and TP-SCTS (and, for a part of a
long message, the part number of its concatenation element) of one it already stored is a
resend, acknowledged again but discarded (flagged ``duplicate`` in the inbox). TS 23.040 §6.2
makes the SC give every message to one MS a distinct stamp, so nothing else is compared: two
different messages with one stamp would lose the second, as on a real handset. Each handset
remembers its last ``handset_delivers_remembered_max`` keys; the memory is rebuilt from the
inbox at start.

A failed delivery (absent, memory full) puts the number on the register's message-waiting
list; when the subscriber is reachable again, callbacks registered with ``on_alert`` are
called with the number (alertSC). ``process_due()`` does that for the current clock; the
background task started by ``start()`` calls it every ``alert_poll_interval_s``.

Late-ack channel: acknowledgements that reach the SMSC outside the MT-ForwardSM they answer
(after its timeout, a second copy, or a handset that should never have had the message) are
reported to callbacks registered with ``on_late_ack`` as
``callback(smsc_message_id, part_index, ack)``: the SMSC's side of the MT-ForwardSM dialogue
the answer belongs to (in MAP the SMSC matches answers by its TCAP dialogue, never by a field
of the TPDU). Faults put them there with
``report_late_ack(..., at=t)``; ``process_due()`` hands over those due at its ``now``. The
SMSC must never apply one to a message: it discards it with an alarm (DESIGN.md, "Identity
checks"). An honest network never uses this channel.

Faults: ``network.faults`` (a ``Faults``; ``NO_FAULTS`` by default) may be swapped at run
time; the register follows it and the new one is ``attach``-ed to this network.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from adressat.netsim.faults import NO_FAULTS, Faults
from adressat.netsim.forward import Ack, Failure, FailureReason, NetSms
from adressat.netsim.inbox import (
    InboxRecord,
    InboxWriter,
    inbox_path,
    legacy_record_line,
    read_inbox,
    record_line,
)
from adressat.netsim.register import AbsentReason, Reachability, Register
from adressat.netsim.settings import NetsimSettings
from adressat.sms.segment import UdhError, concat_info_from_udh, parse_udh

__all__ = ["Network", "NetworkStats", "AlertCallback", "LateAckCallback", "StoredCallback"]

AlertCallback = Callable[[str], None]
LateAckCallback = Callable[[str, int, Ack], None]
#: ``callback(imsi, msisdn, smsc_message_id, part_index, content_sha256)``: a handset stored
#: an SMS-DELIVER (its evidence record is written); the digest is of the TP-UD it got
StoredCallback = Callable[[str, str, str, int, str], None]
log = logging.getLogger(__name__)
_C = TypeVar("_C")


@dataclass(slots=True)
class NetworkStats:
    forwarded: int = 0
    acked: int = 0
    duplicates: int = 0
    alerts: int = 0
    failures: Counter[FailureReason] = field(default_factory=Counter)
    # handsets that stored a message addressed to ANOTHER IMSI (faults only: ground truth)
    misdirected: int = 0
    late_acks: int = 0  # reported on the late-ack channel
    late_acks_dropped: int = 0  # over late_acks_pending_max


def _register(callbacks: list[_C], callback: _C) -> Callable[[], None]:
    """Add ``callback`` to ``callbacks``; the function returned takes it out again."""
    callbacks.append(callback)

    def unregister() -> None:
        if callback in callbacks:
            callbacks.remove(callback)

    return unregister


class Network:
    """One simulated operator network with its handsets' evidence under ``<home>/netsim``."""

    def __init__(
        self,
        home: str | Path,
        settings: NetsimSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        faults: Faults | None = None,
    ) -> None:
        self.settings = s = settings or NetsimSettings()
        self.home = Path(home)
        self.clock = clock
        self._sleep = sleep
        self.sleep = sleep  # for fault models that hold an answer back
        self.register = Register(s, clock=clock)
        self._faults: Faults = NO_FAULTS
        self.faults = faults or NO_FAULTS
        self.stats = NetworkStats()
        self._latency_rng = random.Random(f"netsim-latency-{s.seed}")
        self._alert_callbacks: list[AlertCallback] = []
        self._late_ack_callbacks: list[LateAckCallback] = []
        self._stored_callbacks: list[StoredCallback] = []
        self._late_acks: list[tuple[float, int, str, int, Ack]] = []  # heap by due time
        self._late_ack_seq = 0
        # the handsets' duplicate memory: per handset (IMSI), the keys of the SMS-DELIVERs it
        # stored, oldest first, at most ``handset_delivers_remembered_max``; the handsets in
        # the order they last stored something, the one used longest ago forgotten first
        # when all of them together hold more than ``duplicate_memory_entries_max``
        self._seen: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._seen_entries = 0
        self._reload_duplicate_memory()
        self.inbox = InboxWriter(self.home, fsync=s.inbox_fsync,
                                 rotate_bytes=s.inbox_rotate_bytes, files_max=s.inbox_files_max)
        self._task: asyncio.Task[None] | None = None

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """Swap the fault model at run time (the register follows)."""
        self._faults = faults
        self.register.faults = None if faults is NO_FAULTS else faults
        faults.attach(self)

    # -- MT-ForwardSM ---------------------------------------------------------------------

    async def forward_sm(self, imsi: str, node: str, sms: NetSms) -> Ack | Failure:
        """Deliver ``sms`` to the handset with ``imsi`` through serving ``node``."""
        stats = self.stats
        stats.forwarded += 1
        injected = self._faults.before_forward(imsi, node, sms)
        result: Ack | Failure
        if injected is not None:
            result = injected
        else:
            result = await self._forward(imsi, node, sms)
        result = await self._faults.on_ack(result, imsi, node, sms)
        if isinstance(result, Ack):
            stats.acked += 1
        else:
            stats.failures[result.reason] += 1
        return result

    async def _forward(self, imsi: str, node: str, sms: NetSms) -> Ack | Failure:
        register = self.register
        resolved = register.resolve_imsi(imsi)
        if resolved is None:
            return Failure.of(FailureReason.UNKNOWN_SUBSCRIBER)
        index, generation = resolved
        if generation != register.generation_of(index) or register.node_of(index) != node:
            # a retired SIM, or not registered at that node: the VLR does not know it
            return Failure.of(FailureReason.UNIDENTIFIED_SUBSCRIBER)
        state = register.state_of(index, self.clock())
        if state.reachability is Reachability.ABSENT:
            register.set_message_waiting_index(
                index,
                AbsentReason.NO_PAGING_RESPONSE
                if state.reason is not AbsentReason.IMSI_DETACHED
                else AbsentReason.IMSI_DETACHED,
            )
            return Failure.of(FailureReason.ABSENT_SUBSCRIBER)
        if state.reachability is Reachability.MEMORY_FULL:
            register.set_message_waiting_index(index, AbsentReason.MEMORY_CAPACITY_EXCEEDED)
            return Failure.of(FailureReason.MEMORY_CAPACITY_EXCEEDED)
        latency_s = self._draw_latency_s()
        if latency_s > 0:
            await self._sleep(latency_s)
        acks: list[Ack] = []
        for target in self._faults.recipients(imsi, node, sms):
            stored = self._handset_store(target, node, sms)
            if stored is not None:
                if target != imsi:
                    self.stats.misdirected += 1
                acks.append(stored)
        if not acks:
            return Failure.of(FailureReason.SYSTEM_FAILURE)
        if len(acks) == 1:
            return acks[0]
        first = acks[0]
        return Ack(first.imsi, first.msisdn, tuple(acks[1:]))

    def _handset_store(self, imsi: str, node: str, sms: NetSms) -> Ack | None:
        """The handset with ``imsi`` stores the SMS (once) and answers with its identity."""
        msisdn = self.register.msisdn_for_imsi(imsi)
        if msisdn is None:
            return None
        digest = hashlib.sha256(sms.content).hexdigest()
        legacy = sms.legacy_reference
        if legacy is None:
            part = _concat_part(sms)
            key: DeliverKey = (sms.originator, int.from_bytes(sms.scts) << 8 | part,
                               int(digest[:16], 16), 0)
        else:  # first sent before schema v9: known by its TP-MR and content then
            key = (sms.originator, legacy, int(digest[:16], 16))
        duplicate = not self._remember(imsi, key)
        if duplicate:
            self.stats.duplicates += 1
        # the bytes of InboxRecord(...).to_line(), without building the record
        if legacy is None:
            line = record_line(
                self.clock(),
                msisdn,
                imsi,
                node,
                sms.originator,
                sms.scts,
                part,
                sms.data_coding,
                sms.smsc_message_id,
                digest,
                duplicate,
            )
        else:
            line = legacy_record_line(
                self.clock(),
                msisdn,
                imsi,
                node,
                sms.originator,
                legacy,
                sms.data_coding,
                sms.smsc_message_id,
                digest,
                duplicate,
            )
        try:
            self.inbox.append_line(line)
        except OSError:
            # its storage failed (the evidence cannot be written): the handset has not
            # stored it, so it neither remembers it nor acknowledges it (the attempt fails)
            if not duplicate:
                self._forget(imsi, key)
            raise
        for callback in self._stored_callbacks:
            try:
                callback(imsi, msisdn, sms.smsc_message_id, sms.part_index, digest)
            except Exception as exc:  # an observer must not change what the network does
                log.error("netsim stored callback failed",
                          extra={"error_type": type(exc).__name__})
        return Ack(imsi, msisdn)

    def _remember(self, imsi: str, key: DeliverKey) -> bool:
        """The handset ``imsi`` takes in an SMS-DELIVER known by ``key``: False if it already
        holds one with that key (a resend), else True, remembering it (its oldest key
        forgotten beyond ``handset_delivers_remembered_max``). A handset's keys are one tuple
        of integers (about 8 octets a key; a dict per handset cost ten times that)."""
        k = _key_int(key)
        seen_all = self._seen
        seen = seen_all.get(imsi)
        settings = self.settings
        if seen is None:
            seen_all[imsi] = (k,)
        else:
            seen_all.move_to_end(imsi)
            if k in seen:
                return False
            if len(seen) >= settings.handset_delivers_remembered_max:
                seen_all[imsi] = (*seen[1:], k)
                return True
            seen_all[imsi] = (*seen, k)
        self._seen_entries += 1
        if self._seen_entries > settings.duplicate_memory_entries_max:
            _, forgotten = seen_all.popitem(last=False)
            self._seen_entries -= len(forgotten)
        return True

    def _forget(self, imsi: str, key: DeliverKey) -> None:
        seen = self._seen.get(imsi)
        k = _key_int(key)
        if seen is not None and k in seen:
            self._seen[imsi] = tuple(x for x in seen if x != k)
            self._seen_entries -= 1

    def remembered(self, imsi: str) -> int:
        """How many SMS-DELIVERs the handset ``imsi`` remembers (for tests and figures)."""
        return len(self._seen.get(imsi, ()))

    def _reload_duplicate_memory(self) -> None:
        path = inbox_path(self.home)
        if not path.exists():
            return
        size = path.stat().st_size
        start = max(0, size - self.settings.inbox_reload_bytes_max)
        for record in read_inbox(self.home, start_offset=start):
            if record.duplicate:
                continue
            if record.scts is None:  # a v1 line: known by its TP-MR and content
                key: DeliverKey = (
                    record.originator,
                    record.message_reference or 0,
                    int(record.content_sha256[:16], 16),
                )
            else:
                key = (record.originator, int.from_bytes(record.scts) << 8 | record.part,
                       int(record.content_sha256[:16], 16), 0)
            self._remember(record.imsi, key)

    def _draw_latency_s(self) -> float:
        s = self.settings
        rng = self._latency_rng
        if s.slow_ack_fraction and rng.random() < s.slow_ack_fraction:
            low, high = s.slow_ack_latency_ms_min, s.slow_ack_latency_ms_max
        else:
            low, high = s.ack_latency_ms_min, s.ack_latency_ms_max
        if high <= 0:
            return 0.0
        return rng.uniform(low, high) / 1000.0

    # -- alertSC --------------------------------------------------------------------------

    def on_alert(self, callback: AlertCallback) -> Callable[[], None]:
        """Call ``callback(msisdn)`` when a subscriber with a failed delivery is reachable
        again. Returns a function that unregisters it. Callbacks must not block."""
        return _register(self._alert_callbacks, callback)

    def on_stored(self, callback: StoredCallback) -> Callable[[], None]:
        """Call ``callback(imsi, msisdn, smsc_message_id, part_index, content_sha256)`` every
        time a handset stores an SMS-DELIVER (a resend it discards too), right after its
        evidence record is written: an observer (the canary prober) sees which handset got
        what. Returns a function that unregisters it. Callbacks must not block."""
        return _register(self._stored_callbacks, callback)

    def on_late_ack(self, callback: LateAckCallback) -> Callable[[], None]:
        """Call ``callback(smsc_message_id, part_index, ack)`` for every acknowledgement
        that arrives outside its MT-ForwardSM (late, duplicated, stray). Returns a function
        that unregisters it. Callbacks must not block."""
        return _register(self._late_ack_callbacks, callback)

    def report_late_ack(
        self, smsc_message_id: str, part_index: int, ack: Ack, *, at: float | None = None
    ) -> None:
        """Put an acknowledgement on the late-ack channel, handed over by ``process_due`` at
        clock time ``at`` (default: the next call). Bounded by ``late_acks_pending_max``."""
        if len(self._late_acks) >= self.settings.late_acks_pending_max:
            self.stats.late_acks_dropped += 1
            return
        self._late_ack_seq += 1
        heapq.heappush(
            self._late_acks,
            (
                self.clock() if at is None else at,
                self._late_ack_seq,
                smsc_message_id,
                part_index,
                ack,
            ),
        )

    @property
    def late_acks_pending(self) -> int:
        return len(self._late_acks)

    def next_late_ack_at(self) -> float | None:
        return self._late_acks[0][0] if self._late_acks else None

    def _deliver_late_acks(self, now: float) -> None:
        heap = self._late_acks
        while heap and heap[0][0] <= now:
            _, _, message_id, part_index, ack = heapq.heappop(heap)
            self.stats.late_acks += 1
            for callback in list(self._late_ack_callbacks):
                try:
                    callback(message_id, part_index, ack)
                except Exception as exc:
                    log.error("netsim late-ack callback failed",
                              extra={"error_type": type(exc).__name__})

    def process_due(self, now: float | None = None) -> list[str]:
        """Fire the alerts that are due at ``now`` (default: the clock); returns the numbers.
        Also hands the late acknowledgements due by ``now`` to the late-ack channel."""
        if self._late_acks:
            self._deliver_late_acks(self.clock() if now is None else now)
        due = self.register.due_alerts(now)
        for msisdn in due:
            self.stats.alerts += 1
            for callback in list(self._alert_callbacks):
                try:
                    callback(msisdn)
                except Exception as exc:  # one broken subscriber must not stop the others
                    log.error("netsim alert callback failed",
                              extra={"error_type": type(exc).__name__})
        return due

    async def run(self) -> None:
        """Fire alerts as they come due, forever (cancel to stop)."""
        while True:
            try:
                self.process_due()
            except Exception as exc:
                log.error("netsim alert processing failed",
                          extra={"error_type": type(exc).__name__})
            await asyncio.sleep(self.settings.alert_poll_interval_s)

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="netsim-alerts")
        return self._task

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.close()

    def close(self) -> None:
        self.inbox.close()

    # -- audit ----------------------------------------------------------------------------

    def inbox_of(self, msisdn: str) -> list[InboxRecord]:
        """Everything the handset(s) on ``msisdn`` stored, from the durable record."""
        return list(read_inbox(self.home, msisdn=msisdn))


#: What a handset recognises a resend by: (TP-OA, the TP-SCTS octets and the part number of
#: the concatenation element as one integer, 64 bits of the content's SHA-256, 0), or, for a
#: message first sent before schema v9, (TP-OA, the TP-MR netsim knew it by then, 64 bits of
#: its content's SHA-256).
DeliverKey = tuple[str, int, int] | tuple[str, int, int, int]

_KEY_MASK = (1 << 64) - 1


def _key_int(key: DeliverKey) -> int:
    """A handset's key as one 64-bit integer (a hash: the memory lives in this process only,
    rebuilt from the inbox at start). The content's digest is part of it: after a fault that
    put another number's SMS on this handset (a node that mixes or doubles deliveries), that
    SMS's (TP-OA, TP-SCTS) must not make the handset take its own next SMS with the same
    stamp for a resend (stamps are per number, not per handset). Two keys sharing 64 bits
    would only make a resend look new."""
    return hash(key) & _KEY_MASK


def _concat_part(sms: NetSms) -> int:
    """The part number (TS 23.040 §9.2.3.24.1, 1..255) of the concatenation element in the
    SMS's user data header; 0 when it has none. The parts of a long message share their
    message's TP-SCTS and differ in this."""
    if not sms.udhi:
        return 0
    try:
        info = concat_info_from_udh(parse_udh(sms.content)[0])
    except UdhError:
        return 0
    return 0 if info is None else info.seqnum
