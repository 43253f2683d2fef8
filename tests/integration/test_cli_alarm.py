"""``adressat alarm list|show|ack`` against a store made in tmp (no node needed): what a person
sees, bad input refused with one line and exit 2, nothing changed by it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adressat.core.alert import AlertRecord
from adressat.store.sqlite import SqliteStore
from adressat.testing.server import adressat

T0 = 1_700_000_000.0


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir(mode=0o700)
    store = SqliteStore(h / "adressat.db")
    try:
        store.open_alert(AlertRecord(
            rule="integrity", severity="critical",
            place={"route": "netsim", "serving_node": "msc-2"}, state="firing",
            started_at=T0, last_evidence_at=T0 + 5,
            summary="3 integrity alarms (identity_mismatch 3) on route netsim, serving node msc-2",
            evidence={"alarms": 3}, alarm_first_id=1, alarm_last_id=3))
        closed = store.open_alert(AlertRecord(
            rule="failure_rate", severity="warning",
            place={"route": "netsim-b", "serving_node": None}, state="resolved",
            started_at=T0, last_evidence_at=T0, resolved_at=T0 + 90, summary="failure rate"))
        store.ack_alert(closed.id, "ops", "register restarted", T0 + 100)
    finally:
        store.close()
    return h


def _one_line_error(out: object) -> str:
    err = out.stderr.strip()  # type: ignore[attr-defined]
    assert out.returncode == 2 and len(err.splitlines()) == 1, (out.returncode, err)  # type: ignore[attr-defined]
    return err


def _alerts(home: Path) -> list[dict[str, object]]:
    out = adressat(home, "alarm", "list", "--all", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_list_and_show(home: Path) -> None:
    out = adressat(home, "alarm", "list")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert len(lines) == 1  # the closed one (resolved and acknowledged) is not open
    assert lines[0].startswith("1\tCRITICAL\tfiring\tNOT ACKED\tintegrity\troute=netsim")
    assert "node=msc-2" in lines[0]
    assert [a["id"] for a in _alerts(home)] == [2, 1]
    out = adressat(home, "alarm", "show", "1", "--json")
    shown = json.loads(out.stdout)
    assert shown["place"] == {"route": "netsim", "serving_node": "msc-2"}
    assert shown["evidence"] == {"alarms": 3} and shown["alarm_ids"] == [1, 3]
    text = adressat(home, "alarm", "show", "2").stdout
    assert "node=(route)" in text and "acked_by: ops" in text


def test_ack_with_a_note_then_once_only(home: Path) -> None:
    out = adressat(home, "alarm", "ack", "1", "--note", "msc-2 out of service", "--by", "noc-anna")
    assert out.returncode == 0, out.stderr
    assert "alert 1 acknowledged by noc-anna" in out.stdout and "still firing" in out.stdout
    a = next(x for x in _alerts(home) if x["id"] == 1)
    assert (a["acknowledged"], a["acked_by"], a["note"]) == (True, "noc-anna",
                                                             "msc-2 out of service")
    again = adressat(home, "alarm", "ack", "1", "--note", "other")
    assert again.returncode == 1 and "already acknowledged by noc-anna" in again.stdout
    assert next(x for x in _alerts(home) if x["id"] == 1)["note"] == "msc-2 out of service"
    assert adressat(home, "alarm", "list").stdout.startswith("1\tCRITICAL\tfiring\tacked by")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("show", "99"), "no alert 99"),
        (("show", "abc"), "not an alert id"),
        (("show", "-1"), "not an alert id"),
        (("ack", "99", "--note", "x"), "no alert 99"),
        (("ack", "1.5", "--note", "x"), "not an alert id"),
        (("ack", "1"), "needs --note"),
        (("ack", "1", "--note", "   "), "needs --note"),
        (("list", "--limit", "0"), "--limit"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
        home: Path, args: tuple[str, ...], says: str) -> None:
    before = _alerts(home)
    err = _one_line_error(adressat(home, "alarm", *args))
    assert says in err
    assert _alerts(home) == before


def test_audit_verdict_follows_the_acks(home: Path) -> None:
    out = adressat(home, "audit", "--json")
    report = json.loads(out.stdout)
    assert out.returncode == 1 and report["ok"] is False
    assert report["figures_ok"] is True and report["alerts_unacknowledged"] == 1
    assert report["alerts_unacknowledged_ids"] == [1]
    assert adressat(home, "alarm", "ack", "1", "--note", "seen").returncode == 0
    out = adressat(home, "audit", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--alert-webhook-url", "ftp://noc"), "--alert-webhook-url"),
        (("--alert-webhook-url", "http://127.0.0.1:9/h", "--alert-webhook-secret-file",
          "/nonexistent/key"), "--alert-webhook-secret-file"),
        (("--routing-rules", "/nonexistent/rules.json"), "--routing-rules"),
        (("--routing-rules", "RULES:not json"), "--routing-rules"),
        (("--routing-rules", 'RULES:{"prefix": "46"}'), "--routing-rules"),
        (("--routing-rules", 'RULES:[{"prefix": "46", "route": "r", "colour": 1}]'),
         "unknown keys"),
    ],
)
def test_run_refuses_bad_alert_settings_in_one_line(
        tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    rules = tmp_path / "rules.json"
    real = []
    for a in args:
        if a.startswith("RULES:"):
            rules.write_text(a[len("RULES:"):])
            a = str(rules)
        real.append(a)
    out = adressat(tmp_path / "h", "run", "--smpp-port", "0", "--http-port", "0", *real,
                   timeout_s=30)
    assert says in _one_line_error(out)
