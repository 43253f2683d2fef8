"""The log of the real ``adressat run`` (both processes write to it): every line an event with
its place, and never message text (DESIGN.md I6), through every fault and bad input.

* the lines of a bind, a submit (accepted, final, receipt sent), a protocol violation and a
  failed bind carry time, level, event and the session / account / message id;
* the I6 test sends unique random texts (GSM and UCS-2, short and multipart) through every
  fault of ``adressat fault list``, a kill -9, and bad input (oversized, malformed, refused),
  at ``--log-level debug``, then searches every line for each text in every form it could
  take (``adressat.testing.privacy``).
"""

from __future__ import annotations

import json
import random
import re
import secrets
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import Esme, RawEsme, close_all, frame, next_msisdn, wait_for

from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.sms import encode_text
from adressat.sms.encodings import Alphabet
from adressat.testing.privacy import file_output, find_leaks
from adressat.testing.server import ServerProcess, adressat, audit

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
OPEN_STATES = ("ACCEPTED", "ROUTED", "DISPATCHED", "DEFERRED", "HELD")
JSON_DEBUG = ("--log-format", "json", "--log-level", "debug")
FAULT_APPLY_S = 0.9  # the delivery process polls the desired fault state every 0.5 s


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_all()


def new_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    for name, pw in (("acme", "pw1"), ("beta", "pw2")):
        out = adressat(home, "account", "add", name, "--password", pw)
        assert out.returncode == 0, out.stderr
    return home


def records(server: ServerProcess) -> list[dict[str, Any]]:
    """Every line of the log as JSON: with --log-format json nothing else is written."""
    out = []
    for n, line in enumerate(server.log_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {n} is not JSON: {line[:200]!r}") from None
        assert isinstance(rec, dict), line
        out.append(rec)
    return out


def check_common(rec: dict[str, Any]) -> None:
    assert TIME.fullmatch(rec["time"]), rec
    assert rec["level"] in LEVELS, rec
    assert rec["process"] in ("smpp", "delivery"), rec
    assert isinstance(rec["event"], str) and rec["event"], rec
    assert rec["logger"].startswith("adressat") or rec["logger"] in ("asyncio", "py.warnings")


def session_of(recs: list[dict[str, Any]], raw: RawEsme) -> int:
    """The session id the server gave a raw connection (its "connection" line names the
    peer)."""
    host, port = raw.sock.getsockname()[:2]
    [rec] = [r for r in recs if r["event"] == "connection" and r["peer"] == f"{host}:{port}"]
    return int(rec["session"])


def find(recs: list[dict[str, Any]], event: str, **fields: object) -> dict[str, Any]:
    got = [r for r in recs if r["event"] == event
           and all(r.get(k) == v for k, v in fields.items())]
    assert got, f"no {event!r} line with {fields}; events: {sorted({r['event'] for r in recs})}"
    return got[0]


# --- the place of each event --------------------------------------------------------------------


def test_lines_name_session_account_and_message(tmp_path: Path) -> None:
    srv = ServerProcess(new_home(tmp_path), None, "--quiet-network", *JSON_DEBUG).start()
    try:
        esme = Esme(srv.port, "acme", "pw1")  # python-smpplib
        dest = next_msisdn()
        resp = esme.resp(esme.submit(dest, b"hello there", registered_delivery=1))
        assert resp.status == 0
        mid = resp.message_id.decode() if isinstance(resp.message_id, bytes) else resp.message_id
        esme.wait_receipt(mid)
        raw = RawEsme(srv.port)  # a protocol violation, after a bind
        assert raw.bind("acme", "pw1").command_status == S.ESME_ROK
        raw.send_raw(frame(C.SUBMIT_SM, 78, b"\x00\x05\x00ACME\x00\x01"))
        assert raw.wait_resp(78).command_status == S.ESME_RINVCMDLEN
        bad = RawEsme(srv.port)  # a failed bind
        assert bad.bind("acme", "wrong").command_status == S.ESME_RBINDFAIL
        assert wait_for(lambda: any(r["event"] == "receipt sent" for r in records(srv)))
        recs = records(srv)
        for r in recs:
            check_common(r)

        bound = find(recs, "bound", account="acme", mode="BIND_TRANSCEIVER")
        accepted = find(recs, "accepted", message_id=mid)
        assert accepted["account"] == "acme" and accepted["route"] == "netsim"
        assert accepted["process"] == "smpp" and accepted["level"] == "DEBUG"
        final = find(recs, "final", message_id=mid)
        assert final["process"] == "delivery" and final["state"] == "DELIVERED"
        assert final["account"] == "acme" and final["route"] == "netsim"
        assert final["serving_node"]  # netsim's node that delivered it
        sent = find(recs, "receipt sent", message_id=mid)
        assert sent["session"] == bound["session"] and sent["account"] == "acme"

        violation = find(recs, "protocol violation", session=session_of(recs, raw))
        assert violation["level"] == "WARNING" and violation["account"] == "acme"
        assert violation["status"] == "ESME_RINVCMDLEN"
        assert violation["command_id"] == "SUBMIT_SM" and violation["seq"] == 78
        assert violation["reason"]

        refused = find(recs, "bind refused: credentials", session=session_of(recs, bad))
        assert refused["account"] == "acme" and refused["level"] == "INFO"
        assert refused["reason"] == "password"  # the operator is told which
        assert refused["peer"] == "{}:{}".format(*bad.sock.getsockname()[:2])
        assert "wrong" not in json.dumps(recs)  # the password tried
        assert {r["event"] for r in recs} >= {"node built", "listening", "delivery process started",
                                             "delivery process serving", "connection", "closed"}
    finally:
        srv.stop()
    recs = records(srv)
    find(recs, "stopped")
    find(recs, "delivery process stopped", process="delivery")


def test_text_lines_for_a_terminal(tmp_path: Path) -> None:
    srv = ServerProcess(new_home(tmp_path), None, "--quiet-network").start()  # the defaults
    try:
        raw = RawEsme(srv.port)
        assert raw.bind("acme", "pw1").command_status == S.ESME_ROK
        raw.send_raw(frame(C.SUBMIT_SM, 5, b"\x00\x05\x00ACME\x00\x01"))
        raw.wait_resp(5)
        pattern = re.compile(
            TIME.pattern + r" WARNING adressat\.smpp protocol violation session=\d+ account=acme"
            r" status=ESME_RINVCMDLEN reason=\"[^\"]+\" command_id=SUBMIT_SM seq=5$"
        )
        assert wait_for(lambda: any(pattern.match(line) for line in
                                    srv.log_path.read_text().splitlines()))
    finally:
        srv.stop()
    lines = srv.log_path.read_text().splitlines()
    assert any(line.startswith("adressat listening") for line in lines)  # the banner
    logged = [line for line in lines if TIME.match(line)]
    assert any(" INFO adressat.delivery_process[delivery] delivery process serving" in line
               for line in logged)
    assert not any(" DEBUG " in line for line in logged)  # info is the default


# --- I6: no message text in the log, through every fault ----------------------------------------

GSM_CHARS = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
             " @£$¥èéùìòÇØøÅåÆæßÉÄÖÑÜ§¿äöñüà!#%&()*+,-./:;<=>?")
UCS2_CHARS = ("абвгдежзийклмнопрстуфхцчшщыэюяΑΒΓΔΕΖΗΘΙΚΛΜαβγδεζηθικλμ日本語中文漢字한국어"
              "ÅÄÖåäö0123456789 ")
#: every fault of the catalogue, with the parameters that make it act within a window
FAULTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("ack_duplicated", {"delay_s": "0.3"}),
    ("ack_late", {"delay_s": "0.5"}),
    ("register_unavailable", {}),
    ("absent_for_hours", {"hours": "0.0005"}),
    ("memory_full_then_alert", {"seconds": "1.0"}),
    ("corrupt_pairing", {}),
    ("stale_routing", {"reassigned": "false"}),
    ("stale_routing", {"reassigned": "true"}),
    ("recycled_number", {"at": "lookup"}),
    ("recycled_number", {"at": "forward"}),
    ("swapping_node", {}),
    ("double_delivery", {}),
    ("ack_lost", {}),
)


class Texts:
    """Unique random texts, each kept under a label (the search reports labels only)."""

    def __init__(self) -> None:
        self.rng = random.Random(secrets.randbits(64))
        self.by_label: dict[str, str] = {}

    def new(self, label: str, chars: str, n: int) -> str:
        text = "".join(self.rng.choice(chars) for _ in range(n))
        self.by_label[f"{label}#{len(self.by_label)}"] = text
        return text

    def gsm(self, label: str, n: int) -> bytes:
        return encode_text(self.new(label, GSM_CHARS, n), Alphabet.GSM7)

    def ucs2(self, label: str, n: int) -> bytes:
        return self.new(label, UCS2_CHARS, n).encode("utf-16-be")


def submit_four(esme: Esme, texts: Texts, label: str) -> list[int]:
    """GSM and UCS-2, short and multipart (message_payload), each to a number of its own."""
    return [
        esme.submit(next_msisdn(), texts.gsm(f"{label} gsm short", 60), registered_delivery=1),
        esme.submit(next_msisdn(), b"", message_payload=texts.gsm(f"{label} gsm long", 300),
                    registered_delivery=1),
        esme.submit(next_msisdn(), texts.ucs2(f"{label} ucs2 short", 50), data_coding=8,
                    registered_delivery=1),
        esme.submit(next_msisdn(), b"", message_payload=texts.ucs2(f"{label} ucs2 long", 150),
                    data_coding=8, registered_delivery=1),
    ]


def cli(home: Path, *args: str) -> str:
    out = adressat(home, *args)
    assert out.returncode == 0, (args, out.stderr)
    return out.stdout


def fault_fired(home: Path, name: str) -> int:
    rows = json.loads(cli(home, "fault", "list", "--json"))
    return int(next(r["fired"] for r in rows if r["name"] == name))


def release_if_held(home: Path) -> None:
    rows = json.loads(cli(home, "route", "list", "--json"))
    if any(r["name"] == "netsim" and r["held"] for r in rows):
        cli(home, "route", "release", "netsim")


def bad_input(port: int, texts: Texts) -> None:
    """Malformed, oversized and refused input, each carrying a text of its own."""
    submit = dict(source_addr="ACME", source_addr_ton=5, dest_addr_ton=1, dest_addr_npi=1,
                  registered_delivery=1)
    early = RawEsme(port)  # before any bind
    r = early.call(C.SUBMIT_SM, destination_addr=next_msisdn(), **submit,
                   short_message=texts.gsm("before bind", 50))
    assert r.command_status == S.ESME_RINVBNDSTS
    password = texts.new("password", "abcdefghijkmnpqrstuvwxyz23456789", 8)
    assert early.bind("acme", password).command_status == S.ESME_RBINDFAIL

    raw = RawEsme(port)
    assert raw.bind("acme", "pw1").command_status == S.ESME_ROK
    dest = next_msisdn()
    # a body cut short in the middle of a text, a short_message longer than the body
    raw.send_raw(frame(C.SUBMIT_SM, 100, b"\x00\x05\x00ACME\x00\x01\x01" + texts.gsm("cut", 60)))
    raw.wait_resp(100)
    head = b"\x00\x05\x00ACME\x00\x01\x01" + dest.encode() + b"\x00" + bytes(8) + b"\x00\x00"
    raw.send_raw(frame(C.SUBMIT_SM, 101, head + b"\x00\x00\xf0" + texts.gsm("sm_length", 60)))
    assert raw.wait_resp(101).command_status != S.ESME_ROK
    # an unknown command and an enquire_link with a body, each a text
    raw.send_raw(frame(0x00000999, 102, texts.gsm("unknown command", 60)))
    raw.wait_resp(102)
    raw.send_raw(frame(C.ENQUIRE_LINK, 103, texts.ucs2("enquire body", 40)))
    raw.wait_resp(103)
    # refused by the service: both short_message and message_payload; a UDH that lies; an
    # invalid number; content over the limit; a schedule that cannot be parsed
    refusals = [
        dict(short_message=texts.gsm("both", 40),
             tlvs=[("message_payload", texts.gsm("both payload", 40))]),
        dict(short_message=b"\xff\x00\x03" + texts.gsm("udh", 40), esm_class=0x40),
        dict(short_message=texts.ucs2("bad number", 40), data_coding=8, destination_addr="12x"),
        dict(tlvs=[("message_payload", texts.gsm("oversized", 40_000))]),
        dict(short_message=texts.gsm("bad schedule", 40),
             schedule_delivery_time="991399999999999+"),
    ]
    for kw in refusals:
        tlvs = kw.pop("tlvs", ())
        fields = {**submit, "destination_addr": dest, **kw}
        assert raw.call(C.SUBMIT_SM, tlvs=tlvs, **fields).command_status != S.ESME_ROK
    # content that is not what its data_coding says: septets over 0x7F, an odd UCS-2 length
    for content, dcs in ((texts.new("not septets", UCS2_CHARS, 40).encode("utf-8"), 0),
                         (texts.ucs2("odd ucs2", 41) + b"\x00", 8)):
        raw.call(C.SUBMIT_SM, **submit, destination_addr=next_msisdn(), short_message=content,
                 data_coding=dcs)
    # accepted: an unknown TLV carrying a text, data_sm, submit_multi, replace and cancel
    raw.call(C.SUBMIT_SM, tlvs=[(0x1403, texts.gsm("vendor tlv", 60))], **submit,
             destination_addr=next_msisdn(), short_message=texts.gsm("with vendor tlv", 60))
    raw.call(C.DATA_SM, tlvs=[("message_payload", texts.ucs2("data_sm", 60))],
             source_addr="ACME", source_addr_ton=5, dest_addr_ton=1, dest_addr_npi=1,
             destination_addr=next_msisdn(), data_coding=8, registered_delivery=1)
    dests = ({"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1,
              "destination_addr": next_msisdn()},
             {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "12"})
    raw.call(C.SUBMIT_MULTI, source_addr="ACME", source_addr_ton=5, dest_addresses=dests,
             short_message=texts.gsm("multi", 60), registered_delivery=1)
    r = raw.call(C.SUBMIT_SM, **{**submit, "destination_addr": next_msisdn()},
                 schedule_delivery_time="000001000000000R", short_message=texts.gsm("later", 60))
    assert r.command_status == S.ESME_ROK
    mid = str(r.fields["message_id"])
    assert raw.call(C.REPLACE_SM, message_id=mid, source_addr="ACME", source_addr_ton=5,
                    short_message=texts.ucs2("replaced", 60)).command_status == S.ESME_ROK
    assert raw.call(C.CANCEL_SM, message_id=mid).command_status == S.ESME_ROK
    # last: a command_length over pdu_length_max, with a text after it; the session closes
    raw.send_raw(struct.pack(">IIII", 70_000, C.SUBMIT_SM, 0, 104) + texts.gsm("oversized", 200))
    deadline = time.monotonic() + 5
    with pytest.raises((ConnectionError, AssertionError, TimeoutError)):  # noqa: PT012
        while time.monotonic() < deadline:
            assert raw.read(max(0.01, deadline - time.monotonic())) is not None


def http_outputs(server: ServerProcess) -> list[tuple[str, str]]:
    """What the running node's HTTP listener lets out (``/metrics``, ``/status``,
    ``/health/ready``), scraped while it runs, searched like the log."""
    out = []
    for path in ("/metrics", "/status", "/health/ready"):
        code, body = server.http_get(path)
        assert code in (200, 503), (path, code)
        out.append((path, body.decode("utf-8", errors="replace")))
    return out


def other_outputs(server: ServerProcess) -> list[tuple[str, str]]:
    """Everything else the node lets out as text, searched like the log."""
    inbox = server.home / "netsim" / "inbox.log"  # the handsets' record: digests, not text
    return [file_output(inbox)] if inbox.exists() else []


@pytest.mark.slow
def test_no_message_text_in_the_log_through_every_fault(tmp_path: Path) -> None:
    home = new_home(tmp_path)
    srv = ServerProcess(home, None, "--quiet-network", "--retry-delays-s", "0.5,1,1,2,2",
                        *JSON_DEBUG).start()
    texts = Texts()
    try:
        esme = Esme(srv.port, "acme", "pw1")
        seqs = submit_four(esme, texts, "baseline")
        fired: dict[str, int] = {}
        for name, params in FAULTS:
            args = ["fault", "on", name, "--rate", "1"]
            for k, v in params.items():
                args += ["--param", f"{k}={v}"]
            cli(home, *args)
            time.sleep(FAULT_APPLY_S)
            label = f"{name}({','.join(params.values())})"
            seqs += submit_four(esme, texts, label)
            esme.pump(lambda: False, 1.2)  # deliveries, receipts answered
            fired[label] = fault_fired(home, name)
            if name == "ack_lost":  # a crash too: kill -9 while messages wait for a retry
                srv.kill()
                srv.start()
                esme = Esme(srv.port, "acme", "pw1")
            cli(home, "fault", "off", name)
            time.sleep(FAULT_APPLY_S)
            release_if_held(home)  # the next window starts on an open route
        bad_input(srv.port, texts)
        beta = Esme(srv.port, "beta", "pw2")
        seqs_beta = submit_four(beta, texts, "after the faults")
        time.sleep(FAULT_APPLY_S)
        release_if_held(home)

        def settled() -> bool:
            esme.pump(lambda: False, 0.3)
            beta.pump(lambda: False, 0.1)
            release_if_held(home)
            states = audit(home)["states"]
            return not any(states[s] for s in OPEN_STATES if s in states)  # type: ignore[index]

        assert wait_for(settled, 40.0, 0.2), audit(home)
        assert not [label for label, n in fired.items() if n == 0], fired  # every fault acted
        assert len(seqs) == 4 * (len(FAULTS) + 1) and len(seqs_beta) == 4
        scraped = http_outputs(srv)
        assert "adressat_messages_accepted_total" in scraped[0][1]
    finally:
        srv.stop()

    recs = records(srv)  # every line is one JSON event ...
    events = {r["event"] for r in recs}
    assert events >= {  # ... and the paths the texts went through were logged at debug
        "accepted", "final", "deferred", "receipt sent", "integrity alarm",
        "route breaker tripped", "fault switched", "protocol violation", "submit refused",
        "bind refused: credentials", "cancelled", "alert",
    }, sorted(events)
    assert sum(r["event"] == "final" for r in recs) >= 4 * len(FAULTS)
    outputs = [file_output(srv.log_path), *other_outputs(srv), *scraped]
    assert len(texts.by_label) > 70
    leaks = find_leaks(texts.by_label, outputs)
    assert leaks == [], "\n".join(str(leak) for leak in leaks)


def test_the_search_would_find_a_leak(tmp_path: Path) -> None:
    """The search above is not vacuous: the same texts written into a log are found in each
    form a careless line could use."""
    texts = Texts()
    gsm = texts.new("gsm", GSM_CHARS, 300)
    ucs2 = texts.new("ucs2", UCS2_CHARS, 150)
    log = tmp_path / "server.log"
    lines = [
        json.dumps({"event": "final", "content": gsm[100:130]}),
        json.dumps({"event": "final", "short_message": ucs2.encode("utf-16-be")[40:80].hex()}),
        f"... codec error: {ucs2[:20].encode('utf-8')!r}",
    ]
    log.write_text("\n".join(lines) + "\n")
    found = {(leak.label.split("#")[0], leak.line) for leak in find_leaks(texts.by_label,
                                                                          [file_output(log)])}
    assert found >= {("gsm", 1), ("ucs2", 2), ("ucs2", 3)}, found
