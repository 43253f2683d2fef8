"""The cost of encryption at rest (store/content_crypto.py); prints one JSON line.

- ``encrypt_decrypt_us``: one encrypt plus one decrypt of a 160-octet text (AES-256-GCM, the
  message id as associated data), per message, median of several runs;
- ``store_*``: SQLite store (a real file, synchronous=FULL) inserting messages in group
  commits of 100 and claiming them, in messages per second, with the real cipher and with
  one that stores texts as they are (the cost the store pays, on the same disk).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from adressat.core.model import Message, State
from adressat.store.content_crypto import ContentCipher
from adressat.store.sqlite import SqliteStore

TEXT = b"Your one-time code for the clinic is 493817. It is valid for 5 minutes. " * 2 + b"x" * 14
N_CRYPTO = 20_000
N_STORE = 4_000
BATCH = 100


class _Plain(ContentCipher):
    """Texts as they are (the bench's baseline only)."""

    def encrypt(self, text: bytes, message_id: str) -> bytes:
        return text

    def decrypt(self, blob: bytes, message_id: str) -> bytes:
        return blob


def _crypto_us() -> float:
    c = ContentCipher.ephemeral()
    ids = [f"{i:032x}" for i in range(N_CRYPTO)]
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in ids:
            c.decrypt(c.encrypt(TEXT, i), i)
        runs.append((time.perf_counter() - t0) / N_CRYPTO * 1e6)
    return statistics.median(runs)


def _store_rate(cipher: ContentCipher) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        s = SqliteStore(Path(d) / "adressat.db", cipher=cipher)
        now = time.time()
        msgs = [Message(id=os.urandom(16).hex(), account="bench", source_addr="Clinic",
                        destination=f"4670{i:07d}", content=TEXT, submitted_at=now,
                        expires_at=now + 3600, state=State.ROUTED, route="netsim",
                        next_attempt_at=now, tag=b"\x01" * 16)
                for i in range(N_STORE)]
        t0 = time.perf_counter()
        for k in range(0, N_STORE, BATCH):
            s.insert_messages(msgs[k:k + BATCH])
        insert = N_STORE / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = 0
        while got < N_STORE:
            got += len(s.claim_due(BATCH, now + 1, 30, "bench"))
        claim = N_STORE / (time.perf_counter() - t0)
        s.close()
    return insert, claim


def main() -> None:
    crypto = _crypto_us()
    plain = [_store_rate(_Plain.ephemeral()) for _ in range(3)]
    enc = [_store_rate(ContentCipher.ephemeral()) for _ in range(3)]
    med = lambda xs, i: round(statistics.median(x[i] for x in xs))  # noqa: E731
    print(json.dumps({
        "bench": "content_crypto",
        "text_octets": len(TEXT),
        "encrypt_decrypt_us": round(crypto, 2),
        "store_insert_per_s_plain": med(plain, 0),
        "store_insert_per_s_encrypted": med(enc, 0),
        "store_claim_per_s_plain": med(plain, 1),
        "store_claim_per_s_encrypted": med(enc, 1),
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
