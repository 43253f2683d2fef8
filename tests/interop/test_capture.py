"""The tshark helper itself: it sees every PDU of a loopback session, and it reports a
malformed one (so the interop tests that assert "no problems" can fail)."""

from __future__ import annotations

import socket
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from peers import HOST, need  # noqa: E402
from smpp_capture import Capture  # noqa: E402


def _send(port_sock: socket.socket, frames: list[bytes]) -> None:
    port = port_sock.getsockname()[1]
    with socket.create_connection((HOST, port), timeout=5) as c:
        server, _ = port_sock.accept()
        with server:
            for f in frames:
                c.sendall(f)
                got = b""
                while len(got) < len(f):
                    got += server.recv(65536)


def _enquire_link(seq: int) -> bytes:
    return struct.pack(">IIII", 16, 0x15, 0, seq)


def test_capture_sees_every_pdu_and_flags_a_malformed_one(tmp_path: Path) -> None:
    need("tshark")
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        # a submit_sm whose command_length claims a body that ends in the middle of its
        # mandatory fields: Wireshark's dissector marks it malformed
        truncated = struct.pack(">IIII", 19, 0x04, 0, 3) + b"\x00\x01\x01"
        with Capture(tmp_path, port) as cap:
            _send(listener, [_enquire_link(1), _enquire_link(2), truncated])
    report = cap.decode()
    assert [(p.command_id, p.sequence_number) for p in report.pdus] == [
        (0x15, 1), (0x15, 2), (0x04, 3)], report.text()
    assert {p.frame for p in report.problems} == {report.pdus[2].frame}, report.text()
    assert any(p.what == "malformed" for p in report.problems), report.text()
