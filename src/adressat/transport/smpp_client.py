"""SMPP client connections to other operators: the asyncio shell around ``smpp.session.Session``
in the ESME role (the mirror of ``transport/smpp_server.py``).

One :class:`SmppConnector` per configured connector (``core.model.ConnectorConfig``): one
transceiver session (``bind="trx"``) or a transmitter and a receiver side by side
(``bind="tx"``). Each session runs in a link that connects, binds, and after a loss reconnects
forever, with exponential backoff and jitter between ``reconnect_s_min`` and
``reconnect_s_max`` (the backoff starts over after a bind that lasted ``bind_stable_s``).

The session owns the protocol (sequence numbers, which PDU is legal when, matching responses,
enquire_link on idle, answers to bad PDUs and generic_nack); this module owns the socket, the
clock, the connector's window (submits outstanding at once), its throughput (a token bucket)
and the reconnects. :meth:`SmppConnector.submit` says one of three things: an answer
(:class:`SubmitAnswer`, any status), :class:`NotBound` (nothing was sent), or
:class:`SubmitUnanswered` (sent, no answer: the partner may have it). A deliver_sm is handed to
``on_deliver(view, session_id)`` and answered with the status it returns, only after it
returned (a receipt is answered once it is durable).

Logs (``adressat.smpp.client``) name the connector, the session, the peer and the status;
never message text, never the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from adressat.core.model import CONNECTOR_BINDS, ConnectorConfig, ConnectorStatus
from adressat.observe.logs import known
from adressat.smpp.constants import INTERFACE_VERSION_34
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
from adressat.smpp.views import BindResp, DeliverSm, SubmitSm, SubmitSmResp

__all__ = [
    "NotBound",
    "SmppConnector",
    "SubmitAnswer",
    "SubmitUnanswered",
    "validate_config",
]

log = logging.getLogger("adressat.smpp.client")
_session_ids = itertools.count(1)

#: what a link binds as
_BIND_COMMAND = {"trx": C.BIND_TRANSCEIVER, "tx": C.BIND_TRANSMITTER, "rx": C.BIND_RECEIVER}
#: config fields whose change needs a new bind (the others apply to the bound sessions at once)
REBIND_FIELDS = ("host", "port", "system_id", "password", "bind", "system_type")
# C-octet string limits of the bind PDU (SMPP 3.4 4.1.1), without the NUL
_BIND_FIELD_CHARS_MAX = {"system_id": 15, "password": 8, "system_type": 12}


class NotBound(Exception):  # noqa: N818 - the contract's name
    """Nothing was sent: the connector has no bound transmitting session."""


class SubmitUnanswered(Exception):  # noqa: N818 - the contract's name
    """The submit_sm was sent but no response came (timeout, or the session went first): the
    partner may have the message."""


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    status: int  # command_status of submit_sm_resp
    message_id: str  # as the partner sent it ("" when none)
    session_id: int


def validate_config(config: ConnectorConfig) -> None:
    """ValueError naming the first field a connector cannot work with."""
    if not config.name:
        raise ValueError("connector name is empty")
    if not config.host:
        raise ValueError("host is empty")
    if not 1 <= config.port <= 65535:
        raise ValueError("port must be 1..65535")
    if config.bind not in CONNECTOR_BINDS:
        raise ValueError(f"bind must be one of {CONNECTOR_BINDS}")
    if config.window < 1:
        raise ValueError("window must be at least 1")
    if config.throughput_per_s < 0:
        raise ValueError("throughput_per_s must be 0 (no limit) or more")
    if config.enquire_link_s < 0:
        raise ValueError("enquire_link_s must be 0 (never) or more")
    for name, chars_max in _BIND_FIELD_CHARS_MAX.items():
        value: str = getattr(config, name)
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"{name} must be Latin-1") from None
        if len(raw) > chars_max or 0 in raw:
            raise ValueError(f"{name} must be at most {chars_max} characters, no NUL")


def _status_name(status: int) -> str:
    name = known(S, status)
    return name.name if isinstance(name, S) else f"0x{status:08x}"


def _os_detail(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, type(exc).__name__)
    return type(exc).__name__


class _BindRefused(Exception):  # noqa: N818 - internal
    def __init__(self, status: int) -> None:
        super().__init__(_status_name(status))
        self.status = status


class _TokenBucket:
    """``rate_per_s`` tokens a second, at most ``rate_per_s * burst_s`` (at least 1) saved up;
    rate 0: no limit. Takers are served in order (a lock), on the loop's monotonic clock."""

    def __init__(self, rate_per_s: float, burst_s: float) -> None:
        self.burst_s = burst_s
        self.rate_per_s = 0.0
        self._tokens = 0.0
        self._at: float | None = None
        self._lock = asyncio.Lock()
        self.set_rate(rate_per_s)

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate_per_s * self.burst_s)

    def set_rate(self, rate_per_s: float) -> None:
        self.rate_per_s = float(rate_per_s)
        self._tokens = min(self._tokens, self.capacity)

    async def take(self) -> None:
        if self.rate_per_s <= 0:
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            while self.rate_per_s > 0:
                now = loop.time()
                if self._at is None:
                    self._tokens = 1.0
                else:
                    self._tokens = min(self.capacity,
                                       self._tokens + (now - self._at) * self.rate_per_s)
                self._at = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate_per_s)


class _Connection(asyncio.Protocol):
    """One TCP connection and its ESME session: bytes in and out, the timer, the futures of
    our requests, the deliver_sm handlers."""

    def __init__(self, link: _Link, limits: SessionLimits) -> None:
        self.link = link
        self.connector = link.connector
        self.clock = link.connector.clock
        self.session_id = next(_session_ids)
        self.session = Session(Role.ESME, self.clock(), limits)
        self.peer = ""
        self.partner_system_id = ""  # from its bind response
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[str] = loop.create_future()  # result: the reason
        self._transport: asyncio.Transport | None = None
        self._waiting: dict[int, asyncio.Future[Pdu]] = {}
        self._idle: asyncio.Future[None] | None = None  # set when nothing is waiting
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._wbuf = bytearray()
        self._flush_scheduled = False
        self._pumping = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        self.session.receive_data(data, self.clock())
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._finish("connection lost")

    # -- requests and responses -----------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._transport is not None and not self.session.is_closed

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def request(self, pdu: Pdu) -> asyncio.Future[Pdu]:
        """Send a request now; the future gets its response (TimeoutError when it does not
        come in time, ConnectionError when the session ends first). ConnectionError at once
        when it cannot be sent (nothing went out)."""
        if not self.alive:
            raise ConnectionError("session closed")
        try:
            data = self.session.send(pdu, self.clock())
        except SessionError as e:
            raise ConnectionError(str(e)) from None
        fut: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._waiting[self.session.last_sent.sequence_number] = fut
        self._write(data)
        self._arm_timer()
        return fut

    def respond(self, pdu: Pdu) -> None:
        if not self.alive:
            return
        try:
            data = self.session.send(pdu, self.clock())
        except SessionError:
            return  # the session ended meanwhile
        self._write(data)
        self._pump()

    async def wait_idle(self, timeout_s: float) -> None:
        """Until none of our requests waits for a response (or ``timeout_s``)."""
        if not self._waiting or timeout_s <= 0:
            return
        if self._idle is None or self._idle.done():
            self._idle = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._idle), timeout_s)

    async def unbind(self, timeout_s: float) -> bool:
        """unbind, wait for unbind_resp (at most ``timeout_s``), close. True: answered."""
        answered = False
        if self.alive and self.session.is_bound:
            with contextlib.suppress(ConnectionError, TimeoutError):  # closed all the same
                fut = self.request(Pdu.make(C.UNBIND, 0))
                await asyncio.wait_for(fut, max(0.0, timeout_s))
                answered = True
        self.close("unbound" if answered else "closed by us")
        return answered

    # -- events -------------------------------------------------------------------------------
    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            self._write(self.session.data_to_send())
            while (ev := self.session.next_event()) is not None:
                if isinstance(ev, ResponseReceived):
                    self._resolve(ev.request.sequence_number, ev.pdu, None)
                elif isinstance(ev, RequestReceived):
                    self._on_request(ev.pdu)
                elif isinstance(ev, ResponseTimedOut):
                    self._resolve(ev.request.sequence_number, None,
                                  TimeoutError("no response in time"))
                    if ev.request.command_id == C.ENQUIRE_LINK:
                        log.warning("connector enquire_link unanswered", extra={
                            "connector": self.connector.name, "session": self.session_id,
                            "peer": self.peer})
                        self.close("enquire_link not answered")
                elif isinstance(ev, ProtocolViolation):
                    log.warning("connector protocol violation", extra={
                        "connector": self.connector.name, "session": self.session_id,
                        "peer": self.peer, "status": known(S, ev.command_status),
                        "reason": ev.reason, "command_id": known(C, ev.command_id),
                        "seq": ev.sequence_number})
                elif isinstance(ev, PduReadTimedOut):
                    log.warning("connector PDU read deadline passed", extra={
                        "connector": self.connector.name, "session": self.session_id,
                        "peer": self.peer, "received_octets": ev.received_octets})
                elif isinstance(ev, Closed):
                    self._write(self.session.data_to_send())
                    self.close(ev.reason)
                self._write(self.session.data_to_send())
        finally:
            self._pumping = False
        self._arm_timer()

    def _resolve(self, seq: int, pdu: Pdu | None, exc: BaseException | None) -> None:
        fut = self._waiting.pop(seq, None)
        if fut is not None and not fut.done():
            if exc is not None:
                fut.set_exception(exc)
            elif pdu is not None:
                fut.set_result(pdu)
        if not self._waiting and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _on_request(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        if cid == C.DELIVER_SM:
            task = asyncio.ensure_future(self._deliver(pdu))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif cid == C.UNBIND:
            log.info("connector unbound by partner", extra={
                "connector": self.connector.name, "session": self.session_id,
                "peer": self.peer})
            self.respond(pdu.response())
        elif cid in (C.ALERT_NOTIFICATION, C.OUTBIND):
            pass  # never answered; nothing of ours depends on them
        else:  # data_sm: not a service we take from a partner
            self.respond(pdu.response(S.ESME_RINVCMDID))

    async def _deliver(self, pdu: Pdu) -> None:
        status: int = S.ESME_RX_T_APPN
        try:
            view = DeliverSm.from_pdu(pdu)
            if view.is_receipt:
                self.connector.receipts += 1
            status = int(await self.connector.on_deliver(view, self.session_id))
        except Exception:  # noqa: BLE001 - ours: the partner gets a temporary error, retries
            log.exception("connector on_deliver failed", extra={
                "connector": self.connector.name, "session": self.session_id,
                "seq": pdu.sequence_number})
        self.respond(pdu.response(status))

    # -- time and closing -----------------------------------------------------------------------
    def _arm_timer(self) -> None:
        deadline = self.session.get_timer()
        if deadline is None or self._transport is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay + 0.001, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.session.handle_timer(self.clock())
        self._pump()

    def _write(self, data: bytes) -> None:
        """Coalesce: what is written in one loop iteration leaves in one send()."""
        if not data:
            return
        self._wbuf += data
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._wbuf and self._transport is not None and not self._transport.is_closing():
            self._transport.write(bytes(self._wbuf))
        self._wbuf.clear()

    def close(self, reason: str) -> None:
        """Flush and close; every request still waiting fails with ConnectionError."""
        self._flush()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self._finish(reason)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self._finish("aborted")

    def _finish(self, reason: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError(reason))
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)
        if not self.closed.done():
            self.closed.set_result(reason)
            self.link.on_connection_closed(self)


class _Link:
    """One session of a connector ("trx", "tx" or "rx"): connect, bind, keep it, reconnect."""

    def __init__(self, connector: SmppConnector, role: str, config: ConnectorConfig) -> None:
        self.connector = connector
        self.role = role
        self.config = config
        self.state = "connecting"
        self.detail = ""
        self.conn: _Connection | None = None  # the bound connection
        self.stopping = False
        self.task: asyncio.Task[None] | None = None
        self.failures = 0

    @property
    def transmits(self) -> bool:
        return self.role in ("trx", "tx")

    @property
    def bound_conn(self) -> _Connection | None:
        conn = self.conn
        if conn is not None and conn.alive and conn.session.is_bound:
            return conn
        return None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    def limits(self) -> SessionLimits:
        c = self.connector
        return SessionLimits(
            pdu_length_max=c.pdu_length_max,
            window_size_max=self.config.window + 2,  # room for enquire_link and unbind
            inbound_window_max=c.inbound_window_max,
            response_timeout_s=c.response_timeout_s,
            enquire_link_interval_s=self.config.enquire_link_s,
            idle_timeout_s=0,  # a dead partner is found by enquire_link going unanswered
            pdu_read_timeout_s=c.pdu_read_timeout_s,
            bind_timeout_s=0,  # our own bind is bounded by response_timeout_s
        )

    def apply(self, config: ConnectorConfig) -> None:
        """Window and enquire_link of the bound session, at once."""
        self.config = config
        conn = self.conn
        if conn is not None:
            conn.session.limits.window_size_max = config.window + 2
            conn.session.limits.enquire_link_interval_s = config.enquire_link_s
            conn._arm_timer()

    def _set(self, state: str, detail: str) -> None:
        self.state = state
        self.detail = detail
        self.connector._refresh()

    async def _run(self) -> None:
        c = self.connector
        loop = asyncio.get_running_loop()
        while not self.stopping:
            self._set("connecting", self.detail)
            try:
                conn = await self._open_and_bind()
            except _BindRefused as e:
                detail = str(e)
                log.warning("connector bind refused", extra={
                    "connector": c.name, "bind": self.role, "status": known(S, e.status),
                    "peer": f"{self.config.host}:{self.config.port}"})
            except (OSError, TimeoutError, ConnectionError) as e:
                detail = _os_detail(e)
                log.warning("connector connect failed", extra={
                    "connector": c.name, "bind": self.role, "reason": detail,
                    "peer": f"{self.config.host}:{self.config.port}"})
            except Exception as e:  # noqa: BLE001 - ours; the link must go on reconnecting
                detail = type(e).__name__
                log.exception("connector bind failed", extra={
                    "connector": c.name, "bind": self.role,
                    "peer": f"{self.config.host}:{self.config.port}"})
            else:
                bound_at = loop.time()
                self.conn = conn
                self._set("bound", "")
                log.info("connector bound", extra={
                    "connector": c.name, "session": conn.session_id, "bind": self.role,
                    "peer": conn.peer, "partner_system_id": conn.partner_system_id})
                reason = await asyncio.shield(conn.closed)
                self.conn = None
                detail = f"closed: {reason}"
                log.info("connector session closed", extra={
                    "connector": c.name, "session": conn.session_id, "bind": self.role,
                    "peer": conn.peer, "reason": reason})
                if loop.time() - bound_at >= c.bind_stable_s:
                    self.failures = 0
            if self.stopping:
                break
            delay = c._backoff_s(self.failures)
            self.failures += 1
            self._set("down", detail)
            log.info("connector reconnect", extra={
                "connector": c.name, "bind": self.role, "delay_s": round(delay, 3),
                "attempt": self.failures, "reason": detail})
            await asyncio.sleep(delay)

    async def _open_and_bind(self) -> _Connection:
        c = self.connector
        loop = asyncio.get_running_loop()
        cfg = self.config
        made: list[_Connection] = []

        def factory() -> _Connection:
            conn = _Connection(self, self.limits())
            made.append(conn)
            return conn

        try:
            await asyncio.wait_for(loop.create_connection(factory, cfg.host, cfg.port),
                                   c.response_timeout_s)
            conn = made[0]
            bind = Pdu.make(_BIND_COMMAND[self.role], 0, system_id=cfg.system_id,
                            password=cfg.password, system_type=cfg.system_type,
                            interface_version=INTERFACE_VERSION_34)
            resp = await conn.request(bind)  # bounded by the session's response timeout
            status = int(resp.command_status)
            if resp.command_id == C.GENERIC_NACK or status != S.ESME_ROK:
                conn.close("bind refused")
                raise _BindRefused(status or S.ESME_RUNKNOWNERR)
            conn.partner_system_id = BindResp.from_pdu(resp).system_id
        except BaseException:
            for made_conn in made:
                made_conn.abort()
            raise
        return conn

    def on_connection_closed(self, conn: _Connection) -> None:
        # wake submitters waiting for a slot: they find out the session is gone
        self.connector._wake(all_waiters=True)
        self.connector._refresh()

    async def stop(self, timeout_s: float) -> None:
        """Unbind cleanly (after the submits in flight are answered, bounded), close."""
        self.stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn = self.bound_conn
        if conn is not None:
            await conn.wait_idle(timeout_s / 2)
            answered = await conn.unbind(deadline - loop.time())
            log.info("connector unbind", extra={
                "connector": self.connector.name, "session": conn.session_id,
                "bind": self.role, "peer": conn.peer, "answered": answered})
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.conn is not None:
            self.conn.abort()
            self.conn = None
        self.state = "stopped"


class SmppConnector:
    """One configured connector: its session(s), window, throughput, counters and status.

    ``response_timeout_s``: for connect, bind and every submit. ``bind_stable_s``: a bind that
    lasted that long starts the reconnect backoff over. ``throughput_burst_s``: how much
    unused throughput may be saved up (at least one message). ``inbound_window_max``: the
    partner's unanswered deliver_sm at once (beyond: ESME_RTHROTTLED from the session).
    """

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        on_deliver: Callable[[DeliverSm, int], Awaitable[int]],
        response_timeout_s: float = 10.0,
        reconnect_s_min: float = 1.0,
        reconnect_s_max: float = 60.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        bind_stable_s: float = 10.0,
        throughput_burst_s: float = 0.1,
        inbound_window_max: int = 1000,
        pdu_length_max: int = 65536,
        pdu_read_timeout_s: float = 10.0,
    ) -> None:
        validate_config(config)
        if response_timeout_s <= 0:
            raise ValueError("response_timeout_s must be positive")
        if not 0 < reconnect_s_min <= reconnect_s_max:
            raise ValueError("need 0 < reconnect_s_min <= reconnect_s_max")
        self._config = config
        self.on_deliver = on_deliver
        self.response_timeout_s = response_timeout_s
        self.reconnect_s_min = reconnect_s_min
        self.reconnect_s_max = reconnect_s_max
        self.rng = rng if rng is not None else random.Random()
        self.clock = clock
        self.bind_stable_s = bind_stable_s
        self.inbound_window_max = inbound_window_max
        self.pdu_length_max = pdu_length_max
        self.pdu_read_timeout_s = pdu_read_timeout_s
        self.sent = 0
        self.failed = 0
        self.receipts = 0
        self._bucket = _TokenBucket(config.throughput_per_s, throughput_burst_s)
        self._in_use = 0  # slots taken (waiting for the throughput, or sent)
        self._in_flight = 0  # submits sent and not answered yet
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._links: list[_Link] = []
        self._retiring: set[asyncio.Task[None]] = set()
        self._started = False
        self._stopped = False
        self._state = "stopped"
        self._since = clock()

    # -- the contract ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._config.name

    @property
    def config(self) -> ConnectorConfig:
        return self._config

    async def start(self) -> None:
        """Start the session task(s) and return at once (they reconnect forever). After
        :meth:`stop`, starts again."""
        if self._started:
            return
        self._started = True
        self._stopped = False
        self._links = self._make_links(self._config)
        for link in self._links:
            link.start()
        self._refresh()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Unbind every session cleanly (waiting at most ``timeout_s`` for the answers), close.
        Submits waiting for a slot raise NotBound; those in flight are answered or raise
        SubmitUnanswered."""
        self._stopped = True
        self._wake(all_waiters=True)
        links, self._links = self._links, []
        await asyncio.gather(*(link.stop(timeout_s) for link in links))
        for task in list(self._retiring):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout_s)
        self._started = False  # start() may run it again
        self._refresh()

    def reconfigure(self, config: ConnectorConfig) -> None:
        """Window, throughput and enquire_link apply at once; a change of host, port,
        system_id, password, bind or system_type re-binds (the old sessions unbind in the
        background). ValueError (and nothing changed) for a config it cannot work with."""
        validate_config(config)
        if config.name != self._config.name:
            raise ValueError("a connector keeps its name")
        old, self._config = self._config, config
        self._bucket.set_rate(config.throughput_per_s)
        rebind = [f for f in REBIND_FIELDS if getattr(old, f) != getattr(config, f)]
        if rebind and self._started and not self._stopped:
            log.info("connector rebind", extra={"connector": self.name, "changed": rebind})
            retiring, self._links = self._links, self._make_links(config)
            for link in self._links:
                link.start()
            for link in retiring:
                link.stopping = True
                task = asyncio.ensure_future(link.stop(self.response_timeout_s))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
        else:
            for link in self._links:
                link.apply(config)
        self._wake(all_waiters=False)
        self._refresh()

    @property
    def bound(self) -> bool:
        """A transmitting session is bound."""
        return self._tx_conn() is not None

    async def submit(self, pdu: SubmitSm) -> SubmitAnswer:
        """Send one submit_sm when the window has a slot and the throughput allows.

        NotBound (at once, or when the session goes while waiting): nothing was sent.
        SubmitUnanswered: sent, no answer in ``response_timeout_s`` or the session went
        first. Any answer, ESME_ROK or not, is a SubmitAnswer. A ``pdu`` that is not valid
        SMPP (a field too long) raises SmppEncodeError (a ValueError): nothing was sent."""
        if self._tx_conn() is None:
            raise NotBound(self.name)
        await self._take_slot()
        try:
            await self._bucket.take()
            conn = self._tx_conn()
            if conn is None:
                raise NotBound(self.name)
            try:
                fut = conn.request(pdu.to_pdu())
            except ConnectionError:
                raise NotBound(self.name) from None
            self._in_flight += 1
            try:
                resp = await fut
            except (ConnectionError, TimeoutError) as e:
                self.failed += 1
                raise SubmitUnanswered(f"{self.name}: {e}") from None
            finally:
                self._in_flight -= 1
        finally:
            self._give_slot()
        if resp.command_id == C.SUBMIT_SM_RESP:
            view = SubmitSmResp.from_pdu(resp)
            status, message_id = view.command_status, view.message_id
        else:  # generic_nack: refused, whatever status it claims
            status, message_id = int(resp.command_status) or int(S.ESME_RUNKNOWNERR), ""
        if status == S.ESME_ROK:
            self.sent += 1
        else:
            self.failed += 1
        return SubmitAnswer(status, message_id, conn.session_id)

    def status(self) -> ConnectorStatus:
        self._refresh()
        details = [f"{link.role}: {link.detail}" if len(self._links) > 1 else link.detail
                   for link in self._links if link.detail and link.state != "bound"]
        return ConnectorStatus(
            name=self.name,
            state=self._state,
            since=self._since,
            sessions=sum(1 for link in self._links if link.bound_conn is not None),
            window_in_use=self._in_flight,
            sent=self.sent,
            failed=self.failed,
            receipts=self.receipts,
            detail="; ".join(details),
            updated_at=self.clock(),
        )

    # -- inside ---------------------------------------------------------------------------------
    def _make_links(self, config: ConnectorConfig) -> list[_Link]:
        roles = ("trx",) if config.bind == "trx" else ("tx", "rx")
        return [_Link(self, role, config) for role in roles]

    def _tx_conn(self) -> _Connection | None:
        if self._stopped:
            return None
        for link in self._links:
            if link.transmits:
                conn = link.bound_conn
                if conn is not None:
                    return conn
        return None

    def _backoff_s(self, failures: int) -> float:
        """Exponential from reconnect_s_min, capped at reconnect_s_max, with jitter in its
        upper half (never below reconnect_s_min): a recovered partner is not hit by every
        connector at once."""
        ceiling = min(self.reconnect_s_max, self.reconnect_s_min * 2.0 ** min(failures, 30))
        return max(self.reconnect_s_min, self.rng.uniform(ceiling / 2, ceiling))

    async def _take_slot(self) -> None:
        while self._in_use >= self._config.window:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
                raise
            if self._tx_conn() is None:
                raise NotBound(self.name)
        self._in_use += 1

    def _give_slot(self) -> None:
        self._in_use -= 1
        self._wake(all_waiters=False)

    def _wake(self, *, all_waiters: bool) -> None:
        room = len(self._waiters) if all_waiters else self._config.window - self._in_use
        while self._waiters and room > 0:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                room -= 1

    def _refresh(self) -> None:
        if self._stopped or not self._started:
            state = "stopped"
        else:
            states = [link.state for link in self._links]
            if states and all(s == "bound" and link.bound_conn is not None
                              for s, link in zip(states, self._links, strict=True)):
                state = "bound"
            elif "down" in states:
                state = "down"
            else:
                state = "connecting"
        if state != self._state:
            self._state = state
            self._since = self.clock()
