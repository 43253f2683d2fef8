"""The HTTP messages API against the running node, with httpx (a client we did not write) and
curl: 202 only after the commit and delivered to the right handset; keys, 401 and another
account's messages; every kind of bad input refused with a problem naming the field and
nothing created; Idempotency-Key (20 at once create one message); batch; client_reference;
cancel; throttling; the OpenAPI document and the docs page."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_kit import inbox, next_msisdn, wait_for

from adressat.core.model import CANARY_ACCOUNT
from adressat.testing.server import ServerProcess, adressat

pytestmark = pytest.mark.slow

KEY_RE = re.compile(r"adr_[0-9a-f]{12}_[A-Za-z0-9_-]+")


@dataclass
class Node:
    server: ServerProcess
    home: Path
    url: str
    key: str  # account demo
    other_key: str  # account other
    slow_key: str  # account slow: 2 messages per second

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0)

    def count(self, where: str = "1=1", args: tuple[Any, ...] = ()) -> int:
        """The senders' messages (the canary prober's, which come every few seconds on
        their own, are not counted: a test that counted them failed when one came)."""
        conn = sqlite3.connect(f"file:{self.home / 'adressat.db'}?mode=ro", uri=True)
        try:
            return int(conn.execute(
                f"SELECT count(*) FROM messages WHERE account != ? AND ({where})",  # noqa: S608
                (CANARY_ACCOUNT, *args)).fetchone()[0])
        finally:
            conn.close()


def new_key(home: Path, account: str) -> str:
    out = adressat(home, "account", "key", "add", account)
    assert out.returncode == 0, out.stderr
    m = KEY_RE.search(out.stdout)
    assert m, out.stdout
    return m.group(0)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    home = tmp_path_factory.mktemp("http") / "home"
    for name, extra in (("demo", ()), ("other", ()), ("slow", ("--throughput", "2"))):
        out = adressat(home, "account", "add", name, "--password", "pw", *extra)
        assert out.returncode == 0, out.stderr
    keys = [new_key(home, a) for a in ("demo", "other", "slow")]
    out = adressat(home, "account", "callbacks", "demo", "--allow-host", "127.0.0.1")
    assert out.returncode == 0, out.stderr
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "100000") as server:
        yield Node(server, home, f"http://127.0.0.1:{server.http_port}", *keys)


def body(to: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"to": "+" + (to or next_msisdn()), "from": "Clinic", "text": "your code is 1234",
            **fields}


def test_a_message_is_accepted_after_its_commit_and_reaches_its_handset(node: Node) -> None:
    number = next_msisdn()
    with node.client() as c:
        r = c.post("/v1/messages", json=body(number, client_reference="order-1"))
        assert r.status_code == 202, r.text
        a = r.json()
        assert a["to"] == "+" + number and a["parts"] == 1 and a["state"] == "accepted"
        # durable before the answer (I1): the row is there the moment the 202 is
        assert node.count("id = ? AND destination = ?", (a["id"], number)) == 1
        got = wait_for(lambda: [r for r in inbox(node.home, number)], 20)
        assert [g.smsc_message_id for g in got] == [a["id"]]
        view = wait_for(lambda: (v := c.get(f"/v1/messages/{a['id']}").json())["final"] and v,
                        20)
        assert view["state"] == "delivered" and view["route"] == "netsim"
        assert view["to"] == "+" + number and view["client_reference"] == "order-1"
        assert view["parts"] == 1 and view["error"] is None


def test_long_and_unicode_texts_are_counted_in_parts(node: Node) -> None:
    with node.client() as c:
        r = c.post("/v1/messages", json=body(text="x" * 161))
        assert r.status_code == 202 and r.json()["parts"] == 2
        r = c.post("/v1/messages", json=body(text="привет " * 11))  # UCS-2: 70 in one, 67 per part
        assert r.status_code == 202 and r.json()["parts"] == 2
        r = c.post("/v1/messages", json={"to": "+" + next_msisdn(), "from": "+46700000001",
                                         "binary": "0102ff", "data_coding": 4})
        assert r.status_code == 202 and r.json()["parts"] == 1


def test_keys_are_required_and_accounts_see_only_their_own(node: Node) -> None:
    with node.client() as c:
        mid = c.post("/v1/messages", json=body()).json()["id"]
    with httpx.Client(base_url=node.url, timeout=10) as anon:
        for headers in ({}, {"Authorization": "Bearer nonsense"},
                        {"Authorization": "Bearer adr_000000000000_" + "A" * 43},
                        {"Authorization": f"Bearer {node.key[:-2]}xx"},
                        {"Authorization": f"Basic {node.key}"}):
            r = anon.post("/v1/messages", json=body(), headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"] == "/problems/unauthorized"
            assert "WWW-Authenticate" in r.headers
    with node.client(node.other_key) as other:
        assert other.get(f"/v1/messages/{mid}").status_code == 404
        assert other.delete(f"/v1/messages/{mid}").status_code == 404
    with node.client() as c:
        assert c.get(f"/v1/messages/{mid}").status_code == 200


def test_a_revoked_key_stops_working(node: Node) -> None:
    key = new_key(node.home, "demo")
    with node.client(key) as c:
        assert c.post("/v1/messages", json=body()).status_code == 202
        key_id = key.split("_")[1]
        out = adressat(node.home, "account", "key", "revoke", "demo", key_id)
        assert out.returncode == 0, out.stderr
        assert wait_for(lambda: c.post("/v1/messages", json=body()).status_code == 401, 10)
    listed = adressat(node.home, "account", "key", "list", "demo").stdout
    assert key_id in listed and key.split("_", 2)[2] not in listed  # never the secret


BAD_INPUT: list[tuple[str, Any, int, str, str]] = [
    # (what, body (dict, or raw bytes), status, problem type, field named)
    ("malformed JSON", b'{"to": "+4670', 400, "malformed-json", ""),
    ("not an object", b'[1, 2]', 422, "invalid-request", "body"),
    ("number as int", {"to": 46701234567, "from": "A", "text": "t"}, 422, "invalid-request",
     "to"),
    ("unknown field", {**body("46701000999"), "colour": "red"}, 422, "invalid-request",
     "colour"),
    ("missing from", {"to": "+46701000999", "text": "t"}, 422, "invalid-request", "from"),
    ("text and binary", {**body("46701000999"), "binary": "00"}, 422, "invalid-request",
     "body"),
    ("not a number", body("notanumber"), 422, "invalid-destination", "to"),
    ("too long", body("46701000999", text="x" * 40000), 422, "invalid-request", "text"),
    ("too long in UCS-2", body("46701000999", text="ж" * 20000), 422, "message-too-long",
     "text"),
    ("priority", body("46701000999", priority=9), 422, "invalid-request", "priority"),
    ("send_at without zone", body("46701000999", send_at="2030-01-01T00:00:00"), 422,
     "invalid-request", "send_at"),
    ("validity zero", body("46701000999", validity_s=0), 422, "invalid-request",
     "validity_s"),
    ("callback not http", body("46701000999", callback_url="ftp://127.0.0.1/x"), 422,
     "callback-url-not-allowed", ""),
    ("callback elsewhere", body("46701000999", callback_url="http://10.0.0.1/x"), 422,
     "callback-url-not-allowed", ""),
    ("bad event", body("46701000999", callback_url="http://127.0.0.1:1/x",
                       callback_events=["nope"]), 422, "invalid-request", "callback_events"),
    ("binary not hex", {"to": "+46701000999", "from": "A", "binary": "zz"}, 422,
     "invalid-request", "binary"),
    ("bad source", body("46701000999", **{"from": "ThisNameIsTooLong"}), 422,
     "invalid-source", "from"),
]


@pytest.mark.parametrize("what,payload,status,kind,field", BAD_INPUT,
                         ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_refused_with_the_field_named_and_nothing_created(
        node: Node, what: str, payload: Any, status: int, kind: str, field: str) -> None:
    before = node.count()
    with node.client() as c:
        if isinstance(payload, bytes):
            r = c.post("/v1/messages", content=payload,
                       headers={"Content-Type": "application/json"})
        else:
            r = c.post("/v1/messages", json=payload)
    assert r.status_code == status, (what, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    p = r.json()
    assert p["type"] == f"/problems/{kind}" and p["status"] == status and p["title"]
    if field and kind == "invalid-request":
        assert field in {e["field"].split(".")[0] for e in p["errors"]}, p
    elif field:
        assert p["detail"] == field, p
    assert "1234" not in r.text and "46701000999" not in r.text  # no text, no number (I6)
    assert node.count() == before


def test_oversized_and_non_json_bodies(node: Node) -> None:
    before = node.count()
    with node.client() as c:
        r = c.post("/v1/messages", content=b"{" + b" " * (300 * 1024) + b"}",
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["type"] == "/problems/body-too-large"
        r = c.post("/v1/messages", content=b"to=1", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
    assert node.count() == before


def test_the_same_idempotency_key_creates_one_message(node: Node) -> None:
    b = body()
    with node.client() as c:
        r1 = c.post("/v1/messages", json=b, headers={"Idempotency-Key": "k-1"})
        r2 = c.post("/v1/messages", json=b, headers={"Idempotency-Key": "k-1"})
        assert r1.status_code == r2.status_code == 202
        assert r1.json() == r2.json() and r2.headers.get("Idempotent-Replayed") == "true"
        r3 = c.post("/v1/messages", json={**b, "text": "another"},
                    headers={"Idempotency-Key": "k-1"})
        assert r3.status_code == 422 and r3.json()["type"] == "/problems/idempotency-key-reused"
        # keys are per account: another account's same key is its own
        with node.client(node.other_key) as o:
            r4 = o.post("/v1/messages", json=b, headers={"Idempotency-Key": "k-1"})
            assert r4.status_code == 202 and r4.json()["id"] != r1.json()["id"]
    assert node.count("destination = ?", (b["to"][1:],)) == 2


def test_twenty_at_once_with_one_key_create_one_message(node: Node) -> None:
    b = body()

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=node.url, timeout=10,
                                     headers={"Authorization": f"Bearer {node.key}",
                                              "Idempotency-Key": "burst-1"}) as c:
            return await asyncio.gather(*(c.post("/v1/messages", json=b) for _ in range(20)))

    answers = asyncio.run(run())
    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["id"] for r in answers}) == 1
    assert node.count("destination = ?", (b["to"][1:],)) == 1


def test_an_idempotency_key_survives_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert adressat(home, "account", "add", "demo", "--password", "pw").returncode == 0
    key = new_key(home, "demo")
    b = body()
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "restart-1"}
    with ServerProcess(home, None, "--quiet-network") as server:
        first = httpx.post(f"http://127.0.0.1:{server.http_port}/v1/messages", json=b,
                           headers=headers, timeout=10)
        assert first.status_code == 202
        server.kill()  # kill -9 right after the answer
    with ServerProcess(home, None, "--quiet-network") as server:
        again = httpx.post(f"http://127.0.0.1:{server.http_port}/v1/messages", json=b,
                           headers=headers, timeout=10)
        assert again.status_code == 202 and again.json() == first.json()
    conn = sqlite3.connect(home / "adressat.db")
    assert conn.execute("SELECT count(*) FROM messages WHERE destination = ?",
                        (b["to"][1:],)).fetchone()[0] == 1


def test_a_batch_is_one_result_per_recipient(node: Node) -> None:
    good = [next_msisdn() for _ in range(3)]
    with node.client() as c:
        r = c.post("/v1/messages/batch",
                   json={"to": ["+" + n for n in good] + ["bogus", "+" + good[0]],
                         "from": "Shop", "text": "your parcel is on its way"})
        assert r.status_code == 202, r.text
        res = r.json()
        assert res["accepted"] == 3 and res["refused"] == 2
        assert [x["status"] for x in res["results"]] == [202, 202, 202, 422, 422]
        assert res["results"][3]["problem"]["type"] == "/problems/invalid-destination"
        for n, x in zip(good, res["results"], strict=False):
            assert node.count("id = ? AND destination = ?", (x["id"], n)) == 1
        r = c.post("/v1/messages/batch", json={"to": ["+4670"] * 1001, "from": "Shop",
                                               "text": "t"})
        assert r.status_code == 422 and "to" in {e["field"] for e in r.json()["errors"]}
        r = c.post("/v1/messages/batch", json={"to": ["bogus"], "from": "Shop", "text": "t"})
        assert r.status_code == 422 and r.json()["type"] == "/problems/no-recipient-accepted"


def test_messages_by_client_reference_and_cancel(node: Node) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with node.client() as c:
        ids = [c.post("/v1/messages", json=body(client_reference="batch-7", send_at=later))
               .json()["id"] for _ in range(2)]
        with node.client(node.other_key) as o:  # the same reference, another account
            o.post("/v1/messages", json=body(client_reference="batch-7"))
        listed = c.get("/v1/messages", params={"client_reference": "batch-7"}).json()
        assert sorted(m["id"] for m in listed["messages"]) == sorted(ids)
        assert c.get("/v1/messages").status_code == 422
        r = c.delete(f"/v1/messages/{ids[0]}")
        assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
        assert c.delete(f"/v1/messages/{ids[0]}").status_code == 409
        assert c.get(f"/v1/messages/{ids[0]}").json()["state"] == "cancelled"
        assert c.get("/v1/messages/nosuchid").status_code == 404


def test_an_account_over_its_throughput_gets_429_with_retry_after(node: Node) -> None:
    with node.client(node.slow_key) as c:
        answers = [c.post("/v1/messages", json=body()) for _ in range(6)]
    codes = [r.status_code for r in answers]
    assert 202 in codes and 429 in codes, codes
    limited = next(r for r in answers if r.status_code == 429)
    assert limited.json()["type"] == "/problems/throttled"
    assert int(limited.headers["Retry-After"]) >= 1


def test_a_partner_account_sends_only_to_its_ranges(node: Node) -> None:
    out = adressat(node.home, "account", "add", "peer", "--password", "pw", "--partner",
                   "--ranges", "4670")
    assert out.returncode == 0, out.stderr
    with node.client(new_key(node.home, "peer")) as c:
        before = node.count()
        r = c.post("/v1/messages", json=body("4915112345678"))
        assert r.status_code == 422, r.text
        assert r.json()["type"] == "/problems/destination-not-allowed"
        assert node.count() == before
        assert c.post("/v1/messages", json=body()).status_code == 202


def test_curl_sends_a_message(node: Node) -> None:
    curl = shutil.which("curl")
    assert curl, "curl is needed (scripts/test installs it)"
    out = subprocess.run(
        [curl, "-sS", "-X", "POST", f"{node.url}/v1/messages", "-H",
         f"Authorization: Bearer {node.key}", "-H", "Content-Type: application/json",
         "-d", json.dumps(body()), "-w", "\n%{http_code}"],
        capture_output=True, text=True, timeout=20, check=False)
    text, code = out.stdout.rsplit("\n", 1)
    assert code == "202", out
    assert json.loads(text)["state"] == "accepted"


def test_the_openapi_document_is_served_and_describes_the_api(node: Node) -> None:
    doc = httpx.get(f"{node.url}/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/v1/messages", "/v1/messages/batch", "/v1/messages/{id}"}
    req = doc["components"]["schemas"]["MessageRequest"]
    assert {"to", "from", "text", "binary", "callback_url"} <= set(req["properties"])
    assert req["additionalProperties"] is False
    page = httpx.get(f"{node.url}/docs", timeout=10)
    assert page.status_code == 200 and "/v1/messages/batch" in page.text
    r = httpx.get(f"{node.url}/problems/invalid-destination", follow_redirects=False,
                  timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "/docs#problem-invalid-destination"
