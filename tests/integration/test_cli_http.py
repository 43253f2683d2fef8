"""``adressat account key add|list|revoke`` and ``adressat account callbacks`` on a store in
tmp, no node needed (issue 12): a key is printed once and only its hash is kept, a webhook
secret is printed only when made or rotated, and every bad input is refused with one line on
stderr and exit 2, nothing changed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adressat.core.apikeys import parse_api_key, secret_matches
from adressat.store.sqlite import SqliteStore
from adressat.testing.server import adressat


def state_of(home: Path) -> object:
    store = SqliteStore(home / "adressat.db")
    try:
        return (store.list_accounts(), store.api_keys("acme"), store.api_keys("beta"))
    finally:
        store.close()


def _ok(home: Path, *args: str) -> str:
    out = adressat(home, *args)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    assert out.stderr == ""
    return out.stdout


def _refused(home: Path, *args: str) -> str:
    before = state_of(home)
    out = adressat(home, *args)
    err = out.stderr.strip()
    assert out.returncode == 2 and len(err.splitlines()) == 1, (args, out.returncode, err)
    assert out.stdout == ""
    assert state_of(home) == before
    return err


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("home")
    _ok(h, "account", "add", "acme", "--password", "pw")
    _ok(h, "account", "add", "beta", "--password", "pw")
    return h


def test_key_add_prints_it_once_and_keeps_only_its_hash(home: Path) -> None:
    key = _ok(home, "account", "key", "add", "acme").strip()
    parsed = parse_api_key(key)
    assert parsed is not None, key
    key_id, secret = parsed
    assert re.fullmatch(r"[0-9a-f]{12}", key_id)
    store = SqliteStore(home / "adressat.db")
    try:
        stored = store.api_key(key_id)
        assert stored is not None and stored.account == "acme" and stored.revoked_at is None
        assert secret_matches(stored.secret_hash, secret)
        for f in home.glob("adressat.db*"):  # the file and its WAL
            assert secret not in f.read_bytes(), f
    finally:
        store.close()
    listed = _ok(home, "account", "key", "list", "acme")
    assert key_id in listed and "active" in listed
    assert key.split("_", 2)[2] not in listed  # never the secret
    rows = json.loads(_ok(home, "account", "key", "list", "acme", "--json"))
    assert [r["key_id"] for r in rows if r["key_id"] == key_id] == [key_id]
    assert set(rows[0]) == {"key_id", "created_at", "revoked_at"}
    # a second key is another one
    other = _ok(home, "account", "key", "add", "acme").strip()
    assert other != key and parse_api_key(other) is not None


def test_key_revoke(home: Path) -> None:
    parsed = parse_api_key(_ok(home, "account", "key", "add", "beta").strip())
    assert parsed is not None
    key_id = parsed[0]
    assert "revoked" in _ok(home, "account", "key", "revoke", "beta", key_id)
    [row] = [r for r in json.loads(_ok(home, "account", "key", "list", "beta", "--json"))
             if r["key_id"] == key_id]
    assert row["revoked_at"] is not None
    assert "already" in _ok(home, "account", "key", "revoke", "beta", key_id)
    # another account's key is not this one's to revoke
    err = _refused(home, "account", "key", "revoke", "acme", key_id)
    assert err == f"adressat: no key {key_id} of account acme"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("account", "key", "add", "nobody"), "no account nobody"),
        (("account", "key", "list", "nobody"), "no account nobody"),
        (("account", "key", "revoke", "acme", "ffffffffffff"), "no key ffffffffffff"),
        (("account", "key", "add"), "required"),
        (("account", "key"), "required"),
        (("account", "callbacks", "nobody"), "no account nobody"),
        (("account", "callbacks", "acme", "--url", "ftp://h.example/"), "--url"),
        (("account", "callbacks", "acme", "--url", "https:///p"), "--url"),
        (("account", "callbacks", "acme", "--url", "https://h.example/a b"), "--url"),
        (("account", "callbacks", "acme", "--allow-host", "a/b"), "--allow-host"),
        (("account", "callbacks", "acme", "--allow-host", "h:80"), "--allow-host"),
        (("account", "callbacks", "acme", "--clear", "--url", "https://h.example/"), "--clear"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    home: Path, args: tuple[str, ...], says: str
) -> None:
    assert says in _refused(home, *args)


def test_callbacks_secret_made_once_rotated_on_request(home: Path) -> None:
    out = _ok(home, "account", "callbacks", "acme")  # nothing set: nothing made
    assert "callback_url\t-" in out and "webhook_secret\t-" in out
    out = _ok(home, "account", "callbacks", "acme", "--url", "https://hooks.acme.example/sms",
              "--allow-host", "B.example", "--allow-host", "c.example")
    m = re.search(r"^webhook_secret\t([0-9a-f]{64})$", out, re.M)
    assert m is not None, out
    first = bytes.fromhex(m.group(1))
    store = SqliteStore(home / "adressat.db")
    a = store.get_account("acme")
    store.close()
    assert a is not None and a.webhook_secret == first
    assert a.callback_url == "https://hooks.acme.example/sms"
    assert a.callback_hosts == ("b.example", "c.example")
    again = _ok(home, "account", "callbacks", "acme")  # shown: set, never the secret again
    assert "webhook_secret\tset" in again and m.group(1) not in again
    assert "callback_hosts\tb.example,c.example" in again
    rotated = _ok(home, "account", "callbacks", "acme", "--rotate-secret")
    m2 = re.search(r"^webhook_secret\t([0-9a-f]{64})$", rotated, re.M)
    assert m2 is not None and m2.group(1) != m.group(1)
    cleared = _ok(home, "account", "callbacks", "acme", "--clear")
    assert "callback_url\t-" in cleared and "callback_hosts\t-" in cleared
    store = SqliteStore(home / "adressat.db")
    a = store.get_account("acme")
    store.close()
    assert a is not None and a.callback_url is None and a.callback_hosts == ()
    assert a.webhook_secret == bytes.fromhex(m2.group(1))  # the secret stays


def test_a_missing_store_is_not_created(tmp_path: Path) -> None:
    out = adressat(tmp_path / "nothing", "account", "key", "add", "acme")
    assert out.returncode == 2 and "no adressat store" in out.stderr
    assert not (tmp_path / "nothing" / "adressat.db").exists()
