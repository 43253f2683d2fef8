"""Hostile peers against a running node, from bounded loops on 127.0.0.1: shared by
tests/integration/test_e2e_hostile_peers.py and bench/hostile.py.

Each attacker is a plain function over raw sockets (nothing of ours but the codec to build
frames), run in threads by :class:`Storm`; every read and wait is bounded, every socket
closed. What they saw is counted in :class:`StormReport` (binds that were accepted although
they must not be, connections the server never closed)."""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from adressat.smpp import codec
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import Pdu

HOST = "127.0.0.1"


def fd_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _connect(port: int, timeout_s: float = 5.0) -> socket.socket | None:
    try:
        return socket.create_connection((HOST, port), timeout=timeout_s)
    except OSError:
        return None  # refused over sessions_max, or the backlog full: also an answer


def _read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bool, list[Pdu]]:
    """(closed by the server within ``timeout_s``, the PDUs it sent before)."""
    reader = codec.PduReader(1 << 20)
    got: list[Pdu] = []
    deadline = time.monotonic() + timeout_s
    for _ in range(10_000):
        left = deadline - time.monotonic()
        if left <= 0:
            return False, got
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return False, got
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            return True, got
        if not data:
            return True, got
        try:
            reader.feed(data)
            got.extend(reader)
        except Exception:  # noqa: BLE001 - the server's bytes are checked elsewhere
            return True, got
    return False, got


def _bind_frame(system_id: str, password: str, seq: int = 1) -> bytes:
    return codec.encode(Pdu.make(C.BIND_TRANSCEIVER, seq, system_id=system_id,
                                 password=password, interface_version=0x34))


def malformed_frames(rng: random.Random, pdu_length_max: int) -> list[bytes]:
    """One connection's worth of hostile octets (kinds picked by ``rng``)."""
    kind = rng.randrange(7)
    if kind == 0:  # random bytes
        return [rng.randbytes(rng.randrange(1, 300))]
    if kind == 1:  # command_length huge
        return [struct.pack(">IIII", rng.choice([0xFFFFFFFF, 1 << 31, pdu_length_max + 1]),
                            C.SUBMIT_SM, 0, 1) + rng.randbytes(40)]
    if kind == 2:  # command_length too small
        return [struct.pack(">IIII", rng.randrange(16), C.BIND_TRANSMITTER, 0, 1)]
    if kind == 3:  # unknown command ids, more than the bad-PDU budget
        return [struct.pack(">IIII", 16, rng.choice([0x7, 0x77, 0x80000077, 0x1FF]), 0, i)
                for i in range(1, 30)]
    if kind == 4:  # truncated bodies: the header says what was sent, the fields run out
        full = _bind_frame("acme", "x" * 8)
        cut = rng.randrange(17, len(full))
        return [struct.pack(">I", cut) + full[4:cut]]
    if kind == 5:  # oversized PDU, all of it sent
        body = rng.randbytes(pdu_length_max + 1000)
        return [struct.pack(">IIII", 16 + len(body), C.SUBMIT_SM, 0, 7) + body]
    # a bind with the right header and garbage inside, then submits while unbound
    return [struct.pack(">IIII", 16 + 20, C.BIND_TRANSCEIVER, 0, 1) + rng.randbytes(20),
            codec.encode(Pdu.make(C.SUBMIT_SM, 2, destination_addr="46701000001",
                                  short_message=b"x"))]


@dataclass
class StormReport:
    connections: Counter[str] = field(default_factory=Counter)
    not_closed: Counter[str] = field(default_factory=Counter)  # server kept it open too long
    binds: Counter[str] = field(default_factory=Counter)  # "<kind>:<status name>"
    wrongly_bound: int = 0  # a wrong password or unknown id got ESME_ROK
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"connections": dict(self.connections), "not_closed": dict(self.not_closed),
                "binds": dict(self.binds), "wrongly_bound": self.wrongly_bound,
                "errors": self.errors[:5]}


@dataclass
class Storm:
    """Threads of hostile peers, each a bounded loop; ``run()`` returns when all are done."""

    port: int
    good: tuple[str, str]  # an account to bind rightly and drop
    victim: str  # an existing account to guess passwords of
    pdu_length_max: int = 65536
    malformed: int = 300  # connections with malformed PDUs
    half_open: int = 100  # connect, send nothing
    half_header: int = 100  # send 2 octets of a header, then nothing
    slow: int = 6  # a bind, one octet per ``slow_step_s``
    slow_step_s: float = 0.1
    wrong_password: int = 400
    unknown_id: int = 600
    right_then_drop: int = 200
    close_wait_s: float = 20.0  # the longest the server may keep a hostile connection open
    threads: int = 4
    seed: int = 13
    report: StormReport = field(default_factory=StormReport)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _count(self, name: str, closed: bool | None = None) -> None:
        with self._lock:
            self.report.connections[name] += 1
            if closed is False:
                self.report.not_closed[name] += 1

    def _malformed(self, n: int, rng: random.Random) -> None:
        for _ in range(n):
            sock = _connect(self.port)
            if sock is None:
                self._count("malformed_refused")
                continue
            try:
                for chunk in malformed_frames(rng, self.pdu_length_max):
                    sock.sendall(chunk)
                closed, got = _read_until_closed(sock, self.close_wait_s)
            except OSError:
                closed, got = True, []
            finally:
                sock.close()
            if any(p.command_id in (C.BIND_TRANSCEIVER_RESP, C.BIND_TRANSMITTER_RESP)
                   and p.command_status == S.ESME_ROK for p in got):
                with self._lock:
                    self.report.wrongly_bound += 1
            self._count("malformed", closed)

    def _silent(self, n: int, first: bytes, name: str) -> None:
        """Open ``n`` connections at once that send ``first`` and then nothing; each must be
        closed by the server (bind_timeout_s, pdu_read_timeout_s)."""
        socks = [s for s in (_connect(self.port) for _ in range(n)) if s is not None]
        for s in socks:
            try:
                if first:
                    s.sendall(first)
            except OSError:
                continue
        deadline = time.monotonic() + self.close_wait_s
        for s in socks:
            try:
                closed, _ = _read_until_closed(s, max(0.01, deadline - time.monotonic()))
            except OSError:
                closed = True
            finally:
                s.close()
            self._count(name, closed)

    def _slow(self, n: int) -> None:
        socks = [s for s in (_connect(self.port) for _ in range(n)) if s is not None]
        frame = _bind_frame(*self.good)
        alive = list(socks)
        for octet in frame:
            if not alive:
                break
            for s in list(alive):
                try:
                    s.sendall(bytes([octet]))
                except OSError:
                    alive.remove(s)  # closed by the server: what we wanted
            time.sleep(self.slow_step_s)
        for s in socks:
            try:
                closed, got = _read_until_closed(s, self.close_wait_s)
            except OSError:
                closed, got = True, []
            finally:
                s.close()
            if any(p.command_status == S.ESME_ROK for p in got if p.is_response):
                with self._lock:  # a bind that took longer than pdu_read_timeout_s
                    self.report.wrongly_bound += 1
            self._count("slow", closed)

    def _binds(self, plan: list[tuple[str, str, str]]) -> None:
        for kind, system_id, password in plan:
            sock = _connect(self.port)
            if sock is None:
                self._count("bind_refused")
                continue
            status = "closed"
            try:
                sock.sendall(_bind_frame(system_id, password))
                reader = codec.PduReader(1 << 20)
                sock.settimeout(10)
                for _ in range(100):
                    data = sock.recv(4096)
                    if not data:
                        break
                    reader.feed(data)
                    pdu = reader.next_pdu()
                    if pdu is not None:
                        status = S(pdu.command_status).name if pdu.command_status in {
                            int(x) for x in S} else hex(pdu.command_status)
                        ok = pdu.command_status == S.ESME_ROK
                        if ok and kind != "right":
                            with self._lock:
                                self.report.wrongly_bound += 1
                        break
            except (OSError, TimeoutError):
                status = "no answer"
            finally:
                sock.close()  # the right ones: dropped without an unbind
            with self._lock:
                self.report.binds[f"{kind}:{status}"] += 1
            self._count("bind")

    def run(self) -> StormReport:
        rng = random.Random(self.seed)
        plan = ([("wrong", self.victim, f"guess{i}") for i in range(self.wrong_password)]
                + [("unknown", f"nobody{i}", "pw") for i in range(self.unknown_id)]
                + [("right", *self.good) for _ in range(self.right_then_drop)])
        rng.shuffle(plan)
        k = max(1, self.threads)
        jobs = [
            threading.Thread(target=self._silent, args=(self.half_open, b"", "half_open")),
            threading.Thread(target=self._silent,
                             args=(self.half_header, b"\x00\x00", "half_header")),
            threading.Thread(target=self._slow, args=(self.slow,)),
            *[threading.Thread(target=self._malformed,
                               args=(self.malformed // k, random.Random(self.seed + i)))
              for i in range(k)],
            *[threading.Thread(target=self._binds, args=(plan[i::k],)) for i in range(k)],
        ]
        for t in jobs:
            t.daemon = True
            t.start()
        for t in jobs:
            t.join(600)
            if t.is_alive():
                self.report.errors.append("an attacker thread did not finish")
        return self.report
