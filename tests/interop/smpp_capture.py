"""Capture a loopback SMPP session with tshark and decode every PDU of it with Wireshark's SMPP
dissector (``-d tcp.port==P,smpp``): command, status, sequence, and whether any frame is
malformed or carries an expert warning/error. (tests/smpp/test_smpp_tshark.py checks our own
encodings from a pcap written in Python; this captures real traffic on ``lo``.)

    with Capture(tmp_path, port) as cap:
        ...  # the session
    report = cap.decode()
    assert not report.problems, report.text()
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"

TSHARK = "tshark"
CAPTURE_DURATION_MAX_S = 120  # tshark stops by itself after this even if never told to
CAPTURE_START_TIMEOUT_S = 15.0
CAPTURE_STOP_TIMEOUT_S = 10.0
DECODE_TIMEOUT_S = 60.0
# Wireshark's expert severities (epan/proto.h PI_*), as ``-T fields`` prints them
SEVERITY_WARNING = 0x00600000
SEVERITY_ERROR = 0x00800000
FIELDS = ["frame.number", "tcp.srcport", "smpp.command_id", "smpp.command_status",
          "smpp.sequence_number", "_ws.malformed", "_ws.expert.severity",
          "_ws.expert.message"]


@dataclass(frozen=True)
class Pdu:
    frame: int
    src_port: int
    command_id: int
    command_status: int | None  # None on a request (the dissector shows it on responses)
    sequence_number: int


@dataclass(frozen=True)
class Problem:
    frame: int
    what: str  # "malformed" or the expert message
    severity: int


@dataclass
class Report:
    pcap: Path
    port: int
    pdus: list[Pdu] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    frames: int = 0

    def commands(self) -> list[int]:
        return [p.command_id for p in self.pdus]

    def text(self) -> str:
        lines = [f"{self.pcap}: {self.frames} SMPP frames, {len(self.pdus)} PDUs"]
        lines += [f"  frame {p.frame} :{p.src_port} cmd=0x{p.command_id:08x} status="
                  f"{'' if p.command_status is None else hex(p.command_status)} "
                  f"seq={p.sequence_number}" for p in self.pdus]
        lines += [f"  PROBLEM frame {p.frame}: {p.what} (severity 0x{p.severity:x})"
                  for p in self.problems]
        return "\n".join(lines)


def _ints(cell: str) -> list[int]:
    return [int(x, 0) for x in cell.split("|") if x]


class Capture:
    """``tshark -i lo -f "tcp port P" -w FILE``, bounded; stopped by SIGINT (flushes)."""

    def __init__(self, workdir: Path, port: int, name: str = "smpp") -> None:
        path = shutil.which(TSHARK)
        assert path, "tshark is required (scripts/test installs it)"
        self.tshark = path
        self.port = port
        self.pcap = workdir / f"{name}-{port}.pcapng"
        self.log = workdir / f"{name}-{port}.tshark.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Capture:
        """Returns once tshark demonstrably captures: "Capturing on" comes before the filter
        is in place, so UDP probes go to a port of their own until tshark prints one (-P)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            probe_port = int(probe.getsockname()[1])
            with open(self.log, "wb") as out:
                self.proc = subprocess.Popen(
                    [self.tshark, "-n", "-l", "-P", "-i", "lo", "-f",
                     f"tcp port {self.port} or udp port {probe_port}", "-w", str(self.pcap),
                     "-a", f"duration:{CAPTURE_DURATION_MAX_S}"],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + CAPTURE_START_TIMEOUT_S
            while f"\u2192 {probe_port} ".encode() not in self.log.read_bytes() \
                    and f"-> {probe_port} ".encode() not in self.log.read_bytes():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"tshark did not capture: {self.log.read_text()}")
                probe.sendto(b"probe", (HOST, probe_port))
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        time.sleep(0.3)  # the last segments are in the kernel's buffer, not yet in the file
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(CAPTURE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def decode(self) -> Report:
        """Every SMPP PDU in the capture (several per frame expand to several PDUs) and every
        malformed frame or expert item of severity warning or error, whatever the protocol."""
        args = [self.tshark, "-n", "-r", str(self.pcap), "-d", f"tcp.port=={self.port},smpp",
                "-Y",
                f"smpp || _ws.malformed || _ws.expert.severity >= {SEVERITY_WARNING}",
                "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
        for f in FIELDS:
            args += ["-e", f]
        out = subprocess.run(args, capture_output=True, text=True, timeout=DECODE_TIMEOUT_S,
                             check=True).stdout
        report = Report(self.pcap, self.port)
        for line in out.splitlines():
            cells = line.split("\t")
            cells += [""] * (len(FIELDS) - len(cells))
            frame, src, cmds, statuses, seqs, malformed, sev, msg = cells
            n = int(frame)
            cmd_l, seq_l, st_l = _ints(cmds), _ints(seqs), _ints(statuses)
            if cmd_l:
                report.frames += 1
            # command_status is shown on responses only (bit 31 of command_id)
            st_iter = iter(st_l)
            for c, s in zip(cmd_l, seq_l, strict=False):
                st = next(st_iter, None) if c & 0x80000000 else None
                report.pdus.append(Pdu(n, int(src or 0), c, st, s))
            if malformed:
                report.problems.append(Problem(n, "malformed", SEVERITY_ERROR))
            for sv, m in zip(_ints(sev), msg.split("|"), strict=False):
                if sv >= SEVERITY_WARNING:
                    report.problems.append(Problem(n, m, sv))
        return report
