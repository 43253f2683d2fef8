"""``adressat connector``, ``adressat route`` and partner accounts (issue 11; docs/interconnect.md).

Everything here works on the store alone, with or without a running node: the node reads
connectors and routes from the store about once a second and writes what its connectors do to
``connector_status``. A mistake of the caller is one line on stderr, exit 2, nothing changed;
the store checks the same rules again (``core.interconnect``), so nothing invalid is stored
whoever writes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from adressat.core.interconnect import RECEIPT_ID_FORMATS
from adressat.core.interconnect_config import BUILTIN_ROUTES
from adressat.core.model import ConnectorConfig, ConnectorStatus, RouteConfig

#: a connector status older than this is not what the node does now (it writes about once a
#: second while it runs): ``connector list`` says "stale"
CONNECTOR_STATUS_STALE_S = 5.0
#: ``route list`` counts the messages that reached a final state in this last stretch
ROUTE_COUNTS_WINDOW_S = 3600.0
#: and reads at most this many of them (per index of final_at, texts kept and purged)
ROUTE_COUNTS_ROWS_MAX = 200_000
#: a connector's bind password, at most (SMPP 3.4 password field)
PASSWORD_LENGTH_MAX = 8


class Refusal(Exception):
    """A caller's mistake: said as one line, exit 2, nothing changed."""


def _fail(text: str) -> int:
    print(f"adressat: {text}", file=sys.stderr)
    return 2


def _store(args: argparse.Namespace) -> Any:
    from adressat.cli import _store as open_store

    return open_store(args)


def _when(t: float | None) -> str:
    from adressat.cli import _when as when

    return "-" if t is None else when(t)


def _run(args: argparse.Namespace, body: Callable[[Any], int]) -> int:
    """Open the store, run ``body``; a Refusal or a ValueError of the store's checks is the
    caller's mistake."""
    store = _store(args)
    try:
        return body(store)
    except (Refusal, ValueError) as e:
        return _fail(str(e))
    finally:
        store.close()


# --- parsing helpers -----------------------------------------------------------------------------
def _digits(text: str) -> str:
    """A prefix or range as given: a leading '+' is allowed (dropped), the rest is checked by
    the store."""
    text = text.strip()
    return text[1:] if text.startswith("+") else text


def _split(values: Sequence[str] | None) -> list[str]:
    """Repeated options and comma-separated lists alike: ``--prefix 46 --prefix 47,48``."""
    out: list[str] = []
    for v in values or ():
        out.extend(p.strip() for p in v.split(","))
    return out


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r}: on or off")
    return text == "on"


def _password(args: argparse.Namespace, adding: bool = False) -> str | None:
    """The bind password: --password-file, ADRESSAT_PASSWORD or a prompt (cli_accounts; never
    argv). ``connector set`` changes it only with --password-file."""
    from adressat import cli_accounts

    if not adding and args.password_file is None:
        return None
    try:
        return cli_accounts.read_password(args.password_file, required=True,
                                          length_max=PASSWORD_LENGTH_MAX,
                                          what="connector password")
    except cli_accounts.Refusal as e:
        raise Refusal(str(e)) from None


# --- connector -----------------------------------------------------------------------------------
_CONNECTOR_OPTIONS = ("host", "port", "system_id", "bind", "window", "throughput_per_s",
                      "system_type", "enquire_link_s", "payload", "receipt_ids")


def _connector_from(args: argparse.Namespace, base: ConnectorConfig, now: float
                    ) -> ConnectorConfig:
    changes: dict[str, object] = {k: getattr(args, k) for k in _CONNECTOR_OPTIONS
                                  if getattr(args, k, None) is not None}
    password = _password(args)
    if password is not None:
        changes["password"] = password
    return replace(base, **changes, updated_at=now)  # type: ignore[arg-type]


def _status_view(cfg: ConnectorConfig, st: ConnectorStatus | None, now: float
                 ) -> dict[str, object]:
    if st is None:
        state, fresh = "not running", False
    elif now - st.updated_at > CONNECTOR_STATUS_STALE_S:
        state, fresh = f"stale ({st.state})", False
    else:
        state, fresh = st.state, True
    return {
        "name": cfg.name, "host": cfg.host, "port": cfg.port, "bind": cfg.bind,
        "state": state, "fresh": fresh,
        "since": st.since if st else None,
        "sessions": st.sessions if st else 0,
        "window_in_use": st.window_in_use if st else 0, "window": cfg.window,
        "sent": st.sent if st else 0, "failed": st.failed if st else 0,
        "receipts": st.receipts if st else 0, "detail": st.detail if st else "",
        "updated_at": st.updated_at if st else None,
    }


def _connector_public(cfg: ConnectorConfig) -> dict[str, object]:
    d = asdict(cfg)
    d["password"] = "set" if cfg.password else "not set"  # never the password itself
    return d


def cmd_connector(args: argparse.Namespace) -> int:
    now = time.time()
    sub = args.connector_cmd

    def body(store: Any) -> int:
        from adressat.store.base import ConnectorExists, ConnectorInUse

        if sub == "add":
            password = _password(args, adding=True)
            assert password is not None  # required: read_password refuses to go without
            base = ConnectorConfig(args.name, args.host, args.port, args.system_id, password,
                                   created_at=now, updated_at=now)
            cfg = _connector_from(args, base, now)
            try:
                store.add_connector(cfg)
            except ConnectorExists:
                raise Refusal(f"connector {args.name} exists (change it with"
                              " `adressat connector set`)") from None
            print(f"connector {cfg.name} added: {cfg.host}:{cfg.port} bind {cfg.bind}"
                  f" window {cfg.window}")
            return 0
        if sub == "list":
            statuses = {s.name: s for s in store.connector_statuses()}
            rows = [_status_view(c, statuses.get(c.name), now) for c in store.list_connectors()]
            if args.json:
                print(json.dumps(rows, sort_keys=True))
                return 0
            print(f"{'NAME':<16} {'ADDRESS':<22} {'BIND':<4} {'STATE':<18} {'SINCE':<23}"
                  f" {'SESS':>4} {'WINDOW':>9} {'SENT':>8} {'FAILED':>7} {'RECEIPTS':>8}")
            for r in rows:
                address = f"{r['host']}:{r['port']}"
                window = f"{r['window_in_use']}/{r['window']}"
                since = _when(r["since"])  # type: ignore[arg-type]
                detail = f"  {r['detail']}" if r["detail"] else ""
                print(f"{r['name']!s:<16} {address:<22} {r['bind']!s:<4} {r['state']!s:<18}"
                      f" {since:<23} {r['sessions']!s:>4} {window:>9} {r['sent']!s:>8}"
                      f" {r['failed']!s:>7} {r['receipts']!s:>8}{detail}")
            return 0
        cfg = store.get_connector(args.name)
        if cfg is None:
            raise Refusal(f"no connector {args.name}")
        if sub == "show":
            st = next((s for s in store.connector_statuses() if s.name == cfg.name), None)
            view = {"config": _connector_public(cfg), "status": _status_view(cfg, st, now),
                    "routes": [r.name for r in store.list_routes() if cfg.name in r.via]}
            if args.json:
                print(json.dumps(view, sort_keys=True))
                return 0
            for k, v in view["config"].items():  # type: ignore[attr-defined]
                if k in ("created_at", "updated_at"):
                    v = _when(v)
                print(f"{k:<17}{v}")
            s = view["status"]
            assert isinstance(s, dict)
            print(f"{'state':<17}{s['state']}" + (f" since {_when(s['since'])}"
                                                  if s["since"] else ""))
            print(f"{'sessions':<17}{s['sessions']}")
            print(f"{'window in use':<17}{s['window_in_use']}/{s['window']}")
            print(f"{'sent':<17}{s['sent']}  failed {s['failed']}  receipts {s['receipts']}")
            if s["detail"]:
                print(f"{'detail':<17}{s['detail']}")
            print(f"{'routes':<17}{', '.join(view['routes']) or '-'}")
            return 0
        if sub == "set":
            new = _connector_from(args, cfg, now)
            if replace(new, updated_at=cfg.updated_at) == cfg:
                raise Refusal("connector set: nothing to change (give an option)")
            store.update_connector(new)
            changed = [k for k in (*_CONNECTOR_OPTIONS, "password")
                       if getattr(new, k) != getattr(cfg, k)]
            print(f"connector {cfg.name} changed: {', '.join(changed)}")
            return 0
        # remove
        try:
            store.remove_connector(cfg.name)
        except ConnectorInUse as e:
            raise Refusal(f"connector {cfg.name} is in use by route {', '.join(e.routes)}:"
                          " remove or change the route first") from None
        print(f"connector {cfg.name} removed")
        return 0

    return _run(args, body)


# --- route ---------------------------------------------------------------------------------------
def _route_rows(store: Any, now: float) -> list[dict[str, object]]:
    """Every route in match order: the operator's (by position), the built-in own-network
    route and the fallback, then any other name the breaker knows (a route removed while its
    breaker held messages, or an older name), each with its breaker and counts."""
    breakers = {r.name: r for r in store.route_status()}
    counts = store.final_counts_by_route(now - ROUTE_COUNTS_WINDOW_S, ROUTE_COUNTS_ROWS_MAX)
    rules: list[RouteConfig] = store.list_routes()
    names: list[tuple[str, str, RouteConfig | None]] = [(r.name, "operator", r) for r in rules]
    names += [(b, b, None) for b in BUILTIN_ROUTES]
    seen = {n for n, _, _ in names}
    names += [(n, "unconfigured", None) for n in sorted(breakers) if n not in seen]
    rows = []
    for name, kind, rule in names:
        b = breakers.get(name)
        rows.append({
            "name": name,
            "kind": kind,
            "match": _match_rule(rule) if rule else _MATCH_OF_KIND[kind],
            "position": rule.position if rule else None,
            "prefixes": list(rule.prefixes) if rule else [],
            "operator": rule.operator if rule else None,
            "account": rule.account if rule else None,
            "window": rule.window if rule else None,
            "via": list(rule.via) if rule else [],
            "held": b.held if b else False,
            "held_at": b.held_at if b else None,
            "reason": b.reason if b else "",
            "alarms": b.alarms if b else 0,
            "alarms_total": b.alarms_total if b else 0,
            "held_messages": b.held_messages if b else 0,
            "final_last_hour": {s: n for (r, s), n in sorted(counts.items()) if r == name},
        })
    return rows


def _match_rule(rule: RouteConfig) -> str:
    parts = [f"prefix {','.join(rule.prefixes)}" if rule.prefixes else "any number"]
    for key, value in (("operator", rule.operator), ("account", rule.account),
                       ("window", rule.window)):
        if value:
            parts.append(f"{key} {value}")
    return " ".join(parts) + f" via {','.join(rule.via)}"


_MATCH_OF_KIND = {"netsim": "own network", "unroutable": "no other route: UNDELIVERABLE",
                  "unconfigured": "not configured"}


def cmd_route(args: argparse.Namespace) -> int:
    now = time.time()
    sub = args.route_cmd

    def body(store: Any) -> int:
        from adressat.store.base import RouteExists, UnknownConnector

        if sub == "release":
            held = args.name in store.held_routes()
            n = store.release_route(args.name, now)
            if not held and n == 0:
                print(f"route {args.name} is not held", file=sys.stderr)
                return 1
            print(f"route {args.name} released: {n} held messages back to ROUTED")
            return 0
        if sub == "list":
            rows = _route_rows(store, now)
            if args.json:
                print(json.dumps(rows, sort_keys=True))
                return 0
            for r in rows:
                state = "HELD" if r["held"] else "open"
                counts = r["final_last_hour"]
                assert isinstance(counts, dict)
                print(
                    f"{r['name']}\t{state}\theld_messages={r['held_messages']}"
                    f"\talarms={r['alarms']}\talarms_total={r['alarms_total']}"
                    + (f"\theld_since={_when(r['held_at'])}" if r["held_at"] else "")  # type: ignore[arg-type]
                    + (f"\treason={r['reason']}" if r["reason"] else "")
                    + f"\tmatch={r['match']}"
                    + "\tlast_hour=" + (",".join(f"{s}:{n}" for s, n in counts.items())
                                        or "none")
                )
            return 0
        if sub == "remove":
            if not store.remove_route(args.name):
                if args.name in BUILTIN_ROUTES:
                    raise Refusal(f"route {args.name} is built in; it cannot be removed")
                raise Refusal(f"no route {args.name}")
            print(f"route {args.name} removed")
            return 0
        # add
        via = _split(args.via)
        if not via or any(not v for v in via):
            raise Refusal("--via: connector names, e.g. --via a,b (failover in that order)")
        known = {c.name for c in store.list_connectors()}
        missing = [v for v in via if v not in known]
        if missing:
            raise Refusal(f"--via: no connector {', '.join(missing)}"
                          " (add it with `adressat connector add`)")
        if args.account is not None and store.get_account(args.account) is None:
            raise Refusal(f"--account: no account {args.account}")
        cfg = RouteConfig(args.name, tuple(via), tuple(_digits(p) for p in _split(args.prefix)),
                          args.operator, args.account, args.window, args.position or 0, now)
        try:
            got = store.add_route(cfg)
        except RouteExists:
            raise Refusal(f"route {args.name} exists (remove it first)") from None
        except UnknownConnector as e:  # removed since the check above
            raise Refusal(f"--via: no connector {', '.join(e.names)}") from None
        print(f"route {got.name} added at position {got.position}: {_match_rule(got)}")
        return 0

    return _run(args, body)


# --- partner accounts ----------------------------------------------------------------------------
def cmd_account_add(args: argparse.Namespace) -> int:
    """``account add`` with the partner options checked here; the rest is
    ``cli_accounts.cmd_account``."""
    from adressat.cli_accounts import cmd_account

    ranges = [_digits(r) for r in _split([args.ranges])] if args.ranges is not None else None
    connectors = _split(args.connector)
    if not args.partner:
        if ranges is not None or connectors:
            return _fail("--ranges and --connector are for partner accounts: add --partner")
        args.partner_kwargs = {}
        return cmd_account(args)
    if not ranges or any(not r for r in ranges):
        return _fail("--partner needs --ranges: the E.164 prefixes it may send to,"
                     " e.g. --ranges 4670,4673")
    from adressat.core.interconnect_config import check_partner

    try:
        check_partner(ranges, connectors)
    except ValueError as e:
        return _fail(str(e))
    if connectors and (Path(args.home) / "adressat.db").is_file():
        store = _store(args)
        try:
            known = {c.name for c in store.list_connectors()}
        finally:
            store.close()
    else:
        known = set()
    missing = [c for c in connectors if c not in known]
    if missing:
        return _fail(f"--connector: no connector {', '.join(missing)}")
    args.partner_kwargs = {"partner_ranges": ranges, "partner_connectors": connectors}
    return cmd_account(args)


# --- the parsers ---------------------------------------------------------------------------------
def _connector_options(p: argparse.ArgumentParser, adding: bool) -> None:
    p.add_argument("--host", required=adding, help="the partner's SMPP server")
    p.add_argument("--port", type=int, required=adding)
    p.add_argument("--system-id", dest="system_id", required=adding)
    from adressat.cli_accounts import PASSWORD_ENV, RefuseArgvPassword

    p.add_argument("--password-file", default=None, metavar="FILE",
                   help="the password is the file's first line ('-': standard input); on add,"
                   f" without it: {PASSWORD_ENV} or a prompt")
    p.add_argument("--password", action=RefuseArgvPassword)
    p.add_argument("--bind", choices=("trx", "tx"), default=None,
                   help="one transceiver session (default), or a transmitter and a receiver")
    p.add_argument("--window", type=int, default=None,
                   help="submits in flight without a response (default 10)")
    p.add_argument("--throughput", dest="throughput_per_s", type=int, default=None,
                   metavar="N", help="messages per second at most (default 0: no limit of ours)")
    p.add_argument("--system-type", dest="system_type", default=None)
    p.add_argument("--enquire-link-s", dest="enquire_link_s", type=float, default=None,
                   metavar="S", help="seconds between enquire_link (default 30)")
    p.add_argument("--payload", type=_on_off, default=None, metavar="on|off",
                   help="a long message whole in message_payload (on) or as UDH parts (off,"
                   " the default)")
    p.add_argument("--receipt-ids", dest="receipt_ids", choices=RECEIPT_ID_FORMATS,
                   default=None,
                   help="how the partner spells a message id in its receipts: auto (default:"
                   " every reading; an id that reads as two messages is applied to neither),"
                   " same (as in its submit_sm_resp), receipt-decimal (the response hex, the"
                   " receipt decimal), receipt-hex (the response decimal, the receipt hex)")


def add_interconnect_parsers(sub: Any) -> None:
    """``connector``, ``route`` and the partner options of ``account add`` (cli.build_parser)."""
    co = sub.add_parser("connector", help="SMPP connections to other operators and hubs")
    csub = co.add_subparsers(dest="connector_cmd", required=True)
    add = csub.add_parser("add", help="a new connector (the node starts it within seconds)")
    add.add_argument("name")
    _connector_options(add, adding=True)
    ls = csub.add_parser("list", help="every connector and what it does now")
    ls.add_argument("--json", action="store_true")
    sh = csub.add_parser("show", help="one connector's settings (never its password) and state")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true")
    st = csub.add_parser("set", help="change a connector's settings")
    st.add_argument("name")
    _connector_options(st, adding=False)
    rm = csub.add_parser("remove", help="remove a connector no route uses")
    rm.add_argument("name")
    co.set_defaults(fn=cmd_connector)

    ro = sub.add_parser("route", help="routes: list (breakers), add, remove, release")
    rsub = ro.add_subparsers(dest="route_cmd", required=True)
    rl = rsub.add_parser("list", help="every route in match order: breaker, alarms, held"
                         " messages, final states of the last hour")
    rl.add_argument("--json", action="store_true")
    rr = rsub.add_parser("release", help="close the breaker; held messages go out again")
    rr.add_argument("name")
    ra = rsub.add_parser("add", help="a route to connectors: first match wins")
    ra.add_argument("name")
    ra.add_argument("--prefix", action="append", default=None, metavar="P",
                    help="destination prefix (E.164 digits), repeatable; none: any number")
    ra.add_argument("--operator", default=None, help="only numbers this operator serves")
    ra.add_argument("--account", default=None, help="only messages of this account")
    ra.add_argument("--window", default=None, metavar="HH:MM-HH:MM",
                    help="only at these local times (may wrap midnight)")
    ra.add_argument("--via", action="append", required=True, metavar="C1[,C2...]",
                    help="connectors in failover order")
    ra.add_argument("--position", type=int, default=None, metavar="N",
                    help="insert as the Nth route (default: after the last)")
    rrm = rsub.add_parser("remove", help="remove an operator route (its breaker stays)")
    rrm.add_argument("name")
    ro.set_defaults(fn=cmd_route)

    # the partner options of ``account add`` and the partner column of ``account list``
    account = sub.choices["account"]
    asub = next(a for a in account._actions  # noqa: SLF001 - argparse has no public walk
                if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    aadd = asub.choices["add"]
    aadd.add_argument("--partner", action="store_true",
                      help="another operator's account: it may submit only to --ranges")
    aadd.add_argument("--ranges", default=None, metavar="P1,P2",
                      help="E.164 prefixes a partner may send to (our subscribers')")
    aadd.add_argument("--connector", action="append", default=None, metavar="C",
                      help="the partner's own connector(s): its messages never go back out"
                      " through them (repeatable)")
    aadd.set_defaults(fn=cmd_account_add)
