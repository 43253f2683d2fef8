"""Encryption at rest against the running node (issue 13): texts sent over SMPP (python-smpplib:
GSM 7-bit, UCS-2, a long one as message_payload and one split by UDH) and over HTTP arrive
right on the netsim handsets, and afterwards no file under the data directory (the database,
its -wal and -shm, the keyring, netsim's inbox, the logs: every file, walked) holds any of the
texts in any form the store could have kept them (UTF-8, Latin-1, UCS-2 in both byte orders,
GSM 7-bit septets unpacked and packed at every alignment). A key rotated while the node runs
(``adressat key rotate``, a process of its own) is picked up without restart: a message
written under the old key and sent after the rotation, and messages written under the new
key, are all delivered right."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import smpplib.gsm
from e2e_kit import Esme, close_all, inbox, next_msisdn, wait_for

from adressat.delivery.netsim_adapter import build_parts
from adressat.sms.encodings import gsm7_encode, pack_septets
from adressat.store.content_crypto import ENV_VAR, KEYRING_NAME, blob_key_id
from adressat.testing.server import ServerProcess, adressat

pytestmark = pytest.mark.slow

KEY_RE = re.compile(r"adr_[0-9a-f]{12}_[A-Za-z0-9_-]+")
GSM7 = "CRYPT-GSM7 login code 738261 for Vardcentralen Eken"
UCS2 = "CRYPT-UCS2 Пароль 😀 код 55512 для клиники"
LONG = "CRYPT-LONG " + " ".join(f"sentence {i} of a long secret letter" for i in range(9))
UDH_LONG = "CRYPT-UDHP " + " ".join(f"part text {i} of the split message" for i in range(8))
HTTP = "CRYPT-HTTP password reset 7744 for the clinic portal"
OLD_KEY_LATER = "CRYPT-OLDK written before the rotation, sent after it"
NEW_KEY = "CRYPT-NEWK written under the new writing key"
NEW_KEY_HTTP = "CRYPT-NEWH written under the new key over HTTP"
ALL_TEXTS = [GSM7, UCS2, LONG, UDH_LONG, HTTP, OLD_KEY_LATER, NEW_KEY, NEW_KEY_HTTP]


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_all()


def _needles(text: str) -> set[bytes]:
    out = {text.encode("utf-8"), text.encode("utf-16-be"), text.encode("utf-16-le")}
    try:
        out.add(text.encode("latin-1"))
    except UnicodeEncodeError:
        out.add(text.encode("latin-1", "replace"))
    try:
        septets = gsm7_encode(text)
    except ValueError:
        return out
    out.add(septets)
    for shift in range(8):  # packed, whatever the alignment in a stream: the inner octets
        for fill in range(7):
            out.add(pack_septets(septets[shift:], fill)[1:-1])
    return out


def _files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file()}


def _found(home: Path, texts: list[str]) -> list[tuple[str, str]]:
    needles = {n: t for t in texts for n in _needles(t)}
    return [(name, needles[n][:10]) for name, data in _files(home).items()
            for n in needles if n in data]


def _rows(home: Path) -> dict[str, bytes]:
    with closing(sqlite3.connect(f"file:{home / 'adressat.db'}?mode=ro", uri=True)) as c:
        return {r[0]: bytes(r[1]) for r in c.execute(
            "SELECT id, content FROM messages WHERE account = 'crypt'")}


def _on_air_ok(home: Path, dest: str, mid_content: dict[str, tuple[bytes, int, int]]) -> bool:
    """Every SMS the handset of ``dest`` stored is the one built from the submitted text."""
    want = sorted(hashlib.sha256(p).hexdigest()
                  for mid, (content, dcs, esm) in mid_content.items()
                  for p in build_parts(mid, content, dcs, esm))
    got = sorted(r.content_sha256 for r in inbox(home, dest) if not r.duplicate)
    return got == want


def test_no_text_at_rest_and_a_rotation_while_running(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    home = tmp_path / "home"
    assert adressat(home, "account", "add", "crypt", "--password", "pw").returncode == 0
    out = adressat(home, "account", "key", "add", "crypt")
    assert out.returncode == 0, out.stderr
    api_key = KEY_RE.search(out.stdout).group(0)  # type: ignore[union-attr]
    keys = (home / KEYRING_NAME)
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "100000") as server:
        assert keys.stat().st_mode & 0o777 == 0o600
        http = httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}",
                            headers={"Authorization": f"Bearer {api_key}"}, timeout=10.0)
        esme = Esme(server.port, "crypt", "pw", timeout_s=5.0)
        sent: dict[str, dict[str, tuple[bytes, int, int]]] = {}  # dest -> id -> as stored
        http_ids: set[str] = set()  # their receipts are not deliver_sm

        def smpp(text_bytes: bytes, dcs: int, esm: int = 0, **kw: object) -> str:
            dest = next_msisdn() if not kw.get("dest") else str(kw.pop("dest"))
            fields = dict(data_coding=dcs, esm_class=esm, registered_delivery=1, **kw)
            if len(text_bytes) > 140 and not esm:
                resp = esme.resp(esme.submit(dest, b"", message_payload=text_bytes, **fields))
            else:
                resp = esme.resp(esme.submit(dest, text_bytes, **fields))
            assert resp.status == 0, hex(resp.status)
            mid = resp.message_id.decode()
            sent.setdefault(dest, {})[mid] = (text_bytes, dcs, esm)
            return mid

        def over_http(text: str, **kw: object) -> str:
            dest = next_msisdn()
            r = http.post("/v1/messages", json={"to": "+" + dest, "from": "Clinic",
                                                "text": text, **kw})
            assert r.status_code == 202, r.text
            mid = r.json()["id"]
            http_ids.add(mid)
            sent.setdefault(dest, {})[mid] = (smpplib.gsm.gsm_encode(text), 0, 0)
            return mid

        smpp(smpplib.gsm.gsm_encode(GSM7), 0)
        smpp(UCS2.encode("utf-16-be"), 8)
        smpp(smpplib.gsm.gsm_encode(LONG), 0)
        parts, _, esm = smpplib.gsm.make_parts(UDH_LONG, encoding=0)
        dest = next_msisdn()
        for p in parts:
            smpp(p, 0, esm, dest=dest)
        over_http(HTTP)
        # written now under the first key, due after the rotation
        later = (datetime.now(UTC) + timedelta(seconds=6)).isoformat()
        old_mid = over_http(OLD_KEY_LATER, send_at=later)
        first_key = blob_key_id(_rows(home)[old_mid])
        assert first_key is not None

        out = adressat(home, "key", "rotate")
        assert out.returncode == 0, out.stderr
        new_key = re.search(r"key ([0-9a-f]{8})", out.stdout).group(1)  # type: ignore[union-attr]
        assert new_key != first_key
        # the node sees the new keyring by itself (within a few seconds): probe until a
        # message is written under the new key
        def written_under_new_key() -> bool:
            mid = smpp(smpplib.gsm.gsm_encode(NEW_KEY), 0)
            return blob_key_id(_rows(home)[mid]) == new_key
        assert wait_for(written_under_new_key, 20, 0.5)
        new_http = over_http(NEW_KEY_HTTP)
        assert blob_key_id(_rows(home)[new_http]) == new_key
        assert blob_key_id(_rows(home)[old_mid]) == first_key

        # every message delivered, each SMS on the handset exactly what was submitted
        assert wait_for(lambda: all(_on_air_ok(home, d, m) for d, m in sent.items()), 40, 0.3), {
            d: (len(inbox(home, d)), len(m)) for d, m in sent.items()}
        smpp_ids = [mid for m in sent.values() for mid in m if mid not in http_ids]
        missing = lambda: [i for i in smpp_ids if not esme.receipts_for(i)]  # noqa: E731
        assert esme.pump(lambda: not missing(), 20), (missing(), len(smpp_ids),
                                                       len(esme.delivered))

        # the texts are still stored (not purged), each under a key of the keyring
        rows = _rows(home)
        assert all(rows[m] for d in sent.values() for m in d)
        assert {blob_key_id(c) for c in rows.values()} == {first_key, new_key}
        # the search finds what is stored in the clear (the numbers), never a text
        numbers = {d.encode() for d in sent}
        db_files = b"".join(v for k, v in _files(home).items() if k.startswith("adressat.db"))
        assert all(n in db_files for n in numbers)
        assert _found(home, ALL_TEXTS) == []
        listing = adressat(home, "key", "list", "--json")
        assert listing.returncode == 0, listing.stderr
        assert new_key in listing.stdout and first_key in listing.stdout
        http.close()
    # and once the node has stopped (WAL checkpointed, files closed)
    assert _found(home, ALL_TEXTS) == []
    assert {p.name for p in home.rglob("*.tmp")} == set()


def test_the_search_finds_texts_stored_in_the_clear(tmp_path: Path) -> None:
    """The check above can fail: each text stored plain in a WAL database, in one of the
    forms searched for (packed GSM 7-bit a few septets into a stream, too), is found."""
    home = tmp_path / "home"
    home.mkdir()
    forms = [GSM7.encode(), UCS2.encode("utf-16-le"), b"\x00\x07" + LONG.encode("latin-1"),
             pack_septets(b"\x01\x02\x03" + gsm7_encode(UDH_LONG), 3),
             HTTP.encode("utf-16-be")]
    with closing(sqlite3.connect(home / "adressat.db")) as c:
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("CREATE TABLE messages (content BLOB)")
        c.executemany("INSERT INTO messages VALUES (?)", [(f,) for f in forms])
        c.commit()
        found = {t for _, t in _found(home, ALL_TEXTS)}
    assert found == {t[:10] for t in (GSM7, UCS2, LONG, UDH_LONG, HTTP)}
