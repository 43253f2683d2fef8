"""The ``adressat`` command: run the node, manage ESME accounts, audit the invariants."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from adressat import __version__
from adressat.app.settings import Settings, default_home


def _settings(args: argparse.Namespace, **more: object) -> Settings:
    return Settings(home=Path(args.home), **more)  # type: ignore[arg-type]


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from adressat.store.sqlite import SqliteStore

    s = _settings(args)
    s.home.mkdir(parents=True, exist_ok=True)
    return SqliteStore(s.store_path)


def cmd_run(args: argparse.Namespace) -> int:
    from adressat.app.node import run

    if not 1 <= args.subscribers <= 2_700_000:
        print("--subscribers must be 1..2700000", file=sys.stderr)
        return 2
    run(_settings(args, smpp_port=args.smpp_port, smpp_host=args.smpp_host,
                  subscribers=args.subscribers, netsim_seed=args.seed,
                  netsim_realistic=not args.quiet_network))
    return 0


def cmd_account(args: argparse.Namespace) -> int:
    from adressat.core.passwords import hash_password
    from adressat.store.base import AccountExists

    store = _store(args)
    try:
        if args.account_cmd == "add":
            if not 1 <= len(args.name) <= 15 or not args.name.isprintable():
                print("account name: 1..15 printable characters (SMPP system_id)",
                      file=sys.stderr)
                return 2
            if not 1 <= len(args.password) <= 8:
                print("password: 1..8 characters (SMPP 3.4 password field)", file=sys.stderr)
                return 2
            try:
                store.add_account(args.name, hash_password(args.password, os.urandom(16)),
                                  args.throughput)
            except AccountExists:
                print(f"account {args.name} exists", file=sys.stderr)
                return 1
            print(f"account {args.name} added")
        elif args.account_cmd == "list":
            for a in store.list_accounts():
                tp = a.throughput_per_s if a.throughput_per_s else "unlimited"
                print(f"{a.name}\tthroughput_per_s={tp}")
        elif args.account_cmd == "remove":
            if not store.remove_account(args.name):
                print(f"no account {args.name}", file=sys.stderr)
                return 1
            print(f"account {args.name} removed")
    finally:
        store.close()
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from adressat.observe.audit import audit

    store = _store(args)
    try:
        report = audit(store, Path(args.home), time.time(), grace_s=args.grace_s)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for k, v in report.items():
            print(f"{k}: {v}")
    return 0 if report.get("ok") else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="adressat", description=__doc__)
    p.add_argument("--version", action="version", version=f"adressat {__version__}")
    p.add_argument("--home", default=str(default_home()),
                   help="data directory (default ./var, or ADRESSAT_HOME)")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the SMS centre")
    r.add_argument("--home", default=argparse.SUPPRESS, help="data directory")
    r.add_argument("--smpp-port", type=int, default=2775)
    r.add_argument("--smpp-host", default="127.0.0.1")
    r.add_argument("--subscribers", type=int, default=100_000,
                   help="simulated subscribers from +46701000000 (up to 2,700,000)")
    r.add_argument("--seed", type=int, default=1, help="seed of the simulated network")
    r.add_argument("--quiet-network", action="store_true",
                   help="no absent subscribers and no latency in the simulated network")
    r.set_defaults(fn=cmd_run)

    a = sub.add_parser("account", help="ESME accounts")
    a.add_argument("--home", default=argparse.SUPPRESS, help="data directory")
    asub = a.add_subparsers(dest="account_cmd", required=True)
    add = asub.add_parser("add")
    add.add_argument("name")
    add.add_argument("--password", required=True)
    add.add_argument("--throughput", type=int, default=None, help="messages per second")
    asub.add_parser("list")
    rm = asub.add_parser("remove")
    rm.add_argument("name")
    a.set_defaults(fn=cmd_account)

    au = sub.add_parser("audit", help="counts per state and the invariant figures")
    au.add_argument("--home", default=argparse.SUPPRESS, help="data directory")
    au.add_argument("--json", action="store_true")
    au.add_argument("--grace-s", type=float, default=60.0,
                    help="how long past its validity a message may still be open")
    au.set_defaults(fn=cmd_audit)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
