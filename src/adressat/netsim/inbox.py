"""The handsets' own durable record of what they accepted, apart from the SMSC's store.

``<home>/netsim/inbox.log``: append-only, one tab-separated line per accepted SMS (a header
line starting with '#' names the fields). Each record is written with one ``os.write`` on an
``O_APPEND`` descriptor BEFORE the acknowledgement is returned, so a SIGKILL of the process
loses nothing already acknowledged (the OS holds it; ``fsync`` optional). A torn last line
(a crash inside the write, never acknowledged) is cut off when the file is opened again.
Text fields are percent-escaped for '%', tab, CR and LF. No message text is ever written:
only its SHA-256. Format v2 (schema v9) records the TP-SCTS and part number a handset
recognises a resend by; v1 lines (a TP-MR instead) still parse.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from adressat.sms.timestamp import SCTS_OCTETS

__all__ = [
    "InboxRecord",
    "InboxWriter",
    "InboxCorrupt",
    "read_inbox",
    "inbox_path",
    "record_line",
    "legacy_record_line",
]

HEADER = (
    "#adressat-netsim-inbox v2 "
    "time msisdn imsi node originator scts part dcs smsc_message_id sha256 duplicate\n"
)
_FIELDS = 11
#: lines written before schema v9 (and for the resends of messages first sent then): a TP-MR
#: in place of ``scts part``. A file begun then keeps its v1 header; lines are told apart by
#: their number of fields.
HEADER_V1 = (
    "#adressat-netsim-inbox v1 "
    "time msisdn imsi node originator mr dcs smsc_message_id sha256 duplicate\n"
)
_FIELDS_V1 = 10


class InboxCorrupt(ValueError):
    def __init__(self, line: int) -> None:
        super().__init__(f"inbox line {line}: malformed record")
        self.line = line


@dataclass(frozen=True, slots=True)
class InboxRecord:
    """One SMS a handset stored (or discarded as a resend: ``duplicate``).

    ``scts`` is the TP-SCTS as the handset received it (seven octets, TS 23.040 §9.2.3.11;
    written as 14 hex digits) and ``part`` the part number of its concatenation element (0:
    not a part): with ``originator`` what the handset recognises a resend by.
    ``message_reference`` is set instead (``scts`` None) on a v1 line: the TP-MR that netsim
    identified an SMS by before schema v9."""

    time: float
    msisdn: str
    imsi: str
    node: str
    originator: str
    scts: bytes | None
    part: int
    data_coding: int
    smsc_message_id: str
    content_sha256: str
    duplicate: bool
    message_reference: int | None = None

    @property
    def deliver_key(self) -> str:
        """Which SMS-DELIVER of its message this is, as the handset tells them apart
        (``<scts hex>/<part>``; ``mr<TP-MR>`` on a v1 line)."""
        if self.scts is None:
            return f"mr{self.message_reference}"
        return f"{self.scts.hex()}/{self.part}"

    def to_line(self) -> bytes:
        if self.scts is None:
            return legacy_record_line(
                self.time,
                self.msisdn,
                self.imsi,
                self.node,
                self.originator,
                self.message_reference or 0,
                self.data_coding,
                self.smsc_message_id,
                self.content_sha256,
                self.duplicate,
            )
        return record_line(
            self.time,
            self.msisdn,
            self.imsi,
            self.node,
            self.originator,
            self.scts,
            self.part,
            self.data_coding,
            self.smsc_message_id,
            self.content_sha256,
            self.duplicate,
        )

    @classmethod
    def from_line(cls, line: str, lineno: int = 0) -> InboxRecord:
        parts = line.rstrip("\n").split("\t")
        try:
            if len(parts) == _FIELDS:
                scts = bytes.fromhex(parts[5])
                if len(scts) != SCTS_OCTETS:
                    raise ValueError
                return cls(
                    float(parts[0]),
                    parts[1],
                    parts[2],
                    _unesc(parts[3]),
                    _unesc(parts[4]),
                    scts,
                    int(parts[6]),
                    int(parts[7]),
                    _unesc(parts[8]),
                    parts[9],
                    parts[10] == "1",
                )
            if len(parts) == _FIELDS_V1:
                return cls(
                    float(parts[0]),
                    parts[1],
                    parts[2],
                    _unesc(parts[3]),
                    _unesc(parts[4]),
                    None,
                    0,
                    int(parts[6]),
                    _unesc(parts[7]),
                    parts[8],
                    parts[9] == "1",
                    int(parts[5]),
                )
        except ValueError:
            raise InboxCorrupt(lineno) from None
        raise InboxCorrupt(lineno)


def record_line(
    time: float,
    msisdn: str,
    imsi: str,
    node: str,
    originator: str,
    scts: bytes,
    part: int,
    data_coding: int,
    smsc_message_id: str,
    content_sha256: str,
    duplicate: bool,
) -> bytes:
    """The line of one record (``InboxRecord.to_line``), from its fields: the network's hot
    path writes records without building an ``InboxRecord`` first."""
    return (
        f"{time:.6f}\t{msisdn}\t{imsi}\t{_esc(node)}\t"
        f"{_esc(originator)}\t{scts.hex()}\t{part}\t{data_coding}\t"
        f"{_esc(smsc_message_id)}\t{content_sha256}\t{int(duplicate)}\n"
    ).encode()


def legacy_record_line(
    time: float,
    msisdn: str,
    imsi: str,
    node: str,
    originator: str,
    message_reference: int,
    data_coding: int,
    smsc_message_id: str,
    content_sha256: str,
    duplicate: bool,
) -> bytes:
    """A v1 line: an SMS that netsim identifies by a TP-MR (a message first sent before
    schema v9), so that a restarted handset rebuilds the same memory of it."""
    return (
        f"{time:.6f}\t{msisdn}\t{imsi}\t{_esc(node)}\t"
        f"{_esc(originator)}\t{message_reference}\t{data_coding}\t"
        f"{_esc(smsc_message_id)}\t{content_sha256}\t{int(duplicate)}\n"
    ).encode()


def inbox_path(home: str | Path) -> Path:
    return Path(home) / "netsim" / "inbox.log"


def rotated_paths(home: str | Path) -> list[Path]:
    """The inbox's earlier files (``inbox.<n>.log``), oldest first."""
    folder = Path(home) / "netsim"
    found = []
    for p in folder.glob("inbox.*.log"):
        middle = p.name[len("inbox."):-len(".log")]
        if middle.isdigit():
            found.append((int(middle), p))
    return [p for _, p in sorted(found)]


def evidence_from(home: str | Path) -> float | None:
    """The time from which the inbox still holds every record (earlier files were dropped
    to bound its size), or None when it holds them all."""
    try:
        return float((Path(home) / "netsim" / EVIDENCE_FROM_FILE).read_text())
    except (OSError, ValueError):
        return None


#: written when the oldest inbox file is dropped: the first record time of what is kept
EVIDENCE_FROM_FILE = "inbox.from"


class InboxWriter:
    """Appends records; ``append`` returns only after the bytes are in the OS.

    Bounded: past ``rotate_bytes`` the file becomes ``inbox.<n>.log`` and a new one starts;
    of those at most ``files_max`` are kept (the oldest is dropped, and ``inbox.from`` says
    from when the evidence is whole). :func:`read_inbox` reads them all, oldest first."""

    def __init__(self, home: str | Path, *, fsync: bool = False,
                 rotate_bytes: int = 64 * 1024 * 1024, files_max: int = 16) -> None:
        if rotate_bytes < 4096 or files_max < 1:
            raise ValueError("rotate_bytes must be >= 4096 and files_max >= 1")
        self.path = inbox_path(home)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fsync = fsync
        self.rotate_bytes = rotate_bytes
        self.files_max = files_max
        self.rotations = 0
        _cut_torn_tail(self.path)
        self._fd: int | None = None
        self._size = 0
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size
        if self._size == 0:
            self._write(HEADER.encode())

    def _rotate(self) -> None:
        """The current file becomes the newest ``inbox.<n>.log``; the oldest beyond
        ``files_max`` goes, and ``inbox.from`` says where the evidence now begins."""
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        older = rotated_paths(self.path.parent.parent)
        n = 1 + (int(older[-1].name[len("inbox."):-len(".log")]) if older else 0)
        os.replace(self.path, self.path.with_name(f"inbox.{n}.log"))
        older = rotated_paths(self.path.parent.parent)
        while len(older) > self.files_max:
            older.pop(0).unlink(missing_ok=True)
            first = _first_record_time(older[0])
            if first is not None:
                tmp = self.path.with_name(EVIDENCE_FROM_FILE + ".tmp")
                tmp.write_text(repr(first))
                os.replace(tmp, self.path.with_name(EVIDENCE_FROM_FILE))
        self.rotations += 1
        self._open()

    def append(self, record: InboxRecord) -> None:
        self._write(record.to_line())

    def append_line(self, line: bytes) -> None:
        """Append one record already formatted by ``record_line``."""
        self._write(line)

    def _write(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise RuntimeError("inbox closed")
        written = os.write(fd, data)
        if written != len(data):  # a short write (a full disk, say): the rest, or nothing
            start = os.fstat(fd).st_size - written
            view = memoryview(data)[written:]
            try:
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            except OSError:
                # the record is not stored: the file is cut back to where it began, so no
                # torn line stays between two whole ones (the handset failed to store it)
                os.ftruncate(fd, start)
                raise
        if self._fsync:
            os.fsync(fd)
        self._size += len(data)
        if self._size > self.rotate_bytes:
            self._rotate()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_inbox(
    home: str | Path,
    *,
    msisdn: str | None = None,
    imsi: str | None = None,
    start_offset: int = 0,
) -> Iterator[InboxRecord]:
    """Records in write order, optionally only one handset's (by number and/or IMSI).

    A torn last line (no newline) is skipped; any other malformed line raises InboxCorrupt.
    ``start_offset`` begins at a byte offset (the first, possibly partial, line is skipped).
    """
    path = inbox_path(home)
    if not start_offset:  # the earlier files first (a start offset is the current file's)
        for older in rotated_paths(home):
            yield from _read_file(older, 0, msisdn, imsi)
    if not path.exists():
        return
    yield from _read_file(path, start_offset, msisdn, imsi)


def _first_record_time(path: Path) -> float | None:
    for record in _read_file(path, 0, None, None):
        return record.time
    return None


def _read_file(path: Path, start_offset: int, msisdn: str | None,
               imsi: str | None) -> Iterator[InboxRecord]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; a rotated file may go meanwhile
    except FileNotFoundError:
        return
    with f:
        lineno = 0  # relative to start_offset
        if start_offset:
            f.seek(start_offset - 1)
            if f.read(1) != b"\n":
                f.readline()
        for raw in f:
            lineno += 1
            if not raw.endswith(b"\n"):
                return  # torn tail: never acknowledged
            if raw.startswith(b"#"):
                continue
            record = InboxRecord.from_line(raw.decode(), lineno)
            if msisdn is not None and record.msisdn != msisdn:
                continue
            if imsi is not None and record.imsi != imsi:
                continue
            yield record


def _cut_torn_tail(path: Path) -> None:
    if not path.exists():
        return
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "r+b") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        back = min(size, 64 * 1024)
        f.seek(size - back)
        tail = f.read(back)
        cut = tail.rfind(b"\n")
        f.truncate(size - back + cut + 1 if cut >= 0 else 0)


_ESC = str.maketrans({"%": "%25", "\t": "%09", "\n": "%0A", "\r": "%0D"})


def _esc(text: str) -> str:
    return (
        text.translate(_ESC)
        if ("%" in text or "\t" in text or "\n" in text or "\r" in text)
        else text
    )


def _unesc(text: str) -> str:
    if "%" not in text:
        return text
    return text.replace("%09", "\t").replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
