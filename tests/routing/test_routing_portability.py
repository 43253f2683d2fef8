"""Portability table: ranges, single-number override, file errors with line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from adressat.routing.portability import PortabilityFileError, PortabilityTable

TEXT = """\
# the own range, minus what is ported out
range 46701000000 46703699999 own
range 46730000000 46739999999 telia   # comment after an entry

number 46701234567 tele2
number +46731111111 own
range 4790000000 4799999999 telenor-no
"""


def test_ranges_and_single_numbers(tmp_path: Path) -> None:
    path = tmp_path / "np.txt"
    path.write_text(TEXT)
    t = PortabilityTable.from_file(path)
    assert t.operator_for("46701000000") == "own"
    assert t.operator_for("46703699999") == "own"
    assert t.operator_for("46703700000") is None
    assert t.operator_for("46700999999") is None
    assert t.operator_for("46735555555") == "telia"
    assert t.operator_for("46701234567") == "tele2"  # ported out
    assert t.operator_for("46731111111") == "own"  # ported in
    assert t.operator_for("4791234567") == "telenor-no"
    assert t.operator_for("479123456") is None  # other length
    assert t.operator_for("4670100000") is None
    assert t.operator_for("") is None
    assert len(t) == 5


def test_constructor_form() -> None:
    t = PortabilityTable([("46701000000", "46701999999", "own")], {"46701000005": "x"})
    assert t.operator_for("46701000004") == "own"
    assert t.operator_for("46701000005") == "x"


def test_many_ranges_bisect() -> None:
    ranges = [
        (str(46700000000 + i * 1000), str(46700000000 + i * 1000 + 499), f"op{i}")
        for i in range(2000)
    ]
    t = PortabilityTable(ranges)
    for i in range(0, 2000, 37):
        assert t.operator_for(str(46700000000 + i * 1000 + 250)) == f"op{i}"
        assert t.operator_for(str(46700000000 + i * 1000 + 500)) is None


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("range 1 2 a\nbogus 1 2\n", 2, "unknown entry"),
        ("# c\n\nrange 46701000000 a op\n", 3, "not an E.164"),
        ("range 46701000000 4670100000 op\n", 1, "different lengths"),
        ("range 46701000009 46701000000 op\n", 1, "start after end"),
        ("number 46701000000\n", 1, "expected"),
        ("number 46701000000 op\nnumber 46701000000 op2\n", 2, "twice"),
        ("number 46701000000 b@d\n", 1, "operator"),
        ("range 46701000000 46701000099 a\nrange 46701000050 46701000150 b\n", 2, "overlap"),
        ("range 46701000050 46701000150 b\n#\nrange 46701000000 46701000050 a\n", 3, "overlap"),
    ],
)
def test_file_errors_report_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(PortabilityFileError) as info:
        PortabilityTable.from_text(text, source="np.txt")
    assert info.value.line == line
    assert reason in str(info.value)
    assert f"line {line}" in str(info.value)


# --- CSV, format detection, overrides, limits, a naive reference (issue 11, helper D) ---

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from adressat.routing import portability  # noqa: E402
from adressat.routing.router import Router  # noqa: E402

CSV = """\
number_or_range,operator
# the own range is the numbering plan's; only what moved is listed
46730000000-46739999999,telia   # a range of another operator
46701234567,tele2
+46731111111,own
 4790000000 - 4799999999 , telenor-no
"""


def test_csv_same_table_as_native() -> None:
    t = PortabilityTable.from_text(CSV, format="csv")
    assert t.operator_for("46735555555") == "telia"
    assert t.operator_for("46701234567") == "tele2"
    assert t.operator_for("46731111111") == "own"
    assert t.operator_for("4791234567") == "telenor-no"
    assert t.operator_for("46701000000") is None
    assert (t.number_count, t.range_count, len(t.operators)) == (2, 2, 4)
    native = PortabilityTable.from_text(TEXT)
    for n in ("46735555555", "46701234567", "46731111111", "4791234567", "479123456"):
        assert t.operator_for(n) == native.operator_for(n)


def test_csv_without_header_is_detected_from_the_first_entry() -> None:
    t = PortabilityTable.from_text("# no header\n\n46701234567,tele2\n46701000000-46701000099,x\n")
    assert t.operator_for("46701234567") == "tele2"
    assert t.operator_for("46701000050") == "x"
    # the native format is detected the same way
    t = PortabilityTable.from_text("# c\nnumber 46701234567 tele2\n")
    assert t.operator_for("46701234567") == "tele2"


def test_csv_suffix_forces_csv(tmp_path: Path) -> None:
    p = tmp_path / "ported.csv"
    p.write_text("number 46701234567 tele2\n")  # native content in a .csv file
    with pytest.raises(PortabilityFileError) as info:
        PortabilityTable.from_file(p)
    assert info.value.line == 1 and "number_or_range,operator" in str(info.value)
    assert PortabilityTable.from_file(p, format="native").operator_for("46701234567") == "tele2"
    q = tmp_path / "ported.txt"
    q.write_text(CSV)  # any other suffix: detected from the first entry
    assert PortabilityTable.from_file(q).operator_for("46701234567") == "tele2"


def test_header_only_on_the_first_entry_line() -> None:
    with pytest.raises(PortabilityFileError) as info:
        PortabilityTable.from_text("46701234567,tele2\nnumber_or_range,operator\n")
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("46701000000,a,b\n", 1, "expected"),
        ("46701000000\n", 1, "expected"),
        ("4670100000x,a\n", 1, "not an E.164"),
        ("046701000000,a\n", 1, "not an E.164"),
        ("1234567890123456,a\n", 1, "not an E.164"),
        ("46701000000-4670100000,a\n", 1, "different lengths"),
        ("46701000009-46701000000,a\n", 1, "start after end"),
        ("46701000000,\n", 1, "operator"),
        ("46701000000,a\n#\n46701000000,b\n", 3, "twice"),
        ("46701000000,a\n+46701000000,b\n", 2, "twice"),
        ("46701000000-46701000099,a\n46701000099-46701000150,b\n", 2, "overlap"),
        ("number 46701000000 a\n46701000001,b\n", 2, "comma"),
    ],
)
def test_csv_errors_report_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(PortabilityFileError) as info:
        PortabilityTable.from_text(text, source="np.csv")
    assert info.value.line == line
    assert reason in str(info.value)


def test_errors_never_echo_the_line() -> None:
    secret = "46709876543"
    for text in (f"{secret},b@d\n", f"number {secret} b@d\n", f"{secret}99999,x\n",
                 f"bogus {secret}\n", f"{secret},x,y\n"):
        with pytest.raises(PortabilityFileError) as info:
            PortabilityTable.from_text(text, source="np")
        assert secret not in str(info.value)


def test_not_utf8_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "np.csv"
    p.write_bytes(b"46701000000,\xff\xfe\n")
    with pytest.raises(PortabilityFileError, match="not UTF-8"):
        PortabilityTable.from_file(p)
    with pytest.raises(PortabilityFileError, match="cannot read"):
        PortabilityTable.from_file(tmp_path / "absent.csv")


def test_limits_are_refused_at_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portability, "PORTED_NUMBERS_MAX", 2)
    monkeypatch.setattr(portability, "PORTED_RANGES_MAX", 1)
    monkeypatch.setattr(portability, "OPERATORS_MAX", 2)
    with pytest.raises(PortabilityFileError) as info:
        PortabilityTable.from_text("46701000000,a\n46701000001,a\n46701000002,a\n")
    assert info.value.line == 3 and "ported numbers" in str(info.value)
    with pytest.raises(PortabilityFileError) as info:
        PortabilityTable.from_text("46701000000-46701000001,a\n46701000005-46701000006,a\n")
    assert info.value.line == 2 and "ranges" in str(info.value)
    with pytest.raises(PortabilityFileError) as info:
        PortabilityTable.from_text("46701000000,a\n46701000001,b\n46701000002-46701000003,c\n")
    assert info.value.line == 3 and "operators" in str(info.value)


def test_lookup_of_odd_input() -> None:
    t = PortabilityTable.from_text("46701000000,a\n46701000000-46701000099,b\n")
    for odd in ("", "+46701000000", "046701000000", "4670100000\u0661", "\u00b2", " 46701000000",
                "46701000000 ", "4670100005O"):
        assert t.operator_for(odd) is None, odd
    assert t.explain("46701000000") == ("a", "number")
    assert t.explain("46701000001") == ("b", "range")
    assert t.explain("46701000100") is None


def test_ported_numbers_override_the_numbering_plan_both_ways() -> None:
    """A number of another operator's range ported in to us goes to netsim; a number of our
    own range ported out goes to its operator's route."""
    own = (46701000000, 46701999999)
    t = PortabilityTable.from_text(
        "46730000000-46739999999,telia\n"
        "46731111111,own\n"       # ported in: inside telia's range
        "46701234567,tele2\n"     # ported out: inside our own range
    )
    router = Router("own", [own], t, connectors={"telia": "to-telia", "tele2": "to-tele2"})
    assert router.route("46731111111", "acc", 0.0).kind == "netsim"
    assert router.route("46731111112", "acc", 0.0).name == "to-telia"
    assert router.route("46701234567", "acc", 0.0).name == "to-tele2"
    assert router.route("46701234568", "acc", 0.0).kind == "netsim"
    assert router.route("46740000000", "acc", 0.0).name == "unroutable"


def test_arrays_round_trip_and_refuse_a_bad_table() -> None:
    t = PortabilityTable.from_text(CSV, source="x")
    again = PortabilityTable.from_arrays(*t.arrays(), source="x")
    assert again.numbers == t.numbers and again.ranges == t.ranges
    ops, nums, nops, rs, re_, rd, ro = t.arrays()
    bad_order = type(nums)("q", reversed(nums))
    with pytest.raises(ValueError, match="sorted"):
        PortabilityTable.from_arrays(ops, bad_order, nops, rs, re_, rd, ro)
    with pytest.raises(ValueError, match="index"):
        PortabilityTable.from_arrays(ops[:1], nums, nops, rs, re_, rd, ro)
    with pytest.raises(ValueError, match="length"):
        PortabilityTable.from_arrays(ops, nums, nops[:1], rs, re_, rd, ro)
    with pytest.raises(ValueError, match="range"):
        PortabilityTable.from_arrays(ops, nums, nops, re_, rs, rd, ro)  # ends before starts


def _reference(
    numbers: dict[int, str], ranges: list[tuple[int, int, str]], e164: str
) -> str | None:
    if not (e164.isascii() and e164.isdigit()) or e164.startswith("0"):
        return None
    v = int(e164)
    if v in numbers:
        return numbers[v]
    for lo, hi, op in ranges:
        if lo <= v <= hi and len(e164) == len(str(lo)):
            return op
    return None


_OPS = st.sampled_from(["own", "telia", "tele2", "tre"])
_BASE = 46701000000


@settings(max_examples=150, deadline=None)
@given(
    numbers=st.dictionaries(st.integers(0, 3000), _OPS, max_size=60),
    cuts=st.lists(st.integers(0, 3000), max_size=16, unique=True),
    range_ops=st.lists(_OPS, min_size=8, max_size=8),
    probes=st.lists(st.integers(-5, 3005), max_size=40),
    csv=st.booleans(),
)
def test_lookup_matches_a_naive_reference(
    numbers: dict[int, str], cuts: list[int], range_ops: list[str], probes: list[int], csv: bool
) -> None:
    bounds = sorted(cuts)
    ranges = [(_BASE + lo, _BASE + hi, range_ops[i % 8])
              for i, (lo, hi) in enumerate(zip(bounds[::2], bounds[1::2], strict=False))]
    ported = {_BASE + k: op for k, op in numbers.items()}
    if csv:
        lines = [f"{lo}-{hi},{op}" for lo, hi, op in ranges] + [f"{n},{op}" for n, op in
                                                                 ported.items()]
        text = "number_or_range,operator\n" + "\n".join(lines)
    else:
        lines = [f"range {lo} {hi} {op}" for lo, hi, op in ranges] + [
            f"number {n} {op}" for n, op in ported.items()]
        text = "\n".join(lines)
    t = PortabilityTable.from_text(text)
    assert t.number_count == len(ported) and t.range_count == len(ranges)
    for p in probes:
        e164 = str(_BASE + p)
        assert t.operator_for(e164) == _reference(ported, ranges, e164)
    for n in ported:
        assert t.operator_for(str(n)) == ported[n]
    assert t.operator_for("4670100000") == _reference(ported, ranges, "4670100000")
