"""Encryption at rest of message content (DESIGN.md I6; docs/architecture.md, "Encryption at
rest").

A stored text is ``0x01 ‖ key id (4 octets) ‖ nonce (12 octets) ‖ AES-256-GCM(text) ‖ tag (16
octets)``, the message id (UTF-8) as associated data: a ciphertext copied into another row
does not decrypt there. A random 96-bit nonce per write (``os.urandom``): at 2^32 writes per
key the chance of a repeat is 2^-33; a key is rotated long before (``adressat key rotate``).
The key id is the first 4 octets of SHA-256 over a label and the key, so the same key has the
same id wherever it comes from (file or environment), and a row names the key it needs.
The empty text (purged, or sent empty) stays empty: the retention indexes tell purged rows by
``content = x''``.

Keys come from, in this order:

- ``ADRESSAT_CONTENT_KEY`` (environment): one key, or several separated by commas, the first
  the writing key and the others for reading only; each 32 octets as 64 hex digits or as
  base64 (44 characters with padding, 43 without). The file is then neither read nor made.
- the keyring file ``content.keys`` beside the database (JSON, 0600): made at first start if
  absent, atomically (written to a temporary file of its own, O_EXCL, fsync'd, then linked
  into place, so two processes starting at once end with one keyring, the first one's).
  ``rotate`` adds a key and makes it the writing key; ``retire`` removes a key; both rewrite
  the file by rename under ``content.keys.lock``.
- ``:memory:`` databases: one random key that lives as long as the process.

A running process sees a rotation without restart: before a write it looks at the file's
identity (inode, mtime, size) every ``KEYRING_RELOAD_INTERVAL_S``, and a read that meets a key
id it does not know reads the file again at once. Keys never appear in a repr, a log line or
an error (errors name a key by its id).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "ENV_VAR",
    "KEYRING_NAME",
    "KEYRING_RELOAD_INTERVAL_S",
    "ContentCipher",
    "ContentCipherError",
    "ContentKey",
    "ContentKeyMissing",
    "KeyringError",
    "blob_key_id",
    "key_id_of",
    "keyring_path",
    "parse_env_keys",
]

ENV_VAR = "ADRESSAT_CONTENT_KEY"
KEYRING_NAME = "content.keys"
#: how often a writer looks whether another process rotated the keyring file
KEYRING_RELOAD_INTERVAL_S = 2.0
VERSION = 1
KEY_OCTETS = 32
KEY_ID_OCTETS = 4
NONCE_OCTETS = 12
HEADER_OCTETS = 1 + KEY_ID_OCTETS + NONCE_OCTETS
OVERHEAD_OCTETS = HEADER_OCTETS + 16
_VERSION_BYTE = bytes([VERSION])
_ID_LABEL = b"adressat content key id\x00"
_FORMAT = "adressat-content-keys"


class ContentCipherError(Exception):
    """A stored text that cannot be decrypted (wrong row, damaged, unknown format). Names the
    message and the key id, never a key or a text."""


class ContentKeyMissing(ContentCipherError):
    """A stored text names a key that neither the keyring nor the environment holds."""


class KeyringError(Exception):
    """The keyring (file or environment) is unusable; the message names the file or the
    variable, never its content."""


def key_id_of(key: bytes) -> bytes:
    return hashlib.sha256(_ID_LABEL + key).digest()[:KEY_ID_OCTETS]


def blob_key_id(blob: bytes) -> str | None:
    """The key id (hex) a stored text was written under; None for the empty text or what is
    not this format."""
    if len(blob) < OVERHEAD_OCTETS or blob[0] != VERSION:
        return None
    return blob[1:1 + KEY_ID_OCTETS].hex()


@dataclass(frozen=True, slots=True, repr=False)
class ContentKey:
    id: bytes
    key: bytes
    created_at: float | None  # None: not known (a key from the environment)
    source: str  # "file", "env" or "ephemeral"

    def __repr__(self) -> str:  # never the key
        return f"ContentKey(id={self.id_hex}, created_at={self.created_at}, source={self.source})"

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    @classmethod
    def make(cls, key: bytes, created_at: float | None, source: str) -> ContentKey:
        if len(key) != KEY_OCTETS:
            raise KeyringError(f"a content key is {KEY_OCTETS} octets")
        return cls(key_id_of(key), key, created_at, source)


def parse_env_keys(value: str) -> list[bytes]:
    """``ADRESSAT_CONTENT_KEY``'s keys, the writing key first. Raises KeyringError naming
    the variable and the position, never the value."""
    keys: list[bytes] = []
    for n, item in enumerate(value.split(","), 1):
        text = item.strip()
        try:
            if len(text) == 2 * KEY_OCTETS:
                key = bytes.fromhex(text)
            else:
                key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (ValueError, binascii.Error):
            key = b""
        if len(key) != KEY_OCTETS:
            raise KeyringError(f"{ENV_VAR}: key {n} is not {KEY_OCTETS} octets"
                               " in hex (64 digits) or base64")
        keys.append(key)
    return keys


def keyring_path(db_path: str | Path) -> Path:
    return Path(db_path).with_name(KEYRING_NAME)


# --- the keyring file ---------------------------------------------------------------------------
def _encode(keys: Sequence[ContentKey], current: bytes) -> bytes:
    doc = {
        "format": _FORMAT,
        "version": 1,
        "current": current.hex(),
        "keys": [{"id": k.id_hex, "created_at": k.created_at,
                  "key": base64.b64encode(k.key).decode("ascii")} for k in keys],
    }
    return (json.dumps(doc, indent=1) + "\n").encode("ascii")


def _decode(data: bytes, path: Path) -> tuple[list[ContentKey], bytes]:
    try:
        doc = json.loads(data)
        if doc.get("format") != _FORMAT or doc.get("version") != 1:
            raise ValueError
        keys = []
        for item in doc["keys"]:
            key = base64.b64decode(item["key"], validate=True)
            k = ContentKey.make(key, float(item["created_at"]), "file")
            if k.id_hex != item["id"]:
                raise ValueError
            keys.append(k)
        current = bytes.fromhex(doc["current"])
    except (ValueError, KeyError, TypeError, KeyringError, binascii.Error):
        raise KeyringError(f"{path}: not a readable content keyring") from None
    if not keys or current not in {k.id for k in keys}:
        raise KeyringError(f"{path}: no current key")
    return keys, current


def _write_new(path: Path, data: bytes) -> Path:
    """``data`` in a fresh temporary file beside ``path`` (O_EXCL, 0600, fsync'd)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _fsync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_keyring(path: Path, now: float) -> None:
    """A keyring with one new key at ``path``, unless one is there already (then that one
    stays: link() never replaces)."""
    key = ContentKey.make(os.urandom(KEY_OCTETS), now, "file")
    tmp = _write_new(path, _encode([key], key.id))
    try:
        os.link(tmp, path)
    except FileExistsError:
        return  # another process made it first: its key is the key
    finally:
        os.unlink(tmp)
    _fsync_dir(path)


def _read_keyring(path: Path) -> tuple[list[ContentKey], bytes, tuple[int, int, int]]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    keys, current = _decode(b"".join(chunks), path)
    return keys, current, (st.st_ino, st.st_mtime_ns, st.st_size)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@contextmanager
def _keyring_lock(path: Path) -> Iterator[None]:
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- the cipher ---------------------------------------------------------------------------------
class ContentCipher:
    """Encrypts and decrypts stored texts (thread-safe: the key table is replaced whole)."""

    def __init__(
        self,
        keys: Sequence[ContentKey],
        current: bytes,
        *,
        path: Path | None = None,
        identity: tuple[int, int, int] | None = None,
        reload_interval_s: float = KEYRING_RELOAD_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._reload_interval_s = reload_interval_s
        self._clock = clock
        self._reload_lock = threading.Lock()
        self._identity = identity
        self._next_check = clock() + reload_interval_s
        self._set(keys, current)

    def __repr__(self) -> str:
        return f"ContentCipher(current={self.current_id}, keys={len(self._keys)})"

    def _set(self, keys: Sequence[ContentKey], current: bytes) -> None:
        table = {k.id: (k, AESGCM(k.key)) for k in keys}
        if current not in table:
            raise KeyringError("the writing key is not among the keys")
        # one tuple, swapped whole: readers on other threads see the old or the new table
        self._state = (table, current, table[current][1])

    @property
    def _keys(self) -> Mapping[bytes, tuple[ContentKey, AESGCM]]:
        return self._state[0]

    @property
    def current_id(self) -> str:
        return self._state[1].hex()

    @property
    def source(self) -> str:
        table, current, _ = self._state
        return table[current][0].source

    def keys(self) -> list[ContentKey]:
        """Oldest first (as the keyring lists them)."""
        return [k for k, _ in self._keys.values()]

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def ephemeral(cls) -> ContentCipher:
        key = ContentKey.make(os.urandom(KEY_OCTETS), time.time(), "ephemeral")
        return cls([key], key.id)

    @classmethod
    def from_env(cls, value: str) -> ContentCipher:
        keys = [ContentKey.make(k, None, "env") for k in parse_env_keys(value)]
        return cls(keys, keys[0].id)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        environ: Mapping[str, str] | None = None,
        may_create: Callable[[], bool] = lambda: True,
        reload_interval_s: float = KEYRING_RELOAD_INTERVAL_S,
    ) -> ContentCipher:
        """The environment's keys if ``ADRESSAT_CONTENT_KEY`` is set, else the keyring file at
        ``path``, made if absent and ``may_create()`` (False: the database already holds
        encrypted texts, which a new key could never read: KeyringError)."""
        env = os.environ if environ is None else environ
        if env.get(ENV_VAR, "").strip():
            return cls.from_env(env[ENV_VAR])
        if not path.exists():
            if not may_create():
                raise KeyringError(
                    f"{path} is missing but the database holds encrypted texts: restore the"
                    f" keyring from its backup, or give its keys in {ENV_VAR}")
            _create_keyring(path, time.time())
        keys, current, identity = _read_keyring(path)
        return cls(keys, current, path=path, identity=identity,
                   reload_interval_s=reload_interval_s)

    # -- reloading -----------------------------------------------------------------------------
    def reload(self) -> bool:
        """Read the keyring file again if it changed; True if it did."""
        if self.path is None:
            return False
        with self._reload_lock:
            self._next_check = self._clock() + self._reload_interval_s
            identity = _identity(self.path)
            if identity is None or identity == self._identity:
                return False
            keys, current, identity = _read_keyring(self.path)
            self._set(keys, current)
            self._identity = identity
            return True

    # -- the per-message path ------------------------------------------------------------------
    def encrypt(self, text: bytes, message_id: str) -> bytes:
        if not text:
            return b""
        if self.path is not None and self._clock() >= self._next_check:
            self.reload()
        _, current, aead = self._state
        nonce = os.urandom(NONCE_OCTETS)
        return (_VERSION_BYTE + current + nonce
                + aead.encrypt(nonce, text, message_id.encode()))

    def decrypt(self, blob: bytes, message_id: str) -> bytes:
        if not blob:
            return b""
        if len(blob) < OVERHEAD_OCTETS or blob[0] != VERSION:
            raise ContentCipherError(f"message {message_id}: stored text not in a known format")
        key_id = blob[1:1 + KEY_ID_OCTETS]
        entry = self._keys.get(key_id)
        if entry is None and self.reload():
            entry = self._keys.get(key_id)
        if entry is None:
            raise ContentKeyMissing(f"message {message_id}: content key {key_id.hex()} is not"
                                    " in the keyring")
        try:
            return entry[1].decrypt(blob[1 + KEY_ID_OCTETS:HEADER_OCTETS],
                                    blob[HEADER_OCTETS:], message_id.encode())
        except InvalidTag:
            raise ContentCipherError(f"message {message_id}: stored text does not decrypt with"
                                     f" key {key_id.hex()} (damaged, or not this row's)") from None

    def is_current(self, blob: bytes) -> bool:
        return blob[1:1 + KEY_ID_OCTETS] == self._state[1]

    # -- the keyring file's changes (adressat key ...) ------------------------------------------
    def _change(self, edit: Callable[[list[ContentKey], bytes], tuple[list[ContentKey], bytes]]
                ) -> None:
        if self.path is None:
            raise KeyringError(f"the keys come from {ENV_VAR}: change them there (the writing"
                               " key first, the older ones after it, comma-separated)")
        with _keyring_lock(self.path):
            keys, current, _ = _read_keyring(self.path)
            keys, current = edit(keys, current)
            tmp = _write_new(self.path, _encode(keys, current))
            try:
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
            _fsync_dir(self.path)
        self.reload()

    def rotate(self, now: float) -> str:
        """A new key becomes the writing key; the others stay for reading. Its id."""
        made: list[ContentKey] = []

        def edit(keys: list[ContentKey], current: bytes) -> tuple[list[ContentKey], bytes]:
            ids = {k.id for k in keys}
            key = ContentKey.make(os.urandom(KEY_OCTETS), now, "file")
            while key.id in ids:  # 2^-32 per key: never, but a keyring names each key once
                key = ContentKey.make(os.urandom(KEY_OCTETS), now, "file")
            made.append(key)
            return [*keys, key], key.id

        self._change(edit)
        return made[0].id_hex

    def retire(self, key_id: str) -> None:
        """Remove a key that is not the writing key (the caller checked that no row uses it)."""
        want = bytes.fromhex(key_id)

        def edit(keys: list[ContentKey], current: bytes) -> tuple[list[ContentKey], bytes]:
            if want == current:
                raise KeyringError(f"key {key_id} is the writing key: rotate first")
            if want not in {k.id for k in keys}:
                raise KeyringError(f"no key {key_id} in the keyring")
            return [k for k in keys if k.id != want], current

        self._change(edit)
