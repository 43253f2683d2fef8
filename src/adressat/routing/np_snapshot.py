"""The portability table as a binary snapshot, ``<home>/np/ported.bin`` (docs/portability.md).

``adressat np load FILE`` parses a portability file once and ``save``s the table here; the
running node's ``SnapshotWatcher`` reloads it when the file changes, with no per-line parsing:
the arrays come back from bytes (``array.frombytes``), a million ported numbers in tens of
milliseconds.

Layout, little-endian, version 1::

    header   40 octets: magic b"ADRNPSN\\n", version u16, reserved u16 (0),
             operators u32, numbers u32, ranges u32, operator-names octets u32,
             source octets u32, saved_at f64 (epoch seconds)
    names    the operators' names, UTF-8, joined by "\\n"
    source   the file it was loaded from, UTF-8 (for ``np show``)
    numbers  i64 x numbers (sorted), then u16 x numbers (operator indices)
    ranges   i64 starts, i64 ends, u8 digits, u16 operator indices (x ranges each)
    crc32    u32 of everything before it

``load`` refuses (``SnapshotError`` with the reason) a file with another magic or version, a
size that is not what its header says (truncated, or trailing octets), a wrong checksum, or
arrays that do not make a table (unsorted, indices out of range). ``save`` writes a temporary
file beside the snapshot, fsyncs it, renames it over the snapshot and fsyncs the directory: a
reader sees the old snapshot or the new one, never a part.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import sys
import time
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

from adressat.routing.portability import (
    OPERATORS_MAX,
    PORTED_NUMBERS_MAX,
    PORTED_RANGES_MAX,
    PortabilityTable,
)

__all__ = [
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotWatcher",
    "load",
    "load_with_info",
    "save",
    "snapshot_path",
    "MAGIC",
    "VERSION",
    "EVENT_LOADED",
    "EVENT_REFUSED",
    "EVENT_MISSING",
]

log = logging.getLogger("adressat.routing")

MAGIC = b"ADRNPSN\n"
VERSION = 1
_HEADER = struct.Struct("<8sHHIIIIId")
_CRC = struct.Struct("<I")
SOURCE_OCTETS_MAX = 4096
_NAMES_OCTETS_MAX = OPERATORS_MAX * 65
_STAT_FAILED = (-1, -1, -1)  # the key of a file that could not even be stat'ed

#: log events of the watcher (logger ``adressat.routing``; the calls spell them out, as
#: tests/qa/test_log_calls.py wants, and the watcher tests hold the two equal)
EVENT_LOADED = "np snapshot loaded"
EVENT_REFUSED = "np snapshot refused; the previous table stays"
EVENT_MISSING = "np snapshot gone; the previous table stays"


class SnapshotError(ValueError):
    """A snapshot file that cannot be used; ``reason`` says why (never the file's content)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    path: str
    saved_at: float
    source: str  # the portability file it came from
    numbers: int
    ranges: int
    operators: int
    octets: int


def snapshot_path(home: str | Path) -> Path:
    """Where the node's portability snapshot lives: ``<home>/np/ported.bin``."""
    return Path(home) / "np" / "ported.bin"


def _little(a: array[int]) -> bytes:
    if sys.byteorder == "little":
        return a.tobytes()
    b = array(a.typecode, a)
    b.byteswap()
    return b.tobytes()


def _from_little(typecode: str, data: memoryview) -> array[int]:
    a = array(typecode)
    a.frombytes(data)
    if sys.byteorder != "little":
        a.byteswap()
    return a


def save(table: PortabilityTable, path: str | Path, *, saved_at: float | None = None) -> int:
    """Write ``table`` to ``path`` atomically (temp file, fsync, rename, fsync the directory);
    returns the octets written."""
    path = Path(path)
    operators, nums, nops, rstarts, rends, rdigits, rops = table.arrays()
    names = "\n".join(operators).encode("utf-8")
    source = table.source.encode("utf-8", "replace")[:SOURCE_OCTETS_MAX]
    header = _HEADER.pack(MAGIC, VERSION, 0, len(operators), len(nums), len(rstarts),
                          len(names), len(source),
                          time.time() if saved_at is None else saved_at)
    chunks = [header, names, source, _little(nums), _little(nops), _little(rstarts),
              _little(rends), rdigits.tobytes(), _little(rops)]
    crc = 0
    for c in chunks:
        crc = zlib.crc32(c, crc)
    chunks.append(_CRC.pack(crc))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    written = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
                written += len(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return written


def load(path: str | Path) -> PortabilityTable:
    """The table in the snapshot at ``path``; raises ``SnapshotError`` (a file that is not a
    whole, valid snapshot) or ``OSError`` (cannot read it, e.g. FileNotFoundError)."""
    return _read(Path(path))[0]


def load_with_info(path: str | Path) -> tuple[PortabilityTable, SnapshotInfo]:
    table, info, _ = _read(Path(path))
    return table, info


def _read(path: Path) -> tuple[PortabilityTable, SnapshotInfo, tuple[int, int, int]]:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read()
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    table, info = _decode(path, data)
    return table, info, key


def _decode(path: Path, data: bytes) -> tuple[PortabilityTable, SnapshotInfo]:
    if len(data) < _HEADER.size + _CRC.size:
        raise SnapshotError(path, f"truncated: {len(data)} octets, less than a header")
    (magic, version, _reserved, n_ops, n_nums, n_ranges, names_len, source_len,
     saved_at) = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotError(path, "not a portability snapshot (wrong magic)")
    if version != VERSION:
        raise SnapshotError(path, f"snapshot version {version}, this adressat reads {VERSION}")
    if (n_ops > OPERATORS_MAX or n_nums > PORTED_NUMBERS_MAX or n_ranges > PORTED_RANGES_MAX
            or names_len > _NAMES_OCTETS_MAX or source_len > SOURCE_OCTETS_MAX):
        raise SnapshotError(path, "header counts over the limits (corrupt header)")
    expected = (_HEADER.size + names_len + source_len + n_nums * 10 + n_ranges * 19
                + _CRC.size)
    if len(data) < expected:
        raise SnapshotError(path, f"truncated: {len(data)} octets of {expected}")
    if len(data) > expected:
        raise SnapshotError(path, f"{len(data) - expected} octets after the end")
    (crc,) = _CRC.unpack_from(data, expected - _CRC.size)
    view = memoryview(data)
    if zlib.crc32(view[: expected - _CRC.size]) != crc:
        raise SnapshotError(path, "checksum mismatch (corrupt)")
    if not math.isfinite(saved_at):
        raise SnapshotError(path, "bad saved_at")
    at = _HEADER.size

    def take(octets: int) -> memoryview:
        nonlocal at
        part = view[at: at + octets]
        at += octets
        return part

    try:
        names_raw = bytes(take(names_len)).decode("utf-8")
        source = bytes(take(source_len)).decode("utf-8")
    except UnicodeDecodeError:
        raise SnapshotError(path, "operator names not UTF-8") from None
    operators = tuple(names_raw.split("\n")) if n_ops else ()
    if len(operators) != n_ops or (not n_ops and names_raw):
        raise SnapshotError(path, "operator names do not match their count")
    nums = _from_little("q", take(n_nums * 8))
    nops = _from_little("H", take(n_nums * 2))
    rstarts = _from_little("q", take(n_ranges * 8))
    rends = _from_little("q", take(n_ranges * 8))
    rdigits = _from_little("B", take(n_ranges))
    rops = _from_little("H", take(n_ranges * 2))
    try:
        table = PortabilityTable.from_arrays(operators, nums, nops, rstarts, rends, rdigits,
                                             rops, source=source)
    except ValueError as e:
        raise SnapshotError(path, f"not a valid table: {e}") from None
    info = SnapshotInfo(str(path), saved_at, source, n_nums, n_ranges, n_ops, len(data))
    return table, info


class SnapshotWatcher:
    """The current table of a snapshot file, reloaded when the file changes.

    ``table(now)`` stats the file at most every ``check_s`` seconds (``now`` in any one clock,
    e.g. ``time.monotonic()``) and reloads it when (mtime, size, inode) changed. A snapshot
    that cannot be used (corrupt, truncated, unreadable) is refused: the previous table stays,
    and a warning is logged once per change of the file. A file that was never there gives
    None; one that disappears after a load keeps the previous table (warned once).
    """

    def __init__(self, path: str | Path, check_s: float = 1.0) -> None:
        if not check_s >= 0:
            raise ValueError("check_s must be >= 0")
        self.path = Path(path)
        self.check_s = check_s
        self.info: SnapshotInfo | None = None
        self.refused: str | None = None  # why the file as it is now was refused, if it was
        self._table: PortabilityTable | None = None
        self._key: tuple[int, int, int] | None = None  # of the file as last seen (good or bad)
        self._checked_at: float | None = None

    def table(self, now: float) -> PortabilityTable | None:
        if self._checked_at is not None and 0 <= now - self._checked_at < self.check_s:
            return self._table
        self._checked_at = now
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._key is not None and self._table is not None:
                log.warning("np snapshot gone; the previous table stays",
                            extra={"path": str(self.path)})
            self._key = None
            return self._table
        except OSError as e:
            self._refuse(_STAT_FAILED, f"cannot stat: {e.strerror or e}")
            return self._table
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == self._key:
            return self._table
        started = time.perf_counter()
        try:
            table, info, read_key = _read(self.path)
        except FileNotFoundError:
            return self._table  # renamed away between the stat and the open: next check
        except (SnapshotError, OSError) as e:
            self._refuse(key, e.reason if isinstance(e, SnapshotError)
                         else f"cannot read: {e.strerror or e}")
            return self._table
        self._table, self.info, self._key, self.refused = table, info, read_key, None
        load_ms = round((time.perf_counter() - started) * 1e3, 1)
        log.info("np snapshot loaded",
                 extra={"path": str(self.path), "numbers": info.numbers, "ranges": info.ranges,
                        "operators": info.operators, "load_ms": load_ms})
        return self._table

    def _refuse(self, key: tuple[int, int, int], reason: str) -> None:
        if key == self._key and self.refused is not None:
            return
        self._key, self.refused = key, reason
        kept = self.info.numbers if self.info is not None else 0
        log.warning("np snapshot refused; the previous table stays",
                    extra={"path": str(self.path), "reason": reason, "kept_numbers": kept})
