"""Accounts an operator controls (issue 13), against the running node with python-smpplib,
httpx and the real CLI: disable and remove end a bound session (unbind, then close) and
refuse its next bind; a disabled account's queued messages stay unsent until enable (or go
out with --keep-queue); sender rules refuse ESME_RINVSRCADR over submit_sm, data_sm and
submit_multi and the matching problem over HTTP and sendsms; throughput, senders and allow-ip
changes reach live sessions; a password never on the command line."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import smpplib.exceptions
from e2e_kit import Esme, RawEsme, close_all, inbox, next_msisdn, wait_for

from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.testing.server import ServerProcess, adressat

pytestmark = pytest.mark.slow
KEY_RE = re.compile(r"adr_[0-9a-f]{12}_[A-Za-z0-9_-]+")
ACCOUNTS = {
    "cut": [], "gone": [], "later": [], "kept": [], "rate": ["--throughput", "1"],
    "bank": ["--senders", "MyBank", "+4670100*"], "ipacct": ["--allow-ip", "10.0.0.0/8"],
}


def ok(home: Path, *args: str) -> str:
    out = adressat(home, *args)
    assert out.returncode == 0, (args, out.stderr)
    return out.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("acct") / "home"
    for name, extra in ACCOUNTS.items():
        ok(home, "account", "add", name, "--password", "pw", *extra)
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "100000") as srv:
        yield srv


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_all()


def commands_until_closed(e: Esme, timeout_s: float = 6.0) -> list[str]:
    """The PDUs the node sends the session until it closes it (or ``timeout_s``)."""
    seen: list[str] = []
    e.c._socket.settimeout(0.2)  # noqa: SLF001 - smpplib has no public read timeout
    deadline = threading.Event()
    timer = threading.Timer(timeout_s, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            try:
                pdu = e.c.read_pdu()
            except TimeoutError:
                continue
            except (smpplib.exceptions.ConnectionError, OSError):
                seen.append("closed")
                break
            seen.append(pdu.command)
    finally:
        timer.cancel()
    return seen


def bind_status(port: int, name: str, password: str = "pw") -> int:
    r = RawEsme(port)
    try:
        return int(r.bind(name, password).command_status)
    finally:
        r.close()


def state_of(home: Path, mid: str) -> str:
    conn = sqlite3.connect(f"file:{home / 'adressat.db'}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT state FROM messages WHERE id = ?", (mid,)).fetchone()[0])
    finally:
        conn.close()


def submit(e: Esme, dest: str, **kw: Any) -> Any:
    return e.resp(e.submit(dest, **kw))


def mid_of(resp: Any) -> str:
    v = resp.message_id
    return v.decode() if isinstance(v, bytes) else str(v)


# --- disable, remove ---------------------------------------------------------------------------
def test_disable_ends_a_bound_session_and_refuses_its_next_bind(server: ServerProcess) -> None:
    e = Esme(server.port, "cut", "pw", timeout_s=5.0)
    assert submit(e, next_msisdn()).status == 0
    out = ok(server.home, "account", "disable", "cut")
    assert "disabled" in out
    seen = commands_until_closed(e)
    assert seen[-1] == "closed" and "unbind" in seen, seen  # unbind, then close
    assert bind_status(server.port, "cut") == S.ESME_RBINDFAIL
    ok(server.home, "account", "enable", "cut")
    assert wait_for(lambda: bind_status(server.port, "cut") == S.ESME_ROK, 10)


def test_remove_ends_a_bound_session(server: ServerProcess) -> None:
    e = Esme(server.port, "gone", "pw", timeout_s=5.0)
    ok(server.home, "account", "remove", "gone")
    seen = commands_until_closed(e)
    assert seen[-1] == "closed" and "unbind" in seen, seen
    assert bind_status(server.port, "gone") != S.ESME_ROK


def test_a_disabled_accounts_queue_waits_for_enable(server: ServerProcess) -> None:
    e = Esme(server.port, "later", "pw", timeout_s=5.0)
    number = next_msisdn()
    resp = submit(e, number, schedule_delivery_time="000000000004000R")  # in 4 s
    assert resp.status == 0
    mid = mid_of(resp)
    e.close()
    ok(server.home, "account", "disable", "later")
    assert wait_for(lambda: state_of(server.home, mid) == "HELD", 10)
    assert not inbox(server.home, number)
    out = ok(server.home, "account", "enable", "later")
    assert "1 held messages queued again" in out
    got = wait_for(lambda: inbox(server.home, number), 20)
    assert [g.smsc_message_id for g in got] == [mid]


def test_keep_queue_lets_a_disabled_accounts_messages_go_out(server: ServerProcess) -> None:
    e = Esme(server.port, "kept", "pw", timeout_s=5.0)
    number = next_msisdn()
    resp = submit(e, number, schedule_delivery_time="000000000003000R")
    mid = mid_of(resp)
    ok(server.home, "account", "disable", "kept", "--keep-queue")
    assert "closed" in commands_until_closed(e)
    got = wait_for(lambda: inbox(server.home, number), 20)
    assert [g.smsc_message_id for g in got] == [mid]


# --- sender rules --------------------------------------------------------------------------------
def test_sender_rules_refuse_other_sources_over_smpp(server: ServerProcess) -> None:
    e = Esme(server.port, "bank", "pw", timeout_s=5.0)
    dest = next_msisdn()
    assert submit(e, dest, source_addr="MyBank").status == 0
    assert submit(e, dest, source_addr="MYBANK").status == 0  # a name in any case
    assert submit(e, dest, source_addr="46701001234", source_addr_ton=1,
                  source_addr_npi=1).status == 0
    assert submit(e, dest, source_addr="OtherBank").status == S.ESME_RINVSRCADR
    assert submit(e, dest, source_addr="46709999999", source_addr_ton=1,
                  source_addr_npi=1).status == S.ESME_RINVSRCADR
    r = RawEsme(server.port)
    assert r.bind("bank", "pw").command_status == 0
    common = dict(source_addr_ton=5, source_addr="Clinic", dest_addr_ton=1, dest_addr_npi=1)
    resp = r.call(C.DATA_SM, tlvs=[("message_payload", b"hi")], destination_addr=dest, **common)
    assert resp.command_status == S.ESME_RINVSRCADR
    multi = r.call(C.SUBMIT_MULTI, source_addr_ton=5, source_addr="Clinic",
                   dest_addresses=({"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1,
                                    "destination_addr": dest},), short_message=b"hi")
    assert multi.command_status == S.ESME_RINVSRCADR
    # a change reaches the bound session: any source again
    ok(server.home, "account", "set", "bank", "--senders-any")
    assert wait_for(lambda: submit(e, dest, source_addr="OtherBank").status == 0, 10)
    ok(server.home, "account", "set", "bank", "--senders", "MyBank", "+4670100*")
    assert wait_for(lambda: submit(e, dest, source_addr="OtherBank").status
                    == S.ESME_RINVSRCADR, 10)


def test_sender_rules_refuse_over_http_and_sendsms(server: ServerProcess) -> None:
    key = KEY_RE.search(ok(server.home, "account", "key", "add", "bank"))
    assert key
    base = f"http://127.0.0.1:{server.http_port}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key.group(0)}"},
                      timeout=10) as c:
        r = c.post("/v1/messages", json={"to": "+" + next_msisdn(), "from": "Evil",
                                         "text": "x"})
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == "/problems/source-not-allowed"
        r = c.post("/v1/messages", json={"to": "+" + next_msisdn(), "from": "MyBank",
                                         "text": "x"})
        assert r.status_code == 202, r.text
    r = httpx.get(f"{base}/cgi-bin/sendsms", params={
        "username": "bank", "password": "pw", "to": next_msisdn(), "from": "Evil",
        "text": "x"})
    assert r.status_code == 403 and "Sender not allowed" in r.text


# --- throughput, allow-ip ------------------------------------------------------------------------
def test_a_throughput_change_reaches_the_bound_session(server: ServerProcess) -> None:
    e = Esme(server.port, "rate", "pw", timeout_s=5.0)
    statuses = [submit(e, next_msisdn()).status for _ in range(5)]
    assert S.ESME_RTHROTTLED in statuses  # 1 per second
    ok(server.home, "account", "set", "rate", "--throughput", "unlimited")
    assert wait_for(lambda: all(submit(e, next_msisdn()).status == 0 for _ in range(10)), 10)
    assert "throughput_per_s=unlimited" in ok(server.home, "account", "list")


def test_allow_ip_refuses_binds_and_keys_from_elsewhere(server: ServerProcess) -> None:
    assert bind_status(server.port, "ipacct") == S.ESME_RBINDFAIL  # we are 127.0.0.1
    key = KEY_RE.search(ok(server.home, "account", "key", "add", "ipacct"))
    assert key
    url = f"http://127.0.0.1:{server.http_port}/v1/messages"
    headers = {"Authorization": f"Bearer {key.group(0)}"}
    body = {"to": "+" + next_msisdn(), "from": "Shop", "text": "x"}
    r = httpx.post(url, json=body, headers=headers)
    assert r.status_code == 403 and r.json()["type"] == "/problems/address-not-allowed"
    ok(server.home, "account", "set", "ipacct", "--allow-ip", "127.0.0.0/8")
    assert wait_for(lambda: bind_status(server.port, "ipacct") == S.ESME_ROK, 10)
    assert wait_for(lambda: httpx.post(url, json=body, headers=headers).status_code == 202, 10)
    # a bound session from an address no longer allowed is ended
    e = Esme(server.port, "ipacct", "pw", timeout_s=5.0)
    ok(server.home, "account", "set", "ipacct", "--allow-ip", "10.0.0.0/8")
    assert "closed" in commands_until_closed(e)
    # its keys of a disabled account: 401 like a removed one's
    ok(server.home, "account", "set", "ipacct", "--allow-ip-any")
    ok(server.home, "account", "disable", "ipacct")
    assert wait_for(lambda: httpx.post(url, json=body, headers=headers).status_code == 401, 10)


# --- passwords never on argv ---------------------------------------------------------------------
def test_a_password_on_the_command_line_is_refused(server: ServerProcess) -> None:
    out = subprocess.run([sys.executable, "-m", "adressat.cli", "--home", str(server.home),
                          "account", "add", "argv", "--password", "s3cretpw"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "--password-file" in out.stderr and "ADRESSAT_PASSWORD" in out.stderr
    assert "s3cretpw" not in out.stderr + out.stdout
    out = subprocess.run([sys.executable, "-m", "adressat.cli", "--home", str(server.home),
                          "connector", "add", "c", "--host", "127.0.0.1", "--port", "1",
                          "--system-id", "x", "--password", "s3cretpw"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "s3cretpw" not in out.stderr


def test_ps_never_shows_the_password(server: ServerProcess, tmp_path: Path) -> None:
    """The CLI waits on a FIFO for its password file while ``ps`` looks at it."""
    fifo = tmp_path / "pw"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "adressat.cli", "--home", str(server.home),
                             "account", "add", "fifo", "--password-file", str(fifo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ps = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(proc.pid)],
                            capture_output=True, text=True, check=True).stdout
        assert "adressat.cli" in ps and "--password-file" in ps
        with open(fifo, "w") as f:
            f.write("fifopw1\n")
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "fifopw1" not in ps + out + err
    assert wait_for(lambda: bind_status(server.port, "fifo", "fifopw1") == S.ESME_ROK, 10)


def test_every_value_is_checked(server: ServerProcess) -> None:
    for args, said in (
        (("--throughput", "-3"), "at least 1"),
        (("--throughput", "0"), "unlimited"),
        (("--throughput", "fast"), "not a whole number"),
        (("--sessions-max", "-1"), "at least 1"),
        (("--allow-ip", "10.0.0.1/8"), "CIDR"),
        (("--allow-ip", "nowhere"), "CIDR"),
        (("--senders", "46-4"), "range"),
        (("--senders", "Way Too Long Name"), "sender rule"),
    ):
        out = adressat(server.home, "account", "add", "bad", "--password", "pw", *args)
        assert out.returncode == 2 and said in out.stderr, (args, out.stderr)
    assert "bad\t" not in ok(server.home, "account", "list")
    with socket.create_connection(("127.0.0.1", server.port)):
        pass  # the node is still up
