"""``adressat account add|set|disable|enable|remove|show|list`` (issue 13): accounts an
operator controls, on the store; the running node applies each change within a second or two
(app/node.py polls ``accounts.version``). ``account key`` and ``account callbacks`` are in
cli_http.py, the partner options of ``account add`` in cli_interconnect.py.

Passwords never come from the command line (``ps`` and the shell history would show them):
``--password-file F`` (its first line; ``-``: standard input), else the environment variable
ADRESSAT_PASSWORD, else a prompt when standard input is a terminal. ``--password PW`` is
refused with a message naming those three, for ``account add`` and ``connector add|set``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from adressat.core import accounts as rules
from adressat.core.model import Account

PASSWORD_ENV = "ADRESSAT_PASSWORD"
PASSWORD_FILE_BYTES_MAX = 4096  # the first line of a password file, read up to this
ACCOUNT_PASSWORD_LENGTH_MAX = 8  # SMPP 3.4 password field
NAME_LENGTH_MAX = 15  # SMPP 3.4 system_id
THREE_WAYS = (f"give it with --password-file FILE (its first line; '-' reads standard input),"
              f" in the environment as {PASSWORD_ENV}, or type it at the prompt (on a terminal,"
              " with neither)")


class Refusal(Exception):
    """A caller's mistake: one line on stderr, exit 2, nothing changed."""


def _fail(text: str) -> int:
    print(f"adressat: {text}", file=sys.stderr)
    return 2


# --- passwords -----------------------------------------------------------------------------------
class RefuseArgvPassword(argparse.Action):
    """``--password PW``: refused, and the value never repeated."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any) -> None:
        kw.pop("default", None)
        super().__init__(option_strings, dest, nargs="?", default=None,
                         help="refused: a password on the command line shows in `ps`;"
                         " use --password-file, " + PASSWORD_ENV + " or the prompt", **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        parser.exit(2, f"{parser.prog}: --password on the command line is refused (`ps` and the"
                       f" shell history would show it): {THREE_WAYS}\n")


def _first_line(data: bytes, where: str) -> str:
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        return first.decode("ascii")
    except UnicodeDecodeError:
        raise Refusal(f"{where}: the first line is not ASCII") from None


def read_password(path: str | None, *, required: bool, length_max: int,
                  what: str = "password") -> str | None:
    """The password from ``--password-file`` (``path``), else ADRESSAT_PASSWORD, else a
    prompt on a terminal. ``required`` False: None when neither a file nor the environment
    gives one (``set``: the password stays). Refusal for a bad one."""
    env = os.environ.get(PASSWORD_ENV)
    if path is not None and env is not None:
        raise Refusal(f"two passwords: --password-file and {PASSWORD_ENV}; give one")
    if path is not None:
        where = f"--password-file {path}"
        try:
            if path == "-":
                data = sys.stdin.buffer.read(PASSWORD_FILE_BYTES_MAX)
            else:
                with open(path, "rb") as f:
                    data = f.read(PASSWORD_FILE_BYTES_MAX)
        except OSError as e:
            raise Refusal(f"{where}: {e.strerror or 'unreadable'}") from None
        password: str | None = _first_line(data, where)
    elif env is not None:
        password = env
    elif not required:
        return None
    elif sys.stdin.isatty():
        password = getpass.getpass(f"{what}: ")
        if getpass.getpass(f"{what} again: ") != password:
            raise Refusal("the two passwords differ")
    else:
        raise Refusal(f"a {what} is needed: {THREE_WAYS}")
    assert password is not None
    if not 1 <= len(password) <= length_max or not password.isprintable():
        raise Refusal(f"{what}: 1..{length_max} printable characters (SMPP 3.4 password field)")
    return password


# --- values --------------------------------------------------------------------------------------
def _type(parse: Any) -> Any:
    def wrapped(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None
    return wrapped


_throughput = _type(lambda t: rules.parse_limit(t, "--throughput", rules.THROUGHPUT_PER_S_MAX))
_sessions = _type(rules.parse_sessions_max)


def _list(values: Sequence[str] | None) -> list[str]:
    """Repeated values and comma-separated lists alike: ``--senders A B,C``."""
    out: list[str] = []
    for v in values or ():
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _changes(args: argparse.Namespace) -> dict[str, object]:
    """The fields ``add`` or ``set`` gives, checked (Refusal)."""
    out: dict[str, object] = {}
    if args.throughput is not None:
        out["throughput_per_s"] = None if args.throughput == "unlimited" else args.throughput
    if args.sessions_max is not None:
        out["sessions_max"] = None if args.sessions_max == "default" else args.sessions_max
    if args.allow_ip is not None or getattr(args, "allow_ip_any", False):
        out["allow_ip"] = _list(args.allow_ip)
    if args.senders is not None or getattr(args, "senders_any", False):
        out["senders"] = _list(args.senders)
    try:
        return rules.check_account_fields(**out)
    except ValueError as e:
        raise Refusal(str(e)) from None


def _limit_arg(parse: Any, none_word: str) -> Any:
    """The option's value: the number, or the word that stands for None."""
    def wrapped(text: str) -> Any:
        value = parse(text)
        return none_word if value is None else value
    return wrapped


# --- output --------------------------------------------------------------------------------------
def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def account_view(a: Account) -> dict[str, object]:
    """What ``show`` and ``list --json`` say of an account (never its password hash nor its
    webhook secret)."""
    state = "enabled"
    if a.disabled:
        state = "disabled (queue kept)" if a.disabled_keep_queue else "disabled (queue held)"
    return {
        "name": a.name,
        "state": state,
        "disabled_at": a.disabled_at,
        "throughput_per_s": rules.limit_text(a.throughput_per_s),
        "sessions_max": rules.DEFAULT if a.sessions_max is None else a.sessions_max,
        "allow_ip": list(a.allow_ip) or "any",
        "senders": list(a.senders) or "any",
        "partner_ranges": list(a.partner_ranges) if a.partner else None,
        "partner_connectors": list(a.partner_connectors) if a.partner else None,
        "callback_url": a.callback_url,
    }


def account_line(a: Account) -> str:
    """One line of ``account list``."""
    v = account_view(a)
    state = "disabled" if a.disabled else "enabled"
    line = (f"{a.name}\t{state}\tthroughput_per_s={v['throughput_per_s']}"
            f"\tsessions_max={v['sessions_max']}"
            f"\tsenders={','.join(a.senders) or 'any'}\tallow_ip={','.join(a.allow_ip) or 'any'}")
    if a.partner:
        line += f"\tpartner ranges={','.join(a.partner_ranges)}"
        if a.partner_connectors:
            line += f" connectors={','.join(a.partner_connectors)}"
    return line


# --- the commands --------------------------------------------------------------------------------
def _check_name(name: str) -> None:
    if not 1 <= len(name) <= NAME_LENGTH_MAX or not name.isprintable():
        raise Refusal(f"account name: 1..{NAME_LENGTH_MAX} printable characters (SMPP"
                      " system_id)")
    if name.startswith("_"):
        raise Refusal(f"account name {name!r}: names starting with '_' are the node's own"
                      " (the canary prober's)")


def _add(store: Any, args: argparse.Namespace) -> int:
    from adressat.core.passwords import hash_password
    from adressat.store.base import AccountExists

    _check_name(args.name)
    fields = _changes(args)
    if store.get_account(args.name) is not None:
        print(f"account {args.name} exists (change it with `adressat account set`)",
              file=sys.stderr)
        return 1
    password = args.password_value
    assert password is not None
    try:
        store.add_account(
            args.name, hash_password(password, os.urandom(16)),
            fields.get("throughput_per_s"),
            sessions_max=fields.get("sessions_max"),
            allow_ip=fields.get("allow_ip", ()), senders=fields.get("senders", ()),
            **getattr(args, "partner_kwargs", {}),  # cli_interconnect: --partner
        )
    except AccountExists:
        print(f"account {args.name} exists", file=sys.stderr)
        return 1
    a = store.get_account(args.name)
    print(f"account {args.name} added")
    print(account_line(a))
    return 0


def _set(store: Any, args: argparse.Namespace) -> int:
    from adressat.core.passwords import hash_password

    fields = _changes(args)
    if store.get_account(args.name) is None:
        print(f"no account {args.name}", file=sys.stderr)
        return 1
    if args.password_file is not None:
        password = read_password(args.password_file, required=True,
                                 length_max=ACCOUNT_PASSWORD_LENGTH_MAX)
        assert password is not None
        fields["password_hash"] = hash_password(password, os.urandom(16))
    if not fields:
        raise Refusal("account set: nothing to change (give an option; see --help)")
    a = store.update_account(args.name, **fields)
    said = ", ".join("password" if k == "password_hash" else k for k in fields)
    print(f"account {args.name} changed: {said} (the running node applies it within 2 s)")
    print(account_line(a))
    return 0


def cmd_account(args: argparse.Namespace) -> int:
    from adressat.cli import _store
    from adressat.store.base import UnknownAccount

    sub = args.account_cmd
    try:
        if sub == "add":  # checked before the store is opened (or created)
            _check_name(args.name)
            _changes(args)
    except Refusal as e:
        return _fail(str(e))
    if sub == "add":  # asked before the store is opened (or created)
        try:
            args.password_value = read_password(args.password_file, required=True,
                                                length_max=ACCOUNT_PASSWORD_LENGTH_MAX)
        except Refusal as e:
            return _fail(str(e))
    store = _store(args)
    now = time.time()
    try:
        if sub == "add":
            return _add(store, args)
        if sub == "set":
            return _set(store, args)
        if sub == "list":
            accounts = store.list_accounts()
            if args.json:
                print(json.dumps([account_view(a) for a in accounts], sort_keys=True))
            for a in [] if args.json else accounts:
                print(account_line(a))
            return 0
        if sub == "show":
            a = store.get_account(args.name)
            if a is None:
                print(f"no account {args.name}", file=sys.stderr)
                return 1
            view = account_view(a)
            if args.json:
                print(json.dumps(view, sort_keys=True))
                return 0
            view["disabled_at"] = _when(a.disabled_at)
            for k, v in view.items():
                if v is None:
                    continue
                print(f"{k:<19}{','.join(v) if isinstance(v, list) else v}")
            keys = [k for k in store.api_keys(a.name) if k.revoked_at is None]
            print(f"{'api keys':<19}{len(keys)} in use")
            return 0
        if sub == "disable":
            held = store.disable_account(args.name, now, keep_queue=args.keep_queue)
            queue = ("its queued messages still go out" if args.keep_queue
                     else f"{held} queued messages held until `adressat account enable`")
            print(f"account {args.name} disabled: its sessions are ended and its keys refused"
                  f" within 2 s; {queue}")
            return 0
        if sub == "enable":
            released = store.enable_account(args.name, now)
            print(f"account {args.name} enabled; {released} held messages queued again")
            return 0
        if sub == "remove":
            if not store.remove_account(args.name, now, keep_queue=args.keep_queue):
                print(f"no account {args.name}", file=sys.stderr)
                return 1
            queue = ("its queued messages still go out" if args.keep_queue
                     else "its queued messages are cancelled (receipts written)")
            print(f"account {args.name} removed: its sessions are ended within 2 s; {queue}")
            return 0
        raise AssertionError(sub)
    except UnknownAccount:
        print(f"no account {args.name}", file=sys.stderr)
        return 1
    except Refusal as e:
        return _fail(str(e))
    finally:
        store.close()


def _value_options(p: argparse.ArgumentParser, setting: bool) -> None:
    p.add_argument("--password-file", default=None, metavar="FILE",
                   help="the password is the file's first line ('-': standard input); without"
                   f" it, {'the password stays' if setting else PASSWORD_ENV + ' or a prompt'}")
    p.add_argument("--password", action=RefuseArgvPassword)
    p.add_argument("--throughput", type=_limit_arg(_throughput, "unlimited"), default=None,
                   metavar="N|unlimited", help="messages per second, every way in together"
                   + ("" if setting else " (default unlimited)"))
    p.add_argument("--sessions-max", dest="sessions_max",
                   type=_limit_arg(_sessions, "default"), default=None, metavar="N|default",
                   help="bound SMPP sessions at once (default: the node's"
                   " --account-sessions-max)")
    ip = p.add_mutually_exclusive_group() if setting else p
    ip.add_argument("--allow-ip", dest="allow_ip", nargs="+", default=None, metavar="CIDR",
                    help="the only networks it may bind or use its HTTP keys from"
                    " (default: any)")
    senders = p.add_mutually_exclusive_group() if setting else p
    senders.add_argument("--senders", nargs="+", default=None, metavar="RULE",
                         help="the only source addresses it may use: +46701234567 (a number),"
                         " 4670100* (a prefix), 4670100-4670199 (a range), MyBank (a name,"
                         " any case) (default: any)")
    if setting:
        ip.add_argument("--allow-ip-any", action="store_true", help="any address again")
        senders.add_argument("--senders-any", action="store_true", help="any source again")


def add_account_parser(sub: Any) -> None:
    """``account`` and its subcommands (cli.build_parser)."""
    a = sub.add_parser("account", help="ESME accounts: add, set, disable, enable, remove,"
                       " show, list; keys, callbacks")
    asub = a.add_subparsers(dest="account_cmd", required=True)
    add = asub.add_parser("add", help="a new account (the password never on the command line)")
    add.add_argument("name")
    _value_options(add, setting=False)
    st = asub.add_parser("set", help="change an account; the running node applies it in 2 s")
    st.add_argument("name")
    _value_options(st, setting=True)
    ls = asub.add_parser("list", help="every account: state, limits, senders, allow-ip")
    ls.add_argument("--json", action="store_true")
    sh = asub.add_parser("show", help="one account's settings (never a secret)")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true")
    dis = asub.add_parser("disable", help="no binds, no keys; its sessions are ended (unbind,"
                          " then close) and its queued messages held")
    dis.add_argument("name")
    dis.add_argument("--keep-queue", action="store_true",
                     help="its queued messages still go out")
    en = asub.add_parser("enable", help="binds and keys work again; what disable held goes out")
    en.add_argument("name")
    rm = asub.add_parser("remove", help="the account and its keys go; its sessions are ended,"
                         " its queued messages cancelled")
    rm.add_argument("name")
    rm.add_argument("--keep-queue", action="store_true",
                    help="its queued messages still go out")
    a.set_defaults(fn=cmd_account)
