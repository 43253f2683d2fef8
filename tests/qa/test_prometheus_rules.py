"""The Prometheus alerting rules shipped in deploy/prometheus (docs/alerts.md): valid for
``promtool check rules``, and ``promtool test rules`` makes each rule fire on its input series
and none on normal traffic; every metric they read is one adressat exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "adressat-alerts.yml"
TESTS = ROOT / "deploy" / "prometheus" / "adressat-alerts.test.yml"


def _promtool() -> str:
    path = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(path).exists(), "promtool missing: scripts/test installs Debian's prometheus"
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], cwd=RULES.parent, capture_output=True,
                          text=True, timeout=120, check=False)


def test_promtool_check_rules() -> None:
    out = _run("check", "rules", RULES.name)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_test_rules() -> None:
    out = _run("test", "rules", TESTS.name)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_firing_case_and_a_quiet_case() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)", RULES.read_text(), re.M))
    text = TESTS.read_text()
    quiet = set(re.findall(r"alertname: (\w+), exp_alerts: \[\]", text))
    firing = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", text))
    assert alerts and alerts == quiet == firing, (alerts, quiet, firing)


def test_the_rules_read_metrics_adressat_exports() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "adressat").rglob("*.py"))
    used = set(re.findall(r"\b(adressat_[a-z_]+?)(?:_total|_bucket|_count)?\b",
                          RULES.read_text()))
    missing = {m for m in used if f'"{m}"' not in source}
    assert not missing, missing
