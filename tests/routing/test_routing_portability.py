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
