"""A small asyncio SMPP ESME for tests and benchmarks: bind, windowed submits, receipts.

Built on the sans-I/O :class:`adressat.smpp.session.Session` (role ESME) and asyncio streams.
It keeps its own record of everything that happened, so a test can judge the server from the
client's side (never from the server's word):

* ``submits``: one :class:`SubmitRecord` per submit_sm sent, with the destination and the
  response's status and message_id. A submit whose connection dropped (or whose response timed
  out) before an answer has ``status is None``: its outcome is UNKNOWN, it is not accepted.
* ``receipts``: ``message_id -> DeliveryReceipt``, the first receipt for each id;
  ``receipt_log`` holds every receipt received, duplicates included; ``deliveries`` every
  deliver_sm that was not a receipt (mobile-originated messages).

The connection can drop at any time (a killed server): pending submits fail with
:class:`ConnectionLost`, and :meth:`EsmeClient.connect` can be called again to reconnect
(``retry_for_s`` keeps trying while the server restarts).

    client = EsmeClient("127.0.0.1", port, "demo", "demo", window=50)
    await client.connect()
    resp = await client.submit("46701000001", b"hello")
    await client.wait_receipts([resp.fields["message_id"]], timeout_s=10)
    await client.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import FieldValue, Pdu
from adressat.smpp.session import (
    Closed,
    ProtocolViolation,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    Role,
    Session,
    SessionError,
    SessionLimits,
)
from adressat.sms.receipt import DeliveryReceipt, ReceiptError, parse_receipt

__all__ = [
    "BindFailed",
    "ConnectionLost",
    "DeliveryRecord",
    "EsmeClient",
    "ReceiptRecord",
    "SubmitRecord",
]

ESM_MESSAGE_TYPE_MASK = 0x3C
ESM_DELIVERY_RECEIPT = 0x04
_BIND = {
    "transceiver": C.BIND_TRANSCEIVER,
    "transmitter": C.BIND_TRANSMITTER,
    "receiver": C.BIND_RECEIVER,
}


class ConnectionLost(ConnectionError):
    """The connection dropped (or the response timed out) before the answer: outcome unknown."""


class BindFailed(ConnectionError):
    def __init__(self, status: int) -> None:
        name = next((s.name for s in S if s == status), hex(status))
        super().__init__(f"bind refused: {name}")
        self.status = status


@dataclass(slots=True)
class SubmitRecord:
    """One submit_sm as the client saw it. ``status`` None: no answer (outcome unknown)."""

    dest: str
    source: str
    connection: int  # which connection (1, 2, ...) it was sent on
    sequence_number: int
    sent_at: float  # time.monotonic()
    status: int | None = None
    message_id: str | None = None
    answered_at: float | None = None
    failure: str | None = None  # why there is no answer: "connection lost", "timeout", ...
    sent: bool = True  # False: never sent (not connected); not in EsmeClient.submits

    @property
    def acked(self) -> bool:
        """The server said ESME_ROK: it promised the message (DESIGN.md I1)."""
        return self.status == S.ESME_ROK

    @property
    def unknown(self) -> bool:
        """Sent but never answered: the server may or may not have accepted it."""
        return self.sent and self.status is None


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    message_id: str | None  # receipted_message_id TLV, else the receipt text's id
    receipt: DeliveryReceipt | None  # None: the text did not parse
    handset: str  # source_addr of the deliver_sm: the number the message went to
    destination: str  # destination_addr of the deliver_sm: our source address
    message_state: int | None
    received_at: float  # time.monotonic()
    connection: int


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A deliver_sm that is not a receipt (mobile-originated). Content kept as given."""

    source: str
    destination: str
    content: bytes
    received_at: float
    connection: int


class _Connection:
    """One TCP connection: the session, its reader and timer tasks, the pending futures."""

    def __init__(self, client: EsmeClient, number: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.client = client
        self.number = number
        self.reader = reader
        self.writer = writer
        self.session = Session(Role.ESME, time.monotonic(), client.limits)
        self.waiting: dict[int, asyncio.Future[Pdu]] = {}
        self.closed = asyncio.Event()
        self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._timer())]

    def send_request(self, pdu: Pdu) -> tuple[Pdu, asyncio.Future[Pdu]]:
        if self.closed.is_set():
            raise ConnectionLost("not connected")
        try:
            data = self.session.send(pdu, time.monotonic())
        except SessionError as e:
            raise ConnectionLost(str(e)) from None
        sent = self.session.last_sent
        fut: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self.waiting[sent.sequence_number] = fut
        self._write(data)
        return sent, fut

    def _write(self, data: bytes) -> None:
        if data and not self.closed.is_set():
            try:
                self.writer.write(data)
            except (ConnectionError, RuntimeError):
                self.shutdown("write failed")

    async def _read(self) -> None:
        try:
            while not self.closed.is_set():
                data = await self.reader.read(65536)
                if not data:
                    break
                self.session.receive_data(data, time.monotonic())
                self._pump()
        except (ConnectionError, OSError):
            pass
        finally:
            self.shutdown("connection lost")

    async def _timer(self) -> None:
        while not self.closed.is_set():
            deadline = self.session.get_timer()
            now = time.monotonic()
            delay = 1.0 if deadline is None else max(0.0, min(1.0, deadline - now))
            await asyncio.sleep(delay)
            if deadline is not None and time.monotonic() >= deadline:
                self.session.handle_timer(time.monotonic())
                self._pump()

    def _pump(self) -> None:
        self._write(self.session.data_to_send())
        while (ev := self.session.next_event()) is not None:
            if isinstance(ev, ResponseReceived):
                fut = self.waiting.pop(ev.request.sequence_number, None)
                if fut is not None and not fut.done():
                    fut.set_result(ev.pdu)
            elif isinstance(ev, ResponseTimedOut):
                fut = self.waiting.pop(ev.request.sequence_number, None)
                if fut is not None and not fut.done():
                    fut.set_exception(ConnectionLost("timeout"))
            elif isinstance(ev, RequestReceived):
                self._on_request(ev.pdu)
            elif isinstance(ev, ProtocolViolation):
                self.client.violations.append(ev)
            elif isinstance(ev, Closed):
                self._write(self.session.data_to_send())
                self.shutdown(ev.reason)
                return
            self._write(self.session.data_to_send())

    def _on_request(self, pdu: Pdu) -> None:
        if pdu.command_id == C.DELIVER_SM:
            status = self.client._on_deliver_sm(pdu, self.number)
            self._write(self.session.send(pdu.response(status), time.monotonic()))
        elif pdu.command_id == C.UNBIND:
            self._write(self.session.send(pdu.response(), time.monotonic()))
        elif pdu.command_id in (C.ALERT_NOTIFICATION, C.OUTBIND):
            pass
        else:
            self._write(self.session.send(pdu.response(S.ESME_RINVCMDID), time.monotonic()))

    def shutdown(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.close_reason = reason
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionLost(reason))
        self.waiting.clear()
        with contextlib.suppress(Exception):
            self.writer.close()
        current = asyncio.current_task()
        for t in self.tasks:
            if t is not current:
                t.cancel()
        self.client._on_connection_closed(self)


class EsmeClient:
    """An SMPP 3.4 ESME: one bound connection at a time, reconnectable.

    ``window``: submits outstanding at once (``submit`` waits for room). ``bind``:
    "transceiver" (default), "transmitter" or "receiver". Receipts are answered with
    deliver_sm_resp ESME_ROK and recorded (see the module docstring).
    """

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        window: int = 100,
        *,
        bind: str = "transceiver",
        source_addr: str = "adressat",
        source_ton: int = 5,
        source_npi: int = 0,
        response_timeout_s: float = 10.0,
        enquire_link_interval_s: float = 30.0,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        if bind not in _BIND:
            raise ValueError(f"bind must be one of {sorted(_BIND)}")
        self.host = host
        self.port = port
        self.system_id = system_id
        self.password = password
        self.window = window
        self.bind = bind
        self.source_addr = source_addr
        self.source_ton = source_ton
        self.source_npi = source_npi
        self.limits = SessionLimits(
            window_size_max=window + 2,  # room for enquire_link and unbind
            response_timeout_s=response_timeout_s,
            enquire_link_interval_s=enquire_link_interval_s,
            idle_timeout_s=0,
            bind_timeout_s=0,
        )
        self.submits: list[SubmitRecord] = []
        self.receipts: dict[str, DeliveryReceipt] = {}
        self.receipt_log: list[ReceiptRecord] = []
        self.deliveries: list[DeliveryRecord] = []
        self.violations: list[ProtocolViolation] = []
        self.connections = 0  # how many times a bind succeeded
        self.disconnects = 0  # how many bound connections were lost or closed
        self._conn: _Connection | None = None
        self._slots = asyncio.Semaphore(window)
        self._receipt_arrived = asyncio.Event()

    # -- connection -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed.is_set()

    async def connect(self, *, retry_for_s: float = 0.0, retry_interval_s: float = 0.1,
                      timeout_s: float = 10.0) -> None:
        """Connect and bind (a no-op when already bound). With ``retry_for_s``, keep trying
        refused or dropped connections that long (a restarting server); a refused bind is not
        retried (BindFailed)."""
        if self.connected:
            return
        deadline = time.monotonic() + retry_for_s
        while True:
            try:
                await asyncio.wait_for(self._connect_once(), timeout_s)
                return
            except BindFailed:
                raise
            except (OSError, TimeoutError):
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(retry_interval_s)

    async def _connect_once(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        conn = _Connection(self, self.connections + 1, reader, writer)
        bind = Pdu.make(_BIND[self.bind], 0, system_id=self.system_id,
                        password=self.password, interface_version=0x34)
        try:
            _, fut = conn.send_request(bind)
            resp = await fut
        except BaseException:
            conn.shutdown("bind not answered")
            raise
        if resp.command_status != S.ESME_ROK:
            conn.shutdown("bind refused")
            raise BindFailed(resp.command_status)
        self.connections += 1
        self._conn = conn

    def _on_connection_closed(self, conn: _Connection) -> None:
        if self._conn is conn:
            self._conn = None
            self.disconnects += 1

    async def wait_disconnected(self) -> None:
        conn = self._conn
        if conn is not None:
            await conn.closed.wait()

    async def close(self, timeout_s: float = 2.0) -> None:
        """Unbind (briefly waiting for unbind_resp) and close; safe on a dropped connection."""
        conn = self._conn
        if conn is None:
            return
        with contextlib.suppress(ConnectionError, TimeoutError, SessionError):
            _, fut = conn.send_request(Pdu.make(C.UNBIND, 0))
            await asyncio.wait_for(fut, timeout_s)
        conn.shutdown("closed by client")
        for t in conn.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # -- submitting -----------------------------------------------------------------------------
    async def submit(self, dest: str, content: bytes = b"adressat test",
                     registered_delivery: int = 1, *, dest_ton: int = 1, dest_npi: int = 1,
                     tlvs: Mapping[str | int, Any] | None = None, **fields: FieldValue) -> Pdu:
        """Send one submit_sm (waiting for a window slot) and return its response.

        Raises ConnectionLost when not connected (nothing sent, nothing recorded) or when the
        connection drops (or the response times out) before the answer (recorded with
        ``status None``: outcome unknown)."""
        rec, resp = await self._submit(dest, content, registered_delivery, dest_ton=dest_ton,
                                       dest_npi=dest_npi, tlvs=tlvs, **fields)
        if resp is None:
            raise ConnectionLost(rec.failure or "no response")
        return resp

    async def _submit(self, dest: str, content: bytes = b"adressat test",
                      registered_delivery: int = 1, *, dest_ton: int = 1, dest_npi: int = 1,
                      tlvs: Mapping[str | int, Any] | None = None, **fields: FieldValue,
                      ) -> tuple[SubmitRecord, Pdu | None]:
        body: dict[str, FieldValue] = {
            "source_addr_ton": self.source_ton,
            "source_addr_npi": self.source_npi,
            "source_addr": self.source_addr,
            "dest_addr_ton": dest_ton,
            "dest_addr_npi": dest_npi,
            "destination_addr": dest,
            "registered_delivery": registered_delivery,
            "short_message": content,
        }
        body.update(fields)
        pdu = Pdu.make(C.SUBMIT_SM, 0, tlvs=dict(tlvs or {}), **body)  # type: ignore[arg-type]
        async with self._slots:
            conn = self._conn
            if conn is None or conn.closed.is_set():
                return SubmitRecord(dest=dest, source=str(body["source_addr"]), connection=0,
                                    sequence_number=0, sent_at=time.monotonic(), sent=False,
                                    failure="not connected"), None
            sent, fut = conn.send_request(pdu)
            rec = SubmitRecord(dest=dest, source=str(body["source_addr"]),
                               connection=conn.number, sequence_number=sent.sequence_number,
                               sent_at=time.monotonic())
            self.submits.append(rec)
            try:
                resp = await fut
            except ConnectionLost as e:
                rec.failure = str(e)
                return rec, None
            except asyncio.CancelledError:
                rec.failure = "cancelled"
                raise
            rec.status = int(resp.command_status)
            rec.answered_at = time.monotonic()
            mid = resp.fields.get("message_id")
            rec.message_id = str(mid) if mid else None
            return rec, resp

    async def submit_many(self, items: Iterable[str | tuple[str, bytes] | Mapping[str, Any]],
                          ) -> list[SubmitRecord]:
        """Submit many at once, up to ``window`` outstanding; one record per item, in order.

        An item is a destination, a (destination, content) pair, or a mapping of
        :meth:`submit` keyword arguments (``dest`` included). Never raises for a dropped
        connection: those records have ``status None``; items that were not sent because
        the client was not connected have ``sent False`` (and are not in ``submits``)."""

        async def one(item: str | tuple[str, bytes] | Mapping[str, Any]) -> SubmitRecord:
            if isinstance(item, str):
                rec, _ = await self._submit(item)
            elif isinstance(item, tuple):
                rec, _ = await self._submit(item[0], item[1])
            else:
                rec, _ = await self._submit(**item)
            return rec

        return list(await asyncio.gather(*(one(i) for i in items)))

    # -- receiving ------------------------------------------------------------------------------
    def _on_deliver_sm(self, pdu: Pdu, connection: int) -> int:
        now = time.monotonic()
        f = pdu.fields
        content = f.get("short_message", b"")
        if not content:
            payload = pdu.tlv("message_payload")
            content = payload if isinstance(payload, bytes) else b""
        assert isinstance(content, bytes)
        esm = int(f.get("esm_class", 0))  # type: ignore[arg-type]
        if esm & ESM_MESSAGE_TYPE_MASK != ESM_DELIVERY_RECEIPT:
            self.deliveries.append(DeliveryRecord(str(f.get("source_addr", "")),
                                                  str(f.get("destination_addr", "")),
                                                  content, now, connection))
            return S.ESME_ROK
        try:
            receipt: DeliveryReceipt | None = parse_receipt(content)
        except ReceiptError:
            receipt = None
        tlv_id = pdu.tlv("receipted_message_id")
        mid = str(tlv_id) if tlv_id is not None else (receipt.id if receipt else None)
        state = pdu.tlv("message_state")
        self.receipt_log.append(ReceiptRecord(
            mid, receipt, str(f.get("source_addr", "")), str(f.get("destination_addr", "")),
            state if isinstance(state, int) else None, now, connection,
        ))
        if mid is not None and receipt is not None and mid not in self.receipts:
            self.receipts[mid] = receipt
            self._receipt_arrived.set()
        return S.ESME_ROK

    async def wait_receipts(self, message_ids: Iterable[str], timeout_s: float) -> set[str]:
        """Wait until every id has a receipt or ``timeout_s`` passes; returns the ids still
        without one (empty: all arrived)."""
        missing = {m for m in message_ids if m not in self.receipts}
        deadline = time.monotonic() + timeout_s
        while missing:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._receipt_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._receipt_arrived.wait(), min(left, 0.5))
            missing = {m for m in missing if m not in self.receipts}
        return missing

    # -- summaries ------------------------------------------------------------------------------
    @property
    def acked(self) -> list[SubmitRecord]:
        return [r for r in self.submits if r.acked]

    @property
    def unknown(self) -> list[SubmitRecord]:
        return [r for r in self.submits if r.unknown]

    def stats(self) -> dict[str, int]:
        return {
            "submitted": len(self.submits),
            "acked": sum(r.acked for r in self.submits),
            "refused": sum(r.status is not None and not r.acked for r in self.submits),
            "unknown": sum(r.unknown for r in self.submits),
            "receipts": len(self.receipts),
            "receipts_received": len(self.receipt_log),
            "connections": self.connections,
            "disconnects": self.disconnects,
        }
