"""Clients for the end-to-end tests: python-smpplib (a client we did not write) wrapped so that
every wait is bounded, and a raw-socket ESME built on our own codec for what smpplib cannot
send (submit_multi, cancel_sm, replace_sm, data_sm, malformed frames)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import smpplib.client
import smpplib.consts
import smpplib.exceptions

from adressat.netsim import read_inbox
from adressat.netsim.inbox import InboxRecord
from adressat.smpp import codec
from adressat.smpp.constants import CommandId as C
from adressat.smpp.pdus import Pdu

HOST = "127.0.0.1"
FIRST_MSISDN = 46701000000
_msisdns = itertools.count(FIRST_MSISDN + 1000)
OPEN: list[Esme | RawEsme] = []  # closed by the test modules after each test


_T = TypeVar("_T")


def close_all() -> None:
    while OPEN:
        c = OPEN.pop()
        try:
            c.close()
        except Exception:  # noqa: BLE001, S110 - the connection may be gone already
            pass


def next_msisdn() -> str:
    """A subscriber number no other test in the process uses."""
    return str(next(_msisdns))


def inbox(home: Path, msisdn: str | None = None) -> list[InboxRecord]:
    return list(read_inbox(home, msisdn=msisdn))


def customer_inbox(home: Path) -> list[InboxRecord]:
    """The inbox without the canary prober's messages (account ``_canary``, judged by the
    prober itself): what customers' traffic put on the handsets."""
    import sqlite3

    conn = sqlite3.connect(f"file:{home / 'adressat.db'}?mode=ro", uri=True)
    try:
        canary = {r[0] for r in conn.execute("SELECT id FROM messages WHERE account = '_canary'")}
    finally:
        conn.close()
    return [r for r in read_inbox(home) if r.smsc_message_id not in canary]


def wait_for(cond: Callable[[], _T], timeout_s: float = 10.0, step_s: float = 0.05) -> _T:
    """``cond()``'s first true answer within ``timeout_s`` (polled every ``step_s``), else
    its answer at the end: bounded, and the caller asserts on what it returns."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(step_s)
    return cond()


class BackgroundLoad:
    """Paced submits as account "load" from a thread of its own, a second of traffic at a time
    (each second's run answered before the next), until stopped; bounded by ``seconds_max``.
    ``destination(n)``: the n-th message's number. ``submitted``: submits acknowledged."""

    def __init__(self, port: int, rate_per_s: float, destination: Callable[[int], str],
                 seconds_max: float = 120.0, registered_delivery: int = 0) -> None:
        self.port = port
        self.rate = rate_per_s
        self.destination = destination
        self.seconds_max = seconds_max
        self.registered_delivery = registered_delivery
        self.stop = threading.Event()
        self.submitted = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - said by the test
            self.error = e

    async def _main(self) -> None:
        from adressat.testing.load import LoadClient

        client = await LoadClient.connect("127.0.0.1", self.port, "load", "load")
        n = 0
        try:
            t0 = time.monotonic()
            while not self.stop.is_set() and time.monotonic() - t0 < self.seconds_max:
                dests = [self.destination(n + i) for i in range(max(1, int(self.rate)))]
                n += len(dests)
                started = time.monotonic()
                run = await client.submit_all(dests, rate_per_s=self.rate, window=50,
                                              registered_delivery=self.registered_delivery)
                self.submitted += len(run.acked())
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        finally:
            await client.close()

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(30)


class Esme:
    """A python-smpplib client; responses by sequence number and received deliver_sm kept."""

    def __init__(self, port: int, system_id: str, password: str, mode: str = "trx",
                 timeout_s: float = 0.3, ssl_context: ssl.SSLContext | None = None) -> None:
        # ssl_context: smpplib's own TLS (it wraps its socket in it), for SMPP over TLS
        self.c = smpplib.client.Client(HOST, port, timeout=timeout_s,
                                       allow_unknown_opt_params=True, ssl_context=ssl_context)
        self.resps: dict[int, Any] = {}
        self.delivered: list[Any] = []
        self.deliver_status = 0
        self.c.set_message_sent_handler(self._on_resp)
        self.c.set_query_resp_handler(self._on_resp)
        self.c.set_message_received_handler(self._on_deliver)
        self.c.set_error_pdu_handler(lambda pdu: None)  # statuses are asserted by the tests
        self.c.connect()
        OPEN.append(self)
        if mode:
            self.bind(mode, system_id, password)

    def bind(self, mode: str, system_id: str, password: str) -> Any:
        fn = {"tx": self.c.bind_transmitter, "rx": self.c.bind_receiver,
              "trx": self.c.bind_transceiver}[mode]
        return fn(system_id=system_id, password=password)

    def _on_resp(self, pdu: Any) -> None:
        self.resps[pdu.sequence] = pdu

    def _on_deliver(self, pdu: Any) -> int:
        self.delivered.append(pdu)
        return self.deliver_status

    def submit(self, dest: str, text: bytes = b"hello", **kw: Any) -> int:
        fields: dict[str, Any] = dict(source_addr_ton=5, source_addr_npi=0, source_addr="ACME",
                                      dest_addr_ton=1, dest_addr_npi=1, destination_addr=dest,
                                      short_message=text)
        fields.update(kw)
        if "message_payload" in kw:
            fields.pop("short_message")
        return int(self.c.send_message(**fields).sequence)

    def pump(self, cond: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        for _ in range(100_000):
            if cond() or time.monotonic() >= deadline:
                break
            try:
                self.c.read_once(auto_send_enquire_link=False)
            except TimeoutError:
                continue
        return cond()

    def resp(self, seq: int, timeout_s: float = 10.0) -> Any:
        assert self.pump(lambda: seq in self.resps, timeout_s), f"no response to seq {seq}"
        return self.resps[seq]

    def receipts_for(self, mid: str) -> list[Any]:
        return [p for p in self.delivered if _s(p.receipted_message_id) == mid]

    def wait_receipt(self, mid: str, timeout_s: float = 15.0) -> Any:
        assert self.pump(lambda: bool(self.receipts_for(mid)), timeout_s), f"no receipt for {mid}"
        return self.receipts_for(mid)[0]

    def close(self) -> None:
        if self.c._socket is None:
            return
        try:
            self.c.unbind()
        except Exception:  # noqa: BLE001, S110 - best effort on the way out
            pass
        self.c.disconnect()


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v or "")


class RawEsme:
    """A raw socket speaking SMPP through ``adressat.smpp.codec``."""

    def __init__(self, port: int, timeout_s: float = 5.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout_s)
        OPEN.append(self)
        self.sock.settimeout(timeout_s)
        self.reader = codec.PduReader(1 << 20)
        self.seq = itertools.count(1)
        self.pending: list[Pdu] = []

    def send_pdu(self, pdu: Pdu) -> None:
        self.sock.sendall(codec.encode(pdu))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, command_id: int, tlvs: Any = (), **fields: Any) -> int:
        seq = next(self.seq)
        self.send_pdu(Pdu.make(command_id, seq, tlvs=tlvs, **fields))
        return seq

    def read(self, timeout_s: float = 5.0) -> Pdu | None:
        """The next PDU, answering deliver_sm and enquire_link on the way; None on EOF."""
        deadline = time.monotonic() + timeout_s
        while True:
            pdu = self.reader.next_pdu()
            if pdu is not None:
                if pdu.command_id == C.DELIVER_SM:
                    self.send_pdu(pdu.response())
                elif pdu.command_id == C.ENQUIRE_LINK:
                    self.send_pdu(pdu.response())
                return pdu
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no PDU")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                return None
            self.reader.feed(data)

    def wait_resp(self, seq: int, timeout_s: float = 10.0) -> Pdu:
        deadline = time.monotonic() + timeout_s
        for p in self.pending:
            if p.sequence_number == seq and p.is_response:
                self.pending.remove(p)
                return p
        for _ in range(10_000):
            pdu = self.read(max(0.01, deadline - time.monotonic()))
            assert pdu is not None, "connection closed"
            if pdu.is_response and pdu.sequence_number == seq:
                return pdu
            self.pending.append(pdu)
        raise AssertionError("too many PDUs")

    def call(self, command_id: int, tlvs: Any = (), **fields: Any) -> Pdu:
        return self.wait_resp(self.request(command_id, tlvs=tlvs, **fields))

    def bind(self, system_id: str, password: str, command_id: int = C.BIND_TRANSCEIVER) -> Pdu:
        return self.call(command_id, system_id=system_id, password=password,
                         interface_version=0x34)

    def close(self) -> None:
        self.sock.close()


def frame(command_id: int, seq: int, body: bytes, status: int = 0,
          length: int | None = None) -> bytes:
    n = 16 + len(body) if length is None else length
    return struct.pack(">IIII", n, command_id, status, seq) + body


__all__ = ["Esme", "RawEsme", "frame", "inbox", "next_msisdn", "wait_for", "smpplib", "close_all"]
