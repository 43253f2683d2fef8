"""bench/np.py runs and prints its one JSON line (a small table: the figures themselves are
the bench's, not a test's, on a shared machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fmt", ["csv", "native"])
def test_bench_np_prints_one_json_line(fmt: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "np.py"), "--numbers", "3000", "--ranges", "20",
         "--sample", "600", "--format", fmt],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert figures["bench"] == "np" and figures["format"] == fmt
    assert (figures["numbers"], figures["ranges"], figures["lookups"]) == (3000, 20, 600)
    assert figures["lookup_hits"] == 400  # ported numbers and range hits; the misses miss
    for key in ("load_s", "parse_build_s", "snapshot_load_s", "lookup_us_median",
                "lookup_us_p99", "table_memory_mb"):
        assert figures[key] >= 0


def test_bench_np_refuses_bounds() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "np.py"), "--sample", "0"],
                         capture_output=True, text=True, timeout=60, check=False,
                         env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1
