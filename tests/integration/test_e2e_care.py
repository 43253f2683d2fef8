"""The care console and the operator's views against the running node (docs/care.md).

One node for the module (quiet network, 1,000 subscribers, breaker off so that a fault keeps
sending, retries 10 minutes apart so that a deferred message stays in the queue). The truth a
test judges by is not adressat's word: which serving node a number is on comes from the
simulated register built with the node's seed, and who received a message from the
handsets' inbox.

* the banner's first-message commands work when pasted as printed;
* ``--home`` before or after the subcommand; a ``--home`` with no store is refused (exit 2,
  one line) and no store is created;
* ``message show`` of a delivered message lists its attempt, identities and receipt;
* ``care lookup`` finds exactly the messages to and from a number;
* after ``fault on swapping_node --rate 1`` a complaint finds the misdelivered message, the
  masked intended number, route and node, and the sender's other messages that went the same
  way, per account; a complaint with nothing on record is "unexplained" and counted;
* every bad input (unknown id, malformed number, times out of range, bad JSON) gets a clear
  error and changes nothing;
* the queue shape sums to the unfinished count.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_kit import inbox, wait_for

from adressat.app.delivery_process import netsim_settings
from adressat.app.settings import Settings
from adressat.netsim.register import Register
from adressat.store.sqlite import SqliteStore
from adressat.testing.esme import EsmeClient
from adressat.testing.server import ServerProcess, adressat

pytestmark = pytest.mark.slow

SUBSCRIBERS = 1000
FIRST = 46701000000
FINAL = {"DELIVERED", "EXPIRED", "UNDELIVERABLE", "REJECTED", "QUARANTINED", "CANCELLED"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("care") / "home"
    for name in ("acme", "beta"):
        assert adressat(home, "account", "add", name, "--password", "pw").returncode == 0
    server = ServerProcess(home, None, "--quiet-network", "--subscribers", str(SUBSCRIBERS),
                           "--breaker-alarms-threshold", "0", "--retry-delays-s", "600")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _nodes() -> dict[str, list[str]]:
    """Numbers per serving node, from the simulated register itself (seed 1)."""
    reg = Register(netsim_settings(Settings(subscribers=SUBSCRIBERS, netsim_realistic=False)))
    out: dict[str, list[str]] = {}
    for i in range(100, SUBSCRIBERS):
        out.setdefault(reg.node_of(i), []).append(str(FIRST + i))
    return out


NODES = _nodes()


def send(server: ServerProcess, account: str, dests: list[str], source: str = "Clinic",
         ton: int = 5, npi: int = 0) -> list[str]:
    async def go() -> list[str]:
        c = EsmeClient("127.0.0.1", server.port, account, "pw", window=1, source_addr=source,
                       source_ton=ton, source_npi=npi)
        await c.connect(timeout_s=10)
        try:
            ids = []
            for d in dests:
                r = await c.submit(d, b"care test")
                assert int(r.command_status) == 0
                ids.append(str(r.fields["message_id"]))
            return ids
        finally:
            await c.close()

    return asyncio.run(go())


def http(server: ServerProcess, method: str, path: str,
         body: bytes | None = None) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", data=body,
                                 method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
            return int(r.status), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), json.loads(e.read())


def history(server: ServerProcess, mid: str) -> dict[str, object]:
    code, h = http(server, "GET", f"/v1/care/messages/{mid}")
    assert code == 200, h
    return h


def wait_final(server: ServerProcess, ids: list[str], timeout_s: float = 20.0) -> None:
    assert wait_for(lambda: all(history(server, i)["state"] in FINAL for i in ids), timeout_s)


def cli_json(server: ServerProcess, *args: str) -> dict[str, object]:
    out = adressat(server.home, *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def complaints(server: ServerProcess) -> list[object]:
    store = SqliteStore(server.home / "adressat.db")
    try:
        return list(store.complaints_since(0, 10_000))
    finally:
        store.close()


def metric(server: ServerProcess, verdict: str) -> float:
    code, body = server.http_get("/metrics")
    assert code == 200
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("adressat_care_complaints_total{") and f'verdict="{verdict}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- the CLI's answers to mistakes -------------------------------------------------------------
def test_banner_commands_work_when_pasted(node: ServerProcess) -> None:
    log = node.log_path.read_text()
    lines = log[log.index("First message"):].splitlines()[1:4]
    assert len(lines) == 3 and "account add demo" in lines[0] and " send " in lines[1]
    results = []
    for line in lines:
        cmd = line.strip()
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60,  # noqa: S602 - the banner's own line
                             check=False)
        results.append(out)
    assert results[0].returncode == 0 and "account demo added" in results[0].stdout
    assert results[1].returncode == 0, results[1].stdout + results[1].stderr
    assert "receipt DELIVRD" in results[1].stdout
    mid = re.search(r"submitted ([0-9a-f]+)", results[1].stdout)
    assert mid is not None and history(node, mid.group(1))["state"] == "DELIVERED"
    assert json.loads(results[2].stdout)["lost"] == 0


def test_home_before_or_after_and_no_store_refused(node: ServerProcess, tmp_path: Path) -> None:
    after = subprocess.run(
        [sys.executable, "-m", "adressat.cli", "fault", "list",
         "--json", "--home", str(node.home)], capture_output=True, text=True, timeout=60,
        check=False)
    assert after.returncode == 0 and json.loads(after.stdout), after.stderr
    for args in (("care", "lookup", "+46701000001", "--json"), ("queue", "--json"),
                 ("incident", "report", "--from", "0", "--to", "1", "--json")):
        out = subprocess.run([sys.executable, "-m", "adressat.cli", *args, "--home",
                              str(node.home)], capture_output=True, text=True, timeout=60,
                             check=False)
        assert out.returncode == 0 and isinstance(json.loads(out.stdout), dict), (args, out)
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (("audit",), ("status",), ("queue",), ("fault", "list"), ("route", "list"),
                 ("account", "list"), ("message", "show", "x"), ("care", "lookup", "+46701000001"),
                 ("care", "complaint", "+46701000001", "--about", "0", "--sender", "X"),
                 ("incident", "report", "--from", "0", "--to", "1")):
        out = adressat(empty, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert len(out.stderr.splitlines()) == 1 and "no adressat store" in out.stderr, args
        assert out.stdout == ""
    assert not (empty / "adressat.db").exists()  # nothing created, nothing changed


# --- message show and lookup -------------------------------------------------------------------
def test_message_show_of_a_delivered_message(node: ServerProcess) -> None:
    [mid] = send(node, "acme", [NODES["msc-1"][0]])
    wait_final(node, [mid])
    h = cli_json(node, "message", "show", mid)
    assert h["state"] == "DELIVERED" and "content" not in h and "care test" not in json.dumps(h)
    [att] = h["attempts"]  # type: ignore[misc]
    ids = h["identities"]
    assert att["outcome"] == "DELIVERED" and att["route"] == "netsim"
    assert att["serving_node"] == "msc-1"  # the register's node of that number
    assert att["imsi"] == ids["delivered_imsi"] == ids["addressed_imsi"]  # type: ignore[index]
    assert ids["delivered_msisdn"] == NODES["msc-1"][0]  # type: ignore[index]
    rec = [r for r in inbox(node.home) if r.smsc_message_id == mid]
    assert [r.imsi for r in rec] == [att["imsi"]]  # the handset's own word
    assert h["receipt"]["state"] == "DELIVERED"  # type: ignore[index]
    assert {"ACCEPTED", "DISPATCHED", "DELIVERED"} <= {
        e["state"] for e in h["history"]}  # type: ignore[union-attr]
    text = adressat(node.home, "message", "show", mid)
    assert text.returncode == 0 and "attempt 1:" in text.stdout and "DELIVERED" in text.stdout


def test_lookup_finds_exactly_the_messages_to_and_from_a_number(node: ServerProcess) -> None:
    a, b, person = NODES["msc-1"][1], NODES["msc-1"][2], NODES["msc-1"][3]
    to_a = send(node, "acme", [a, a])
    to_b = send(node, "beta", [b])
    from_person = send(node, "beta", [b], source=person, ton=1, npi=1)
    wait_final(node, to_a + to_b + from_person)
    got = cli_json(node, "care", "lookup", "+" + a)
    assert sorted(m["id"] for m in got["messages"]) == sorted(to_a)  # type: ignore[union-attr]
    assert all(m["direction"] == "to" and m["sender"] == "Clinic"  # type: ignore[index]
               and m["serving_node"] == "msc-1" and m["state"] == "DELIVERED"
               for m in got["messages"])  # type: ignore[union-attr]
    got = cli_json(node, "care", "lookup", person)
    [m] = got["messages"]  # type: ignore[misc]
    assert m["id"] == from_person[0] and m["direction"] == "from"
    assert m["destination"] == f"+{b[:4]}***{b[-4:]}"  # someone else's number: masked
    code, over_http = http(node, "GET", f"/v1/care/lookup?number=%2B{b}")
    assert code == 200
    assert sorted(x["id"] for x in over_http["messages"]) == sorted(  # type: ignore[union-attr]
        to_b + from_person)
    # a window before them finds none
    got = cli_json(node, "care", "lookup", a, "--until", str(time.time() - 3600))
    assert got["messages"] == []


# --- complaints --------------------------------------------------------------------------------
def test_complaint_finds_the_misdelivered_message(node: ServerProcess) -> None:
    on2 = NODES["msc-2"][:4]
    assert adressat(node.home, "fault", "on", "swapping_node", "--rate", "1").returncode == 0
    time.sleep(1.5)  # noqa: ASYNC251 - the node applies a fault within a second (fault_poll)
    try:
        acme = send(node, "acme", on2[:3])
        beta = send(node, "beta", on2[3:])
        other_node = send(node, "acme", NODES["msc-3"][:1])  # same sender, another node
        wait_final(node, acme + beta + other_node)
    finally:
        assert adressat(node.home, "fault", "off", "swapping_node").returncode == 0
    assert all(history(node, i)["state"] == "QUARANTINED" for i in acme + beta)
    dest = dict(zip(acme + beta, on2, strict=True))
    # who received acme's first message: the handsets' evidence
    [rec] = [r for r in inbox(node.home) if r.smsc_message_id == acme[0]]
    complainant = rec.msisdn
    assert complainant != dest[acme[0]]
    before = len(complaints(node))
    code, ans = http(node, "POST", "/v1/care/complaints", json.dumps(
        {"number": "+" + complainant, "about": time.time(), "sender": "Clinic"}).encode())
    assert code == 201, ans
    assert ans["verdict"] == "misdelivered"
    m = ans["message"]
    # the message found reached the complainant's handset, per the inbox
    got = [r for r in inbox(node.home) if r.smsc_message_id == m["id"]]  # type: ignore[index]
    assert [r.msisdn for r in got] == [complainant]
    intended = dest[m["id"]]  # type: ignore[index]
    assert m["intended_for"] == f"+{intended[:4]}***{intended[-4:]}"  # type: ignore[index]
    assert intended not in json.dumps(ans)  # masked everywhere
    assert (ans["route"], ans["serving_node"]) == ("netsim", "msc-2")
    same = ans["same_way"]["accounts"]  # type: ignore[index]
    listed = {x["id"] for xs in same.values() for x in xs}
    assert listed == set(acme + beta) - {m["id"]}  # type: ignore[index]
    assert {x["id"] for x in same["beta"]} == set(beta)
    assert len(complaints(node)) == before + 1
    # a lookup of the complainant shows what reached the handset, its destination masked
    seen = cli_json(node, "care", "lookup", complainant)["messages"]
    reached = [x for x in seen if x["direction"] == "reached"]  # type: ignore[union-attr,index]
    assert m["id"] in [x["id"] for x in reached]  # type: ignore[index]
    assert intended not in json.dumps(seen)
    # the CLI gives the same verdict and records it too
    cli = cli_json(node, "care", "complaint", complainant, "--about", str(time.time()),
                   "--sender", "Clinic")
    assert cli["verdict"] == "misdelivered" and cli["message"]["id"] == m["id"]  # type: ignore[index]
    assert len(complaints(node)) == before + 2


def test_complaint_with_nothing_on_record_is_unexplained_and_counted(
        node: ServerProcess) -> None:
    quiet = NODES["msc-3"][-1]  # nobody sent anything to it
    before, counted = len(complaints(node)), metric(node, "unexplained")
    out = adressat(node.home, "care", "complaint", quiet, "--about", str(time.time()),
                   "--sender", "Clinic")
    assert out.returncode == 0 and "UNEXPLAINED" in out.stdout, out.stderr
    rows = complaints(node)
    assert len(rows) == before + 1
    last = rows[-1]
    assert last.verdict == "unexplained" and last.number == quiet and last.message_id is None  # type: ignore[attr-defined]
    assert last.route == "netsim"  # the sender's traffic in the window  # type: ignore[attr-defined]
    assert wait_for(lambda: metric(node, "unexplained") == counted + 1, 5)


def test_bad_input_gets_a_clear_error_and_changes_nothing(node: ServerProcess) -> None:
    before = len(complaints(node))
    future = str(time.time() + 86400)
    for args in (("message", "show", "no-such-id"),
                 ("care", "lookup", "12"),
                 ("care", "lookup", "+4670100000x"),
                 ("care", "lookup", "+46701000001", "--since", future),
                 ("care", "lookup", "+46701000001", "--since", "-1"),
                 ("care", "lookup", "+46701000001", "--since", "yesterday"),
                 ("care", "complaint", "nonsense", "--about", "0", "--sender", "Clinic"),
                 ("care", "complaint", "+46701000001", "--about", future, "--sender", "C"),
                 ("care", "complaint", "+46701000001", "--about", "1969-12-31T00:00:00Z",
                  "--sender", "C"),
                 ("care", "complaint", "+46701000001", "--about", "0",
                  "--sender", "far too long sender id")):
        out = adressat(node.home, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == "", args
    for path in ("/v1/care/messages/no-such-id",):
        code, body = http(node, "GET", path)
        assert code == 404 and body["status"] == 404 and "detail" in body
    for path in ("/v1/care/lookup?number=12", "/v1/care/lookup?number=%2B46701000001&since=-5",
                 f"/v1/care/lookup?number=%2B46701000001&since={future}",
                 "/v1/care/lookup"):
        code, body = http(node, "GET", path)
        assert code == 400 and body["status"] == 400 and body["detail"], path
    for raw in (b"{not json", b"[1, 2]", b'{"number": "+46701000001"}',
                b'{"number": "abc", "about": 0, "sender": "C"}',
                b'{"number": "+46701000001", "about": "soon", "sender": "C"}',
                b'{"number": "+46701000001", "about": 1e12, "sender": "C"}',
                b'{"number": "+46701000001", "about": -1, "sender": "C"}',
                b'{"number": "+46701000001", "about": 0, "sender": ""}',
                b'{"number": 46701000001, "about": 0, "sender": "C"}',
                b'{"number": "+46701000001", "about": 0, "sender": "C", "window_s": -1}',
                b"\xff\xfe"):
        code, body = http(node, "POST", "/v1/care/complaints", raw)
        assert code == 400 and body["status"] == 400 and body["detail"], raw
    assert len(complaints(node)) == before  # nothing recorded


# --- queue shape -------------------------------------------------------------------------------
def test_queue_shape_sums_to_the_unfinished_count(node: ServerProcess) -> None:
    assert adressat(node.home, "fault", "on", "register_unavailable", "--rate", "1").returncode == 0
    time.sleep(1.5)  # noqa: ASYNC251 - the node applies a fault within a second
    try:
        ids = send(node, "acme", NODES["msc-4"][:3])
        assert wait_for(lambda: all(history(node, i)["state"] == "DEFERRED" for i in ids), 20)
    finally:
        assert adressat(node.home, "fault", "off", "register_unavailable").returncode == 0
    shape = cli_json(node, "queue")
    states = cli_json(node, "status")["queue"]  # the node's own counts per state
    unfinished = sum(states.values())  # type: ignore[union-attr]
    total = shape["total"]
    assert total["total"] == unfinished >= 3  # type: ignore[index]
    assert sum(total["buckets"]) == total["total"]  # type: ignore[index]
    assert total["buckets"][0] == total["total"]  # all younger than 5 minutes  # type: ignore[index]
    assert sum(r["total"] for r in shape["routes"]) == total["total"]  # type: ignore[union-attr,index]
    assert sum(r["total"] for r in shape["serving_nodes"]) == total["total"]  # type: ignore[union-attr,index]
    text = adressat(node.home, "queue").stdout.splitlines()
    assert text[0].split() == ["total", "0-5m", "5-10m", "10-20m", "20-40m", "40-80m",
                               "80-160m", ">160m"]
    assert text[1].split()[:2] == ["TOTAL", str(unfinished)]
