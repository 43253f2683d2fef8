"""``adressat account key add|list|revoke`` and ``adressat account callbacks`` (issue 12): an
account's HTTP API keys and its status callback settings, on the store, no node needed.

A key is printed once, when it is made (``core.apikeys``: only its hash is kept); a webhook
secret is printed once, when it is made or rotated. A mistake is one line on stderr and exit
2, and changes nothing.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from typing import Any

from adressat.core.apikeys import KEY_ID_LENGTH, SECRET_LENGTH, format_api_key, secret_hash
from adressat.core.callbacks import WEBHOOK_SECRET_LENGTH, check_account_callbacks

#: keys one account may have (revoked ones count: they stay listed)
ACCOUNT_KEYS_MAX = 100


def _fail(text: str) -> int:
    print(f"adressat: {text}", file=sys.stderr)
    return 2


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _open(args: argparse.Namespace) -> Any:
    from adressat.cli import _store

    return _store(args)


def cmd_account_key(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        if store.get_account(args.name) is None:
            return _fail(f"no account {args.name}")
        sub = args.key_cmd
        if sub == "add":
            if len(store.api_keys(args.name)) >= ACCOUNT_KEYS_MAX:
                return _fail(f"account {args.name} has {ACCOUNT_KEYS_MAX} keys already:"
                             " revoke and remove some first")
            key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
            secret = secrets.token_bytes(SECRET_LENGTH)
            store.add_api_key(args.name, key_id, secret_hash(secret), time.time())
            print(format_api_key(key_id, secret))  # the only time it is shown
            return 0
        if sub == "list":
            keys = store.api_keys(args.name)
            if args.json:
                print(json.dumps([{"key_id": k.key_id, "created_at": k.created_at,
                                   "revoked_at": k.revoked_at} for k in keys], sort_keys=True))
                return 0
            for k in keys:
                state = "revoked" if k.revoked_at is not None else "active"
                print(f"{k.key_id}\t{state}\tcreated {_when(k.created_at)}"
                      f"\trevoked {_when(k.revoked_at)}")
            return 0
        # revoke
        if store.revoke_api_key(args.name, args.key_id, time.time()):
            print(f"key {args.key_id} of account {args.name} revoked")
            return 0
        k = store.api_key(args.key_id)
        if k is None or k.account != args.name:
            return _fail(f"no key {args.key_id} of account {args.name}")
        print(f"key {args.key_id} of account {args.name} was revoked already"
              f" ({_when(k.revoked_at)})")
        return 0
    finally:
        store.close()


def cmd_account_callbacks(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        a = store.get_account(args.name)
        if a is None:
            return _fail(f"no account {args.name}")
        if args.clear and (args.url is not None or args.allow_host):
            return _fail("--clear takes no --url nor --allow-host")
        url = None if args.clear else (a.callback_url if args.url is None else args.url)
        hosts = () if args.clear else (
            a.callback_hosts if not args.allow_host else tuple(args.allow_host))
        secret = a.webhook_secret
        made = False
        if args.rotate_secret or (secret is None and (url is not None or hosts)):
            secret = secrets.token_bytes(WEBHOOK_SECRET_LENGTH)
            made = True
        try:
            url, hosts, secret = check_account_callbacks(url, hosts, secret)
        except ValueError as e:
            flag = "--allow-host" if "host" in str(e) and "url" not in str(e) else "--url"
            return _fail(f"{flag}: {e}")
        if (url, hosts, secret) != (a.callback_url, a.callback_hosts, a.webhook_secret):
            store.set_account_callbacks(args.name, url=url, hosts=hosts, secret=secret)
        print(f"account {args.name}")
        print(f"callback_url\t{url or '-'}")
        print(f"callback_hosts\t{','.join(hosts) or '-'}")
        if made and secret is not None:
            # the only time it is shown: the HMAC-SHA256 key is the 32 octets this hex encodes
            print(f"webhook_secret\t{secret.hex()}")
        else:
            print(f"webhook_secret\t{'set' if secret is not None else '-'}")
        return 0
    finally:
        store.close()


def add_http_parsers(sub: Any) -> None:
    """``account key`` and ``account callbacks`` (cli.build_parser)."""
    account = sub.choices["account"]
    asub = next(a for a in account._actions  # noqa: SLF001 - argparse has no public walk
                if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    key = asub.add_parser("key", help="HTTP API keys of an account")
    ksub = key.add_subparsers(dest="key_cmd", required=True)
    ka = ksub.add_parser("add", help="a new key, printed this once (only its hash is kept)")
    ka.add_argument("name")
    kl = ksub.add_parser("list", help="the account's keys: id, created, revoked (never a secret)")
    kl.add_argument("name")
    kl.add_argument("--json", action="store_true")
    kr = ksub.add_parser("revoke", help="a key no longer authenticates")
    kr.add_argument("name")
    kr.add_argument("key_id")
    key.set_defaults(fn=cmd_account_key)

    cb = asub.add_parser(
        "callbacks",
        help="status callbacks: the default URL, the hosts a callback may go to, the secret",
    )
    cb.add_argument("name")
    cb.add_argument("--url", default=None,
                    help="the account's default callback URL (http or https); its host is"
                    " allowed for callbacks")
    cb.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                    help="a host callback URLs of this account may name besides the --url's;"
                    " repeatable; given, it replaces the list")
    cb.add_argument("--clear", action="store_true",
                    help="no default URL and no allowed hosts (no callbacks); the secret stays")
    cb.add_argument("--rotate-secret", action="store_true",
                    help="a new webhook signing secret (printed this once)")
    cb.set_defaults(fn=cmd_account_callbacks)
