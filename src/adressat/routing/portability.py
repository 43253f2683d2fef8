"""Number portability table (DESIGN.md, Routing step 2): which operator serves a number now.

Two file formats. The native one, one entry per line, '#' starts a comment, blank lines
ignored::

    # ranges: inclusive, same number of digits at both ends, E.164 without '+'
    range 46701000000 46703699999 own
    range 46730000000 46739999999 telia
    # single ported numbers override any range
    number 46701234567 tele2

and CSV, ``number_or_range,operator`` (a range as ``46701000000-46701999999``; an optional
header line ``number_or_range,operator``; '#' comments and blank lines as above)::

    number_or_range,operator
    46730000000-46739999999,telia
    46701234567,tele2

Which format: ``format="native"`` or ``"csv"`` when given; else a ``.csv`` file suffix means
CSV; else the first entry line decides (a comma in it: CSV; otherwise native).

A range may not overlap another range; a number may be listed once (a number inside a range
is fine: the number wins, both ways: ported in to us or out of our range). Errors raise
``PortabilityFileError`` with the line number and a reason, and never echo the line itself.

Layout (for 1,000,000 ported numbers): the numbers as a sorted ``array('q')`` and their
operators as an ``array('H')`` of indices into a tuple of names, looked up by bisect; ranges
the same way (starts, ends, digit counts, operator indices). Measured on this machine against
a ``dict[str, str]`` of the same million (tracemalloc; timeit and per-call medians over
10,000 random lookups, half hits): arrays 10.0 MB and 1.5-2.0 us a lookup (bench/np.py,
random probes on a loaded machine: median 2.5-3.0 us); the dict 90.8 MB (an int-keyed dict
41.9 MB) and 0.5-0.9 us. Both meet the 5 us target; the arrays take a ninth of the memory
and load from a snapshot by ``frombytes`` in milliseconds (np_snapshot.py), where a dict is
rebuilt item by item, so the arrays are kept.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import lt as _lt
from pathlib import Path
from typing import Literal

__all__ = [
    "PortabilityTable",
    "PortabilityFileError",
    "PortedRange",
    "FileFormat",
    "CSV_HEADER",
    "PORTED_NUMBERS_MAX",
    "PORTED_RANGES_MAX",
    "OPERATORS_MAX",
    "NP_FILE_OCTETS_MAX",
]

FileFormat = Literal["native", "csv"]

#: limits of one table (a file over one is refused at the line that crosses it)
PORTED_NUMBERS_MAX = 20_000_000
PORTED_RANGES_MAX = 1_000_000
OPERATORS_MAX = 65_535  # operator indices are array('H')
NP_FILE_OCTETS_MAX = 1 << 30  # a portability file larger than this is refused unread

CSV_HEADER = "number_or_range,operator"
_E164_DIGITS_MAX = 15
_OPERATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")


class PortabilityFileError(ValueError):
    """A portability file could not be loaded. ``line`` is 1-based (0 when not line-bound)."""

    def __init__(self, line: int, reason: str, source: str = "") -> None:
        where = f"{source}: " if source else ""
        at = f"line {line}: " if line else ""
        super().__init__(f"{where}{at}{reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PortedRange:
    start: int
    end: int
    operator: str
    digits: int


class PortabilityTable:
    """Immutable after construction; build a new table to reload.

    ``PortabilityTable(ranges, numbers)`` takes (start, end, operator) triples and a mapping
    number -> operator (E.164, '+' allowed); ``from_text`` / ``from_file`` read the formats
    above; ``from_arrays`` is for np_snapshot.py.
    """

    __slots__ = ("_operators", "_nums", "_nops", "_rstarts", "_rends", "_rdigits", "_rops",
                 "source")
    _operators: tuple[str, ...]
    _nums: array[int]  # sorted ported numbers ...
    _nops: array[int]  # ... and their operators (indices into _operators)
    _rstarts: array[int]  # ranges, sorted, not overlapping
    _rends: array[int]
    _rdigits: array[int]
    _rops: array[int]
    source: str  # the file it came from ("" when built in code)

    def __init__(
        self,
        ranges: Iterable[tuple[str, str, str]] = (),
        numbers: Mapping[str, str] | None = None,
    ) -> None:
        b = _Builder()
        for start, end, operator in ranges:
            b.add_range(*_make_range(start, end, operator), 0)
        for number, operator in (numbers or {}).items():
            b.add_number(_number(number), operator, 0)
        b.build_into(self)
        self.source = ""

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def from_text(
        cls, text: str, source: str = "", format: FileFormat | None = None
    ) -> PortabilityTable:
        """Parse ``text`` (``format``: see the module docstring; None: by the first entry)."""
        table = cls.__new__(cls)
        b = _Builder()
        try:
            _parse(text, b, format)
            b.build_into(table)
        except PortabilityFileError as exc:
            raise PortabilityFileError(exc.line, exc.reason, source) from None
        table.source = source
        return table

    @classmethod
    def from_file(cls, path: str | Path, format: FileFormat | None = None) -> PortabilityTable:
        """Read a portability file; a ``.csv`` suffix means CSV unless ``format`` says."""
        path = Path(path)
        if format is None and path.suffix.lower() == ".csv":
            format = "csv"
        try:
            size = path.stat().st_size
        except OSError as e:
            raise PortabilityFileError(0, f"cannot read: {e.strerror or e}", str(path)) from None
        if size > NP_FILE_OCTETS_MAX:
            raise PortabilityFileError(0, f"larger than {NP_FILE_OCTETS_MAX} octets", str(path))
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise PortabilityFileError(0, "not UTF-8 text", str(path)) from None
        except OSError as e:
            raise PortabilityFileError(0, f"cannot read: {e.strerror or e}", str(path)) from None
        return cls.from_text(text, source=str(path), format=format)

    @classmethod
    def from_arrays(
        cls,
        operators: tuple[str, ...],
        numbers: array[int],
        number_operators: array[int],
        range_starts: array[int],
        range_ends: array[int],
        range_digits: array[int],
        range_operators: array[int],
        source: str = "",
    ) -> PortabilityTable:
        """A table from its arrays as ``arrays()`` gives them (np_snapshot.py). Checks what
        a wrong file would break (lengths, order, indices); raises ValueError."""
        if len(numbers) != len(number_operators):
            raise ValueError("numbers and their operators differ in length")
        n = len(range_starts)
        if not (len(range_ends) == len(range_digits) == len(range_operators) == n):
            raise ValueError("range arrays differ in length")
        if len(operators) > OPERATORS_MAX:
            raise ValueError("too many operators")
        for name in operators:
            if not _OPERATOR.match(name):
                raise ValueError("bad operator name")
        if len(set(operators)) != len(operators):
            raise ValueError("an operator listed twice")
        for ops in (number_operators, range_operators):
            if len(ops) and max(ops) >= len(operators):
                raise ValueError("operator index out of range")
        if len(numbers) and (numbers[0] < 1 or numbers[-1] >= 10**_E164_DIGITS_MAX):
            raise ValueError("number out of range")
        if not _strictly_increasing(numbers):
            raise ValueError("numbers not sorted")
        for i in range(n):
            lo, hi, digits = range_starts[i], range_ends[i], range_digits[i]
            if not (1 <= digits <= _E164_DIGITS_MAX and 10 ** (digits - 1) <= lo <= hi
                    < 10**digits):
                raise ValueError("bad range")
            if i and lo <= range_ends[i - 1]:
                raise ValueError("ranges not sorted or overlapping")
        table = cls.__new__(cls)
        table._operators = tuple(operators)
        table._nums, table._nops = numbers, number_operators
        table._rstarts, table._rends = range_starts, range_ends
        table._rdigits, table._rops = range_digits, range_operators
        table.source = source
        return table

    def arrays(self) -> tuple[tuple[str, ...], array[int], array[int], array[int], array[int],
                              array[int], array[int]]:
        """(operators, numbers, number operators, range starts, ends, digits, operators)."""
        return (self._operators, self._nums, self._nops, self._rstarts, self._rends,
                self._rdigits, self._rops)

    # -- lookup -------------------------------------------------------------------------

    def operator_for(self, e164: str) -> str | None:
        """The operator serving ``e164`` (digits without '+'), or None if the table is silent.
        A ported number overrides any range."""
        if not (e164.isascii() and e164.isdigit()) or e164[0] == "0":
            return None
        value = int(e164)
        nums = self._nums
        i = bisect.bisect_left(nums, value)
        if i < len(nums) and nums[i] == value:
            return self._operators[self._nops[i]]
        j = bisect.bisect_right(self._rstarts, value) - 1
        if j >= 0 and value <= self._rends[j] and len(e164) == self._rdigits[j]:
            return self._operators[self._rops[j]]
        return None

    def ported_number(self, e164: str) -> str | None:
        """The operator of ``e164`` when it is listed as a single ported number (not by a
        range, which the router takes for the numbering plan)."""
        if not (e164.isascii() and e164.isdigit()) or e164[0] == "0":
            return None
        value = int(e164)
        nums = self._nums
        i = bisect.bisect_left(nums, value)
        if i < len(nums) and nums[i] == value:
            return self._operators[self._nops[i]]
        return None

    def explain(self, e164: str) -> tuple[str, Literal["number", "range"]] | None:
        """(operator, "number" | "range"): what ``operator_for`` answers and from which kind
        of entry; None if the table is silent."""
        operator = self.operator_for(e164)
        if operator is None:
            return None
        value = int(e164)
        i = bisect.bisect_left(self._nums, value)
        is_number = i < len(self._nums) and self._nums[i] == value
        return operator, "number" if is_number else "range"

    @property
    def ranges(self) -> tuple[PortedRange, ...]:
        ops = self._operators
        return tuple(
            PortedRange(lo, hi, ops[op], digits)
            for lo, hi, digits, op in zip(self._rstarts, self._rends, self._rdigits, self._rops,
                                          strict=True)
        )

    @property
    def numbers(self) -> Mapping[str, str]:
        """Every ported number (a copy; for tests and small tables)."""
        ops = self._operators
        return {str(n): ops[o] for n, o in zip(self._nums, self._nops, strict=True)}

    @property
    def operators(self) -> tuple[str, ...]:
        return self._operators

    @property
    def number_count(self) -> int:
        return len(self._nums)

    @property
    def range_count(self) -> int:
        return len(self._rstarts)

    def operator_counts(self) -> dict[str, tuple[int, int]]:
        """operator -> (ported numbers, ranges), in the operators' order."""
        numbers = [0] * len(self._operators)
        for o in self._nops:
            numbers[o] += 1
        ranges = [0] * len(self._operators)
        for o in self._rops:
            ranges[o] += 1
        return {name: (numbers[i], ranges[i]) for i, name in enumerate(self._operators)}

    def __len__(self) -> int:
        return len(self._rstarts) + len(self._nums)


def _strictly_increasing(a: array[int]) -> bool:
    return all(map(_lt, a, a[1:]))  # in C: milliseconds a million


class _Builder:
    """Collects entries (with their line numbers for errors), then builds the arrays."""

    __slots__ = ("operators", "numbers", "ranges")

    def __init__(self) -> None:
        self.operators: dict[str, int] = {}
        self.numbers: dict[int, int] = {}  # number -> operator index
        self.ranges: list[tuple[int, int, int, int, int]] = []  # start, end, digits, op, line

    def operator(self, name: str, line: int) -> int:
        index = self.operators.get(name)
        if index is None:
            if not _OPERATOR.match(name):
                raise PortabilityFileError(line, "bad operator name")
            if len(self.operators) >= OPERATORS_MAX:
                raise PortabilityFileError(line, f"more than {OPERATORS_MAX} operators")
            index = self.operators[name] = len(self.operators)
        return index

    def add_number(self, number: int, operator: str, line: int) -> None:
        if number in self.numbers:
            raise PortabilityFileError(line, "number listed twice")
        if len(self.numbers) >= PORTED_NUMBERS_MAX:
            raise PortabilityFileError(line, f"more than {PORTED_NUMBERS_MAX} ported numbers")
        self.numbers[number] = self.operator(operator, line)

    def add_range(self, start: int, end: int, digits: int, operator: str, line: int) -> None:
        if len(self.ranges) >= PORTED_RANGES_MAX:
            raise PortabilityFileError(line, f"more than {PORTED_RANGES_MAX} ranges")
        self.ranges.append((start, end, digits, self.operator(operator, line), line))

    def build_into(self, table: PortabilityTable) -> None:
        ranges = sorted(self.ranges)
        for previous, current in zip(ranges, ranges[1:], strict=False):
            if current[0] <= previous[1]:
                # the later of the two lines: the one that made the table ambiguous
                raise PortabilityFileError(max(previous[4], current[4]),
                                           "range overlaps another range")
        numbers = self.numbers
        keys = sorted(numbers)
        table._operators = tuple(self.operators)
        table._nums = array("q", keys)
        table._nops = array("H", map(numbers.__getitem__, keys))
        table._rstarts = array("q", [r[0] for r in ranges])
        table._rends = array("q", [r[1] for r in ranges])
        table._rdigits = array("B", [r[2] for r in ranges])
        table._rops = array("H", [r[3] for r in ranges])


def _parse(text: str, b: _Builder, format: FileFormat | None) -> None:
    csv = format == "csv"
    decided = format is not None
    header_allowed = True
    add_number, add_range = b.add_number, b.add_range
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if "#" in raw:
            raw = raw.split("#", 1)[0]
        line = raw.strip()
        if not line:
            continue
        if not decided:
            csv, decided = "," in line, True
        try:
            if csv:
                if header_allowed:
                    header_allowed = False
                    if line.replace(" ", "").lower() == CSV_HEADER:
                        continue
                fields = line.split(",")
                if len(fields) != 2:
                    raise ValueError("expected: number_or_range,operator")
                what, operator = fields[0].strip(), fields[1].strip()
                if "-" in what:
                    low, _, high = what.partition("-")
                    add_range(*_make_range(low.strip(), high.strip(), operator), lineno)
                else:
                    add_number(_number(what), operator, lineno)
            else:
                fields = line.split()
                kind = fields[0].lower()
                if kind == "number":
                    if len(fields) != 3:
                        raise ValueError("expected: number <e164> <operator>")
                    add_number(_number(fields[1]), fields[2], lineno)
                elif kind == "range":
                    if len(fields) != 4:
                        raise ValueError("expected: range <from> <to> <operator>")
                    add_range(*_make_range(fields[1], fields[2], fields[3]), lineno)
                elif "," in line:
                    raise ValueError("a comma in a native-format entry (is the file CSV?)")
                else:
                    raise ValueError("unknown entry kind (expected 'range' or 'number')")
        except ValueError as exc:  # PortabilityFileError is one, and has its line already
            if isinstance(exc, PortabilityFileError):
                raise
            raise PortabilityFileError(lineno, str(exc)) from None


def _number(text: str) -> int:
    digits = text[1:] if text[:1] == "+" else text
    if not (0 < len(digits) <= _E164_DIGITS_MAX and digits.isdigit() and digits.isascii()
            and digits[0] != "0"):
        raise ValueError("not an E.164 number")
    return int(digits)


def _make_range(start: str, end: str, operator: str) -> tuple[int, int, int, str]:
    low, high = _number(start), _number(end)
    digits = len(str(low))
    if digits != len(str(high)):
        raise ValueError("range ends have different lengths")
    if low > high:
        raise ValueError("range start after end")
    return low, high, digits, operator
