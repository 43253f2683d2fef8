"""``adressat key list|rotate|rewrap|retire``: the keys that encrypt message texts at rest
(store/content_crypto.py; README "Encryption at rest").

Kept apart from ``cli.py`` (which calls in at its marked place). Nothing here ever prints a
key: ``list`` names each by its id (the first 4 octets of a hash of it), when it was made,
whether it is the writing key, and how many stored texts it encrypts. The running node picks
a rotation up by itself (within ``KEYRING_RELOAD_INTERVAL_S``); ``rewrap`` rewrites older
texts under the writing key in batches of their own, so the node keeps serving meanwhile;
``retire`` removes a key no stored text uses any more.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

__all__ = ["add_key_parser", "cmd_key"]

REWRAP_BATCH_DEFAULT = 500


def _positive(text: str) -> int:
    n = int(text)
    if n <= 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return n


def add_key_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    k = sub.add_parser("key", help="the keys that encrypt message texts at rest")
    ksub = k.add_subparsers(dest="key_cmd", required=True)
    ls = ksub.add_parser("list", help="key ids, when made, which writes, texts per key")
    ls.add_argument("--json", action="store_true")
    ksub.add_parser("rotate", help="a new writing key; the older ones stay for reading")
    rw = ksub.add_parser("rewrap", help="encrypt texts written under older keys again under"
                         " the writing key")
    rw.add_argument("--batch", type=_positive, default=REWRAP_BATCH_DEFAULT, metavar="N",
                    help=f"texts per transaction (default {REWRAP_BATCH_DEFAULT})")
    rt = ksub.add_parser("retire", help="remove an older key (refused while texts use it)")
    rt.add_argument("id", help="the key id, as `adressat key list` shows it")
    k.set_defaults(fn=cmd_key)


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cmd_key(args: argparse.Namespace) -> int:
    from adressat.cli import _store
    from adressat.store.content_crypto import ContentCipherError, KeyringError

    try:
        store = _store(args)
    except KeyringError as e:
        print(f"adressat: {e}", file=sys.stderr)
        return 2
    try:
        if args.key_cmd == "list":
            return _list(store, args.json)
        if args.key_cmd == "rotate":
            new = store.cipher.rotate(time.time())
            print(f"key {new} is now the writing key; the older keys stay for reading"
                  " (`adressat key rewrap`, then `adressat key retire ID`, to drop one)."
                  " Back the keyring up now.")
            return 0
        if args.key_cmd == "rewrap":
            total, after = 0, 0
            while True:
                n, after = store.rewrap_content(args.batch, after)
                total += n
                if not after:
                    break
            print(f"{total} texts rewritten under key {store.cipher.current_id}")
            return 0
        store.retire_content_key(args.id.lower(), time.time())
        print(f"key {args.id.lower()} retired")
        return 0
    except (KeyringError, ContentCipherError) as e:
        print(f"adressat: {e}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _list(store, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    used = store.content_keys_in_use()
    cipher = store.cipher
    rows = [{"id": k.id_hex, "created_at": k.created_at, "current": k.id_hex == cipher.current_id,
             "source": k.source, "texts": used.pop(k.id_hex, 0)} for k in cipher.keys()]
    unknown = {kid: n for kid, n in used.items()}  # texts under a key the keyring lacks
    if as_json:
        print(json.dumps({"keys": rows, "texts_under_unknown_keys": unknown}))
    else:
        print(f"{'id':<10} {'created':<24} {'source':<8} {'texts':>9}  writing")
        for r in rows:
            print(f"{r['id']:<10} {_when(r['created_at']):<24} {r['source']:<8}"
                  f" {r['texts']:>9}  {'yes' if r['current'] else ''}")
        for kid, n in unknown.items():
            print(f"{kid:<10} {'(not in the keyring)':<24} {'-':<8} {n:>9}")
    return 1 if unknown else 0
