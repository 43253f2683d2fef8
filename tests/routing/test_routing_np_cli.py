"""``adressat np load|lookup|show`` as a user meets them: the real command in a subprocess,
against a data directory of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adressat.routing.np_snapshot import snapshot_path
from adressat.testing.server import adressat

CSV = """\
number_or_range,operator
# another operator's range, one of its numbers ported in to us
46730000000-46739999999,telia
46731111111,own
# one of our numbers (netsim: 46701000000 up, 100,000 by default) ported out
46701012345,tele2
4790000000-4799999999,telenor-no
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    out = adressat(h, "account", "add", "demo", "--password", "demo")
    assert out.returncode == 0, out.stderr
    return h


def _ok(home: Path, *args: str) -> str:
    out = adressat(home, *args)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return out.stdout


def _refused(home: Path, *args: str) -> str:
    out = adressat(home, *args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def _has(got: dict[str, object], want: dict[str, object]) -> bool:
    return {k: got.get(k) for k in want} == want


def test_load_lookup_show(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "ported.csv"
    src.write_text(CSV)
    out = _ok(home, "np", "load", str(src))
    assert out.splitlines()[0].startswith("loaded 2 numbers and 2 ranges for 4 operators in ")
    assert out.splitlines()[0].endswith(" s")
    assert snapshot_path(home).is_file()

    def why(number: str) -> dict[str, object]:
        return json.loads(_ok(home, "np", "lookup", number, "--json"))  # type: ignore[no-any-return]

    assert _has(why("+46731111111"), {"operator": "own", "why": "ported number", "own": True})
    assert why("46731111112")["why"] == "ported range"
    assert why("46731111112")["operator"] == "telia"
    assert _has(why("46701012345"), {"operator": "tele2", "why": "ported number"})
    assert _has(why("0701012346"), {"number": "46701012346", "operator": "own",
                                      "why": "own network (netsim)"})
    assert _has(why("+4915112345678"), {"operator": "unknown", "why": "not known"})
    text = _ok(home, "np", "lookup", "+46 70 101 23 45")
    assert text.startswith("+46701012345: tele2 (ported number; ")
    text = _ok(home, "np", "lookup", "46731111111")
    assert text.startswith("+46731111111: own (ported number; goes to netsim)")

    shown = _ok(home, "np", "show")
    assert "2 numbers and 2 ranges for 4 operators" in shown
    assert f"file {src.absolute()}" in shown and "loaded at " in shown
    data = json.loads(_ok(home, "np", "show", "--json"))
    assert data["numbers"] == 2 and data["ranges"] == 2 and data["source"] == str(src.absolute())
    assert data["operators"]["telia"] == {"numbers": 0, "ranges": 1}
    assert data["operators"]["own"] == {"numbers": 1, "ranges": 0}


def test_native_format_and_the_subscribers_range(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "ported.txt"
    src.write_text("range 46730000000 46739999999 telia\nnumber 46701234567 tele2\n")
    out = _ok(home, "np", "load", str(src))
    assert out.startswith("loaded 1 numbers and 1 ranges for 2 operators in ")
    # outside the default 100,000 subscribers, inside 300,000
    assert json.loads(_ok(home, "np", "lookup", "46701200000", "--json"))["why"] == "not known"
    got = json.loads(_ok(home, "np", "lookup", "46701200000", "--subscribers", "300000",
                         "--json"))
    assert got["why"] == "own network (netsim)"
    assert "unknown" not in _ok(home, "np", "lookup", "46701234567")


def test_lookup_and_show_without_a_snapshot(home: Path) -> None:
    out = _ok(home, "np", "lookup", "46701000001")
    assert out.startswith("+46701000001: own (own network (netsim); goes to netsim)")
    assert "no portability snapshot" in out
    assert "no portability snapshot" in _ok(home, "np", "show")
    assert json.loads(_ok(home, "np", "show", "--json"))["snapshot"] is None


def test_a_bad_file_changes_nothing(home: Path, tmp_path: Path) -> None:
    good = tmp_path / "ported.csv"
    good.write_text(CSV)
    _ok(home, "np", "load", str(good))
    before = snapshot_path(home).read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text("number_or_range,operator\n46701000001,tele2\n46709876543,b@d\n")
    line = _refused(home, "np", "load", str(bad))
    assert "line 3" in line and "bad operator name" in line and "unchanged" in line
    assert "46709876543" not in line  # the line is never echoed
    overlap = tmp_path / "overlap.txt"
    overlap.write_text("range 46701000000 46701000099 a\nrange 46701000050 46701000150 b\n")
    assert "line 2" in _refused(home, "np", "load", str(overlap))
    assert "cannot read" in _refused(home, "np", "load", str(tmp_path / "absent.csv"))
    forced = tmp_path / "forced.txt"
    forced.write_text(CSV)
    assert "line 1" in _refused(home, "np", "load", str(forced), "--format", "native")
    assert snapshot_path(home).read_bytes() == before
    assert sorted(p.name for p in snapshot_path(home).parent.iterdir()) == ["ported.bin"]
    assert "2 numbers and 2 ranges" in _ok(home, "np", "show")


def test_bad_input_is_refused(home: Path) -> None:
    assert "not a number" in _refused(home, "np", "lookup", "abc")
    assert "subscribers" in _refused(home, "np", "lookup", "46701000001", "--subscribers", "0")
    _refused(home, "np", "lookup", "46701000001", "--subscribers", "many")
    _refused(home, "np", "load")
    _refused(home, "np", "nothing")
    _refused(home, "np", "load", "x.csv", "--format", "xml")
    assert not snapshot_path(home).exists()


def test_a_corrupt_snapshot_is_refused_loudly(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "ported.csv"
    src.write_text(CSV)
    _ok(home, "np", "load", str(src))
    path = snapshot_path(home)
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    assert "truncated" in _refused(home, "np", "show")
    assert "truncated" in _refused(home, "np", "lookup", "46701000001")
    path.write_bytes(data[:50] + bytes([data[50] ^ 1]) + data[51:])
    assert "checksum" in _refused(home, "np", "show")
    _ok(home, "np", "load", str(src))  # a new load mends it
    assert "2 numbers" in _ok(home, "np", "show")


def test_no_store_no_snapshot(tmp_path: Path) -> None:
    src = tmp_path / "ported.csv"
    src.write_text(CSV)
    empty = tmp_path / "empty"
    assert "no adressat store" in _refused(empty, "np", "load", str(src))
    assert not snapshot_path(empty).exists()
