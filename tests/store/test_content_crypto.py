"""Encryption at rest of message texts (store/content_crypto.py, SqliteStore): round trip, the
message id bound as associated data, wrong and missing keys, rotation seen by another
"process" without restart, rewrap and retire, the keyring file (0600, made once by racing
processes), keys from the environment, and the upgrade of a database with plain texts."""

from __future__ import annotations

import base64
import multiprocessing
import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest
from store_helpers import make_msg

from adressat.core.model import State
from adressat.store import SqliteStore
from adressat.store.content_crypto import (
    ENV_VAR,
    KEYRING_NAME,
    OVERHEAD_OCTETS,
    ContentCipher,
    ContentCipherError,
    ContentKeyMissing,
    KeyringError,
    blob_key_id,
    parse_env_keys,
)
from adressat.store.migrations import MIGRATIONS, migrate_sqlite
from adressat.store.sqlite import CONTENT_ENCRYPTION_META, CONTENT_KEY_RETIRE_AFTER_S

NOW = 1000.0
TEXTS = [b"kod 4711", "hälsning ✓ kod 493817".encode(), "\u0420\u0443\u0441".encode("utf-16-be"),
         bytes(range(256)) * 2, b"\x01" + b"\x00" * 40]


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def _raw(db: Path, message_id: str) -> bytes:
    with closing(sqlite3.connect(db)) as c:
        return bytes(c.execute("SELECT content FROM messages WHERE id = ?",
                               (message_id,)).fetchone()[0])


def _set_raw(db: Path, message_id: str, content: bytes) -> None:
    with closing(sqlite3.connect(db)) as c:
        c.execute("UPDATE messages SET content = ? WHERE id = ?", (content, message_id))
        c.commit()


def test_round_trip_fresh_nonce_and_empty_stays_empty() -> None:
    c = ContentCipher.ephemeral()
    for text in TEXTS:
        a, b = c.encrypt(text, "m1"), c.encrypt(text, "m1")
        assert a != b  # a nonce of its own per write
        assert len(a) == len(text) + OVERHEAD_OCTETS and text not in a
        assert blob_key_id(a) == c.current_id
        assert c.decrypt(a, "m1") == text == c.decrypt(b, "m1")
    assert c.encrypt(b"", "m1") == b"" and c.decrypt(b"", "m1") == b""


def test_store_round_trip_on_every_read_path(tmp_path: Path) -> None:
    db = tmp_path / "adressat.db"
    s = SqliteStore(db)
    msgs = [make_msg(content=t) for t in TEXTS]
    s.insert_messages(msgs)
    for m in msgs:
        assert _raw(db, m.id) != m.content and m.content not in _raw(db, m.id)
        assert s.get_message(m.id) == m
    assert {m.id: m.content for m in s.list_messages()} == {m.id: m.content for m in msgs}
    new_text = "ny text ✓".encode()
    r = s.replace(msgs[0].id, "acme", NOW, content=new_text, tag=b"t" * 16)
    assert r.content == new_text == s.get_message(msgs[0].id).content  # type: ignore[union-attr]
    assert b"ny text" not in _raw(db, msgs[0].id)
    claimed = {m.id: m for m in s.claim_due(100, NOW, 30, "n1")}
    assert {i: m.content for i, m in claimed.items()} == {
        m.id: m.content for m in [r, *msgs[1:]]}
    s.close()
    again = SqliteStore(db)  # another process: the same keyring, beside the file
    assert again.get_message(msgs[1].id) == claimed[msgs[1].id]
    again.close()


def test_a_text_moved_to_another_row_does_not_decrypt(tmp_path: Path) -> None:
    db = tmp_path / "adressat.db"
    s = SqliteStore(db)
    a, b = make_msg(content=b"for a only"), make_msg(content=b"for b")
    s.insert_messages([a, b])
    _set_raw(db, b.id, _raw(db, a.id))
    assert s.get_message(a.id).content == b"for a only"  # type: ignore[union-attr]
    with pytest.raises(ContentCipherError, match=b.id) as e:
        s.get_message(b.id)
    assert "for a" not in str(e.value)


def test_damaged_unknown_format_and_wrong_key(tmp_path: Path) -> None:
    db = tmp_path / "adressat.db"
    s = SqliteStore(db)
    m = make_msg(content=b"secret code 123456")
    s.insert_messages([m])
    blob = _raw(db, m.id)
    _set_raw(db, m.id, blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(ContentCipherError, match="does not decrypt"):
        s.get_message(m.id)
    _set_raw(db, m.id, b"plain text, not ours")
    with pytest.raises(ContentCipherError, match="format"):
        s.get_message(m.id)
    _set_raw(db, m.id, blob)
    s.close()
    other = SqliteStore(db, cipher=ContentCipher.ephemeral())  # not this database's key
    with pytest.raises(ContentKeyMissing, match=blob_key_id(blob) or "?"):
        other.get_message(m.id)
    other.close()


def test_rotation_is_seen_by_a_running_store_without_restart(tmp_path: Path) -> None:
    db = tmp_path / "adressat.db"
    keys = tmp_path / KEYRING_NAME
    # two "processes": each its own store and cipher on the one file; b looks at the
    # keyring before every write (interval 0), as a process does every 2 s
    a = SqliteStore(db)
    b = SqliteStore(db, cipher=ContentCipher.open(keys, reload_interval_s=0.0))
    old = a.cipher.current_id
    m1 = make_msg(content=b"before rotation")
    a.insert_messages([m1])
    new = a.cipher.rotate(NOW)
    assert new != old and a.cipher.current_id == new
    m2 = make_msg(content=b"after rotation")
    a.insert_messages([m2])
    assert blob_key_id(_raw(db, m1.id)) == old and blob_key_id(_raw(db, m2.id)) == new
    # b has not looked yet: a read under the unknown key reads the keyring again
    c = SqliteStore(db, cipher=ContentCipher.open(keys, reload_interval_s=3600.0))
    a.cipher.rotate(NOW + 1)
    m3 = make_msg(content=b"third")
    a.insert_messages([m3])
    assert c.get_message(m3.id).content == b"third"  # type: ignore[union-attr]
    assert c.get_message(m1.id).content == b"before rotation"  # type: ignore[union-attr]
    m4 = make_msg(content=b"written by b")
    b.insert_messages([m4])
    assert blob_key_id(_raw(db, m4.id)) == a.cipher.current_id
    for s in (a, b, c):
        s.close()
    assert oct(keys.stat().st_mode & 0o777) == "0o600"


def test_rewrap_then_retire(tmp_path: Path) -> None:
    db = tmp_path / "adressat.db"
    s = SqliteStore(db)
    old = s.cipher.current_id
    msgs = [make_msg(content=f"text {i}".encode()) for i in range(7)]
    s.insert_messages(msgs)
    s.insert_messages([make_msg(content=b"")])
    new = s.cipher.rotate(NOW)
    assert s.content_keys_in_use() == {old: 7}
    with pytest.raises(KeyringError, match="writing key"):
        s.retire_content_key(new, NOW + 100)
    with pytest.raises(KeyringError, match="s old"):  # too soon after the rotation
        s.retire_content_key(old, NOW + 1)
    with pytest.raises(KeyringError, match="7 stored texts"):
        s.retire_content_key(old, NOW + CONTENT_KEY_RETIRE_AFTER_S)
    done, after = s.rewrap_content(3)
    assert done == 3 and after > 0
    total = done
    while after:
        n, after = s.rewrap_content(3, after)
        total += n
    assert total == 7 and s.content_keys_in_use() == {new: 7}
    s.retire_content_key(old, NOW + CONTENT_KEY_RETIRE_AFTER_S)
    assert [k.id_hex for k in s.cipher.keys()] == [new]
    assert [m.content for m in map(s.get_message, (m.id for m in msgs))] == [  # type: ignore[union-attr]
        m.content for m in msgs]
    s.close()
    assert old not in (tmp_path / KEYRING_NAME).read_text()


def test_keyring_is_0600_whatever_the_umask_and_never_shown(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        s = SqliteStore(tmp_path / "adressat.db")
    finally:
        os.umask(before)
    path = tmp_path / KEYRING_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    [key] = s.cipher.keys()
    shown = repr(s.cipher) + repr(key) + str(s.cipher.keys())
    for form in (key.key.hex(), base64.b64encode(key.key).decode(), repr(key.key)):
        assert form not in shown
    assert key.id_hex in repr(key)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    s.close()


def test_a_missing_keyring_is_not_replaced_when_texts_are_encrypted(tmp_path: Path) -> None:
    db = tmp_path / "adressat.db"
    s = SqliteStore(db)
    s.insert_messages([make_msg(content=b"needs the old key")])
    s.close()
    (tmp_path / KEYRING_NAME).unlink()
    with pytest.raises(KeyringError, match="restore the keyring"):
        SqliteStore(db)
    assert not (tmp_path / KEYRING_NAME).exists()


def test_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    assert parse_env_keys(k1.hex()) == [k1]
    assert parse_env_keys(base64.b64encode(k1).decode()) == [k1]
    assert parse_env_keys(base64.b64encode(k1).decode().rstrip("=")) == [k1]
    assert parse_env_keys(f"{k2.hex()}, {base64.b64encode(k1).decode()}") == [k2, k1]
    for bad in ("", "00" * 31, "zz" * 32, base64.b64encode(os.urandom(31)).decode()):
        with pytest.raises(KeyringError) as e:
            parse_env_keys(bad)
        assert ENV_VAR in str(e.value) and (not bad or bad not in str(e.value))
    db = tmp_path / "adressat.db"
    monkeypatch.setenv(ENV_VAR, k1.hex())
    s = SqliteStore(db)
    m = make_msg(content=b"env keyed")
    s.insert_messages([m])
    assert not (tmp_path / KEYRING_NAME).exists()  # the environment is used instead
    assert s.cipher.source == "env"
    with pytest.raises(KeyringError, match=ENV_VAR):
        s.cipher.rotate(NOW)
    s.close()
    # rotation by the environment: the new key first, the old one after it
    monkeypatch.setenv(ENV_VAR, f"{k2.hex()},{k1.hex()}")
    s = SqliteStore(db)
    m2 = make_msg(content=b"under k2")
    s.insert_messages([m2])
    assert s.get_message(m.id).content == b"env keyed"  # type: ignore[union-attr]
    assert len(s.content_keys_in_use()) == 2
    s.close()
    monkeypatch.setenv(ENV_VAR, k2.hex())
    s = SqliteStore(db)
    with pytest.raises(ContentKeyMissing):
        s.get_message(m.id)
    s.close()


def _open_keyring(path: str, barrier, out) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    out.put(ContentCipher.open(Path(path)).current_id)


def test_processes_starting_at_once_make_one_keyring(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        path = tmp_path / f"r{round_}" / KEYRING_NAME
        path.parent.mkdir()
        barrier, out = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open_keyring, args=(str(path), barrier, out))
                 for _ in range(6)]
        for p in procs:
            p.start()
        ids = {out.get(timeout=30) for _ in procs}
        for p in procs:
            p.join(30)
        assert len(ids) == 1 and ids == {ContentCipher.open(path).current_id}
        assert [p.name for p in path.parent.iterdir()] == [KEYRING_NAME]


# --- the upgrade of a database written before encryption at rest ------------------------------
def _plain_database(db: Path, upto: int, texts: list[bytes]) -> list[str]:
    """A database as a version of ``upto`` left it: plain texts, no marker, no keyring."""
    ids = []
    with closing(sqlite3.connect(db, isolation_level=None)) as c:
        migrate_sqlite(c, [(v, st) for v, st in MIGRATIONS if v <= upto])
        c.execute("BEGIN")
        for t in texts:
            m = make_msg(content=t)
            c.execute(
                "INSERT INTO messages (id, account, source_addr, destination, content,"
                " submitted_at, expires_at, source_ton, source_npi, data_coding, esm_class,"
                " registered_delivery, priority, protocol_id, not_before, state, route,"
                " attempts, next_attempt_at, tag, extra) VALUES"
                " (?, 'acme', 'ACME', ?, ?, 1000, 5000, 0, 0, 0, 0, 1, 0, 0, 1000, 'ROUTED',"
                " 'netsim', 0, 1000, ?, '{}')", (m.id, m.destination, t, m.tag))
            ids.append(m.id)
        c.execute("COMMIT")
    return ids


@pytest.mark.parametrize("upto", [18, max(v for v, _ in MIGRATIONS)])
def test_upgrade_encrypts_plain_texts_once(tmp_path: Path, upto: int) -> None:
    db = tmp_path / "adressat.db"
    # a plain text may begin with any octet, this format's own version octet too
    texts = [*TEXTS, b"", b"\x01" + bytes(4) + bytes(40)]
    ids = _plain_database(db, upto, texts)
    s = SqliteStore(db)
    assert s.get_meta(CONTENT_ENCRYPTION_META) == "aes-256-gcm/1"
    for i, t in zip(ids, texts, strict=True):
        assert s.get_message(i).content == t  # type: ignore[union-attr]
        raw = _raw(db, i)
        assert raw == b"" if not t else (t not in raw and blob_key_id(raw) == s.cipher.current_id)
    s.close()
    before = {i: _raw(db, i) for i in ids}
    s = SqliteStore(db)  # a second open changes nothing
    assert {i: _raw(db, i) for i in ids} == before
    assert [s.get_message(i).content for i in ids] == texts  # type: ignore[union-attr]
    [m] = s.claim_due(1, 1000.0, 30, "n")
    assert m.state is State.DISPATCHED and m.content in texts
    s.close()


def test_two_processes_opening_a_plain_database_at_once_encrypt_it_once(tmp_path: Path) -> None:
    db = tmp_path / "adressat.db"
    texts = [f"legacy {i}".encode() for i in range(2000)]
    ids = _plain_database(db, 18, texts)
    stores: list[SqliteStore] = []
    start = threading.Barrier(3)

    def open_() -> None:
        start.wait()
        stores.append(SqliteStore(db))

    threads = [threading.Thread(target=open_) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(stores) == 3
    for s in stores:
        assert [s.get_message(i).content for i in ids[::97]] == texts[::97]  # type: ignore[union-attr]
        s.close()
