"""The ``adressat`` command: run the node, manage ESME accounts, audit the invariants,
switch faults, hold/release routes, report incidents."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from adressat import __version__
from adressat.app.settings import Settings, default_home


def _settings(args: argparse.Namespace, **more: object) -> Settings:
    return Settings(home=Path(args.home), **more)  # type: ignore[arg-type]


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from adressat.app.home import prepare_home
    from adressat.store.sqlite import SqliteStore

    s = _settings(args)
    prepare_home(s.home)
    return SqliteStore(s.store_path)


def cmd_run(args: argparse.Namespace) -> int:
    from adressat.app.node import run

    if args.breaker_alarms_threshold < 0:
        print("--breaker-alarms-threshold must be >= 0", file=sys.stderr)
        return 2
    if not 1 <= args.subscribers <= 2_700_000:
        print("--subscribers must be 1..2700000", file=sys.stderr)
        return 2
    from adressat.cli_alarm import run_settings as alert_run_settings

    alerting = alert_run_settings(args)
    if isinstance(alerting, str):
        print(alerting, file=sys.stderr)
        return 2
    settings = _settings(
            args,
            smpp_port=args.smpp_port,
            smpp_host=args.smpp_host,
            subscribers=args.subscribers,
            netsim_seed=args.seed,
            netsim_realistic=not args.quiet_network,
            integrity_guards=args.integrity_guards == "on",
            delivery_process=args.delivery_process == "on",
            breaker_alarms_threshold=args.breaker_alarms_threshold,
            queue_messages_max=args.queue_max,
            **{k: v for k in PACING_SETTINGS if (v := getattr(args, k, None)) is not None},
            **({} if args.ingress_pace_own_network is None
               else {"ingress_pace_own_network": args.ingress_pace_own_network == "on"}),
            http_host=args.http_host,
            http_port=args.http_port,
            operator_allow_ip=args.operator_allow_ip,
            log_format=args.log_format,
            log_level=args.log_level,
            content_retention_s=args.content_retention,
            record_retention_s=args.record_retention,
            wal_checkpoint_bytes=args.wal_checkpoint_bytes,
            **({"retry_delays_s": args.retry_delays_s} if args.retry_delays_s else {}),
            **_edge_limits(args),
            # issue 10 settings: canary (A)
            **{k: v for k in CANARY_SETTINGS if (v := getattr(args, k, None)) is not None},

            # issue 10 settings: alerts (B)
            **alerting,

            # issue 10 settings: care and views (C)

            **{k: v for k in HEALTH_SETTINGS if (v := getattr(args, k, None)) is not None},
            # issue 11: interconnect
            **{k: v for k in INTERCONNECT_SETTINGS if (v := getattr(args, k, None)) is not None},
            **{k: v for k in HTTP_SETTINGS if (v := getattr(args, k, None)) is not None},
            # issue 13: TLS
            **_tls_settings(args),
            # issue 13: credentials and guessing
            **{k: v for k in CREDENTIAL_SETTINGS if (v := getattr(args, k, None)) is not None},
    )
    problem = settings.problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    from adressat.transport.tls import TlsError

    try:
        run(settings)
    except TlsError as e:  # names the files and why; never their contents
        print(f"TLS: {e}", file=sys.stderr)
        return 2
    return 0


TLS_SETTINGS = ("smpp_tls_port", "http_tls_port", "tls_reload_interval_s",
                "tls_handshake_timeout_s")


def _tls_settings(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {k: v for k in TLS_SETTINGS
                              if (v := getattr(args, k, None)) is not None}
    if args.tls_cert is not None:
        out["tls_cert_file"] = str(Path(args.tls_cert).resolve())
    if args.tls_key is not None:
        out["tls_key_file"] = str(Path(args.tls_key).resolve())
    out["smpp_plain"] = args.smpp_plain == "on"
    out["http_plain"] = args.http_plain == "on"
    return out


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError("a port is 0..65535 (0: any free one)")
    return n


def _delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of seconds: {text!r}") from None
    if not delays or any(d <= 0 for d in delays):
        raise argparse.ArgumentTypeError("retry delays must be > 0")
    return delays


EDGE_LIMITS = ("sessions_max", "account_sessions_max", "account_binds_per_minute_max",
               "pdu_read_timeout_s", "bind_timeout_s", "idle_timeout_s", "bad_pdus_max")


CANARY_SETTINGS = ("canary_interval_s", "canary_deadline_s", "canary_window_s",
                   "canaries_per_node")
INTERCONNECT_SETTINGS = ("connector_response_timeout_s", "connector_reconnect_s_min",
                         "connector_reconnect_s_max", "connector_down_s_max", "forwarded_grace_s",
                         "partner_receipt_hold_s", "hops_max")
HTTP_SETTINGS = ("http_body_octets_max", "idempotency_keep_s", "callback_timeout_s",
                 "callback_retry_delay_s_max", "callback_keep_s")
CREDENTIAL_SETTINGS = ("bind_failure_statuses", "credential_failures_max",
                       "credential_address_failures_max", "credential_principal_failures_max",
                       "credential_failure_window_s", "credential_lockout_s_min",
                       "credential_lockout_s_max", "credential_rows_max",
                       "credential_refusal_delay_s",
                       "password_checks_max", "password_checks_waiting_max")
PACING_SETTINGS = ("ingress_pace_lag_s", "ingress_hold_s_max")
HEALTH_SETTINGS = ("delivery_heartbeat_timeout_s", "due_wait_s_max", "stall_check_interval_s",
                   "store_probe_interval_s", "store_lock_wait_s")


def _positive_seconds(text: str) -> float:
    s = _seconds(text)
    if s <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return s


def _edge_limits(args: argparse.Namespace) -> dict[str, object]:
    """The limits at the SMPP edge given on the command line (the rest: Settings' defaults)."""
    return {k: v for k in EDGE_LIMITS if (v := getattr(args, k, None)) is not None}


def _default(name: str) -> object:
    return Settings.__dataclass_fields__[name].default


def _count(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if n < least:
            raise argparse.ArgumentTypeError(f"must be >= {least}")
        return n

    return parse


def _networks(text: str) -> tuple[str, ...]:
    from adressat.api.access import parse_networks

    cidrs = tuple(c.strip() for c in text.split(",") if c.strip())
    try:
        parse_networks(cidrs)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return cidrs


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not seconds: {text!r}") from None
    if not 0 <= s < float("inf"):
        raise argparse.ArgumentTypeError("must be >= 0 and finite")
    return s


_DURATION_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(text: str) -> float:
    """Seconds, or a number with s, m, h or d: ``90``, ``3s``, ``7d``."""
    t = text.strip().lower()
    unit = _DURATION_UNITS_S.get(t[-1:])
    try:
        value = float(t[:-1] if unit is not None else t) * (unit or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration (e.g. 90, 3s, 12h, 7d): {text!r}"
        ) from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("a duration must be >= 0")
    return value


def _wal_bytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {text!r}") from None
    if value < 65536:
        raise argparse.ArgumentTypeError("--wal-checkpoint-bytes must be >= 65536")
    return value


def node_get(home: Path, path: str, timeout_s: float = 5.0) -> tuple[int, object] | None:
    """GET ``path`` from the running node of ``home`` (its address in ``node.json``): (HTTP
    status, JSON body), or None when no node runs there."""
    import urllib.error
    import urllib.request

    from adressat.transport.tls import TlsError, pinned_client_context

    context = None
    try:
        info = json.loads((home / "node.json").read_text())
        host = info.get("http_host", "127.0.0.1")
        if int(info["http_port"]):
            url = f"http://{host}:{int(info['http_port'])}{path}"
        else:  # plaintext HTTP is off: HTTPS, trusting exactly the node's own certificate
            url = f"https://{host}:{int(info['http_tls_port'])}{path}"
            context = pinned_client_context(Path(info["tls_cert_file"]))
    except (OSError, ValueError, KeyError, TypeError, TlsError):
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout_s,  # noqa: S310 - our node
                                    context=context) as r:
            return int(r.status), json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            return int(e.code), json.loads(e.read())
        except ValueError:
            return int(e.code), {}
    except (OSError, ValueError):
        return None


def node_health(home: Path) -> dict[str, object]:
    """The running node's own word on its health (``/health/ready``)."""
    got = node_get(home, "/health/ready")
    if got is None:
        return {"running": False, "healthy": None, "reasons": []}
    code, body = got
    reasons = body.get("reasons", []) if isinstance(body, dict) else []
    return {"running": True, "healthy": code == 200, "reasons": reasons}


def cmd_audit(args: argparse.Namespace) -> int:
    from adressat.observe.alerts import audit_verdict
    from adressat.observe.audit import audit

    store = _store(args)
    try:
        report = audit(store, Path(args.home), time.time(), grace_s=args.grace_s)
        # the verdict: ok once every breach is acknowledged (docs/alerts.md)
        audit_verdict(store, report)
        episodes = store.episodes(open_only=True)
    finally:
        store.close()
    # heal or shout: while an episode lasts the node is unhealthy, and the audit says so
    node = node_health(Path(args.home))
    node["episodes_open"] = [e.as_dict() for e in episodes]
    report["node"] = node
    if node["running"] and not node["healthy"]:
        report["ok"] = False
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for k, v in report.items():
            print(f"{k}: {v}")
    return 0 if report.get("ok") else 1


def parse_time(text: str) -> float:
    """Epoch seconds, or ISO 8601 (a naive time is taken as UTC)."""
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time (ISO 8601 or epoch): {text!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def cmd_fault(args: argparse.Namespace) -> int:
    from adressat.core.integrity import FaultSetting
    from adressat.observe.faults import FAULT_COUNTERS_META, fault_counters, known_faults

    known = known_faults()
    store = _store(args)
    try:
        if args.fault_cmd in ("on", "off"):
            if args.name not in known:
                print(
                    f"unknown fault {args.name!r}; known: {', '.join(sorted(known))}",
                    file=sys.stderr,
                )
                return 2
            if args.fault_cmd == "on":
                if not 0.0 <= args.rate <= 1.0:
                    print("--rate must be within 0..1", file=sys.stderr)
                    return 2
                node = args.node or ""
                if node:
                    from adressat.delivery.faults import INTERNAL_FAULTS
                    from adressat.netsim import NetsimSettings

                    nodes = NetsimSettings().nodes
                    if node not in nodes:
                        print(f"unknown serving node {node!r}; known: {', '.join(nodes)}",
                              file=sys.stderr)
                        return 2
                    if args.name in INTERNAL_FAULTS:
                        print(f"fault {args.name!r} is adressat's own: it has no --node",
                              file=sys.stderr)
                        return 2
                params: dict[str, object] = {}
                for kv in args.param or ():
                    k, _, v = kv.partition("=")
                    try:
                        params[k] = json.loads(v)
                    except ValueError:
                        params[k] = v
                setting = FaultSetting(
                    args.name, True, args.rate, args.route or "", params, time.time(), node
                )
            else:
                setting = FaultSetting(args.name, False, 1.0, "", {}, time.time())
            store.set_fault(setting)
            state = "on" if setting.on else "off"
            where = f" route={setting.route}" if setting.route else ""
            where += f" node={setting.node}" if setting.node else ""
            print(
                f"fault {args.name} {state} rate={setting.rate}{where}"
                " (the running node applies it within a second)"
            )
            return 0
        desired = {f.name: f for f in store.list_faults()}
        fired = fault_counters(store.get_meta(FAULT_COUNTERS_META))
        rows = []
        for name in sorted(known):
            f = desired.get(name)
            c = fired.get(name, {})
            rows.append(
                {
                    "name": name,
                    "on": bool(f and f.on),
                    "rate": f.rate if f and f.on else None,
                    "route": (f.route or None) if f and f.on else None,
                    "node": (f.node or None) if f and f.on else None,
                    "params": f.params if f and f.on else {},
                    "fired": int(c.get("fired", 0)),
                    "opportunities": int(c.get("opportunities", 0)),
                    "description": known[name],
                }
            )
        if args.json:
            print(json.dumps(rows, sort_keys=True))
        else:
            for r in rows:
                state = f"on rate={r['rate']}" if r["on"] else "off"
                if r["route"]:
                    state += f" route={r['route']}"
                if r["node"]:
                    state += f" node={r['node']}"
                print(f"{r['name']}\t{state}\tfired={r['fired']}\t{r['description']}")
        return 0
    finally:
        store.close()


def cmd_incident(args: argparse.Namespace) -> int:
    from adressat.observe.incident import CATEGORIES, incident_report

    if args.to < args.from_:
        print("--to is before --from", file=sys.stderr)
        return 2
    store = _store(args)
    try:
        report = incident_report(store, args.from_, args.to, args.account)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return 0
    print(
        f"incident window {args.from_} .. {args.to}; alarms in window: {report['alarms_in_window']}"
    )
    if report["retained_from"] is not None and args.from_ < report["retained_from"]:
        print(f"records finished before {report['retained_from']} are past retention (deleted)")
    for name, acc in report["accounts"].items():
        counts = " ".join(f"{c}={acc['counts'][c]}" for c in (*CATEGORIES, "other"))
        print(f"account {name}: {counts}")
        for c in CATEGORIES:
            for mid in acc[c]:
                node = acc["serving_nodes"].get(mid)
                print(f"  {c}\t{mid}" + (f"\tserving_node={node}" if node else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """One screen for a person: is the node running and ready, and if not, why; the store,
    the delivery process, the queue and its shape, receipts, sessions, held routes, episodes,
    per route and serving node whether the canaries have all passed and since when, the open
    alerts."""
    from adressat.app.settings import Settings
    from adressat.observe.overview import overview

    home = Path(args.home)
    got = node_get(home, "/status")
    if got is not None and args.json:
        print(json.dumps(got[1], sort_keys=True))
        return 0 if isinstance(got[1], dict) and got[1].get("health", {}).get("ready") else 1
    store = _store(args)
    try:
        episodes = store.episodes(limit=5)
        held = sorted(store.held_routes())
        unfinished = store.count_unfinished_by_state()
        view = (overview(store, time.time(), Settings().canary_window_s) if got is None
                else None)
    finally:
        store.close()
    if got is None:
        assert view is not None
        if args.json:
            print(json.dumps({"running": False, "queue": {k.value: v for k, v in
                                                          unfinished.items()},
                              "routes_held": held, **view}, sort_keys=True))
            return 2
        print(f"adressat at {home}: NOT RUNNING (no node answers for this data directory)")
        print("queue: " + "  ".join(f"{k.value}={v}" for k, v in unfinished.items()))
        _print_overview(view)
        _print_episodes(episodes, held)
        return 2
    st = got[1]
    assert isinstance(st, dict)
    h, node, store_s, d = st["health"], st["node"], st["store"], st["delivery"]
    verdict = "READY" if h["ready"] else "NOT READY"
    tls = "".join(f", {name} port {node[k]}" for k, name in (("smpp_tls_port", "SMPP TLS"),
                                                             ("http_tls_port", "HTTPS"))
                  if node.get(k))
    print(f"adressat at {home}: {verdict}  (pid {node['pid']}, SMPP port {node['smpp_port']},"
          f" HTTP port {node['http_port']}{tls}, up {time.time() - node['started_at']:.0f} s)")
    for reason in h["reasons"]:
        print(f"  ! {reason}")
    mib = 1024 * 1024
    print(f"store: {'writable' if store_s['writable'] else 'NOT WRITABLE'}"
          f"  db {store_s['db_bytes'] / mib:.1f} MiB  WAL {store_s['wal_bytes'] / mib:.1f} MiB"
          f"  disk free {store_s['disk_free_bytes'] / mib:.0f} MiB")
    if d["in_process"]:
        print("delivery: in this process")
    else:
        age = d["heartbeat_age_s"]
        beat = "never" if age is None else f"{age:.1f} s ago"
        print(f"delivery process: pid {d['pid']}  last heartbeat {beat}  restarts {d['restarts']}")
    print("queue: " + "  ".join(f"{k}={v}" for k, v in st["queue"].items())
          + f"  (limit {st['queue_limit']})")
    oldest = h.get("oldest_due_s")
    print(f"oldest due message waiting: {'none' if oldest is None else f'{oldest:.0f} s'}"
          f"   receipts pending: {st['receipts_pending']}")
    sessions = st["sessions_bound"]
    print("sessions bound: " + (", ".join(f"{a}={n}" for a, n in sorted(sessions.items()))
                                or "none"))
    for e in h["episodes_open"]:
        print(f"  OPEN {e['kind']} ({e['process']}): {e['cause']}, since"
              f" {_when(e['started_at'])}, {e['failures']} failures")
    _print_overview(st)
    _print_episodes([e for e in episodes if e.ended_at is not None], st["routes_held"])
    return 0 if h["ready"] else 1


def _print_overview(view: dict) -> None:  # type: ignore[type-arg]
    """Canaries per place, open alerts, the queue's shape (observe/overview.py)."""
    from adressat.observe.overview import OPEN_ALERTS_SHOWN_MAX

    window = view.get("canary_window_s", 0.0)
    canaries = view.get("canaries", [])
    print(f"canaries (last {window:.0f} s):" + (" none probed" if not canaries else ""))
    for c in canaries:
        place = f"route {c['route']}  {c['serving_node'] or '-'}"
        if c["probes"] == 0:
            said = "NO PROBES in the window"
        elif c["all_passed"]:
            since = c["passing_since"]
            said = "ALL PASSED" + ("" if since is None else f" since {_when(since)}")
        elif c["last_result"] == "passed":
            said = f"PASSING again since {_when(c['passing_since'])}, not yet the whole window"
        else:
            said = f"FAILING: last {c['last_result']} at {_when(c['last_at'])}"
        if c["route_held"]:
            said += "; route held: no probes until it is released"
        print(f"  {place:<28}{said}  ({c['passed']}/{c['probes']} passed)")
    alerts = view.get("alerts_open", [])
    print(f"alerts open: {len(alerts) if alerts else 'none'}"
          + (f" (showing the newest {len(alerts)})" if len(alerts) >= OPEN_ALERTS_SHOWN_MAX
             else ""))
    for a in alerts:
        place = "  ".join(f"{k}={v}" for k, v in sorted(a["place"].items()) if v)
        ack = "acknowledged" if a["acknowledged"] else "UNACKNOWLEDGED"
        print(f"  #{a['id']} {a['severity'].upper()} {a['rule']}  {place}  {a['state']}"
              f" since {_when(a['started_at'])}, {ack}")
    shape = view.get("queue_shape")
    if shape and shape["total"]["total"]:
        cols = shape["columns"][1:]
        print("queue shape (age since submission):  " + "  ".join(
            f"{c}={n}" for c, n in zip(cols, shape["total"]["buckets"], strict=True) if n))
        for r in shape["routes"]:
            print(f"  route {r['route']}: {r['total']}")
        for r in shape["serving_nodes"]:
            print(f"  serving node {r['serving_node'] or '(not yet attempted)'}: {r['total']}")


def _when(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _print_episodes(episodes: list, held: list[str]) -> None:  # type: ignore[type-arg]
    print("routes held: " + (", ".join(held) if held else "none"))
    if not episodes:
        print("episodes: none recorded")
    for e in episodes:
        end = "open" if e.ended_at is None else f"{e.ended_at - e.started_at:.1f} s"
        print(f"episode {e.kind.value} ({e.process}): {e.cause}, {_when(e.started_at)}, {end},"
              f" {e.failures} failures")


# --- care and operator views (issue 10, helper C; docs/care.md) ----------------------------------
def _fail(text: str) -> int:
    """A mistake of the caller: one line on stderr, exit 2, nothing changed."""
    print(f"adressat: {text}", file=sys.stderr)
    return 2


def _cli_time(text: str | None, default: float, name: str, now: float) -> float:
    from adressat.observe.care import check_time

    if text is None:
        return default
    try:
        t = parse_time(text)
    except argparse.ArgumentTypeError as e:
        raise ValueError(f"{name}: {e}") from None
    return check_time(t, now, name)


def _cells(row: dict[str, object]) -> str:
    buckets = row["buckets"]
    assert isinstance(buckets, list)
    return f"{row['total']:>7}" + "".join(f"{b:>8}" for b in buckets)


def cmd_queue(args: argparse.Namespace) -> int:
    from adressat.observe.care import QUEUE_COLUMNS, queue_shape

    store = _store(args)
    try:
        shape = queue_shape(store, time.time())
    finally:
        store.close()
    if args.json:
        print(json.dumps(shape, sort_keys=True))
        return 0
    head = f"{'':<28}{'total':>7}" + "".join(f"{c:>8}" for c in QUEUE_COLUMNS)
    print(head)
    print(f"{'TOTAL':<28}" + _cells(shape["total"]))
    for r in shape["routes"]:
        print(f"{'route ' + str(r['route'] or '-'):<28}" + _cells(r))
    for r in shape["serving_nodes"]:
        print(f"{'serving node ' + str(r['serving_node'] or '-'):<28}" + _cells(r))
    return 0


def cmd_message(args: argparse.Namespace) -> int:
    from adressat.observe.care import message_history

    store = _store(args)
    try:
        h = message_history(store, args.id, time.time())
    finally:
        store.close()
    if h is None:
        return _fail(f"no message {args.id[:64]!r}")
    if args.json:
        print(json.dumps(h, sort_keys=True))
        return 0
    print(f"message {h['id']}  account {h['account']}  from {h['sender']}  to +{h['destination']}")
    print(f"state {h['state']}  route {h['route'] or '-'}  submitted {_when(h['submitted_at'])}"
          f"  expires {_when(h['expires_at'])}  ({h['content_octets']} octets, text not shown)")
    ids = h["identities"]
    print("identities: " + "  ".join(f"{k}={v or '-'}" for k, v in ids.items()))
    if h["connector"] or h["forwards"]:
        status = h["partner_status"]
        print(f"interconnect: connector {h['connector'] or '-'}  operator {h['operator'] or '-'}"
              f"  partner id {h['partner_id'] or '-'}"
              + (f"  partner status 0x{int(status):08x}" if status is not None else "")
              + (f"  failed part {h['failed_part']}" if h["failed_part"] else ""))
    for f in h["forwards"]:
        print(f"  part {f['part']}/{f['parts']}: {f['connector']}  partner id"
              f" {f['partner_id'] or '-'}  {f['state']}"
              + (f"  receipt {_when(f['receipt_at'])}" if f["receipt_at"] else ""))
    for e in h["history"]:
        print(f"  {_when(e['at'])}  {e['state'] or '':<12} {e['detail']}")
    for a in h["attempts"]:
        print(f"attempt {a['attempt']}: {_when(a['started_at'])}  imsi {a['imsi'] or '-'}"
              f"  node {a['serving_node'] or '-'}  route {a['route']}  outcome {a['outcome']}"
              f"  error {a['error'] if a['error'] is not None else '-'}")
    r = h["receipt"]
    if r is None:
        print("receipt: none")
    else:
        sent = "not yet" if r["sent_at"] is None else _when(r["sent_at"])
        print(f"receipt: {r['state']}  created {_when(r['created_at'])}  sent {sent}")
    return 0


def cmd_care(args: argparse.Namespace) -> int:
    from adressat.observe import care

    s = _settings(args)
    now = time.time()
    try:
        number = care.parse_number(args.number)
        if args.care_cmd == "lookup":
            until = _cli_time(args.until, now, "--until", now)
            since = _cli_time(args.since, until - 86400.0, "--since", now)
            if until < since:
                raise ValueError("--until is before --since")
        else:
            about = _cli_time(args.about, now, "--about", now)
            sender = care.parse_sender(args.sender)
            window = s.care_complaint_window_s if args.window is None else args.window
            if window > s.care_complaint_window_s_max:
                raise ValueError(f"--window must be <= {s.care_complaint_window_s_max} s")
    except ValueError as e:  # CareError too
        return _fail(str(e))
    store = _store(args)
    try:
        if args.care_cmd == "lookup":
            out = care.lookup(store, number, since, until,
                              limit=s.care_lookup_messages_max, now=now)
        else:
            complaint, out = care.judge_complaint(
                store, number, about, sender, window_s=window, now=now,
                limit=s.care_complaint_candidates_max,
            )
            out["complaint_id"] = store.add_complaint(complaint).id
    finally:
        store.close()
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    if args.care_cmd == "lookup":
        rows = out["messages"]
        print(f"+{number}: {len(rows)} messages from {_when(since)} to {_when(until)}"
              + ("  (limit reached: narrow the window)" if out["truncated"] else ""))
        for m in rows:
            other = {"to": f"from {m['sender']}", "from": f"to {m['destination']}"}.get(
                m["direction"], f"from {m['sender']}, for {m['destination']}")
            print(f"  {_when(m['submitted_at'])}  {m['id']}  {m['direction']:<4} {other:<22}"
                  f" {m['state']:<13} route {m['route'] or '-'}  node {m['serving_node'] or '-'}"
                  f"  account {m['account']}")
        return 0
    print(f"complaint {out['complaint_id']} recorded: {out['verdict'].upper()}"
          f"  ({out['candidates']} messages from {out['sender']} within"
          f" {out['window_s']:.0f} s of {_when(about)})")
    m = out["message"]
    if m is not None:
        print(f"  message {m['id']} of account {m['account']}, intended for {m['intended_for']},"
              f" reached {m['reached'] or '-'}, state {m['state']}")
    print(f"  route {out['route'] or '-'}  serving node {out['serving_node'] or '-'}")
    for acc, ms in out["same_way"]["accounts"].items():
        print(f"  account {acc}: {len(ms)} other messages the same way:"
              f" {' '.join(x['id'] for x in ms)}")
    if out["verdict"] == "unexplained":
        print("  nothing on record reached this number: the node believes every candidate went"
              " to its destination (a signal in itself)")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    """submit_sm on a transceiver bind, then wait (bounded) for its receipt."""
    import asyncio

    from adressat.smpp.errors import SmppError
    from adressat.testing.esme import BindFailed, ConnectionLost, EsmeClient

    port = args.smpp_port
    if port is None:
        try:
            port = int(json.loads((Path(args.home) / "node.json").read_text())["smpp_port"])
        except (OSError, ValueError, KeyError, TypeError):
            return _fail(f"no node runs for {args.home} (no node.json); start `adressat run`")
    import shlex

    from adressat.app.node import cli_prefix

    again = cli_prefix(sys.argv[0], sys.executable) + " --home " + shlex.quote(
        str(Path(args.home).resolve()))
    if len(args.source) > 11 or not args.source.isprintable():
        return _fail("--from: 1..11 printable characters (alphanumeric sender id)")

    async def go() -> int:
        client = EsmeClient(args.smpp_host, port, args.account, args.password, window=1,
                            source_addr=args.source)
        try:
            await client.connect(timeout_s=10.0)
        except BindFailed as e:
            print(f"adressat: bind as {args.account!r} refused ({e}); add the account with"
                  " `adressat account add`", file=sys.stderr)
            return 1
        except (OSError, ConnectionLost) as e:
            print(f"adressat: cannot reach SMPP {args.smpp_host}:{port}: {e}", file=sys.stderr)
            return 1
        try:
            t0 = time.monotonic()
            resp = await client.submit(args.to, args.text.encode())
            if int(resp.command_status) != 0:
                status = int(resp.command_status)
                print(f"adressat: submit_sm refused: command_status 0x{status:08x}",
                      file=sys.stderr)
                return 1
            mid = str(resp.fields["message_id"])
            print(f"submitted {mid} to {args.to}: accepted")
            await client.wait_receipts([mid], timeout_s=args.wait_s)
            receipt = client.receipts.get(mid)
            if receipt is None:
                print(f"no receipt within {args.wait_s:.0f} s; its history:")
                print(f"  {again} message show {mid}")
                return 1
            stat = receipt.stat.value if receipt.stat is not None else "?"
            print(f"receipt {stat} after {time.monotonic() - t0:.2f} s; its history:")
            print(f"  {again} message show {mid}")
            return 0 if stat == "DELIVRD" else 1
        except (ConnectionLost, SmppError) as e:
            print(f"adressat: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        finally:
            await client.close()

    return asyncio.run(go())


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line on stderr and exit 2 (the usage is one
    ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _home_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--home`` before or after the subcommand: every subcommand at every level takes it
    (SUPPRESS: one given before stays unless one is given after)."""
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in action.choices.values():
                if "--home" not in child._option_string_actions:  # noqa: SLF001
                    child.add_argument("--home", default=argparse.SUPPRESS,
                                       help="data directory")
                _home_everywhere(child)


#: the commands that may create the store in an empty data directory; every other one is
#: refused where there is none (a mistyped --home must not create an empty store and answer
#: from it)
CREATES_STORE = frozenset({("run",), ("account", "add"), ("connector", "add")})


def missing_store(args: argparse.Namespace) -> str | None:
    """Why this command cannot run on ``--home``, or None."""
    command = (args.cmd, *(v for k, v in vars(args).items() if k.endswith("_cmd") and v))
    if command[:2] in CREATES_STORE or command[:1] in CREATES_STORE:
        return None
    if not (Path(args.home) / "adressat.db").is_file():
        return (f"no adressat store in {args.home} (no adressat.db): wrong --home?"
                " `adressat run --home DIR` creates one (and `account add`)")
    return None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="adressat", description=__doc__)
    p.add_argument("--version", action="version", version=f"adressat {__version__}")
    p.add_argument(
        "--home",
        default=str(default_home()),
        help="data directory (default ./var, or ADRESSAT_HOME)",
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the SMS centre")
    r.add_argument("--home", default=argparse.SUPPRESS, help="data directory")
    r.add_argument("--smpp-port", type=int, default=2775)
    r.add_argument("--smpp-host", default="127.0.0.1")
    r.add_argument("--http-port", type=int, default=8775,
                   help="health, metrics and status over HTTP (default 8775; 0: any free port)")
    r.add_argument("--http-host", default="127.0.0.1",
                   help="the HTTP listener's address (default loopback)")
    r.add_argument("--operator-allow-ip", type=_networks, metavar="CIDR[,CIDR...]",
                   default=_default("operator_allow_ip"),
                   help="addresses that may reach the operator's paths of the HTTP listener"
                        " (status, metrics, alerts, dashboard, care; default loopback); the"
                        " senders' API, sendsms and health answer anyone")
    r.add_argument(
        "--subscribers",
        type=int,
        default=100_000,
        help="simulated subscribers from +46701000000 (up to 2,700,000)",
    )
    r.add_argument("--seed", type=int, default=1, help="seed of the simulated network")
    r.add_argument(
        "--quiet-network",
        action="store_true",
        help="no absent subscribers and no latency in the simulated network",
    )
    r.add_argument(
        "--retry-delays-s",
        type=_delays,
        default=None,
        metavar="S,S,...",
        help="backoff between delivery attempts, seconds (default 15,30,60,300,900,3600)",
    )
    r.add_argument(
        "--queue-max",
        type=int,
        default=1_000_000,
        metavar="N",
        help="messages not yet final; over it submit_sm gets ESME_RMSGQFUL (default 1000000)",
    )
    r.add_argument(
        "--ingress-pace-lag-s",
        type=_seconds,
        metavar="S",
        help="when due messages for a route through connectors wait in the store longer than"
        " this (the delivery process is behind), new submits for it wait before their commit,"
        " so senders' windows slow down instead of the queue growing; 0: never"
        f" ({_default('ingress_pace_lag_s')})",
    )
    r.add_argument(
        "--ingress-pace-own-network",
        choices=("on", "off"),
        help="pace the own network's route too (default off: its queue is store and forward)",
    )
    r.add_argument(
        "--ingress-hold-s-max",
        type=_seconds,
        metavar="S",
        help="the longest a submit waits so; then it is committed and answered as usual"
        f" ({_default('ingress_hold_s_max')})",
    )
    r.add_argument(
        "--content-retention",
        type=_duration,
        default=7 * 86400.0,
        metavar="DURATION",
        help="message text is purged this long after its final state (seconds, or 30m, 12h,"
        " 7d; default 7d; 0 = at once)",
    )
    r.add_argument(
        "--record-retention",
        type=_duration,
        default=90 * 86400.0,
        metavar="DURATION",
        help="then messages, attempts, receipts and alarms are deleted (default 90d)",
    )
    r.add_argument(
        "--wal-checkpoint-bytes",
        type=_wal_bytes,
        default=16 * 1024 * 1024,
        metavar="N",
        help="past this WAL size, a checkpoint under the write lock restarts the WAL"
        " (default 16 MiB)",
    )
    r.add_argument(
        "--breaker-alarms-threshold",
        type=int,
        default=1,
        metavar="N",
        help="integrity alarms on a route that trip its breaker (default 1: any); 0 never"
        " trips (tests and benchmarks only)",
    )
    r.add_argument(
        "--integrity-guards",
        choices=("on", "off"),
        default="on",
        help="FOR MEASUREMENT ONLY: 'off' skips the binding-tag, routing and acknowledgement"
        " identity checks to measure their cost (logs a critical warning); never in service",
    )
    r.add_argument(
        "--delivery-process",
        choices=("on", "off"),
        default="on",
        help="'on' (default): delivery and the simulated network run in a second process,"
        " on the second core; 'off': everything in one process (debugging)",
    )
    edge = r.add_argument_group("limits at the SMPP edge (defaults: app/settings.py)")
    edge.add_argument("--sessions-max", type=_count(1), metavar="N",
                      help="connections open at once; one more is closed at once"
                      f" ({_default('sessions_max')})")
    edge.add_argument("--account-sessions-max", type=_count(0), metavar="N",
                      help="bound sessions of one account at once; a bind over it gets"
                      f" ESME_RBINDFAIL and a close ({_default('account_sessions_max')};"
                      " 0: no limit)")
    edge.add_argument("--account-binds-per-minute-max", type=_count(0), metavar="N",
                      help="accepted binds of one account in any 60 s; one more gets"
                      " ESME_RBINDFAIL and a close"
                      f" ({_default('account_binds_per_minute_max')}; 0: no limit)")
    edge.add_argument("--pdu-read-timeout-s", type=_seconds, metavar="S",
                      help="from a PDU's first octet to its last, or the session is closed"
                      f" ({_default('pdu_read_timeout_s')}; 0: never)")
    edge.add_argument("--bind-timeout-s", type=_seconds, metavar="S",
                      help="a connection not bound this long after it opened is closed"
                      f" ({_default('bind_timeout_s')}; 0: never)")
    edge.add_argument("--idle-timeout-s", type=_seconds, metavar="S",
                      help="a session that sent no whole PDU this long is closed"
                      f" ({_default('idle_timeout_s')}; 0: never)")
    edge.add_argument("--bad-pdus-max", type=_count(0), metavar="N",
                      help="invalid PDUs a session may send; one more closes it"
                      f" ({_default('bad_pdus_max')})")
    tls = r.add_argument_group("TLS (docs/architecture.md \"TLS\"; defaults: app/settings.py)")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="PEM certificate chain, leaf first: with --tls-key, SMPP over TLS and"
                     " HTTPS listen too; a changed file is served to the next handshake")
    tls.add_argument("--tls-key", metavar="FILE",
                     help="PEM private key of the certificate (unencrypted; keep it 0600)")
    tls.add_argument("--smpp-tls-port", type=_port, metavar="PORT",
                     help=f"SMPP over TLS ({_default('smpp_tls_port')}; 0: any free port)")
    tls.add_argument("--http-tls-port", type=_port, metavar="PORT",
                     help="HTTPS: the same health, metrics, pages and APIs as --http-port"
                     f" ({_default('http_tls_port')}; 0: any free port)")
    tls.add_argument("--smpp-plain", choices=("on", "off"), default="on",
                     help="'off': no plaintext SMPP listener (--smpp-port unused); needs TLS")
    tls.add_argument("--http-plain", choices=("on", "off"), default="on",
                     help="'off': no plaintext HTTP listener at all, health and metrics"
                     " included (they are served over HTTPS); needs TLS")
    tls.add_argument("--tls-reload-interval-s", type=_positive_seconds, metavar="S",
                     help="the certificate and key files are looked at this often"
                     f" ({_default('tls_reload_interval_s')})")
    tls.add_argument("--tls-handshake-timeout-s", type=_positive_seconds, metavar="S",
                     help="an SMPP TLS handshake not finished by then is closed"
                     f" ({_default('tls_handshake_timeout_s')})")

    ic = r.add_argument_group("interconnect (docs/interconnect.md; defaults: app/settings.py)")
    ic.add_argument("--connector-response-timeout-s", type=_positive_seconds, metavar="S",
                    help="a submit_sm to a partner unanswered this long is unanswered (retried"
                    f" through the same connector) ({_default('connector_response_timeout_s')})")
    ic.add_argument("--connector-reconnect-s-min", type=_positive_seconds, metavar="S",
                    help="first reconnect delay, doubling with jitter"
                    f" ({_default('connector_reconnect_s_min')})")
    ic.add_argument("--connector-reconnect-s-max", type=_positive_seconds, metavar="S",
                    help=f"longest reconnect delay ({_default('connector_reconnect_s_max')})")
    ic.add_argument("--connector-down-s-max", type=_positive_seconds, metavar="S",
                    help="a connector not bound this long opens a connector_down episode"
                    f" ({_default('connector_down_s_max')})")
    ic.add_argument("--forwarded-grace-s", type=_seconds, metavar="S",
                    help="a forwarded message without a receipt this long after its validity"
                    f" ends UNKNOWN ({_default('forwarded_grace_s')})")
    ic.add_argument("--partner-receipt-hold-s", type=_positive_seconds, metavar="S",
                    help="a partner's receipt that matches nothing is kept this long for its"
                    f" mapping, then alarmed ({_default('partner_receipt_hold_s')})")
    ic.add_argument("--hops-max", type=int, metavar="N",
                    help=f"SMSC hops a message may have made ({_default('hops_max')})")
    hp = r.add_argument_group("HTTP API and callbacks (docs/http-api.md; defaults:"
                              " app/settings.py)")
    hp.add_argument("--http-body-octets-max", type=_count(1024), metavar="N",
                    help="a larger request body is answered 413"
                    f" ({_default('http_body_octets_max')})")
    hp.add_argument("--idempotency-keep-s", type=_positive_seconds, metavar="S",
                    help="an Idempotency-Key's first answer is kept this long"
                    f" ({_default('idempotency_keep_s')})")
    hp.add_argument("--callback-timeout-s", type=_positive_seconds, metavar="S",
                    help=f"one callback request, at most ({_default('callback_timeout_s')})")
    hp.add_argument("--callback-retry-delay-s-max", type=_positive_seconds, metavar="S",
                    help="the longest wait between two tries of a callback"
                    f" ({_default('callback_retry_delay_s_max')})")
    hp.add_argument("--callback-keep-s", type=_positive_seconds, metavar="S",
                    help="a callback is tried this long after its event, then given up"
                    f" ({_default('callback_keep_s')})")
    cred = r.add_argument_group("credentials and guessing (docs/architecture.md; defaults:"
                                " app/settings.py)")
    cred.add_argument("--bind-failure-statuses", choices=("uniform", "distinct"),
                      help="'uniform' (default): every refused bind gets ESME_RBINDFAIL;"
                      " 'distinct': ESME_RINVSYSID / ESME_RINVPASWD, which tells a guesser"
                      " which system_ids exist")
    cred.add_argument("--credential-failures-max", type=_count(1), metavar="N",
                      help="failed checks of one name from one address in the window, then"
                      f" that pair is locked ({_default('credential_failures_max')})")
    cred.add_argument("--credential-address-failures-max", type=_count(1), metavar="N",
                      help="failed checks from one address (every name), then it is locked"
                      " except for names it has bound before"
                      f" ({_default('credential_address_failures_max')})")
    cred.add_argument("--credential-principal-failures-max", type=_count(1), metavar="N",
                      help="failed checks of one name (every address), then it is locked for"
                      " addresses it has not bound from"
                      f" ({_default('credential_principal_failures_max')})")
    cred.add_argument("--credential-failure-window-s", type=_positive_seconds, metavar="S",
                      help="failures counted over this"
                      f" ({_default('credential_failure_window_s')})")
    cred.add_argument("--credential-lockout-s-min", type=_positive_seconds, metavar="S",
                      help="the first lockout, doubling with each next"
                      f" ({_default('credential_lockout_s_min')})")
    cred.add_argument("--credential-lockout-s-max", type=_positive_seconds, metavar="S",
                      help=f"the longest lockout ({_default('credential_lockout_s_max')})")
    cred.add_argument("--credential-rows-max", type=_count(1), metavar="N",
                      help="lockout counters kept; past it the oldest go"
                      f" ({_default('credential_rows_max')})")
    cred.add_argument("--credential-refusal-delay-s", type=_seconds, metavar="S",
                      help="a bind refused without a check (locked out, too many checks"
                      " waiting) is answered after this"
                      f" ({_default('credential_refusal_delay_s')}; 0: at once)")
    cred.add_argument("--password-checks-max", type=_count(1), metavar="N",
                      help="scrypt checks at once, 16 MiB each"
                      f" ({_default('password_checks_max')})")
    cred.add_argument("--password-checks-waiting-max", type=_count(1), metavar="N",
                      help="checks admitted at once; one more bind gets ESME_RBINDFAIL"
                      f" unchecked ({_default('password_checks_waiting_max')})")
    canary = r.add_argument_group("canary prober (docs/canary.md; defaults: app/settings.py)")
    canary.add_argument("--canary-interval-s", type=_seconds, metavar="S",
                        help="a probe per route and serving node this often"
                        f" ({_default('canary_interval_s')}; 0: no prober)")
    canary.add_argument("--canary-deadline-s", type=_positive_seconds, metavar="S",
                        help="a probe not stored by its canary within it has not passed"
                        f" ({_default('canary_deadline_s')})")
    canary.add_argument("--canary-window-s", type=_positive_seconds, metavar="S",
                        help="'all passed' is judged over this window"
                        f" ({_default('canary_window_s')})")
    canary.add_argument("--canaries-per-node", type=_count(0), metavar="N",
                        help=f"canary SIMs per serving node ({_default('canaries_per_node')})")
    health = r.add_argument_group("heal or shout (defaults: app/settings.py)")
    health.add_argument("--delivery-heartbeat-timeout-s", type=_positive_seconds, metavar="S",
                        help="a delivery process silent this long is killed and started anew"
                        f" ({_default('delivery_heartbeat_timeout_s')})")
    health.add_argument("--due-wait-s-max", type=_positive_seconds, metavar="S",
                        help="a due message unclaimed this long: delivery is stalled, not"
                        f" ready ({_default('due_wait_s_max')})")
    health.add_argument("--stall-check-interval-s", type=_positive_seconds, metavar="S",
                        help=f"how often that is checked ({_default('stall_check_interval_s')})")
    health.add_argument("--store-probe-interval-s", type=_positive_seconds, metavar="S",
                        help="how often a one-row write asks whether the store can write"
                        f" ({_default('store_probe_interval_s')})")
    health.add_argument("--store-lock-wait-s", type=_positive_seconds, metavar="S",
                        help="a write waits this long for the write lock another process"
                        " holds, then is refused as temporary (below the heartbeat timeout;"
                        f" {_default('store_lock_wait_s')})")
    r.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text for a terminal (default) or as JSON, one object a line",
    )
    r.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="default info: sessions, alarms, faults, failures, process starts and stops;"
        " debug adds a line per message event (accepted, deferred, final, receipt sent)",
    )
    r.set_defaults(fn=cmd_run)

    from adressat.cli_accounts import add_account_parser

    add_account_parser(sub)  # account add|set|disable|enable|remove|show|list (issue 13)

    au = sub.add_parser("audit", help="counts per state and the invariant figures")
    au.add_argument("--home", default=argparse.SUPPRESS, help="data directory")
    au.add_argument("--json", action="store_true")
    au.add_argument(
        "--grace-s",
        type=float,
        default=60.0,
        help="how long past its validity a message may still be open",
    )
    au.set_defaults(fn=cmd_audit)

    st = sub.add_parser("status", help="is the node ready; if not, why (one screen)")
    st.add_argument("--home", default=argparse.SUPPRESS, help="data directory")
    st.add_argument("--json", action="store_true", help="the node's /status as JSON")
    st.set_defaults(fn=cmd_status)

    f = sub.add_parser("fault", help="switch seeded faults in the running node")
    f.add_argument("--home", default=argparse.SUPPRESS, help="data directory")
    fsub = f.add_subparsers(dest="fault_cmd", required=True)
    fl = fsub.add_parser("list", help="desired state and what fired")
    fl.add_argument("--json", action="store_true")
    fon = fsub.add_parser("on")
    fon.add_argument("name")
    fon.add_argument("--rate", type=float, default=1.0, help="probability per opportunity")
    fon.add_argument("--route", default=None, help="only on this route")
    fon.add_argument("--node", default=None,
                     help="only at this serving node (netsim's faults), e.g. msc-2")
    fon.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="fault parameter (JSON value), repeatable",
    )
    foff = fsub.add_parser("off")
    foff.add_argument("name")
    f.set_defaults(fn=cmd_fault)

    inc = sub.add_parser("incident", help="which messages an incident affected")
    inc.add_argument("--home", default=argparse.SUPPRESS, help="data directory")
    isub = inc.add_subparsers(dest="incident_cmd", required=True)
    rep = isub.add_parser("report", help="per account: delivered, suspect, quarantined, held")
    rep.add_argument(
        "--from", dest="from_", type=parse_time, required=True, help="ISO 8601 or epoch seconds"
    )
    rep.add_argument("--to", type=parse_time, required=True, help="ISO 8601 or epoch seconds")
    rep.add_argument("--account", default=None)
    rep.add_argument("--json", action="store_true")
    inc.set_defaults(fn=cmd_incident)

    # --- subcommands of issue 10: alerts (helper B) ---
    from adressat.cli_alarm import add_alarm_parser, add_run_arguments

    add_run_arguments(r)
    add_alarm_parser(sub)


    # --- subcommands of issue 11: connector, route, account partner (helper E) ---
    # (insert below this line)
    from adressat.cli_interconnect import add_interconnect_parsers

    add_interconnect_parsers(sub)  # connector, route (moved here), account add --partner

    # --- subcommands of issue 11: np (helper D) ---
    # (insert below this line)
    from adressat.cli_np import add_np_parser

    add_np_parser(sub)

    # --- subcommands of issue 10: care and operator views (helper C) ---
    q = sub.add_parser("queue", help="the queue by route and serving node against age (qshape)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_queue)

    msg = sub.add_parser("message", help="one message's history (never its text)")
    msub = msg.add_subparsers(dest="message_cmd", required=True)
    ms = msub.add_parser("show", help="states, attempts, identities, node, route, receipt")
    ms.add_argument("id")
    ms.add_argument("--json", action="store_true")
    msg.set_defaults(fn=cmd_message)

    care = sub.add_parser("care", help="care console: a subscriber's messages, complaints")
    csub = care.add_subparsers(dest="care_cmd", required=True)
    cl = csub.add_parser("lookup", help="messages to and from a number (never the text)")
    cl.add_argument("number", help="the subscriber's number, e.g. +46701000001")
    cl.add_argument("--since", default=None, metavar="T",
                    help="ISO 8601 or epoch seconds (default: 24 hours ago)")
    cl.add_argument("--until", default=None, metavar="T", help="ISO 8601 or epoch (default: now)")
    cl.add_argument("--json", action="store_true")
    cc = csub.add_parser("complaint",
                         help="'I received a message that was not for me': judged and recorded")
    cc.add_argument("number", help="the complainant's number")
    cc.add_argument("--about", required=True, metavar="T",
                    help="about when it arrived (ISO 8601 or epoch seconds)")
    cc.add_argument("--sender", required=True, metavar="S",
                    help="the sender as shown on the handset (number or sender id)")
    cc.add_argument("--window", type=_duration, default=None, metavar="DURATION",
                    help="candidates submitted this long before or after --about"
                    f" (default {_default('care_complaint_window_s')} s)")
    cc.add_argument("--json", action="store_true")
    care.set_defaults(fn=cmd_care)

    se = sub.add_parser("send", help="one message over SMPP to the running node, with its receipt"
                        " (a first message; the shipped test ESME)")
    se.add_argument("--to", required=True, metavar="NUMBER", help="destination, e.g. 46701000000")
    se.add_argument("--text", default="hello from adressat")
    se.add_argument("--account", default="demo", help="system_id (default demo)")
    se.add_argument("--password", default="demo")
    se.add_argument("--from", dest="source", default="adressat", metavar="SENDER",
                    help="alphanumeric sender id (default adressat)")
    se.add_argument("--smpp-host", default="127.0.0.1")
    se.add_argument("--smpp-port", type=int, default=None,
                    help="default: the running node's, from <home>/node.json")
    se.add_argument("--wait-s", type=_positive_seconds, default=15.0,
                    help="how long to wait for the receipt (default 15)")
    se.set_defaults(fn=cmd_send)

    # --- subcommands of issue 12: account key, account callbacks (helper S) ---
    # (insert below this line)
    from adressat.cli_http import add_http_parsers

    add_http_parsers(sub)

    # --- subcommands of issue 13: key (encryption at rest, helper crypt) ---
    from adressat.cli_keys import add_key_parser

    add_key_parser(sub)

    _home_everywhere(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from adressat.app.home import private_umask

    private_umask()  # the data directory is its owner's only (app/home.py)
    args = build_parser().parse_args(argv)
    why = missing_store(args)
    if why is not None:
        print(f"adressat: {why}", file=sys.stderr)
        return 2
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
