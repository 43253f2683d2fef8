"""A partner SMSC of our own, for tests of a connector against misbehaviour.

An asyncio SMPP server on 127.0.0.1 built on our Session in the SMSC role
(``transport.smpp_server.SmppConnection``). It accepts binds (optionally checking system_id and
password), records every submit_sm it receives, answers with message ids, and sends delivery
receipts, in the ways real partners misbehave (``PartnerModes``; change ``sink.modes`` at run
time, it is read on every submit):

* ``receipt_delay_s``: a receipt that long after the submit (None: no receipts);
  ``receipt_before_resp``: the receipt goes out before the submit_sm_resp (no delay);
* ``id_style``: "decimal", "hex", "hex_upper", "zero_padded" (``id_width`` digits),
  "hex_in_resp_decimal_in_receipt" (Jasmin #423/#521: the response says the id in hex, the
  receipt in decimal), "zero_padded_in_resp_plain_in_receipt";
  ``fixed_id``: the same id for every submit (as OsmoMSC answers);
* ``bogus_receipts``: each receipt is followed by one for an id never given;
* ``vanish_after``: once that many submits arrived, the connection is closed without an
  answer to that submit or any after it (one shot: the mode clears itself);
* ``throttle_every``: every Nth submit answered ESME_RTHROTTLED; ``refuse``: destination
  prefix -> status; ``resp_delay_s``: answers that much later (submits stay outstanding);
* ``receipt_stat`` / ``receipt_err``: what receipts say; ``receipt_tlvs``: with
  receipted_message_id and message_state (else the text only); ``receipt_other_session``:
  on another bound session of the same system_id than the submit's (round robin among them).

Receipts use the standard text (``id:... sub:001 dlvrd:001 submit date:... done date:...
stat:... err:... text:``). A receipt for a system_id with no receiving session bound waits
(bounded) and goes out when one binds; a receipt answered with an error or lost with its
connection is sent again, at most ``receipt_attempts_max`` times.

Standalone: ``python -m adressat.testing.partner --port P [--receipt-delay-s S] ...``
(prints nothing but log lines; ``--help`` lists the modes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adressat.observe.logs import FORMATS, LEVELS, setup_logging
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.constants import EsmClass, MessageState
from adressat.smpp.pdus import Pdu, TlvValue
from adressat.smpp.session import SessionLimits
from adressat.smpp.views import DeliverSm, SubmitSm
from adressat.sms.receipt import DeliveryReceipt, ReceiptStat, build_receipt
from adressat.transport.smpp_server import LATER, Later, SmppConnection

__all__ = [
    "ID_STYLES",
    "PartnerModes",
    "PartnerSink",
    "ReceivedSubmit",
    "SentReceipt",
    "main",
]

log = logging.getLogger("adressat.testing.partner")

ID_STYLES = ("decimal", "hex", "hex_upper", "zero_padded", "hex_in_resp_decimal_in_receipt",
             "zero_padded_in_resp_plain_in_receipt")
_BINDS = {C.BIND_TRANSCEIVER: "trx", C.BIND_TRANSMITTER: "tx", C.BIND_RECEIVER: "rx"}
STAT_STATE: Mapping[ReceiptStat, MessageState] = {
    ReceiptStat.DELIVRD: MessageState.DELIVERED,
    ReceiptStat.EXPIRED: MessageState.EXPIRED,
    ReceiptStat.DELETED: MessageState.DELETED,
    ReceiptStat.UNDELIV: MessageState.UNDELIVERABLE,
    ReceiptStat.ACCEPTD: MessageState.ACCEPTED,
    ReceiptStat.UNKNOWN: MessageState.UNKNOWN,
    ReceiptStat.REJECTD: MessageState.REJECTED,
    ReceiptStat.ENROUTE: MessageState.ENROUTE,
}
BOGUS_ID_OFFSET = 900_000_000  # bogus receipts name ids from here up: never given


@dataclass
class PartnerModes:
    receipt_delay_s: float | None = None
    receipt_before_resp: bool = False
    id_style: str = "decimal"
    id_start: int = 0xA000  # the first id's number (hex shows letters from the start)
    id_width: int = 10  # digits of the zero-padded styles
    fixed_id: str | None = None
    bogus_receipts: bool = False
    vanish_after: int | None = None
    throttle_every: int | None = None
    refuse: dict[str, int] = field(default_factory=dict)  # destination prefix -> status
    resp_delay_s: float = 0.0
    receipt_stat: str = "DELIVRD"
    receipt_err: str = "000"
    receipt_tlvs: bool = True
    receipt_other_session: bool = False

    def check(self) -> None:
        """ValueError naming the first mode that makes no sense."""
        if self.id_style not in ID_STYLES:
            raise ValueError(f"id_style must be one of {ID_STYLES}")
        if self.receipt_stat not in ReceiptStat.__members__:
            raise ValueError(f"receipt_stat must be one of {tuple(ReceiptStat.__members__)}")
        if self.receipt_delay_s is not None and self.receipt_delay_s < 0:
            raise ValueError("receipt_delay_s must be 0 or more")
        if self.resp_delay_s < 0:
            raise ValueError("resp_delay_s must be 0 or more")
        for name in ("vanish_after", "throttle_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.id_start < 0 or not 1 <= self.id_width <= 64:
            raise ValueError("id_start must be 0 or more, id_width 1..64")

    def ids(self, number: int) -> tuple[str, str]:
        """(id in the submit_sm_resp, id in the receipt) for the Nth id's number."""
        if self.fixed_id is not None:
            return self.fixed_id, self.fixed_id
        style = self.id_style
        if style == "hex":
            return f"{number:x}", f"{number:x}"
        if style == "hex_upper":
            return f"{number:X}", f"{number:X}"
        if style == "zero_padded":
            padded = f"{number:0{self.id_width}d}"
            return padded, padded
        if style == "hex_in_resp_decimal_in_receipt":
            return f"{number:x}", str(number)
        if style == "zero_padded_in_resp_plain_in_receipt":
            return f"{number:0{self.id_width}d}", str(number)
        return str(number), str(number)


@dataclass(frozen=True, slots=True)
class ReceivedSubmit:
    """One submit_sm as the sink saw it. ``status`` is what it answered (None: never
    answered, the connection vanished)."""

    session: int
    seq: int
    system_id: str
    destination: str
    source: str
    content: bytes = field(repr=False)
    esm_class: int
    data_coding: int
    registered_delivery: int
    tlvs: tuple[tuple[int, TlvValue], ...] = field(repr=False)
    status: int | None
    message_id: str  # in the submit_sm_resp ("" when refused or never answered)
    receipt_id: str  # the id its receipt names ("" when none)
    received_at: float


@dataclass(slots=True)
class SentReceipt:
    message_id: str  # the id the receipt names
    system_id: str
    stat: str
    bogus: bool
    session: int | None = None  # where it went last
    status: int | None = None  # the deliver_sm_resp status (None: not answered yet / lost)
    attempts: int = 0
    pdu: Pdu | None = field(default=None, repr=False)


class _PartnerConnection(SmppConnection):
    """SmppConnection that also tells the sink about unbinds (the session answers those)."""

    sink: PartnerSink
    vanished = False
    bind = ""

    def _on_request(self, pdu: Pdu) -> None:
        if pdu.command_id == C.UNBIND:
            self.sink.unbinds += 1
            log.info("partner unbind", extra={"session": self.conn_id, "peer": self.peer})
        super()._on_request(pdu)


class PartnerSink:
    """The partner SMSC. ``await sink.start()`` returns the port; ``await sink.stop()`` drops
    every connection at once (a crash, not a shutdown); ``start()`` again listens on the same
    port. ``records_max`` bounds every record list."""

    def __init__(
        self,
        modes: PartnerModes | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        system_id: str | None = None,
        password: str | None = None,
        bind_status: int = S.ESME_ROK,
        smsc_system_id: str = "partner",
        limits: SessionLimits | None = None,
        records_max: int = 100_000,
        pending_receipts_max: int = 10_000,
        receipt_attempts_max: int = 3,
        receipt_retry_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.modes = modes if modes is not None else PartnerModes()
        self.modes.check()
        self.host = host
        self.port = port
        self.system_id = system_id
        self.password = password
        self.bind_status = bind_status  # not ROK: every bind refused with it
        self.smsc_system_id = smsc_system_id
        self.limits = limits if limits is not None else SessionLimits(
            idle_timeout_s=0, bind_timeout_s=5.0, enquire_link_interval_s=0)
        self.clock = clock
        self.receipt_attempts_max = receipt_attempts_max
        self.receipt_retry_s = receipt_retry_s
        self.submits: deque[ReceivedSubmit] = deque(maxlen=records_max)
        self.receipts: deque[SentReceipt] = deque(maxlen=records_max)
        self.binds: deque[tuple[str, str, int]] = deque(maxlen=records_max)  # (id, bind, st)
        self.connections: set[SmppConnection] = set()
        self.unbinds = 0
        self.vanished = 0
        self.received = 0  # submits received
        self.outstanding = 0  # submits received and not answered yet
        self.outstanding_max = 0
        self._pending: deque[SentReceipt] = deque(maxlen=pending_receipts_max)
        self._ids = itertools.count(0)
        self._bogus_ids = itertools.count(0)
        self._rr = itertools.count(0)
        self._owed: dict[SmppConnection, int] = {}
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._changed = asyncio.Event()

    # -- life -----------------------------------------------------------------------------------
    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._make, self.host, self.port,
                                                reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("partner listening", extra={"port": self.port})
        return self.port

    async def stop(self, *, lose_receipts: bool = False) -> None:
        """Stop listening and drop every connection without a word. Receipts not sent yet
        are kept (a partner with a durable store: they go out once a receiver binds after
        ``start()``) unless ``lose_receipts``."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self.connections):
            if conn._transport is not None:
                conn._transport.abort()
        if lose_receipts:
            for t in list(self._timers):
                t.cancel()
            self._timers.clear()
            self._pending.clear()
            for task in list(self._tasks):
                task.cancel()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        await asyncio.sleep(0)

    def _make(self) -> _PartnerConnection:
        conn = _PartnerConnection(self, self.limits, admission=self)
        conn.sink = self
        return conn

    # Admission: the sink counts its connections
    def admit(self, conn: SmppConnection) -> bool:
        self.connections.add(conn)
        return True

    def release(self, conn: SmppConnection) -> None:
        self.connections.discard(conn)

    # -- what a test looks at -------------------------------------------------------------------
    def bound_sessions(self, system_id: str | None = None) -> list[_PartnerConnection]:
        return [c for c in self.connections
                if isinstance(c, _PartnerConnection) and c.session.is_bound and not c.is_gone
                and (system_id is None or c.account == system_id)]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        """Until ``predicate()`` holds (checked on every change, and every 20 ms), bounded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.02))
        return True

    def _touch(self) -> None:
        self._changed.set()

    # -- RequestHandler -------------------------------------------------------------------------
    def handle(self, conn: SmppConnection, pdu: Pdu) -> Pdu | Awaitable[Pdu] | Later:
        assert isinstance(conn, _PartnerConnection)
        pc = conn
        cid = pdu.command_id
        if pc.vanished:
            if cid == C.SUBMIT_SM:
                self.received += 1
                self.submits.append(ReceivedSubmit(**self._base(pc, pdu, SubmitSm.from_pdu(pdu)),
                                                   status=None, message_id="", receipt_id=""))
            return LATER  # never answered
        if cid in _BINDS:
            return self._bind(pc, pdu)
        if cid == C.SUBMIT_SM:
            return self._submit(pc, pdu)
        return pdu.response(S.ESME_RINVCMDID)

    def on_bound(self, conn: SmppConnection) -> None:
        log.info("partner bound", extra={"session": conn.conn_id, "system_id": conn.account,
                                         "peer": conn.peer})
        self._touch()
        if self._pending:
            pending, self._pending = list(self._pending), deque(maxlen=self._pending.maxlen)
            for rec in pending:
                self._send_receipt(rec)

    def on_closed(self, conn: SmppConnection) -> None:
        owed = self._owed.pop(conn, 0)
        self.outstanding -= owed
        self._touch()

    def _bind(self, conn: _PartnerConnection, pdu: Pdu) -> Pdu:
        system_id = str(pdu.fields.get("system_id", ""))
        password = str(pdu.fields.get("password", ""))
        status: int = self.bind_status
        if status == S.ESME_ROK:
            if self.system_id is not None and system_id != self.system_id:
                status = S.ESME_RINVSYSID
            elif self.password is not None and password != self.password:
                status = S.ESME_RINVPASWD
        bind = _BINDS[C(pdu.command_id)]
        self.binds.append((system_id, bind, int(status)))
        self._touch()
        if status != S.ESME_ROK:
            log.info("partner bind refused", extra={"session": conn.conn_id, "status": status,
                                                    "peer": conn.peer})
            return pdu.response(status)
        conn.account = system_id
        conn.bind = bind
        return pdu.response(system_id=self.smsc_system_id)

    def _submit(self, conn: _PartnerConnection, pdu: Pdu) -> Pdu | Awaitable[Pdu] | Later:
        m = self.modes
        view = SubmitSm.from_pdu(pdu)
        self.received += 1
        n = self.received
        system_id = conn.account or ""
        base = self._base(conn, pdu, view)
        if m.vanish_after is not None and n >= m.vanish_after:
            m.vanish_after = None
            self.vanished += 1
            conn.vanished = True
            self.submits.append(ReceivedSubmit(**base, status=None, message_id="",
                                               receipt_id=""))
            log.info("partner vanishing", extra={"session": conn.conn_id, "submits": n})
            conn.close()
            self._touch()
            return LATER
        status: int = S.ESME_ROK
        if m.throttle_every is not None and n % m.throttle_every == 0:
            status = S.ESME_RTHROTTLED
        else:
            for prefix, refusal in m.refuse.items():
                if view.destination_addr.startswith(prefix):
                    status = refusal
                    break
        resp_id = receipt_id = ""
        if status == S.ESME_ROK:
            resp_id, receipt_id = m.ids(m.id_start + next(self._ids))
        wants_receipt = status == S.ESME_ROK and _receipt_requested(
            view.registered_delivery, m.receipt_stat)
        self.submits.append(ReceivedSubmit(**base, status=status, message_id=resp_id,
                                           receipt_id=receipt_id if wants_receipt else ""))
        self._touch()
        resp = pdu.response(status, message_id=resp_id) if status == S.ESME_ROK else (
            pdu.response(status))
        first: SentReceipt | None = None
        if wants_receipt and (m.receipt_before_resp or m.receipt_delay_s is not None):
            rec = SentReceipt(receipt_id, system_id, m.receipt_stat, bogus=False)
            if m.receipt_before_resp:
                first = rec
            else:
                self._later(m.receipt_delay_s or 0.0, self._receipt_now, rec, (view, conn))
        if m.resp_delay_s <= 0 and first is None:
            return resp
        self._owe(conn, +1)
        return self._answer_later(conn, resp, m.resp_delay_s, first, view)

    def _base(self, conn: _PartnerConnection, pdu: Pdu, view: SubmitSm) -> dict[str, Any]:
        return {
            "session": conn.conn_id, "seq": pdu.sequence_number, "system_id": conn.account or "",
            "destination": view.destination_addr, "source": view.source_addr,
            "content": view.content, "esm_class": view.esm_class,
            "data_coding": view.data_coding, "registered_delivery": view.registered_delivery,
            "tlvs": pdu.tlvs, "received_at": self.clock(),
        }

    async def _answer_later(self, conn: _PartnerConnection, resp: Pdu, delay_s: float,
                            receipt: SentReceipt | None, view: SubmitSm) -> Pdu:
        try:
            if receipt is not None:
                self._receipt_now(receipt, (view, conn))
                await asyncio.sleep(0)  # the deliver_sm is written before the response
            if delay_s > 0:
                await asyncio.sleep(delay_s)
        finally:
            self._owe(conn, -1)
        return resp

    def _owe(self, conn: _PartnerConnection, delta: int) -> None:
        if delta < 0 and conn not in self._owed:
            return  # its connection closed; counted off there
        self._owed[conn] = self._owed.get(conn, 0) + delta
        self.outstanding += delta
        self.outstanding_max = max(self.outstanding_max, self.outstanding)

    # -- receipts -------------------------------------------------------------------------------
    def _later(self, delay_s: float, fn: Callable[..., None], *args: object) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            fn(*args)

        handle = loop.call_later(delay_s, fire)
        self._timers.add(handle)

    def _receipt_now(self, rec: SentReceipt,
                     origin: tuple[SubmitSm, _PartnerConnection]) -> None:
        view, conn = origin
        rec_pdu = self.receipt_pdu(rec.message_id, rec.stat, handset=view.destination_addr,
                                   handset_ton=view.dest_addr_ton, handset_npi=view.dest_addr_npi,
                                   sender=view.source_addr, sender_ton=view.source_addr_ton,
                                   sender_npi=view.source_addr_npi)
        self.receipts.append(rec)
        self._send_receipt(rec, rec_pdu, prefer_not=conn if self.modes.receipt_other_session
                           else None, prefer=conn)
        if self.modes.bogus_receipts:
            number = BOGUS_ID_OFFSET + self.modes.id_start + next(self._bogus_ids)
            bogus = SentReceipt(self.modes.ids(number)[1], rec.system_id, rec.stat, bogus=True)
            self.receipts.append(bogus)
            self._send_receipt(bogus, self.receipt_pdu(
                bogus.message_id, bogus.stat, handset=view.destination_addr,
                sender=view.source_addr))

    def send_receipt(self, system_id: str, message_id: str, stat: str = "DELIVRD", *,
                     handset: str = "", sender: str = "") -> SentReceipt:
        """A receipt of the test's choosing (an id given twice, one never given...)."""
        rec = SentReceipt(message_id, system_id, stat, bogus=True)
        self.receipts.append(rec)
        self._send_receipt(rec, self.receipt_pdu(message_id, stat, handset=handset,
                                                 sender=sender))
        return rec

    def receipt_pdu(self, message_id: str, stat: str, *, handset: str, sender: str,
                    handset_ton: int = 1, handset_npi: int = 1, sender_ton: int = 1,
                    sender_npi: int = 1) -> Pdu:
        now = datetime.fromtimestamp(self.clock(), UTC)
        st = ReceiptStat(stat)
        text = build_receipt(DeliveryReceipt(
            id=message_id, sub=1, dlvrd=1 if st is ReceiptStat.DELIVRD else 0,
            submit_date=now, done_date=now, stat=st, err=self.modes.receipt_err, text=""))
        with_tlvs = self.modes.receipt_tlvs
        return DeliverSm(
            source_addr_ton=handset_ton, source_addr_npi=handset_npi, source_addr=handset,
            dest_addr_ton=sender_ton, dest_addr_npi=sender_npi, destination_addr=sender,
            esm_class=EsmClass.TYPE_DELIVERY_RECEIPT, short_message=text.encode("latin-1"),
            receipted_message_id=message_id if with_tlvs else None,
            message_state=int(STAT_STATE[st]) if with_tlvs else None,
        ).to_pdu()

    def _receivers(self, system_id: str) -> list[_PartnerConnection]:
        return [c for c in self.bound_sessions(system_id) if c.session.can_receive
                and not c.vanished]

    def _send_receipt(self, rec: SentReceipt, pdu: Pdu | None = None, *,
                      prefer_not: _PartnerConnection | None = None,
                      prefer: _PartnerConnection | None = None) -> None:
        if pdu is None:
            pdu = rec.pdu
        if pdu is None:  # pragma: no cover - every caller gives one the first time
            return
        rec.pdu = pdu
        receivers = sorted(self._receivers(rec.system_id), key=lambda c: c.conn_id)
        if prefer_not is not None and len(receivers) > 1:
            receivers = [c for c in receivers if c is not prefer_not]
        elif prefer is not None and prefer in receivers:
            receivers = [prefer]
        if not receivers:
            self._pending.append(rec)  # goes out when a receiver binds
            return
        conn = receivers[next(self._rr) % len(receivers)]
        rec.attempts += 1
        rec.session = conn.conn_id
        task = asyncio.ensure_future(self._deliver(conn, rec, pdu))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, conn: _PartnerConnection, rec: SentReceipt, pdu: Pdu) -> None:
        try:
            resp = await conn.request(pdu)
            rec.status = int(resp.command_status)
        except (ConnectionError, TimeoutError):
            rec.status = None
        self._touch()
        if rec.status != S.ESME_ROK and rec.attempts < self.receipt_attempts_max:
            self._later(self.receipt_retry_s, self._send_receipt, rec)


def _receipt_requested(registered_delivery: int, stat: str) -> bool:
    mode = registered_delivery & 0x03
    return mode == 1 or (mode == 2 and stat != "DELIVRD")


# -- standalone -------------------------------------------------------------------------------

def _status(text: str) -> int:
    if text in S.__members__:
        return int(S[text])
    return int(text, 0)


def _refusal(text: str) -> tuple[str, int]:
    prefix, sep, status = text.partition("=")
    if not sep or not prefix.isdigit():
        raise argparse.ArgumentTypeError("expected PREFIX=STATUS (ESME_RINVDSTADR or 0x0b)")
    try:
        return prefix, _status(status)
    except ValueError:
        raise argparse.ArgumentTypeError("unknown status") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m adressat.testing.partner",
                                description="A misbehaving partner SMSC for tests.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--system-id", default=None, help="only this system_id may bind")
    p.add_argument("--password", default=None, help="only this password binds")
    p.add_argument("--receipt-delay-s", type=float, default=None)
    p.add_argument("--receipt-before-resp", action="store_true")
    p.add_argument("--id-style", choices=ID_STYLES, default="decimal")
    p.add_argument("--id-start", type=int, default=PartnerModes.id_start)
    p.add_argument("--fixed-id", default=None)
    p.add_argument("--bogus-receipts", action="store_true")
    p.add_argument("--vanish-after", type=int, default=None)
    p.add_argument("--throttle-every", type=int, default=None)
    p.add_argument("--refuse", type=_refusal, action="append", default=[],
                   metavar="PREFIX=STATUS")
    p.add_argument("--resp-delay-s", type=float, default=0.0)
    p.add_argument("--receipt-stat", choices=tuple(ReceiptStat.__members__), default="DELIVRD")
    p.add_argument("--receipt-err", default="000")
    p.add_argument("--no-receipt-tlvs", action="store_true")
    p.add_argument("--receipt-other-session", action="store_true")
    p.add_argument("--log-format", choices=FORMATS, default="text")
    p.add_argument("--log-level", choices=tuple(LEVELS), default="info")
    return p


def modes_from_args(args: argparse.Namespace) -> PartnerModes:
    return PartnerModes(
        receipt_delay_s=args.receipt_delay_s, receipt_before_resp=args.receipt_before_resp,
        id_style=args.id_style, id_start=args.id_start, fixed_id=args.fixed_id,
        bogus_receipts=args.bogus_receipts, vanish_after=args.vanish_after,
        throttle_every=args.throttle_every, refuse=dict(args.refuse),
        resp_delay_s=args.resp_delay_s, receipt_stat=args.receipt_stat,
        receipt_err=args.receipt_err, receipt_tlvs=not args.no_receipt_tlvs,
        receipt_other_session=args.receipt_other_session,
    )


async def _serve(sink: PartnerSink) -> None:
    await sink.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await sink.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        modes = modes_from_args(args)
        modes.check()
    except ValueError as e:
        print(f"partner: {e}", file=sys.stderr)
        return 2
    setup_logging(args.log_format, args.log_level, "partner")
    sink = PartnerSink(modes, host=args.host, port=args.port, system_id=args.system_id,
                       password=args.password)
    asyncio.run(_serve(sink))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
