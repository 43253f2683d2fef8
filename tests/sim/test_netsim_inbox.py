"""The handsets' evidence log: survives SIGKILL, torn tail cut, escaping, per-handset query."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from adressat.netsim import InboxCorrupt, InboxRecord, inbox_path, read_inbox
from adressat.netsim.inbox import HEADER_V1, InboxWriter, legacy_record_line, record_line
from adressat.sms import encode_scts

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from adressat.netsim import Network, NetsimSettings, NetSms, Ack
    from adressat.sms import encode_scts

    async def main():
        net = Network(sys.argv[1], NetsimSettings.quiet(subscribers=1000))
        k = 0
        while True:
            msisdn = str(46701000000 + k % 1000)
            info = net.register.lookup(msisdn)
            sms = NetSms("Shop", encode_scts(1_700_000_000 + k), 0, b"n%d" % k, "id-%d" % k)
            result = await net.forward_sm(info.imsi, info.node, sms)
            if isinstance(result, Ack):
                sys.stdout.write("%s %s %s\\n" % ("id-%d" % k, result.msisdn, result.imsi))
                sys.stdout.flush()
            k += 1
            if k % 50 == 0:
                await asyncio.sleep(0)

    asyncio.run(main())
    """
)


def test_inbox_survives_sigkill(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    acked: list[tuple[str, str, str]] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while len(acked) < 3000 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(tuple(line.split()))  # type: ignore[arg-type]
    os.kill(proc.pid, signal.SIGKILL)
    rest = proc.stdout.read()  # acks printed before the kill landed
    proc.wait()
    for line in rest.splitlines():
        parts = line.split()
        if len(parts) == 3:
            acked.append(tuple(parts))  # type: ignore[arg-type]
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 3000
    stored = {(r.smsc_message_id, r.msisdn, r.imsi) for r in read_inbox(tmp_path)}
    missing = [a for a in acked if a not in stored]
    assert not missing, f"{len(missing)} acknowledged messages missing from the inbox"


def _record(i: int, **kw: object) -> InboxRecord:
    base: dict[str, object] = dict(
        time=1000.0 + i,
        msisdn=f"4670100{i:04d}",
        imsi=f"24001{i:010d}",
        node="msc-1",
        originator="Shop",
        scts=encode_scts(1_700_000_000 + i),
        part=i % 3,
        data_coding=0,
        smsc_message_id=f"m{i}",
        content_sha256="ab" * 32,
        duplicate=False,
    )
    base.update(kw)
    return InboxRecord(**base)  # type: ignore[arg-type]


def test_round_trip_escaping_and_filters(tmp_path: Path) -> None:
    w = InboxWriter(tmp_path)
    odd = _record(1, originator="A\tB%0A\n", smsc_message_id="x\ry%")
    w.append(odd)
    w.append(_record(2, duplicate=True))
    w.append(_record(3, msisdn=odd.msisdn))
    w.close()
    records = list(read_inbox(tmp_path))
    assert records[0] == odd
    assert records[1].duplicate
    assert [r.smsc_message_id for r in read_inbox(tmp_path, msisdn=odd.msisdn)] == ["x\ry%", "m3"]
    assert [r.smsc_message_id for r in read_inbox(tmp_path, imsi=odd.imsi)] == ["x\ry%"]
    assert list(read_inbox(tmp_path / "nowhere")) == []


def test_torn_tail_is_skipped_and_cut_on_reopen(tmp_path: Path) -> None:
    w = InboxWriter(tmp_path)
    w.append(_record(1))
    w.close()
    path = inbox_path(tmp_path)
    with open(path, "ab") as f:
        f.write(b"1001.0\t46701\tpartial")  # a crash inside a write: never acknowledged
    assert [r.smsc_message_id for r in read_inbox(tmp_path)] == ["m1"]
    w = InboxWriter(tmp_path)
    w.append(_record(2))
    w.close()
    assert [r.smsc_message_id for r in read_inbox(tmp_path)] == ["m1", "m2"]
    assert path.read_bytes().count(b"partial") == 0


def test_corrupt_middle_line_is_reported(tmp_path: Path) -> None:
    w = InboxWriter(tmp_path)
    w.append(_record(1))
    w.close()
    with open(inbox_path(tmp_path), "ab") as f:
        f.write(b"garbage\n")
    with pytest.raises(InboxCorrupt) as info:
        list(read_inbox(tmp_path))
    assert info.value.line == 3  # header, record, garbage


def test_start_offset_reads_from_a_line_boundary(tmp_path: Path) -> None:
    w = InboxWriter(tmp_path)
    for i in range(10):
        w.append(_record(i))
    w.close()
    size = inbox_path(tmp_path).stat().st_size
    tail = list(read_inbox(tmp_path, start_offset=size - 150))
    assert tail and tail[-1].smsc_message_id == "m9"
    assert all(r.smsc_message_id.startswith("m") for r in tail)


def test_records_name_the_tp_scts_in_its_seven_octets(tmp_path: Path) -> None:
    w = InboxWriter(tmp_path)
    w.append(_record(4))
    w.close()
    header, line = inbox_path(tmp_path).read_text().splitlines()
    assert header.startswith("#adressat-netsim-inbox v2 ") and " scts part " in header
    fields = line.split("\t")
    assert len(fields) == 11
    # 2023-11-14 22:13:24 GMT (1_700_000_004): TS 23.040 9.2.3.11, semi-octets, GMT
    assert fields[5:7] == ["32114122314200", "1"]
    [r] = read_inbox(tmp_path)
    assert (r.scts, r.part, r.message_reference) == (bytes.fromhex("32114122314200"), 1, None)
    assert r.deliver_key == "32114122314200/1"


def test_v1_lines_from_before_schema_v9_still_parse(tmp_path: Path) -> None:
    """A file begun under v1 (TP-MR in place of TP-SCTS and part) keeps its lines; the lines
    appended after the upgrade are v2, and both read back."""
    path = inbox_path(tmp_path)
    path.parent.mkdir(parents=True)
    old = legacy_record_line(
        999.5, "46701000001", "240010000000001", "msc-1", "Shop", 77, 0, "old", "cd" * 32, False
    )
    assert old.count(b"\t") == 9
    path.write_bytes(HEADER_V1.encode() + old)
    w = InboxWriter(tmp_path)
    w.append(_record(1))
    w.append(_legacy(2))  # a resend of a message first sent then: a v1 line again
    w.close()
    records = list(read_inbox(tmp_path))
    assert [r.smsc_message_id for r in records] == ["old", "m1", "m2"]
    first = records[0]
    assert (first.scts, first.part, first.message_reference) == (None, 0, 77)
    assert (first.originator, first.imsi, first.content_sha256) == (
        "Shop", "240010000000001", "cd" * 32
    )
    assert first.deliver_key == "mr77"
    assert records[1].scts == encode_scts(1_700_000_001)
    assert records[2].message_reference == 2 and records[2].scts is None
    assert path.read_text().count("#adressat-netsim-inbox") == 1  # the old header stays


def _legacy(i: int) -> InboxRecord:
    return _record(i, scts=None, part=0, message_reference=i)


def test_the_inbox_is_bounded_and_read_whole_across_its_files(tmp_path: Path) -> None:
    from adressat.netsim.inbox import evidence_from, rotated_paths

    w = InboxWriter(tmp_path, rotate_bytes=4096, files_max=2)
    lines = [
        record_line(1000.0 + i, "46701000001", "240010000000001", "msc-1", "ACME",
                    b"\x32\x21\x10\x01\x02\x03\x00", 0, 0, f"{i:032x}", "ab" * 32, False)
        for i in range(400)
    ]
    for line in lines:
        w.append_line(line)
    w.close()
    files = rotated_paths(tmp_path)
    assert len(files) == 2 and w.rotations > 2  # older files were dropped
    total = sum(p.stat().st_size for p in files) + inbox_path(tmp_path).stat().st_size
    assert total <= 3 * (4096 + 300)
    got = [r.smsc_message_id for r in read_inbox(tmp_path)]
    assert got == [f"{i:032x}" for i in range(400 - len(got), 400)]  # the newest, in order
    start = evidence_from(tmp_path)
    assert start is not None and start == 1000.0 + 400 - len(got)
