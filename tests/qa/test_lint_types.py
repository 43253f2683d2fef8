"""House style as tests (STYLE.md #14): ruff on everything, mypy --strict on the pure packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)


def test_ruff_clean() -> None:
    out = _run("ruff", "check", "src", "tests", "bench")
    assert out.returncode == 0, out.stdout[-4000:]


def test_mypy_strict_on_pure_packages() -> None:
    out = _run("mypy", "--strict", "src/adressat/smpp", "src/adressat/sms", "src/adressat/core")
    assert out.returncode == 0, out.stdout[-4000:]
