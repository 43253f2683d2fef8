"""``python bench/X.py`` puts bench/ first on sys.path: a script named like a standard module
hides that module from every other script (bench/http.py hid ``http.client``, which the test
kit's ServerProcess uses, and bench/soak.py failed at its first status read)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_no_bench_script_shadows_a_standard_module() -> None:
    stems = {p.stem for p in BENCH.glob("*.py")}
    assert stems, "no bench scripts found"
    assert sorted(stems & set(sys.stdlib_module_names)) == []
