"""Credentials under a guessing storm (issue 13): a real ``adressat run`` (SQLite, fsync,
--quiet-network), one bound session submitting one message at a time. Prints ONE JSON line:

- submit p50/p99 of that session quiet, then while 50 parallel guessers (another process,
  reconnecting, 3 binds per connection, half of them for a real account) run, with the
  default lockout (``storm``: the guessers' address is soon locked out, answered without
  scrypt) and with the lockout out of reach (``storm_nolock``: every guess an scrypt check,
  bounded by password_checks_max / password_checks_waiting_max), and the ratios;
- the SMPP process's RSS before and after each storm;
- the median time of a bind answer for an unknown system_id and for a wrong password (each
  from a fresh loopback address, so no lockout is involved), to show they match.

    .venv/bin/python bench/bind_guard.py [--submits 2000] [--storm-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adressat.smpp import codec
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import Pdu
from adressat.testing.server import ServerProcess, adressat

HOST = "127.0.0.1"
GUESSERS = 50


class Session:
    def __init__(self, port: int, source: str = HOST) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=10.0,
                                             source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = codec.PduReader(1 << 20)
        self.seq = 0

    def call(self, command_id: int, **fields: object) -> Pdu:
        self.seq += 1
        self.sock.sendall(codec.encode(Pdu.make(command_id, self.seq, **fields)))
        for _ in range(100_000):
            pdu = self.reader.next_pdu()
            if pdu is None:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                self.reader.feed(data)
                continue
            if pdu.is_response and pdu.sequence_number == self.seq:
                return pdu
            if pdu.command_id in (C.DELIVER_SM, C.ENQUIRE_LINK):
                self.sock.sendall(codec.encode(pdu.response()))
        raise RuntimeError("no response")

    def bind(self, system_id: str, password: str) -> int:
        return int(self.call(C.BIND_TRANSCEIVER, system_id=system_id, password=password,
                             interface_version=0x34).command_status)

    def close(self) -> None:
        self.sock.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


def submits(session: Session, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        r = session.call(C.SUBMIT_SM, source_addr="CALM", source_addr_ton=5, dest_addr_ton=1,
                         dest_addr_npi=1, destination_addr=f"4670100{i % 1000:04d}",
                         short_message=b"bench")
        out.append(time.perf_counter() - t0)
        if r.command_status != S.ESME_ROK:
            raise RuntimeError(f"submit refused: {S(r.command_status).name}")
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 2)


# --- the guessers (run as a process of their own: --guess PORT SECONDS) -------------------------

async def _guesser(port: int, deadline: float, rng: random.Random, counts: dict[str, int]
                   ) -> None:
    for _ in range(100_000):
        if time.monotonic() >= deadline:
            return
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        try:
            for seq in range(1, 4):
                name = "target" if rng.random() < 0.5 else f"u{rng.randrange(10**6)}"
                writer.write(codec.encode(Pdu.make(
                    C.BIND_TRANSCEIVER, seq, system_id=name, password=f"g{rng.randrange(10**6)}",
                    interface_version=0x34)))
                await writer.drain()
                head = await asyncio.wait_for(reader.readexactly(16), 30.0)
                length, _, status, _ = struct.unpack(">IIII", head)
                await reader.readexactly(length - 16)
                counts[S(status).name] = counts.get(S(status).name, 0) + 1
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            counts["closed"] = counts.get("closed", 0) + 1
        finally:
            writer.close()


def guess(port: int, seconds: float) -> None:
    counts: dict[str, int] = {}

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_guesser(port, deadline, random.Random(i), counts)
                               for i in range(GUESSERS)))

    asyncio.run(main())
    print(json.dumps(counts))


def storm(srv: ServerProcess, session: Session, n: int, seconds: float) -> dict[str, object]:
    assert srv.proc is not None
    before = rss_mb(srv.proc.pid)
    proc = subprocess.Popen([sys.executable, __file__, "--guess", str(srv.port), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # the storm under way
    lat: list[float] = []
    t_end = time.monotonic() + seconds - 1.5
    while time.monotonic() < t_end and len(lat) < n * 20:
        lat += submits(session, 50)
    out, _ = proc.communicate(timeout=seconds + 120)
    time.sleep(1.0)
    counts = json.loads(out.strip().splitlines()[-1])
    return {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "submits": len(lat),
            "guesses": sum(v for k, v in counts.items() if k != "closed"),
            "answers": counts, "rss_mb_before": before, "rss_mb_after": rss_mb(srv.proc.pid)}


def answer_times(port: int, rounds: int) -> dict[str, float]:
    """Median bind answer time: unknown system_id vs wrong password, each from a fresh
    loopback address (127.0.1.x), interleaved."""
    unknown, wrong = [], []
    for i in range(rounds):
        for name, into in (("nobody", unknown), ("target", wrong)):
            s = Session(port, f"127.0.{1 + (i // 200)}.{1 + i % 200}")
            t0 = time.perf_counter()
            status = s.bind(name, "nope")
            into.append(time.perf_counter() - t0)
            s.close()
            if status != S.ESME_RBINDFAIL:
                raise RuntimeError(f"bind answered {S(status).name}")
    return {"unknown_id_ms_median": round(statistics.median(unknown) * 1000, 2),
            "wrong_password_ms_median": round(statistics.median(wrong) * 1000, 2)}


def run_node(home: Path, *extra: str) -> dict[str, object]:
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "100000",
                       *extra) as srv:
        session = Session(srv.port)
        if session.bind("calm", "pw1") != S.ESME_ROK:
            raise RuntimeError("calm cannot bind")
        submits(session, 300)  # warm
        return {"srv": srv, "session": session}  # used inside the with below


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--submits", type=int, default=2000)
    p.add_argument("--storm-s", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--guess", nargs=2, metavar=("PORT", "SECONDS"))
    args = p.parse_args()
    if args.guess:
        guess(int(args.guess[0]), float(args.guess[1]))
        return 0
    result: dict[str, object] = {"bench": "bind_guard", "guessers": GUESSERS}
    for label, extra in (("storm", ()),
                         ("storm_nolock", ("--credential-failures-max", "1000000",
                                           "--credential-address-failures-max", "1000000",
                                           "--credential-principal-failures-max", "1000000"))):
        with tempfile.TemporaryDirectory(prefix="adressat-bench-") as tmp:
            home = Path(tmp)
            for name in ("calm", "target"):
                out = adressat(home, "account", "add", name, "--password", "pw1")
                if out.returncode:
                    print(out.stderr, file=sys.stderr)
                    return 1
            with ServerProcess(home, None, "--quiet-network", "--subscribers", "100000",
                               *extra) as srv:
                session = Session(srv.port)
                if session.bind("calm", "pw1") != S.ESME_ROK:
                    raise RuntimeError("calm cannot bind")
                submits(session, 300)  # warm
                if label == "storm":
                    result.update(answer_times(srv.port, args.rounds))
                # quiet, on the same node just before its storm (the machine is shared)
                quiet = submits(session, args.submits)
                got = storm(srv, session, args.submits, args.storm_s)
                got["quiet_p50_ms"], got["quiet_p99_ms"] = pct(quiet, 0.5), pct(quiet, 0.99)
                result[label] = got
                ratio = float(got["p99_ms"]) / float(got["quiet_p99_ms"])  # type: ignore[arg-type]
                result[f"{label}_p99_ratio"] = round(ratio, 2)
                session.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
