"""SMPP server connections: the asyncio shell around ``smpp.session.Session``.

Thin on purpose: bytes from the socket go into the session, events out of it go to the
:class:`RequestHandler` (the application), answers and our own requests go back through the
session. No routing, no store, no message semantics here.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from ssl import SSLContext
from typing import Any, Protocol, cast

from adressat.observe.logs import known
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import Pdu
from adressat.smpp.session import (
    Closed,
    PduReadTimedOut,
    ProtocolViolation,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    Role,
    Session,
    SessionError,
    SessionLimits,
)

log = logging.getLogger("adressat.smpp")
_BINDS = frozenset({C.BIND_RECEIVER, C.BIND_TRANSMITTER, C.BIND_TRANSCEIVER})
_conn_ids = itertools.count(1)


class Later:
    """What a handler returns when it will answer by itself, later, with
    :meth:`SmppConnection.answer` (exactly once): the per-submit path, with no future or
    task per request."""

    __slots__ = ()


LATER = Later()


class RequestHandler(Protocol):
    def handle(self, conn: SmppConnection, pdu: Pdu) -> Pdu | Awaitable[Pdu] | Later: ...
    def on_bound(self, conn: SmppConnection) -> None: ...
    def on_closed(self, conn: SmppConnection) -> None: ...


class Admission(Protocol):
    """Who counts the connections: asked in connection_made, told in connection_lost."""

    def admit(self, conn: SmppConnection) -> bool: ...
    def release(self, conn: SmppConnection) -> None: ...


class SmppConnection(asyncio.Protocol):
    """One ESME's TCP connection. ``account`` is set by the handler when a bind succeeds."""

    def __init__(
        self,
        handler: RequestHandler,
        limits: SessionLimits,
        clock: Callable[[], float] = time.time,
        admission: Admission | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.clock = clock
        self._admission = admission
        self.refused = False  # over the listener's sessions_max: closed in connection_made
        self.conn_id = next(_conn_ids)
        self.account: str | None = None
        self.interface_version = 0x34  # set by the handler from the bind
        self.peer = ""
        self.session = Session(Role.SMSC, clock(), limits)
        self._transport: asyncio.Transport | None = None
        self._waiting: dict[int, asyncio.Future[Pdu]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._tasks: set[asyncio.Future[Pdu]] = set()
        self._owed = 0  # requests the handler will answer later (LATER)
        self._answered: asyncio.Future[None] | None = None  # set when nothing is owed
        self._window_waiters: deque[asyncio.Future[None]] = deque()
        self._pumping = False
        self._wbuf = bytearray()
        self._flush_scheduled = False
        self._unbinding: asyncio.Future[None] | None = None
        self.failed_binds = 0  # counted by the handler, which may ask to close
        self._close_after_response = False
        self.closed = asyncio.get_event_loop().create_future()

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if self._admission is not None and not self._admission.admit(self):
            # before any read: nothing of it reaches the session or the handler
            self.refused = True
            transport.close()
            return
        log.info("connection", extra={"session": self.conn_id, "peer": self.peer})
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.session.receive_data(data, self.clock())
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        # gone for good: an answer still being prepared (a bind waiting for its password
        # check) must not bind it, or it would be registered as a receiver after on_closed
        self._transport = None
        if self.refused:
            if not self.closed.done():
                self.closed.set_result(None)
            return
        if self._admission is not None:
            self._admission.release(self)
        if self._timer:
            self._timer.cancel()
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
        self._waiting.clear()
        self._wake_window()
        if not self.closed.done():
            self.closed.set_result(None)
        log.info("closed", extra={"session": self.conn_id, "account": self.account,
                                  "peer": self.peer})
        self.handler.on_closed(self)

    # -- events -------------------------------------------------------------------------------
    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            self._drain()
        finally:
            self._pumping = False
        self._arm_timer()

    def _drain(self) -> None:
        out = self.session.data_to_send()
        if out and self._transport:
            self._write(out)
        while (ev := self.session.next_event()) is not None:
            if isinstance(ev, RequestReceived):
                self._on_request(ev.pdu)
            elif isinstance(ev, ResponseReceived):
                fut = self._waiting.pop(ev.request.sequence_number, None)
                if fut is not None and not fut.done():
                    fut.set_result(ev.pdu)
                self._wake_window()
            elif isinstance(ev, ResponseTimedOut):
                fut = self._waiting.pop(ev.request.sequence_number, None)
                if fut is not None and not fut.done():
                    fut.set_exception(TimeoutError("no response"))
                self._wake_window()
            elif isinstance(ev, ProtocolViolation):
                log.warning(
                    "protocol violation",
                    extra={"session": self.conn_id, "account": self.account,
                           "status": known(S, ev.command_status), "reason": ev.reason,
                           "command_id": known(C, ev.command_id), "seq": ev.sequence_number},
                )
            elif isinstance(ev, PduReadTimedOut):
                log.warning(
                    "PDU read deadline passed; closing the session",
                    extra={"session": self.conn_id, "account": self.account,
                           "peer": self.peer, "received_octets": ev.received_octets,
                           "announced_octets": ev.announced_octets,
                           "limit_s": self.limits.pdu_read_timeout_s},
                )
            elif isinstance(ev, Closed):
                log.info("session closed", extra={"session": self.conn_id, "account": self.account,
                                                  "reason": ev.reason})
                self._close_soon()
            out = self.session.data_to_send()
            if out and self._transport:
                self._write(out)

    def _on_request(self, pdu: Pdu) -> None:
        if pdu.command_id == C.UNBIND:
            if self._tasks or self._owed:
                # requests still being answered (a submit waiting for its commit) are
                # answered first: unbind_resp closes the session, and a committed message
                # whose submit_sm_resp is never sent would be sent again by the ESME
                unbind = asyncio.ensure_future(self._unbind_when_answered(pdu))
                self._unbinding = unbind
            else:
                self.respond(pdu.response())
            return
        try:
            result = self.handler.handle(self, pdu)
        except Exception:  # noqa: BLE001 - our fault: the peer gets RSYSERR, the session goes on
            log.exception("handler failed", extra={
                "session": self.conn_id, "account": self.account,
                "command_id": known(C, pdu.command_id), "seq": pdu.sequence_number})
            result = pdu.response(S.ESME_RSYSERR)
        if result is LATER:
            self._owed += 1
            return
        if isinstance(result, Pdu):
            self.respond(result)
            return
        task = asyncio.ensure_future(result)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._answer_task, pdu=pdu))

    async def _unbind_when_answered(self, pdu: Pdu) -> None:
        await self.wait_answered(self.limits.response_timeout_s)
        self.respond(pdu.response())

    async def wait_answered(self, timeout_s: float) -> None:
        """Until every request taken so far is answered (or ``timeout_s``)."""
        pending: set[asyncio.Future[Any]] = set(self._tasks)
        if self._owed:
            if self._answered is None or self._answered.done():
                self._answered = asyncio.get_running_loop().create_future()
            pending.add(self._answered)
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        await asyncio.sleep(0)  # let the done-callbacks send their responses first

    def answer(self, pdu: Pdu) -> None:
        """The answer to a request the handler took with LATER."""
        self._owed -= 1
        if self._owed <= 0 and self._answered is not None and not self._answered.done():
            self._answered.set_result(None)
        self.respond(pdu)

    def _answer_task(self, task: asyncio.Future[Pdu], *, pdu: Pdu) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("handler failed", exc_info=exc, extra={
                "session": self.conn_id, "account": self.account,
                "command_id": known(C, pdu.command_id), "seq": pdu.sequence_number})
            self.respond(pdu.response(S.ESME_RSYSERR))
        else:
            self.respond(task.result())

    def respond(self, pdu: Pdu) -> None:
        if self.session.is_closed or self._transport is None:
            return
        data = self.session.send(pdu, self.clock())
        self._write(data)
        if self._close_after_response:
            self._close_soon()
            return
        if pdu.command_id & 0x7FFFFFFF in _BINDS:
            if self.session.is_bound:
                self.handler.on_bound(self)
        elif not self.session.pending_events:
            # a response moves no deadline earlier: the timer stays as it is
            return
        self._pump()

    # -- our requests (deliver_sm) ---------------------------------------------------------------
    async def request(self, pdu: Pdu) -> Pdu:
        """Send a request and wait for its response (TimeoutError / ConnectionError)."""
        while self.session.window_free <= 0:
            if self.session.is_closed or self._transport is None:
                raise ConnectionError("session closed")
            waiter = asyncio.get_running_loop().create_future()
            self._window_waiters.append(waiter)
            await waiter
        if self.session.is_closed or self._transport is None:
            raise ConnectionError("session closed")
        try:
            data = self.session.send(pdu, self.clock())
        except SessionError as e:
            raise ConnectionError(str(e)) from None
        fut: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._waiting[self.session.last_sent.sequence_number] = fut
        self._write(data)
        self._arm_timer()
        return await fut

    def _wake_window(self) -> None:
        """As many waiters as the window has room for (all of them once closed): one answer
        wakes one waiter, not every one of them."""
        waiters = self._window_waiters
        room = len(waiters) if self.session.is_closed or self._transport is None else (
            self.session.window_free)
        while waiters and room > 0:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                room -= 1

    # -- time and closing -----------------------------------------------------------------------
    def _arm_timer(self) -> None:
        deadline = self.session.get_timer()
        if deadline is None or self._transport is None:
            if self._timer:
                self._timer.cancel()
                self._timer = None
            return
        if self._timer is not None:
            if self._timer_at <= deadline:
                return  # fires no later than needed; _on_timer looks again then
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - self.clock())
        self._timer = asyncio.get_event_loop().call_later(delay + 0.001, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.session.handle_timer(self.clock())
        self._pump()

    def _write(self, data: bytes) -> None:
        """Coalesce: everything written in one loop iteration leaves in one send()."""
        self._wbuf += data
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_event_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._wbuf and self._transport and not self._transport.is_closing():
            self._transport.write(bytes(self._wbuf))
        self._wbuf.clear()

    def _close_soon(self) -> None:
        self._flush()
        if self._transport and not self._transport.is_closing():
            self._transport.close()  # flushes what is buffered first

    def close(self) -> None:
        self._close_soon()

    async def unbind_and_close(self, timeout_s: float) -> None:
        """The SMSC ends the session (SMPP 3.4 4.2: either side may unbind): an unbind, its
        unbind_resp waited for at most ``timeout_s``, then the close. From the unbind on, the
        session is UNBINDING: a request the ESME sends meanwhile is refused by the session."""
        if self.is_gone:
            return
        if self.session.is_bound:
            try:
                await asyncio.wait_for(self.request(Pdu.make(C.UNBIND, 0)), timeout_s)
            except (TimeoutError, ConnectionError, SessionError):
                log.info("unbind not answered; closing", extra={"session": self.conn_id,
                                                               "account": self.account})
        self.close()

    def close_after_response(self) -> None:
        """Close the connection once the response being prepared has been written."""
        self._close_after_response = True

    def pause_reading(self) -> None:
        if self._transport and not self._transport.is_closing():
            self._transport.pause_reading()

    @property
    def is_gone(self) -> bool:
        """The connection is lost (or was refused): nothing sent to it arrives."""
        return self._transport is None or self.refused

    @property
    def answers_owed(self) -> int:
        """Requests being answered (a submit waiting for its commit)."""
        return len(self._tasks) + self._owed


class SmppServer:
    """Listens and makes one :class:`SmppConnection` per accepted socket.

    At most ``sessions_max`` connections are open at once. The count is taken in
    connection_made (admit) and given back in connection_lost (release), both on the loop,
    so it is exact under a burst of connects: a connection over the limit is closed in its
    connection_made, before any of its octets is read, and counted in ``refused``.
    """

    def __init__(self, handler: RequestHandler, limits: SessionLimits,
                 sessions_max: int = 1000) -> None:
        if sessions_max < 1:
            raise ValueError("sessions_max must be at least 1")
        self.handler = handler
        self.limits = limits
        self.sessions_max = sessions_max
        self.connections: set[SmppConnection] = set()
        self.refused = 0  # connections closed at once, over sessions_max
        self._servers: list[asyncio.base_events.Server] = []

    def _make(self) -> SmppConnection:
        return SmppConnection(self.handler, self.limits, admission=self)

    def admit(self, conn: SmppConnection) -> bool:
        n = len(self.connections)
        if n >= self.sessions_max:
            self.refused += 1
            log.warning(
                "session refused: over sessions_max; closing it",
                extra={"session": conn.conn_id, "peer": conn.peer, "sessions": n,
                       "limit": self.sessions_max, "refused": self.refused},
            )
            return False
        self.connections.add(conn)
        return True

    def release(self, conn: SmppConnection) -> None:
        self.connections.discard(conn)

    async def start(self, host: str, port: int, ssl: SSLContext | None = None,
                    ssl_handshake_timeout_s: float | None = None) -> int:
        """One more listener (plaintext, or TLS with ``ssl``) into the same sessions and the
        same ``sessions_max``: the port it listens on. Over TLS a connection reaches
        connection_made (and is counted) once its handshake is done; one that does not finish
        it within ``ssl_handshake_timeout_s`` is closed, and one that speaks no TLS at all
        (a plaintext bind) fails its handshake and is closed without reaching the session."""
        loop = asyncio.get_running_loop()
        kw: dict[str, Any] = {}
        if ssl is not None:
            kw = {"ssl": ssl, "ssl_handshake_timeout": ssl_handshake_timeout_s}
        server = await loop.create_server(self._make, host, port, reuse_address=True, **kw)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening, take no more requests, answer those being committed (bounded by
        the response timeout: a committed message whose submit_sm_resp is lost would be sent
        again by its ESME), then close every connection."""
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.pause_reading()
        waits = [conn.wait_answered(self.limits.response_timeout_s)
                 for conn in list(self.connections)]
        if waits:
            await asyncio.gather(*waits)
        for conn in list(self.connections):
            conn.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
