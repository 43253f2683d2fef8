"""Write TCP payloads into a pcap (LINKTYPE_RAW IPv4) with pure Python, for tshark."""

from __future__ import annotations

import struct
from pathlib import Path

LINKTYPE_RAW = 101


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_pcap(path: Path, payloads: list[bytes], port: int = 2775) -> None:
    """One TCP segment per payload, client 10.0.0.1:40000 -> server 10.0.0.2:port."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINKTYPE_RAW)]
    seq = 1000
    for i, payload in enumerate(payloads):
        tcp = struct.pack(
            ">HHIIBBHHH", 40000, port, seq, 1, 5 << 4, 0x18, 65535, 0, 0
        )  # PSH|ACK, no checksum
        total_length = 20 + len(tcp) + len(payload)
        ip = struct.pack(
            ">BBHHHBBH4s4s",
            0x45, 0, total_length, i + 1, 0x4000, 64, 6, 0,
            bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]),
        )  # fmt: skip
        ip = ip[:10] + struct.pack(">H", _ip_checksum(ip)) + ip[12:]
        packet = ip + tcp + payload
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(packet), len(packet)))
        out.append(packet)
        seq += len(payload)
    path.write_bytes(b"".join(out))
