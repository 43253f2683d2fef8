"""The portability snapshot: round trip, refusal of a damaged file, the watcher."""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import pytest

from adressat.routing import np_snapshot
from adressat.routing.np_snapshot import SnapshotError, SnapshotWatcher, load, save, snapshot_path
from adressat.routing.portability import PortabilityTable

TEXT = """\
number_or_range,operator
46730000000-46739999999,telia
4790000000-4799999999,telenor-no
46701234567,tele2
46731111111,own
"""


def _table(text: str = TEXT) -> PortabilityTable:
    return PortabilityTable.from_text(text, source="/srv/np/ported.csv")


def test_snapshot_path(tmp_path: Path) -> None:
    assert snapshot_path(tmp_path) == tmp_path / "np" / "ported.bin"


def test_round_trip(tmp_path: Path) -> None:
    t = _table()
    path = snapshot_path(tmp_path)
    octets = save(t, path, saved_at=1234.5)
    assert path.stat().st_size == octets
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["ported.bin"]  # no temp file left
    back, info = np_snapshot.load_with_info(path)
    assert back.numbers == t.numbers and back.ranges == t.ranges
    assert back.operators == t.operators
    assert (info.numbers, info.ranges, info.operators, info.saved_at) == (2, 2, 4, 1234.5)
    assert info.source == back.source == "/srv/np/ported.csv"
    for n in ("46731111111", "46731111112", "46701234567", "4791234567", "46701000000"):
        assert back.operator_for(n) == t.operator_for(n)


def test_round_trip_of_an_empty_table_and_a_big_one(tmp_path: Path) -> None:
    save(PortabilityTable(), tmp_path / "e.bin")
    assert len(load(tmp_path / "e.bin")) == 0
    numbers = {str(46701000000 + 7 * i): ("a", "b", "c")[i % 3] for i in range(50_000)}
    t = PortabilityTable([("46800000000", "46899999999", "d")], numbers)
    save(t, tmp_path / "b.bin")
    back = load(tmp_path / "b.bin")
    assert back.arrays() == t.arrays()


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = snapshot_path(tmp_path)
    save(_table(), path)
    inode = path.stat().st_ino
    save(_table("46701000000,x\n"), path)
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert load(path).operator_for("46701000000") == "x"


@pytest.mark.parametrize("cut", [0, 10, 39, 40, 60, -5, -1])
def test_a_truncated_snapshot_is_refused(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "s.bin"
    save(_table(), path)
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(SnapshotError, match="truncated|magic"):
        load(path)


def test_trailing_octets_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.bin"
    save(_table(), path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(SnapshotError, match="after the end"):
        load(path)


def test_every_flipped_octet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.bin"
    save(_table(), path)
    data = path.read_bytes()
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x41
        path.write_bytes(bytes(damaged))
        with pytest.raises(SnapshotError):
            load(path)


def test_wrong_magic_and_version(tmp_path: Path) -> None:
    path = tmp_path / "s.bin"
    path.write_text("range 46701000000 46701999999 own\n" * 3)
    with pytest.raises(SnapshotError, match="magic"):
        load(path)
    save(_table(), path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, 8, 99)
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="version 99"):
        load(path)


def test_a_checksummed_but_invalid_table_is_refused(tmp_path: Path) -> None:
    """A writer's bug (unsorted numbers) with a right checksum: still refused."""
    import zlib

    path = tmp_path / "s.bin"
    save(PortabilityTable(numbers={"46701000001": "a", "46701000002": "a"}), path)
    data = bytearray(path.read_bytes())
    head = np_snapshot._HEADER.size + len(b"a") + len(b"")  # names "a", source ""
    a, b = data[head: head + 8], data[head + 8: head + 16]
    data[head: head + 16] = b + a
    struct.pack_into("<I", data, len(data) - 4, zlib.crc32(bytes(data[:-4])))
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="not sorted"):
        load(path)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.bin")


# -- the watcher -------------------------------------------------------------------------


def _replace(path: Path, table: PortabilityTable) -> None:
    save(table, path)


def test_watcher_none_until_a_snapshot_exists(tmp_path: Path) -> None:
    path = snapshot_path(tmp_path)
    w = SnapshotWatcher(path, check_s=1.0)
    assert w.table(0.0) is None
    save(_table(), path)
    assert w.table(0.5) is None  # not looked at again within check_s
    t = w.table(1.0)
    assert t is not None and t.operator_for("46701234567") == "tele2"
    assert w.info is not None and w.info.numbers == 2


def test_watcher_reloads_on_change_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = snapshot_path(tmp_path)
    save(_table(), path)
    reads: list[Path] = []
    real = np_snapshot._read

    def counting(p: Path):  # type: ignore[no-untyped-def]
        reads.append(p)
        return real(p)

    monkeypatch.setattr(np_snapshot, "_read", counting)
    w = SnapshotWatcher(path, check_s=1.0)
    first = w.table(10.0)
    assert first is not None
    for now in (10.5, 11.0, 12.0, 13.0):
        assert w.table(now) is first  # unchanged file: the same table, not read again
    assert len(reads) == 1
    save(_table("46701234567,telia\n"), path)
    assert w.table(13.5) is first  # within check_s of the last look
    second = w.table(14.0)
    assert second is not first and second is not None
    assert second.operator_for("46701234567") == "telia"
    assert len(reads) == 2


def test_watcher_sees_an_in_place_rewrite(tmp_path: Path) -> None:
    """Same inode, same size, new mtime: reloaded."""
    path = tmp_path / "s.bin"
    save(_table("46701234567,aaaa\n"), path)
    w = SnapshotWatcher(path, check_s=0.0)
    assert w.table(0.0).operator_for("46701234567") == "aaaa"  # type: ignore[union-attr]
    other = tmp_path / "o.bin"
    save(_table("46701234567,bbbb\n"), other)
    inode, size = path.stat().st_ino, path.stat().st_size
    with open(path, "r+b") as f:
        f.write(other.read_bytes())
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert (path.stat().st_ino, path.stat().st_size) == (inode, size)
    assert w.table(1.0).operator_for("46701234567") == "bbbb"  # type: ignore[union-attr]


def test_watcher_keeps_the_old_table_on_a_bad_file_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = snapshot_path(tmp_path)
    save(_table(), path)
    w = SnapshotWatcher(path, check_s=1.0)
    good = w.table(0.0)
    assert good is not None
    data = path.read_bytes()
    tmp = path.with_name("x")
    tmp.write_bytes(data[: len(data) // 2])  # a truncated file renamed in
    os.replace(tmp, path)
    caplog.set_level(logging.INFO, logger="adressat.routing")
    for now in (1.0, 2.0, 3.0, 4.0):
        assert w.table(now) is good
    refused = [r for r in caplog.records if r.getMessage() == np_snapshot.EVENT_REFUSED]
    assert len(refused) == 1 and "truncated" in refused[0].reason  # type: ignore[attr-defined]
    assert w.refused is not None and "truncated" in w.refused
    # another bad version: warned again (once per change)
    tmp.write_bytes(b"garbage" * 20)
    os.replace(tmp, path)
    assert w.table(5.0) is good and w.table(6.0) is good
    refused = [r for r in caplog.records if r.getMessage() == np_snapshot.EVENT_REFUSED]
    assert len(refused) == 2 and "magic" in refused[1].reason  # type: ignore[attr-defined]
    # then a good one: loaded, the refusal cleared
    save(_table("46701234567,telia\n"), path)
    t = w.table(7.0)
    assert t is not good and t is not None and t.operator_for("46701234567") == "telia"
    assert w.refused is None
    loaded = [r for r in caplog.records if r.getMessage() == np_snapshot.EVENT_LOADED]
    assert len(loaded) == 1 and loaded[0].numbers == 1  # type: ignore[attr-defined]


def test_watcher_keeps_the_table_when_the_file_goes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = snapshot_path(tmp_path)
    save(_table(), path)
    w = SnapshotWatcher(path, check_s=1.0)
    good = w.table(0.0)
    path.unlink()
    caplog.set_level(logging.WARNING, logger="adressat.routing")
    assert w.table(1.0) is good and w.table(2.0) is good
    assert [r.getMessage() for r in caplog.records] == [np_snapshot.EVENT_MISSING]
    save(_table("46701234567,telia\n"), path)
    t = w.table(3.0)
    assert t is not None and t.operator_for("46701234567") == "telia"


def test_watcher_rejects_a_bad_interval(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SnapshotWatcher(tmp_path / "s.bin", check_s=-1.0)
    with pytest.raises(ValueError):
        SnapshotWatcher(tmp_path / "s.bin", check_s=float("nan"))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    numbers=st.dictionaries(st.integers(10**6, 10**15 - 1).map(str),
                            st.sampled_from(["own", "a", "b-2", "c.d"]), max_size=40),
    spans=st.lists(st.tuples(st.integers(1, 14), st.integers(0, 10**6)), max_size=6),
    saved_at=st.floats(0, 2e9),
)
def test_round_trip_of_any_table(
    tmp_path_factory: pytest.TempPathFactory, numbers: dict[str, str],
    spans: list[tuple[int, int]], saved_at: float,
) -> None:
    # one range per digit count at most, so none overlap
    ranges = {d: (str(10 ** (d - 1)), str(10 ** (d - 1) + min(w, 9 * 10 ** (d - 1) - 1)), "r")
              for d, w in spans}
    t = PortabilityTable(list(ranges.values()), numbers)
    path = tmp_path_factory.mktemp("s") / "s.bin"
    save(t, path, saved_at=saved_at)
    back, info = np_snapshot.load_with_info(path)
    assert back.arrays() == t.arrays() and info.saved_at == saved_at
    for n in numbers:
        assert back.operator_for(n) == t.operator_for(n) == numbers[n]
