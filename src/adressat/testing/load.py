"""A lean SMPP load generator (ESME) for benchmarks: submit_sm at a window or a rate, receipts.

Why hand-written and not :class:`adressat.testing.esme.EsmeClient` or a library: the benchmark
must drive the SMSC at 12,000+ submits per second from the same 2-core machine, so the client
may cost only a few microseconds per message. EsmeClient goes through the full session, codec
and a future per submit (about 60 us per message), and no maintained Python SMPP library is
faster. Here every submit_sm body is encoded before the clock starts, a header is one
``struct.pack``, responses are matched by sequence number in ``data_received`` and the next
submits of the window leave in the same write. What it reads it still checks: command_length
bounds, the response's command_id, receipts matched by their ``receipted_message_id`` TLV (or
the ``id:`` in the receipt text).

Only for load: no reconnects, no timers (the server's enquire_link is answered), one
transceiver bind.

    client = await LoadClient.connect("127.0.0.1", port, "bench", "bench")
    run = await client.submit_all(["46701000000", ...], registered_delivery=1, window=100)
    missing = await client.wait_receipts(run.message_ids(), timeout_s=60)
    await client.close()
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus, TlvTag

__all__ = ["LoadClient", "LoadRun"]

_HEADER = struct.Struct(">IIII")
_TLV = struct.Struct(">HH")
# plain ints from the one constants table (the hot path compares and packs them)
GENERIC_NACK = int(C.GENERIC_NACK)
BIND_TRANSCEIVER, SUBMIT_SM, SUBMIT_SM_RESP = map(int, (C.BIND_TRANSCEIVER, C.SUBMIT_SM,
                                                       C.SUBMIT_SM_RESP))
DELIVER_SM, DELIVER_SM_RESP = int(C.DELIVER_SM), int(C.DELIVER_SM_RESP)
UNBIND, UNBIND_RESP = int(C.UNBIND), int(C.UNBIND_RESP)
ENQUIRE_LINK, ENQUIRE_LINK_RESP = int(C.ENQUIRE_LINK), int(C.ENQUIRE_LINK_RESP)
RECEIPTED_MESSAGE_ID = int(TlvTag.RECEIPTED_MESSAGE_ID)
ESME_RINVCMDID = int(CommandStatus.ESME_RINVCMDID)
PDU_LENGTH_MAX = 65536


def _cstr(text: str) -> bytes:
    raw = text.encode("latin-1")
    if 0 in raw:
        raise ValueError("NUL in a C-octet string")
    return raw + b"\0"


def _skip_cstr(buf: bytes, off: int) -> int:
    end = buf.index(0, off)
    return end + 1


@dataclass
class LoadRun:
    """One batch of submits: per index, when it was sent, answered, with what."""

    dests: Sequence[str]
    sent_at: list[float]
    answered_at: list[float]
    status: list[int]  # -1: no answer
    message_id: list[str | None]
    started_at: float = 0.0
    finished_at: float = 0.0
    done: asyncio.Future[None] | None = None
    next_index: int = 0
    outstanding: int = 0
    answered: int = 0

    def acked(self) -> list[int]:
        return [i for i, s in enumerate(self.status) if s == 0]

    def message_ids(self) -> list[str]:
        return [m for m, s in zip(self.message_id, self.status, strict=True) if s == 0 and m]

    def latencies_ms(self) -> list[float]:
        return [(self.answered_at[i] - self.sent_at[i]) * 1000 for i in self.acked()]


class LoadClient(asyncio.Protocol):
    """One transceiver session. Use :meth:`connect`."""

    def __init__(self, source_addr: str = "bench", source_ton: int = 5,
                 source_npi: int = 0) -> None:
        self._prefix = b"\0" + bytes((source_ton, source_npi)) + _cstr(source_addr) + b"\x01\x01"
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._seq = 0
        self._pending: dict[int, int] = {}  # sequence_number -> index in the current run
        self._bodies: list[bytes] = []
        self._run: LoadRun | None = None
        self._window = 1
        self._paced = False
        self._control: dict[int, asyncio.Future[int]] = {}  # bind/unbind seq -> status
        self.receipts: dict[str, str] = {}  # message_id -> stat of the first receipt
        # set: each receipt goes there (id, stat, time.perf_counter()) instead of into
        # ``receipts``, so a run of hours keeps nothing per message here
        self.on_receipt: Callable[[str, str, float], None] | None = None
        self.receipts_received = 0
        self.violations = 0
        self._receipt_waiter: asyncio.Future[None] | None = None
        self._receipts_wanted = 0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- connection ------------------------------------------------------------------------------
    @classmethod
    async def connect(cls, host: str, port: int, system_id: str, password: str, *,
                      timeout_s: float = 10.0, source_addr: str = "bench") -> LoadClient:
        loop = asyncio.get_running_loop()
        _, client = await asyncio.wait_for(
            loop.create_connection(lambda: cls(source_addr), host, port), timeout_s)
        body = _cstr(system_id) + _cstr(password) + b"\0" + b"\x34\x00\x00" + b"\0"
        status = await asyncio.wait_for(client._control_request(BIND_TRANSCEIVER, body),
                                        timeout_s)
        if status != 0:
            client.abort()
            raise ConnectionError(f"bind refused: status 0x{status:08x}")
        return client

    def _control_request(self, command_id: int, body: bytes) -> asyncio.Future[int]:
        assert self._transport is not None
        seq = self._next_seq()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._control[seq] = fut
        self._transport.write(_HEADER.pack(16 + len(body), command_id, 0, seq) + body)
        return fut

    async def close(self, timeout_s: float = 2.0) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        try:
            await asyncio.wait_for(self._control_request(UNBIND, b""), timeout_s)
        except (TimeoutError, ConnectionError):
            pass
        self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _next_seq(self) -> int:
        self._seq = self._seq + 1 if self._seq < 0x7FFFFFFF else 1
        return self._seq

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        for fut in self._control.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
        self._control.clear()
        run = self._run
        if run is not None and run.done is not None and not run.done.done():
            run.done.set_exception(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        n = len(buf)
        off = 0
        out: list[bytes] = []
        now = time.perf_counter()
        header = _HEADER
        pending = self._pending
        run = self._run
        freed = 0
        while n - off >= 16:
            length, cid, status, seq = header.unpack_from(buf, off)
            if length < 16 or length > PDU_LENGTH_MAX:
                self.violations += 1
                self.abort()
                return
            end = off + length
            if end > n:
                break
            if cid == SUBMIT_SM_RESP or cid == GENERIC_NACK:
                i = pending.pop(seq, None)
                if i is not None and run is not None:
                    run.answered_at[i] = now
                    run.status[i] = status
                    if status == 0 and length > 17:
                        run.message_id[i] = buf[off + 16 : end - 1].decode("latin-1")
                    run.outstanding -= 1
                    run.answered += 1
                    freed += 1
                else:
                    self.violations += 1
            elif cid == DELIVER_SM:
                out.append(_HEADER.pack(17, DELIVER_SM_RESP, 0, seq) + b"\0")
                self._on_deliver_sm(bytes(buf[off:end]))
            elif cid == ENQUIRE_LINK:
                out.append(_HEADER.pack(16, ENQUIRE_LINK_RESP, 0, seq))
            elif cid == UNBIND:
                out.append(_HEADER.pack(16, UNBIND_RESP, 0, seq))
            elif cid & 0x80000000:
                fut = self._control.pop(seq, None)
                if fut is not None and not fut.done():
                    fut.set_result(status)
            else:
                out.append(_HEADER.pack(16, GENERIC_NACK, ESME_RINVCMDID, seq))
            off = end
        if off:
            del buf[:off]
        if freed and run is not None:
            if not self._paced:
                self._fill(run, out)
            if run.answered == len(run.dests) and run.done is not None and not run.done.done():
                run.finished_at = now
                run.done.set_result(None)
        if out and self._transport is not None:
            self._transport.write(b"".join(out))

    def _on_deliver_sm(self, pdu: bytes) -> None:
        self.receipts_received += 1
        try:
            off = _skip_cstr(pdu, 16)  # service_type
            off = _skip_cstr(pdu, off + 2)  # source_addr
            off = _skip_cstr(pdu, off + 2)  # destination_addr
            esm_class = pdu[off]
            off = _skip_cstr(pdu, off + 3)  # schedule_delivery_time
            off = _skip_cstr(pdu, off)  # validity_period
            sm_length = pdu[off + 4]
            text = pdu[off + 5 : off + 5 + sm_length]
            off += 5 + sm_length
        except (ValueError, IndexError):
            self.violations += 1
            return
        if esm_class & 0x3C != 0x04:
            return  # a mobile-originated message, not a receipt
        mid: str | None = None
        while off + 4 <= len(pdu):
            tag, length = _TLV.unpack_from(pdu, off)
            if tag == RECEIPTED_MESSAGE_ID and length:
                mid = pdu[off + 4 : off + 4 + length - 1].decode("latin-1")
                break
            off += 4 + length
        stat = ""
        k = text.find(b"stat:")
        if k >= 0:
            stat = text[k + 5 : k + 12].decode("latin-1")
        if mid is None:
            k = text.find(b"id:")
            if k < 0:
                self.violations += 1
                return
            e = text.find(b" ", k)
            mid = text[k + 3 : e if e >= 0 else len(text)].decode("latin-1")
        if self.on_receipt is not None:  # the caller keeps what it needs (a long run)
            self.on_receipt(mid, stat, time.perf_counter())
            return
        if mid not in self.receipts:
            self.receipts[mid] = stat
            waiter = self._receipt_waiter
            if waiter is not None and len(self.receipts) >= self._receipts_wanted:
                if not waiter.done():
                    waiter.set_result(None)

    # -- submitting -------------------------------------------------------------------------------
    def _bodies_for(self, dests: Sequence[str], registered_delivery: int,
                    content: bytes) -> list[bytes]:
        if len(content) > 254:
            raise ValueError("content longer than short_message")
        tail = bytes((0, 0, 0, 0, 0, registered_delivery, 0, 0, 0, len(content))) + content
        prefix = self._prefix
        return [prefix + _cstr(d) + tail for d in dests]

    def _send(self, run: LoadRun, i: int, now: float, out: list[bytes]) -> None:
        seq = self._next_seq()
        body = self._bodies[i]
        self._pending[seq] = i
        run.sent_at[i] = now
        run.outstanding += 1
        out.append(_HEADER.pack(16 + len(body), SUBMIT_SM, 0, seq) + body)

    def _fill(self, run: LoadRun, out: list[bytes]) -> None:
        now = time.perf_counter()
        total = len(run.dests)
        while run.outstanding < self._window and run.next_index < total:
            self._send(run, run.next_index, now, out)
            run.next_index += 1

    async def submit_all(self, dests: Sequence[str], *, registered_delivery: int = 0,
                         window: int = 100, rate_per_s: float | None = None,
                         content: bytes = b"adressat bench") -> LoadRun:
        """Submit one message to each destination, at most ``window`` outstanding; with
        ``rate_per_s``, each one no earlier than its due time (start + i / rate). Returns when
        every submit is answered. ``sent_at`` is when its submit_sm was written."""
        if self._transport is None:
            raise ConnectionError("not connected")
        if self._run is not None:
            raise RuntimeError("one run at a time")
        n = len(dests)
        self._bodies = self._bodies_for(dests, registered_delivery, content)
        loop = asyncio.get_running_loop()
        run = LoadRun(dests, [0.0] * n, [0.0] * n, [-1] * n, [None] * n,
                      done=loop.create_future())
        self._run = run
        self._window = window
        self._paced = rate_per_s is not None
        run.started_at = time.perf_counter()
        try:
            if n == 0:
                return run
            if rate_per_s is None:
                out: list[bytes] = []
                self._fill(run, out)
                assert self._transport is not None
                self._transport.write(b"".join(out))
            else:
                await self._paced_send(run, rate_per_s)
            assert run.done is not None
            await run.done
            return run
        finally:
            self._run = None
            self._pending.clear()

    async def _paced_send(self, run: LoadRun, rate_per_s: float) -> None:
        t0 = run.started_at
        total = len(run.dests)
        while run.next_index < total:
            now = time.perf_counter()
            due = int((now - t0) * rate_per_s) + 1  # how many should have left by now
            out: list[bytes] = []
            while run.next_index < min(due, total) and run.outstanding < self._window:
                self._send(run, run.next_index, now, out)
                run.next_index += 1
            if out:
                if self._transport is None:
                    raise ConnectionError("connection lost")
                self._transport.write(b"".join(out))
            if run.next_index < total:
                wait = t0 + run.next_index / rate_per_s - time.perf_counter()
                # a full window: look again in a millisecond (an answer frees a slot)
                await asyncio.sleep(max(0.001 if run.outstanding >= self._window else 0.0,
                                        wait))

    async def wait_receipts(self, message_ids: Sequence[str], timeout_s: float) -> set[str]:
        """Wait until every id has a receipt or ``timeout_s`` passes; the ids still without."""
        deadline = time.perf_counter() + timeout_s
        missing = {m for m in message_ids if m not in self.receipts}
        while missing:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            waiter = asyncio.get_running_loop().create_future()
            self._receipt_waiter = waiter
            self._receipts_wanted = len(self.receipts) + len(missing)
            try:
                await asyncio.wait_for(waiter, min(left, 0.5))
            except TimeoutError:
                pass
            finally:
                self._receipt_waiter = None
            missing = {m for m in missing if m not in self.receipts}
        return missing
