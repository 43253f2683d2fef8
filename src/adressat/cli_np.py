"""``adressat np load|lookup|show``: number portability (docs/portability.md).

Kept apart from ``cli.py`` (which calls in at its marked place). ``np load FILE`` parses a
portability file (routing/portability.py: the native format or CSV) and writes the node's
snapshot ``<home>/np/ported.bin`` (routing/np_snapshot.py) atomically; a bad file is one line
on stderr, exit 2, and the old snapshot stays as it was. ``np lookup NUMBER`` says which
operator serves a number and why; ``np show`` what the snapshot holds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["add_np_parser", "cmd_np", "own_range"]

WHY_NUMBER = "ported number"
WHY_RANGE = "ported range"
WHY_OWN = "own network (netsim)"
WHY_UNKNOWN = "not known"


def _fail(text: str) -> int:
    print(f"adressat: {text}", file=sys.stderr)
    return 2


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _default_subscribers() -> int:
    from adressat.app.settings import Settings

    return Settings.subscribers


def add_np_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    np_ = sub.add_parser("np", help="number portability: load a file, look up a number")
    nsub = np_.add_subparsers(dest="np_cmd", required=True)
    ld = nsub.add_parser("load", help="parse a portability file and make it the node's table")
    ld.add_argument("file", help="native format (range/number lines) or CSV"
                    " number_or_range,operator; see docs/portability.md")
    ld.add_argument("--format", choices=("native", "csv"), default=None,
                    help="default: CSV for a .csv file, else decided by the first entry line")
    lk = nsub.add_parser("lookup", help="which operator serves a number, and why")
    lk.add_argument("number", help="e.g. +46701000001, 46701000001 or 0701000001")
    lk.add_argument("--subscribers", type=int, default=_default_subscribers(), metavar="N",
                    help="the own network's size as given to `adressat run`"
                    f" (default {_default_subscribers():,})")
    lk.add_argument("--json", action="store_true")
    sh = nsub.add_parser("show", help="counts, source file and when the snapshot was loaded")
    sh.add_argument("--json", action="store_true")
    np_.set_defaults(fn=cmd_np)


def own_range(subscribers: int) -> tuple[int, int]:
    """The own network's numbers, as app/node.py gives them to its Router (netsim's range);
    raises ValueError for a size netsim does not take."""
    from adressat.app.settings import Settings
    from adressat.netsim.settings import NetsimSettings

    return NetsimSettings(subscribers=subscribers,
                          msisdn_first=int(Settings.first_msisdn)).msisdn_range


def cmd_np(args: argparse.Namespace) -> int:
    home = Path(args.home)
    if args.np_cmd == "load":
        return _load(home, args)
    if args.np_cmd == "lookup":
        return _lookup(home, args)
    return _show(home, args)


def _load(home: Path, args: argparse.Namespace) -> int:
    from adressat.routing.np_snapshot import save, snapshot_path
    from adressat.routing.portability import PortabilityFileError, PortabilityTable

    started = time.perf_counter()
    try:
        table = PortabilityTable.from_file(Path(args.file).absolute(), format=args.format)
    except PortabilityFileError as e:
        return _fail(f"np load: {e}; the snapshot is unchanged")
    path = snapshot_path(home)
    try:
        octets = save(table, path)
    except OSError as e:
        return _fail(f"np load: cannot write {path}: {e.strerror or e}; the snapshot is"
                     " unchanged")
    took = time.perf_counter() - started
    print(f"loaded {table.number_count:,} numbers and {table.range_count:,} ranges for"
          f" {len(table.operators):,} operators in {took:.2f} s")
    print(f"  snapshot {path} ({octets:,} octets)")
    return 0


def _snapshot(home: Path, command: str):  # type: ignore[no-untyped-def]
    """(table, info), (None, None) when there is none, or an error line (str)."""
    from adressat.routing.np_snapshot import SnapshotError, load_with_info, snapshot_path

    path = snapshot_path(home)
    try:
        return load_with_info(path)
    except FileNotFoundError:
        return None, None
    except SnapshotError as e:
        return f"np {command}: {e}; `adressat np load FILE` writes a new one"
    except OSError as e:
        return f"np {command}: cannot read {path}: {e.strerror or e}"


def _lookup(home: Path, args: argparse.Namespace) -> int:
    from adressat.app.node import OWN_OPERATOR
    from adressat.routing.numbers import InvalidNumber, normalise
    from adressat.routing.router import UNKNOWN_OPERATOR

    try:
        low, high = own_range(args.subscribers)
    except ValueError as e:
        return _fail(f"np lookup: --subscribers: {e}")
    typed = args.number.strip().replace(" ", "").replace("-", "")
    ton = 1 if typed.isdigit() and not typed.startswith("0") else 0
    try:
        e164 = normalise(typed, ton, 1, valid_ranges=((low, high),))
    except InvalidNumber as e:
        return _fail(f"np lookup: {e}")
    got = _snapshot(home, "lookup")
    if isinstance(got, str):
        return _fail(got)
    table, info = got
    explained = table.explain(e164) if table is not None else None
    if explained is not None:
        operator, kind = explained
        why = WHY_NUMBER if kind == "number" else WHY_RANGE
    elif low <= int(e164) <= high and len(e164) == len(str(low)):
        operator, why = OWN_OPERATOR, WHY_OWN
    else:
        operator, why = UNKNOWN_OPERATOR, WHY_UNKNOWN
    if args.json:
        print(json.dumps({"number": e164, "operator": operator, "why": why,
                          "own": operator == OWN_OPERATOR,
                          "snapshot": info.path if info else None,
                          "snapshot_saved_at": info.saved_at if info else None},
                         sort_keys=True))
        return 0
    where = {OWN_OPERATOR: "goes to netsim",
             UNKNOWN_OPERATOR: "no operator: a route rule, the default connector or none"
             }.get(operator, "goes to its operator's route")
    print(f"+{e164}: {operator} ({why}; {where})")
    if info is None:
        print("  no portability snapshot loaded (`adressat np load FILE`): the numbering plan"
              " alone")
    return 0


def _show(home: Path, args: argparse.Namespace) -> int:
    from adressat.routing.np_snapshot import snapshot_path

    got = _snapshot(home, "show")
    if isinstance(got, str):
        return _fail(got)
    table, info = got
    if table is None or info is None:
        if args.json:
            print(json.dumps({"snapshot": None, "path": str(snapshot_path(home))}))
        else:
            print(f"no portability snapshot in {home} ({snapshot_path(home)} absent):"
                  " `adressat np load FILE` makes one")
        return 0
    counts = table.operator_counts()
    if args.json:
        print(json.dumps({"snapshot": info.path, "source": info.source,
                          "saved_at": info.saved_at, "octets": info.octets,
                          "numbers": info.numbers, "ranges": info.ranges,
                          "operators": {k: {"numbers": n, "ranges": r}
                                        for k, (n, r) in counts.items()}}, sort_keys=True))
        return 0
    print(f"portability: {info.numbers:,} numbers and {info.ranges:,} ranges for"
          f" {info.operators:,} operators")
    print(f"  file {info.source or '-'}")
    print(f"  loaded at {_when(info.saved_at)} into {info.path} ({info.octets:,} octets)")
    if counts:
        width = max(8, *(len(k) for k in counts))
        print(f"  {'operator':<{width}}  {'numbers':>10}  {'ranges':>7}")
        for name, (n, r) in counts.items():
            print(f"  {name:<{width}}  {n:>10,}  {r:>7,}")
    return 0
