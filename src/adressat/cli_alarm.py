"""``adressat alarm list|show|ack`` and the alert settings of ``adressat run`` (docs/alerts.md).

Kept apart from ``cli.py`` (which calls in at its marked places). Errors are one line on
stderr and exit 2, and change nothing: an id that is not a whole number, an unknown id, an
empty note, a routing-rules file that is not a list of valid rules.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["add_run_arguments", "run_settings", "add_alarm_parser", "cmd_alarm"]


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not seconds: {text!r}") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def add_run_arguments(r: argparse.ArgumentParser) -> None:
    g = r.add_argument_group("alerts (docs/alerts.md; defaults: app/settings.py)")
    g.add_argument("--alert-webhook-url", metavar="URL",
                   help="POST every alert change (firing, resolved, acknowledged) here, signed")
    g.add_argument("--alert-webhook-secret-file", metavar="FILE",
                   help="the webhook's HMAC secret (default: <home>/webhook.key, made once)")
    g.add_argument("--alert-interval-s", type=_positive, metavar="S",
                   help="how often the alert rules run (1.0)")
    g.add_argument("--alert-hold-s", type=_positive, metavar="S",
                   help="a condition gone this long, with evidence, resolves its alert (60)")
    g.add_argument("--routing-rules", metavar="FILE",
                   help="routing rules, a JSON list of routing/router.py's rules (e.g."
                   ' [{"prefix": "4670100", "route": "netsim-b", "kind": "netsim"}])')


def run_settings(args: argparse.Namespace) -> dict[str, Any] | str:
    """The alert settings given to ``adressat run``, or one line saying what is wrong."""
    out: dict[str, Any] = {}
    url = getattr(args, "alert_webhook_url", None)
    if url:
        if not url.startswith(("http://", "https://")):
            return "--alert-webhook-url must be an http:// or https:// URL"
        out["alert_webhook_url"] = url
    secret = getattr(args, "alert_webhook_secret_file", None)
    if secret:
        try:
            if len(Path(secret).read_bytes().strip()) < 16:
                return f"--alert-webhook-secret-file {secret}: at least 16 octets of secret"
        except OSError as e:
            return f"--alert-webhook-secret-file {secret}: {e.strerror or e}"
        out["alert_webhook_secret_file"] = str(Path(secret).resolve())
    for name in ("alert_interval_s", "alert_hold_s"):
        v = getattr(args, name, None)
        if v is not None:
            out[name] = v
    rules_file = getattr(args, "routing_rules", None)
    if rules_file:
        from adressat.routing.router import RouteRule, RuleError

        try:
            rules = json.loads(Path(rules_file).read_text())
            if not isinstance(rules, list):
                raise RuleError("not a JSON list of rules")
            for i, rule in enumerate(rules):
                RouteRule.from_dict(i, rule)
        except OSError as e:
            return f"--routing-rules {rules_file}: {e.strerror or e}"
        except (ValueError, RuleError) as e:  # JSONDecodeError is a ValueError
            return f"--routing-rules {rules_file}: {e}"
        out["routing_rules"] = tuple(rules)
    return out


def add_alarm_parser(sub: Any) -> None:
    al = sub.add_parser("alarm", help="alerts: list, show, acknowledge (docs/alerts.md)")
    al.add_argument("--home", default=argparse.SUPPRESS, help="data directory")
    asub = al.add_subparsers(dest="alarm_cmd", required=True)
    ls = asub.add_parser("list", help="open alerts (firing or not acknowledged); --all: all")
    ls.add_argument("--all", action="store_true", help="every alert kept, newest first")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    sh = asub.add_parser("show", help="one alert with its evidence")
    sh.add_argument("id")
    sh.add_argument("--json", action="store_true")
    ack = asub.add_parser("ack", help="acknowledge an alert, with a note")
    ack.add_argument("id")
    ack.add_argument("--note", default=None, help="what was done or decided (required)")
    ack.add_argument("--by", default=None, help="who acknowledges (default: the login name)")
    al.set_defaults(fn=cmd_alarm)


def _row(a: Any) -> str:
    node = a.place.get("serving_node")
    ack = f"acked by {a.acked_by}" if a.acked_at is not None else "NOT ACKED"
    where = "(route)" if node is None else node or "(none)"
    return (f"{a.id}\t{a.severity.upper()}\t{a.state}\t{ack}\t{a.rule}"
            f"\troute={a.place.get('route')}\tnode={where}\tsince {_when(a.started_at)}"
            f"\t{a.summary}")


def _parse_id(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 18 else None


def cmd_alarm(args: argparse.Namespace) -> int:
    from adressat.cli import _store
    from adressat.core.alert import alert_json

    if args.alarm_cmd in ("show", "ack"):
        alert_id = _parse_id(args.id)
        if alert_id is None:
            print(f"not an alert id (a whole number): {args.id!r}", file=sys.stderr)
            return 2
        if args.alarm_cmd == "ack":
            note = (args.note or "").strip()
            if not note:
                print("alarm ack needs --note TEXT: what was done or decided", file=sys.stderr)
                return 2
            by = (args.by or "").strip() or _login()
    if args.alarm_cmd == "list" and not 1 <= args.limit <= 100_000:
        print("--limit must be 1..100000", file=sys.stderr)
        return 2
    store = _store(args)
    try:
        if args.alarm_cmd == "list":
            records = (store.alerts(limit=args.limit) if args.all
                       else store.alerts(limit=args.limit, open_only=True))
            if args.json:
                print(json.dumps([alert_json(a) for a in records], sort_keys=True))
            elif not records:
                print("no alerts" if args.all else "no open alerts")
            else:
                for a in records:
                    print(_row(a))
            return 0
        found = store.alert(alert_id)
        if found is None:
            print(f"no alert {alert_id}", file=sys.stderr)
            return 2
        if args.alarm_cmd == "show":
            if args.json:
                print(json.dumps(alert_json(found), sort_keys=True))
                return 0
            print(_row(found))
            for k, v in sorted(alert_json(found).items()):
                if k != "summary":
                    shown = json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
                    print(f"  {k}: {shown}")
            return 0
        if found.acked_at is not None:
            print(f"alert {alert_id} was already acknowledged by {found.acked_by} at"
                  f" {_when(found.acked_at)}: {found.note}")
            return 1
        done = store.ack_alert(alert_id, by, note, time.time())
        assert done is not None
        print(f"alert {alert_id} acknowledged by {by}"
              f" ({done.rule} on route {done.place.get('route')},"
              f" node {done.place.get('serving_node')}; still {done.state})")
        return 0
    finally:
        store.close()


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
