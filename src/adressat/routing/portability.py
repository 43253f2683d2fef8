"""Number portability table (DESIGN.md, Routing step 2): which operator serves a number now.

File format, one entry per line, '#' starts a comment, blank lines ignored::

    # ranges: inclusive, same number of digits at both ends, E.164 without '+'
    range 46701000000 46703699999 own
    range 46730000000 46739999999 telia
    # single ported numbers override any range
    number 46701234567 tele2

A range may not overlap another range; a number may be listed once. Errors raise
``PortabilityFileError`` with the line number (and never echo the line itself).
Lookup: a dict for single numbers, bisect over sorted range starts for ranges.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PortabilityTable", "PortabilityFileError", "PortedRange"]

_E164 = re.compile(r"\+?([1-9][0-9]{0,14})\Z")
_OPERATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")


class PortabilityFileError(ValueError):
    """A portability file could not be loaded. ``line`` is 1-based (0 when not line-bound)."""

    def __init__(self, line: int, reason: str, source: str = "") -> None:
        where = f"{source}:" if source else ""
        super().__init__(f"{where}line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PortedRange:
    start: int
    end: int
    operator: str
    digits: int


class PortabilityTable:
    """Immutable after construction; build a new table to reload."""

    def __init__(
        self,
        ranges: Iterable[tuple[str, str, str]] = (),
        numbers: Mapping[str, str] | None = None,
    ) -> None:
        self._numbers: dict[str, str] = {}
        parsed: list[PortedRange] = []
        for start, end, operator in ranges:
            parsed.append(_make_range(start, end, operator))
        for number, operator in (numbers or {}).items():
            self._numbers[_number(number)] = _operator(operator)
        self._set_ranges(parsed, lines=None)

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def from_text(cls, text: str, source: str = "") -> PortabilityTable:
        table = cls()
        ranges: list[PortedRange] = []
        lines: list[int] = []
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            kind = fields[0].lower()
            try:
                if kind == "range":
                    if len(fields) != 4:
                        raise ValueError("expected: range <from> <to> <operator>")
                    ranges.append(_make_range(fields[1], fields[2], fields[3]))
                    lines.append(lineno)
                elif kind == "number":
                    if len(fields) != 3:
                        raise ValueError("expected: number <e164> <operator>")
                    number = _number(fields[1])
                    if number in table._numbers:
                        raise ValueError("number listed twice")
                    table._numbers[number] = _operator(fields[2])
                else:
                    raise ValueError("unknown entry kind (expected 'range' or 'number')")
            except ValueError as exc:
                raise PortabilityFileError(lineno, str(exc), source) from None
        try:
            table._set_ranges(ranges, lines)
        except PortabilityFileError as exc:
            raise PortabilityFileError(exc.line, exc.reason, source) from None
        return table

    @classmethod
    def from_file(cls, path: str | Path) -> PortabilityTable:
        path = Path(path)
        return cls.from_text(path.read_text(encoding="utf-8"), source=str(path))

    def _set_ranges(self, ranges: list[PortedRange], lines: list[int] | None) -> None:
        order = sorted(range(len(ranges)), key=lambda i: ranges[i].start)
        previous: int | None = None
        for i in order:
            current = ranges[i]
            if previous is not None and current.start <= ranges[previous].end:
                # report the later of the two lines: the one that made the table ambiguous
                line = max(lines[i], lines[previous]) if lines is not None else 0
                raise PortabilityFileError(line, "range overlaps another range")
            previous = i
        self._ranges = [ranges[i] for i in order]
        self._starts = [r.start for r in self._ranges]

    # -- lookup -------------------------------------------------------------------------

    def operator_for(self, e164: str) -> str | None:
        """The operator serving ``e164`` (digits without '+'), or None if the table is silent."""
        operator = self._numbers.get(e164)
        if operator is not None:
            return operator
        if not e164.isdigit():
            return None
        value = int(e164)
        i = bisect.bisect_right(self._starts, value) - 1
        if i >= 0:
            r = self._ranges[i]
            if value <= r.end and len(e164) == r.digits:
                return r.operator
        return None

    def ported_number(self, e164: str) -> str | None:
        """The operator of ``e164`` when it is listed as a single ported number (not by a
        range, which is the numbering plan's)."""
        return self._numbers.get(e164)

    @property
    def ranges(self) -> tuple[PortedRange, ...]:
        return tuple(self._ranges)

    @property
    def numbers(self) -> Mapping[str, str]:
        return dict(self._numbers)

    def __len__(self) -> int:
        return len(self._ranges) + len(self._numbers)


def _number(text: str) -> str:
    m = _E164.match(text)
    if not m:
        raise ValueError("not an E.164 number")
    return m.group(1)


def _operator(text: str) -> str:
    if not _OPERATOR.match(text):
        raise ValueError("bad operator name")
    return text


def _make_range(start: str, end: str, operator: str) -> PortedRange:
    low, high = _number(start), _number(end)
    if len(low) != len(high):
        raise ValueError("range ends have different lengths")
    if int(low) > int(high):
        raise ValueError("range start after end")
    return PortedRange(int(low), int(high), _operator(operator), len(low))
