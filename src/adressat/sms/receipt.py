"""SMPP delivery receipt text (SMPP 3.4 Appendix B).

``id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
err:E text:...``

Our own receipts carry an empty ``text:`` field (DESIGN.md I6: no message text leaves in a
receipt). Parsing is tolerant of what real SMSCs send: keys in any case, missing fields,
``submit_date``/``done_date``, dates with seconds (YYMMDDhhmmss) or a four-digit year
(YYYYMMDDhhmmss), extra spaces, ``err`` of 1-3 digits or letters, ids in hex or decimal (kept as
text), a missing text field. Errors never include the receipt text.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "DeliveryReceipt",
    "ReceiptError",
    "ReceiptStat",
    "build_receipt",
    "parse_receipt",
]

TEXT_CHARS_MAX = 20
"""The receipt's text field holds at most the first 20 characters (Appendix B)."""


class ReceiptError(ValueError):
    """Receipt text that cannot be parsed, or a receipt that cannot be built. The message names
    the field, never its value or the text."""


class ReceiptStat(enum.StrEnum):
    """Message states of Appendix B (7-character forms)."""

    DELIVRD = "DELIVRD"
    EXPIRED = "EXPIRED"
    DELETED = "DELETED"
    UNDELIV = "UNDELIV"
    ACCEPTD = "ACCEPTD"
    UNKNOWN = "UNKNOWN"
    REJECTD = "REJECTD"
    ENROUTE = "ENROUTE"


_STAT_ALIASES = {
    "DELIVERED": ReceiptStat.DELIVRD,
    "UNDELIVERABLE": ReceiptStat.UNDELIV,
    "UNDELIVERED": ReceiptStat.UNDELIV,
    "ACCEPTED": ReceiptStat.ACCEPTD,
    "REJECTED": ReceiptStat.REJECTD,
}


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """Fields of a receipt; None where a parsed receipt did not have the field.

    Dates are naive (UTC by our convention) or aware (converted to UTC when built); parsed dates
    are naive as written, since the protocol carries no time zone."""

    id: str | None = None
    sub: int | None = None
    dlvrd: int | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    stat: ReceiptStat | None = None
    err: str | None = None
    text: str | None = None


_ID_RE = re.compile(r"[0-9A-Za-z._\-]{1,64}")
_ERR_RE = re.compile(r"[0-9A-Za-z]{1,3}")


def _format_date(value: datetime | None, field: str) -> str:
    if value is None:
        raise ReceiptError(f"receipt field {field!r} is required to build a receipt")
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%y%m%d%H%M")


def _format_count(value: int | None, field: str) -> str:
    if value is None:
        return "000"
    if not 0 <= value <= 999:
        raise ReceiptError(f"receipt field {field!r} must be 0..999")
    return f"{value:03d}"


def build_receipt(receipt: DeliveryReceipt) -> str:
    """The receipt text. ``id``, ``submit_date``, ``done_date`` and ``stat`` are required;
    ``sub``/``dlvrd`` default to 000, ``err`` to 000 (digits are zero-padded to three); the text
    field holds the first 20 characters of ``text`` and is empty when ``text`` is None or ""."""
    if receipt.id is None or not _ID_RE.fullmatch(receipt.id):
        raise ReceiptError("receipt field 'id' must be 1..64 letters, digits, '.', '_' or '-'")
    if receipt.stat is None:
        raise ReceiptError("receipt field 'stat' is required to build a receipt")
    stat = ReceiptStat(receipt.stat)
    err = "000" if receipt.err is None else receipt.err
    if not _ERR_RE.fullmatch(err):
        raise ReceiptError("receipt field 'err' must be 1..3 letters or digits")
    if err.isdigit():
        err = err.zfill(3)
    text = (receipt.text or "")[:TEXT_CHARS_MAX]
    return (
        f"id:{receipt.id}"
        f" sub:{_format_count(receipt.sub, 'sub')}"
        f" dlvrd:{_format_count(receipt.dlvrd, 'dlvrd')}"
        f" submit date:{_format_date(receipt.submit_date, 'submit_date')}"
        f" done date:{_format_date(receipt.done_date, 'done_date')}"
        f" stat:{stat.value}"
        f" err:{err}"
        f" text:{text}"
    )


_KEY_RE = re.compile(
    r"(?<![0-9A-Za-z_])(id|sub|dlvrd|submit[ _]+date|done[ _]+date|stat|err|text)[ \t]*:",
    re.IGNORECASE,
)


def _parse_date(value: str, field: str) -> datetime:
    if not value.isdigit() or len(value) not in (10, 12, 14):
        raise ReceiptError(f"receipt field {field!r} is not a date of 10, 12 or 14 digits")
    if len(value) == 14:
        year, rest = int(value[:4]), value[4:]
    else:
        year, rest = 2000 + int(value[:2]), value[2:]
    month, day, hour, minute = (int(rest[i : i + 2]) for i in range(0, 8, 2))
    second = int(rest[8:10]) if len(rest) == 10 else 0
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise ReceiptError(f"receipt field {field!r} is not a valid date") from None


def _parse_count(value: str, field: str) -> int:
    if not value.isdigit() or len(value) > 10:
        raise ReceiptError(f"receipt field {field!r} is not a number")
    return int(value)


def _parse_stat(value: str) -> ReceiptStat:
    upper = value.upper()
    if upper in ReceiptStat.__members__:
        return ReceiptStat(upper)
    alias = _STAT_ALIASES.get(upper)
    if alias is None:
        raise ReceiptError("receipt field 'stat' has an unrecognised value")
    return alias


def parse_receipt(data: str | bytes) -> DeliveryReceipt:
    """Parse receipt text (bytes are read as Latin-1). Absent fields are None; ``text`` is
    everything after ``text:`` (it may contain spaces and colons) or None if there is no text
    key. Raises :class:`ReceiptError` on text that is not a receipt: no known key other than
    text, anything before the first key, a repeated key, or a field value that does not parse."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    fields: dict[str, str] = {}
    matches = list(_KEY_RE.finditer(text))
    if not matches:
        raise ReceiptError("not a delivery receipt: no known field")
    if text[: matches[0].start()].strip():
        raise ReceiptError("not a delivery receipt: unexpected content before the first field")
    for n, m in enumerate(matches):
        key = re.sub(r"[ _]+", " ", m.group(1).lower())
        if key == "text":
            end = len(text)
        else:
            end = matches[n + 1].start() if n + 1 < len(matches) else len(text)
        if key in fields:
            raise ReceiptError(f"receipt field {key!r} appears twice")
        fields[key] = text[m.end() : end]
        if key == "text":
            break
    values = {k: v.strip() for k, v in fields.items() if k != "text"}
    if not values:
        raise ReceiptError("not a delivery receipt: only a text field")
    for k, v in values.items():
        if not v and k != "err":
            raise ReceiptError(f"receipt field {k!r} is empty")
    rid = values.get("id")
    if rid is not None and not _ID_RE.fullmatch(rid):
        raise ReceiptError("receipt field 'id' is not an id")
    err = values.get("err")
    if err is not None and err and not _ERR_RE.fullmatch(err):
        raise ReceiptError("receipt field 'err' is not 1..3 letters or digits")
    submit = values.get("submit date")
    done = values.get("done date")
    stat = values.get("stat")
    sub = values.get("sub")
    dlvrd = values.get("dlvrd")
    body = fields.get("text")
    return DeliveryReceipt(
        id=rid,
        sub=None if sub is None else _parse_count(sub, "sub"),
        dlvrd=None if dlvrd is None else _parse_count(dlvrd, "dlvrd"),
        submit_date=None if submit is None else _parse_date(submit, "submit_date"),
        done_date=None if done is None else _parse_date(done, "done_date"),
        stat=None if stat is None else _parse_stat(stat),
        err=err or None,
        text=None if body is None else body.strip(),
    )
