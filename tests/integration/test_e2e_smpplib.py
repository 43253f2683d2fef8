"""End to end against the real ``adressat run`` with python-smpplib as the ESME."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator

import pytest
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
from e2e_kit import Esme, RawEsme, close_all, inbox, next_msisdn, wait_for

from adressat.delivery.netsim_adapter import build_parts
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.sms.receipt import ReceiptStat, parse_receipt
from adressat.testing.server import ServerProcess, adressat, audit

ACCOUNTS = [("acme", "pw1", None), ("beta", "pw2", None), ("slow", "pw3", 5),
            ("gamma", "pw4", None), ("slow2", "pw5", 5), ("mute", "pw6", None)]
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("e2e")
    for name, pw, tp in ACCOUNTS:
        args = ["account", "add", name, "--password", pw]
        if tp:
            args += ["--throughput", str(tp)]
        out = adressat(home, *args)
        assert out.returncode == 0, out.stderr
    srv = ServerProcess(home, None, "--quiet-network").start()
    try:
        yield srv
        # after everything: the invariants hold over the whole module's traffic
        open_states = ("ACCEPTED", "ROUTED", "DISPATCHED", "DEFERRED")
        wait_for(lambda: not any(audit(home)["states"][s]  # type: ignore[index]
                                 for s in open_states), 20, 0.5)
        report = audit(home)
        assert not any(report["states"][s] for s in open_states), report  # type: ignore[index]
        assert report["ok"] is True, report
        assert report["lost"] == 0
        assert report["misdelivered"] == 0
        assert report["duplicate_deliveries"] == 0
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_all()


@pytest.fixture
def acme(server: ServerProcess) -> Iterator[Esme]:
    e = Esme(server.port, "acme", "pw1")
    yield e
    e.close()


def _mid(resp: object) -> str:
    v = resp.message_id  # type: ignore[attr-defined]
    return v.decode() if isinstance(v, bytes) else str(v)


def _text(p: object) -> str:
    return bytes(p.short_message).decode("ascii")  # type: ignore[attr-defined]


def submit_ok(e: Esme, dest: str, text: bytes = b"hello", **kw: object) -> str:
    resp = e.resp(e.submit(dest, text, **kw))
    assert resp.status == 0, hex(resp.status)
    mid = _mid(resp)
    assert HEX32.fullmatch(mid), mid
    return mid


def check_receipt(p: object, mid: str, stat: ReceiptStat, state: int, err: str = "000") -> None:
    assert p.esm_class == 0x04  # type: ignore[attr-defined]
    r = parse_receipt(_text(p))
    assert r.id == mid
    assert r.stat is stat
    assert r.err == err
    assert r.text == ""  # I6: no message text leaves in a receipt
    assert p.receipted_message_id.decode() == mid  # type: ignore[attr-defined]
    assert p.message_state == state  # type: ignore[attr-defined]


# -- bind -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["tx", "rx", "trx"])
def test_bind_modes(server: ServerProcess, mode: str) -> None:
    e = Esme(server.port, "acme", "pw1", mode="")
    resp = e.bind(mode, "acme", "pw1")
    assert resp.status == 0
    assert resp.system_id in (b"adressat", "adressat")
    e.close()


@pytest.mark.parametrize(("system_id", "password", "status"), [
    # one status for both (issue 13: bind_failure_statuses "uniform", the default)
    ("acme", "wrong", S.ESME_RBINDFAIL),
    ("nobody", "pw1", S.ESME_RBINDFAIL),
])
def test_bind_refused(server: ServerProcess, system_id: str, password: str, status: int) -> None:
    e = Esme(server.port, "", "", mode="", timeout_s=10.0)  # both answers cost an scrypt
    with pytest.raises(smpplib.exceptions.PDUError) as exc:
        e.bind("trx", system_id, password)
    assert exc.value.args[1] == status
    e.c.disconnect()


def test_bind_twice_is_refused(server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    assert raw.bind("acme", "pw1", C.BIND_TRANSCEIVER).command_status == S.ESME_RALYBND
    # still bound: a submit goes through
    r = raw.call(C.SUBMIT_SM, source_addr="ACME", source_addr_ton=5, dest_addr_ton=1,
                 dest_addr_npi=1,
                 destination_addr=next_msisdn(), short_message=b"x")
    assert r.command_status == S.ESME_ROK
    raw.close()


def test_submit_on_receiver_bind_is_refused(server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_RECEIVER).command_status == S.ESME_ROK
    r = raw.call(C.SUBMIT_SM, source_addr="ACME", source_addr_ton=5, dest_addr_ton=1,
                 dest_addr_npi=1,
                 destination_addr=next_msisdn(), short_message=b"x")
    assert r.command_status == S.ESME_RINVBNDSTS
    raw.close()


# -- submit and receipts ---------------------------------------------------------------------------


def test_submit_with_receipt(server: ServerProcess, acme: Esme) -> None:
    dest = next_msisdn()
    mid = submit_ok(acme, dest, b"hello world", registered_delivery=1)
    check_receipt(acme.wait_receipt(mid), mid, ReceiptStat.DELIVRD, 2)
    recs = inbox(server.home, dest)
    assert [r.smsc_message_id for r in recs] == [mid]
    assert recs[0].originator == "ACME"
    assert not any(r.smsc_message_id == mid for r in inbox(server.home) if r.msisdn != dest)


def test_receipt_echoes_the_user_message_reference(server: ServerProcess, acme: Esme) -> None:
    mine = submit_ok(acme, next_msisdn(), registered_delivery=1, user_message_reference=4242)
    plain = submit_ok(acme, next_msisdn(), registered_delivery=1)
    r = acme.wait_receipt(mine)
    check_receipt(r, mine, ReceiptStat.DELIVRD, 2)
    assert r.user_message_reference == 4242
    p = acme.wait_receipt(plain)
    check_receipt(p, plain, ReceiptStat.DELIVRD, 2)
    assert p.user_message_reference is None  # none given, none sent


def test_receipts_only_to_the_submitting_account(server: ServerProcess) -> None:
    a = Esme(server.port, "acme", "pw1")
    b = Esme(server.port, "beta", "pw2", mode="rx")
    dest = next_msisdn()
    mid = submit_ok(a, dest, registered_delivery=1)
    a.wait_receipt(mid)
    b.pump(lambda: False, 1.0)
    assert b.delivered == []
    assert len(a.receipts_for(mid)) == 1
    a.close()
    b.close()


def test_receipts_wait_for_a_receiver(server: ServerProcess) -> None:
    tx = Esme(server.port, "gamma", "pw4", mode="tx")
    dest = next_msisdn()
    mid = submit_ok(tx, dest, registered_delivery=1)
    assert wait_for(lambda: any(r.smsc_message_id == mid for r in inbox(server.home, dest)))
    time.sleep(0.5)
    tx.pump(lambda: False, 0.5)
    assert tx.delivered == []  # a transmitter gets no deliver_sm
    rx = Esme(server.port, "gamma", "pw4", mode="rx")
    check_receipt(rx.wait_receipt(mid), mid, ReceiptStat.DELIVRD, 2)
    tx.close()
    rx.close()


# -- long messages ---------------------------------------------------------------------------------

LONG_TEXTS = {
    0: "Price 10€ " + "the quick brown fox jumps over the lazy dog " * 6,
    8: "Hej 😀 " + "smörgåsbord med räksallad " * 6,
    3: "Smörgåsbord för alla: " + "ÅÄÖ åäö é ü ß " * 14,
}


@pytest.mark.parametrize("dcs", [0, 8, 3])
def test_long_message_udh(server: ServerProcess, acme: Esme, dcs: int) -> None:
    parts, enc, esm = smpplib.gsm.make_parts(LONG_TEXTS[dcs], encoding=dcs)
    assert enc == dcs and esm == 0x40 and len(parts) >= 2
    dest = next_msisdn()
    mids = [submit_ok(acme, dest, p, data_coding=dcs, esm_class=0x40, registered_delivery=1)
            for p in parts]
    assert len(set(mids)) == len(parts)
    for mid in mids:
        check_receipt(acme.wait_receipt(mid), mid, ReceiptStat.DELIVRD, 2)
    recs = inbox(server.home, dest)
    assert sorted(r.smsc_message_id for r in recs) == sorted(mids)
    assert all(r.data_coding == dcs for r in recs)


@pytest.mark.parametrize("dcs", [0, 8, 3])
def test_long_message_sar(server: ServerProcess, acme: Esme, dcs: int) -> None:
    parts, enc, esm = smpplib.gsm.make_parts(LONG_TEXTS[dcs], encoding=dcs, use_udhi=False)
    assert enc == dcs and esm == 0 and len(parts) >= 2
    dest = next_msisdn()
    mids = [submit_ok(acme, dest, p, data_coding=dcs, registered_delivery=1,
                      sar_msg_ref_num=100 + dcs, sar_total_segments=len(parts),
                      sar_segment_seqnum=i)
            for i, p in enumerate(parts, start=1)]
    for mid in mids:
        check_receipt(acme.wait_receipt(mid), mid, ReceiptStat.DELIVRD, 2)
    recs = inbox(server.home, dest)
    assert sorted(r.smsc_message_id for r in recs) == sorted(mids)


def test_sar_part_too_long_for_16bit_reference(server: ServerProcess, acme: Esme) -> None:
    """A sar_msg_ref_num above 255 needs a 7-octet UDH: a 153-septet part no longer fits one
    SMS, so it is refused at once rather than accepted and never deliverable."""
    parts, _, _ = smpplib.gsm.make_parts(LONG_TEXTS[0], encoding=0, use_udhi=False)
    resp = acme.resp(acme.submit(next_msisdn(), parts[0], sar_msg_ref_num=4000,
                                 sar_total_segments=len(parts), sar_segment_seqnum=1))
    assert resp.status == S.ESME_RINVMSGLEN
    mid = submit_ok(acme, next_msisdn(), parts[0][:152], sar_msg_ref_num=4000,
                    sar_total_segments=len(parts), sar_segment_seqnum=1, registered_delivery=1)
    check_receipt(acme.wait_receipt(mid), mid, ReceiptStat.DELIVRD, 2)


@pytest.mark.parametrize(("content", "dcs", "status"), [
    (b"\x05\x00\x03\x01\x02\x01" + b"a" * 154, 0, S.ESME_RINVMSGLEN),
    (b"\x05\x00\x03\x01\x02\x01" + b"a" * 135, 8, S.ESME_RINVMSGLEN),
    (b"\x09\x00\x03\x01\x02", 0, S.ESME_RINVESMCLASS),
])
def test_udh_part_refused(server: ServerProcess, acme: Esme, content: bytes, dcs: int,
                          status: int) -> None:
    resp = acme.resp(acme.submit(next_msisdn(), content, esm_class=0x40, data_coding=dcs))
    assert resp.status == status


def _encode(text: str, dcs: int) -> bytes:
    if dcs == 0:
        return smpplib.gsm.gsm_encode(text)  # type: ignore[no-any-return]
    return text.encode("utf-16-be" if dcs == 8 else "latin-1")


@pytest.mark.parametrize("dcs", [0, 8, 3])
def test_long_message_payload(server: ServerProcess, acme: Esme, dcs: int) -> None:
    payload = _encode(LONG_TEXTS[dcs], dcs)
    assert len(payload) > 160
    dest = next_msisdn()
    mid = submit_ok(acme, dest, b"", message_payload=payload, data_coding=dcs,
                    registered_delivery=1)
    check_receipt(acme.wait_receipt(mid), mid, ReceiptStat.DELIVRD, 2)
    recs = inbox(server.home, dest)
    assert len(recs) >= 2  # the network got it in parts
    assert {r.smsc_message_id for r in recs} == {mid}
    # the parts share the message's TP-SCTS and differ in their concatenation element
    assert len({r.scts for r in recs}) == 1 and len({r.deliver_key for r in recs}) == len(recs)
    assert sorted(r.part for r in recs) == list(range(1, len(recs) + 1))


# -- data_sm and submit_multi ------------------------------------------------------------------


def test_data_sm(server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSCEIVER).command_status == S.ESME_ROK
    dest = next_msisdn()
    r = raw.call(C.DATA_SM, tlvs=[("message_payload", b"data sm text")], source_addr="ACME",
                 source_addr_ton=5, dest_addr_ton=1, dest_addr_npi=1, destination_addr=dest,
                 registered_delivery=1)
    assert r.command_id == C.DATA_SM_RESP
    assert r.command_status == S.ESME_ROK
    mid = str(r.fields["message_id"])
    assert HEX32.fullmatch(mid)
    assert wait_for(lambda: [x.smsc_message_id for x in inbox(server.home, dest)] == [mid])
    deadline = time.monotonic() + 10
    receipt = None
    while receipt is None and time.monotonic() < deadline:
        p = raw.read(max(0.01, deadline - time.monotonic()))
        assert p is not None
        if p.command_id == C.DELIVER_SM and p.tlv("receipted_message_id") == mid:
            receipt = p
    assert receipt is not None
    assert receipt.fields["esm_class"] == 0x04
    text = receipt.fields["short_message"]
    assert isinstance(text, bytes)
    assert parse_receipt(text).stat is ReceiptStat.DELIVRD
    raw.close()


def test_submit_multi(server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    good = [next_msisdn(), next_msisdn()]
    dests = tuple({"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1,
                   "destination_addr": d} for d in [good[0], "12", good[1]])
    r = raw.call(C.SUBMIT_MULTI, source_addr="ACME", source_addr_ton=5, dest_addresses=dests,
                 short_message=b"multi", registered_delivery=1)
    assert r.command_status == S.ESME_ROK
    assert HEX32.fullmatch(str(r.fields["message_id"]))
    uns = r.fields["unsuccess_smes"]
    assert len(uns) == 1  # type: ignore[arg-type]
    assert uns[0]["destination_addr"] == "12"  # type: ignore[index]
    assert uns[0]["error_status_code"] == S.ESME_RINVDSTADR  # type: ignore[index]
    for d in good:
        assert wait_for(lambda d=d: len(inbox(server.home, d)) == 1)  # type: ignore[misc]
    assert inbox(server.home, good[0])[0].smsc_message_id != inbox(server.home, good[1])[0] \
        .smsc_message_id
    raw.close()


# -- scheduled: query, cancel, replace ---------------------------------------------------------


def _later(s: int = 300) -> str:
    return time.strftime("%y%m%d%H%M%S", time.gmtime(time.time() + s)) + "000+"


def test_scheduled_query_cancel(server: ServerProcess, acme: Esme) -> None:
    dest = next_msisdn()
    mid = submit_ok(acme, dest, registered_delivery=1, schedule_delivery_time=_later())
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    q = raw.call(C.QUERY_SM, message_id=mid, source_addr="ACME", source_addr_ton=5)
    assert q.command_status == S.ESME_ROK
    assert q.fields["message_state"] == 1  # ENROUTE
    # another account can neither see nor cancel it
    other = RawEsme(server.port)
    assert other.bind("beta", "pw2").command_status == S.ESME_ROK
    assert other.call(C.QUERY_SM, message_id=mid, source_addr="ACME",
                      source_addr_ton=5).command_status == S.ESME_RQUERYFAIL
    assert other.call(C.CANCEL_SM, message_id=mid, source_addr="ACME",
                      source_addr_ton=5).command_status == S.ESME_RCANCELFAIL
    c = raw.call(C.CANCEL_SM, message_id=mid, source_addr="ACME", source_addr_ton=5)
    assert c.command_status == S.ESME_ROK
    q = raw.call(C.QUERY_SM, message_id=mid, source_addr="ACME", source_addr_ton=5)
    assert q.fields["message_state"] == 4  # DELETED
    assert q.fields["final_date"]
    assert raw.call(C.CANCEL_SM, message_id=mid, source_addr="ACME",
                    source_addr_ton=5).command_status == S.ESME_RCANCELFAIL
    check_receipt(acme.wait_receipt(mid), mid, ReceiptStat.DELETED, 4)
    assert inbox(server.home, dest) == []
    other.close()
    raw.close()


def test_query_with_smpplib(server: ServerProcess, acme: Esme) -> None:
    mid = submit_ok(acme, next_msisdn(), schedule_delivery_time=_later())
    seq = acme.c.query_message(message_id=mid, source_addr_ton=5, source_addr_npi=0,
                               source_addr="ACME").sequence
    q = acme.resp(seq)
    assert q.status == 0
    assert q.message_state == 1
    raw = RawEsme(server.port)
    raw.bind("acme", "pw1", C.BIND_TRANSMITTER)
    assert raw.call(C.CANCEL_SM, message_id=mid).command_status == S.ESME_ROK
    raw.close()


def test_replace_scheduled(server: ServerProcess, acme: Esme) -> None:
    dest = next_msisdn()
    mid = submit_ok(acme, dest, b"first text", registered_delivery=1,
                    schedule_delivery_time=_later())
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    other = RawEsme(server.port)
    assert other.bind("beta", "pw2").command_status == S.ESME_ROK
    assert other.call(C.REPLACE_SM, message_id=mid, source_addr="ACME", source_addr_ton=5,
                      short_message=b"evil").command_status == S.ESME_RREPLACEFAIL
    assert raw.call(C.REPLACE_SM, message_id="0" * 32, source_addr="ACME", source_addr_ton=5,
                    short_message=b"x").command_status == S.ESME_RREPLACEFAIL
    assert raw.call(C.REPLACE_SM, message_id=mid, source_addr="ACME", source_addr_ton=5,
                    validity_period="991399999999999+", short_message=b"x"
                    ).command_status == S.ESME_RINVEXPIRY
    assert raw.call(C.REPLACE_SM, message_id=mid, source_addr="ACME", source_addr_ton=5,
                    schedule_delivery_time="991399999999999+", short_message=b"x"
                    ).command_status == S.ESME_RINVSCHED
    r = raw.call(C.REPLACE_SM, message_id=mid, source_addr="ACME", source_addr_ton=5,
                 registered_delivery=1, short_message=b"second text")
    assert r.command_status == S.ESME_ROK
    q = raw.call(C.QUERY_SM, message_id=mid, source_addr="ACME", source_addr_ton=5)
    assert q.fields["message_state"] == 1  # still ENROUTE, still scheduled
    assert raw.call(C.CANCEL_SM, message_id=mid).command_status == S.ESME_ROK
    # a cancelled message can no longer be replaced or cancelled
    assert raw.call(C.REPLACE_SM, message_id=mid, source_addr="ACME", source_addr_ton=5,
                    short_message=b"late").command_status == S.ESME_RREPLACEFAIL
    assert raw.call(C.CANCEL_SM, message_id=mid).command_status == S.ESME_RCANCELFAIL
    check_receipt(acme.wait_receipt(mid), mid, ReceiptStat.DELETED, 4)
    assert inbox(server.home, dest) == []
    other.close()
    raw.close()


def test_replace_moves_schedule_earlier(server: ServerProcess, acme: Esme) -> None:
    dest = next_msisdn()
    mid = submit_ok(acme, dest, b"first text", registered_delivery=1,
                    schedule_delivery_time=_later())
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    try:
        r = raw.call(C.REPLACE_SM, message_id=mid, source_addr="ACME", source_addr_ton=5,
                     schedule_delivery_time="000000000001000R", registered_delivery=1,
                     short_message=b"second text")
        assert r.command_status == S.ESME_ROK
        assert acme.pump(lambda: bool(acme.receipts_for(mid)), 5)
        check_receipt(acme.receipts_for(mid)[0], mid, ReceiptStat.DELIVRD, 2)
        recs = inbox(server.home, dest)
        assert [x.smsc_message_id for x in recs] == [mid]
        # the handset holds what went on the air: the replaced text, packed to 7 bits
        on_air = build_parts(mid, b"second text", 0, 0)
        assert recs[0].content_sha256 == hashlib.sha256(on_air[0]).hexdigest()
        assert on_air != build_parts(mid, b"first text", 0, 0)
    finally:
        raw.call(C.CANCEL_SM, message_id=mid)  # leave nothing scheduled behind
        raw.close()


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kw", "status"), [
    ({"destination_addr": "12"}, S.ESME_RINVDSTADR),
    ({"destination_addr": "ALPHA", "dest_addr_ton": 5, "dest_addr_npi": 0}, S.ESME_RINVDSTADR),
    ({"validity_period": "2612311200"}, S.ESME_RINVEXPIRY),
    ({"validity_period": "991399999999999+"}, S.ESME_RINVEXPIRY),
    ({"schedule_delivery_time": "991399999999999+"}, S.ESME_RINVSCHED),
    ({"schedule_delivery_time": "tomorrow"}, S.ESME_RINVSCHED),
    ({"priority_flag": 4}, S.ESME_RINVPRTFLG),
    ({"esm_class": 0x04}, S.ESME_RINVESMCLASS),  # a receipt is not for an ESME to submit
    ({"data_coding": 8, "short_message": b"\x00a\x00"}, S.ESME_RSUBMITFAIL),  # odd UCS-2
])
def test_submit_refused(server: ServerProcess, acme: Esme, kw: dict[str, object],
                        status: int) -> None:
    kw = dict(kw)
    dest = str(kw.pop("destination_addr", next_msisdn()))
    text = kw.pop("short_message", b"x")
    resp = acme.resp(acme.submit(dest, text, **kw))
    assert resp.status == status, hex(resp.status)


def test_other_operator_undeliverable(server: ServerProcess, acme: Esme) -> None:
    mid = submit_ok(acme, "4915112345678", registered_delivery=1)
    check_receipt(acme.wait_receipt(mid), mid, ReceiptStat.UNDELIV, 5, err="010")
    assert not any(r.smsc_message_id == mid for r in inbox(server.home))
    q = acme.resp(acme.c.query_message(message_id=mid, source_addr_ton=5, source_addr_npi=0,
                                       source_addr="ACME").sequence)
    assert (q.status, q.message_state, q.error_code) == (0, 5, 10)
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    assert raw.call(C.CANCEL_SM, message_id=mid).command_status == S.ESME_RCANCELFAIL


# -- throttling ----------------------------------------------------------------------------------


def test_throttling(server: ServerProcess) -> None:
    e = Esme(server.port, "slow", "pw3")
    dests = [next_msisdn() for _ in range(30)]
    seqs = [e.submit(d, b"t", registered_delivery=1) for d in dests]
    resps = [e.resp(s) for s in seqs]
    statuses = [r.status for r in resps]
    assert set(statuses) <= {0, S.ESME_RTHROTTLED}
    assert statuses.count(S.ESME_RTHROTTLED) >= 10
    ok = [(d, _mid(r)) for d, r in zip(dests, resps, strict=True) if r.status == 0]
    assert 3 <= len(ok) <= 15
    for _d, mid in ok:
        check_receipt(e.wait_receipt(mid), mid, ReceiptStat.DELIVRD, 2)
    for d, mid in ok:
        assert [x.smsc_message_id for x in inbox(server.home, d)] == [mid]
    for d, r in zip(dests, resps, strict=True):
        if r.status != 0:
            assert inbox(server.home, d) == []
    e.close()


# -- receipts over several sessions, two accounts at once --------------------------------------


def test_receipts_once_each_to_the_right_account(server: ServerProcess) -> None:
    sessions = {name: [Esme(server.port, name, pw), Esme(server.port, name, pw, mode="rx")]
                for name, pw in [("acme", "pw1"), ("beta", "pw2")]}
    submitted: dict[str, list[str]] = {"acme": [], "beta": []}
    seqs = []
    for i in range(20):
        for name in ("acme", "beta"):
            tx = sessions[name][0]
            seqs.append((name, tx.submit(next_msisdn(), b"r%d" % i, registered_delivery=1)))
    for name, seq in seqs:
        resp = sessions[name][0].resp(seq)
        assert resp.status == 0
        submitted[name].append(_mid(resp))

    def got(name: str) -> list[str]:
        return [_mid_r(p) for e in sessions[name] for p in e.delivered]

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(
            len(got(n)) < len(submitted[n]) for n in submitted):
        for es in sessions.values():
            for e in es:
                e.pump(lambda: False, 0.05)
    for e in sum(sessions.values(), []):  # late duplicates would show up here
        e.pump(lambda: False, 0.3)
    for name in submitted:
        assert sorted(got(name)) == sorted(submitted[name])  # all, once, only its own
    assert all(len(e.delivered) > 0 for e in sessions["acme"])  # both sessions receive


def _mid_r(p: object) -> str:
    return p.receipted_message_id.decode()  # type: ignore[attr-defined,no-any-return]


def test_receipt_addresses_and_query_after_delivery(server: ServerProcess, acme: Esme) -> None:
    dest = next_msisdn()
    mid = submit_ok(acme, dest, registered_delivery=1, source_addr="ACME", source_addr_ton=5)
    p = acme.wait_receipt(mid)
    assert p.source_addr.decode() == dest
    assert (p.source_addr_ton, p.source_addr_npi) == (1, 1)
    assert p.destination_addr.decode() == "ACME"
    assert p.dest_addr_ton == 5
    seq = acme.c.query_message(message_id=mid, source_addr_ton=5, source_addr_npi=0,
                               source_addr="ACME").sequence
    q = acme.resp(seq)
    assert q.status == 0
    assert q.message_state == 2
    assert q.error_code == 0
    assert len(q.final_date) >= 12


def test_refused_receipt_stays_pending(server: ServerProcess) -> None:
    e = Esme(server.port, "beta", "pw2")
    e.deliver_status = 0x64  # ESME_RX_T_APPNACK: the ESME cannot take it now
    mid = submit_ok(e, next_msisdn(), registered_delivery=1)
    e.wait_receipt(mid)
    assert audit(server.home)["receipts_pending"] >= 1
    e.deliver_status = 0
    e.close()


def test_submit_multi_counts_every_message_against_throughput(server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    assert raw.bind("slow2", "pw5", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    dests = tuple({"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1,
                   "destination_addr": next_msisdn()} for _ in range(20))
    r = raw.call(C.SUBMIT_MULTI, source_addr="ACME", source_addr_ton=5, dest_addresses=dests,
                 short_message=b"multi")
    assert r.command_status == S.ESME_ROK
    assert r.fields["unsuccess_smes"] == ()
    # 20 messages at 5 per second: the next second's budget is spent
    r = raw.call(C.SUBMIT_SM, source_addr="ACME", source_addr_ton=5, dest_addr_ton=1,
                 dest_addr_npi=1, destination_addr=next_msisdn(), short_message=b"x")
    assert r.command_status == S.ESME_RTHROTTLED
    for d in dests:
        assert wait_for(lambda d=d: len(inbox(server.home, d["destination_addr"])) == 1)


def test_replace_keeps_a_part_one_sms(server: ServerProcess, acme: Esme) -> None:
    udh = b"\x05\x00\x03\x07\x02\x01"
    mid = submit_ok(acme, next_msisdn(), udh + b"part one", esm_class=0x40,
                    schedule_delivery_time=_later())
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    for content, status in [(b"no udh", S.ESME_RINVESMCLASS),
                            (udh + b"a" * 154, S.ESME_RINVMSGLEN),
                            (udh + b"part one, new", S.ESME_ROK)]:
        r = raw.call(C.REPLACE_SM, message_id=mid, source_addr="ACME", source_addr_ton=5,
                     short_message=content)
        assert r.command_status == status
    assert raw.call(C.CANCEL_SM, message_id=mid).command_status == S.ESME_ROK


def test_a_silent_receiver_does_not_hold_up_other_accounts(server: ServerProcess) -> None:
    """'mute' binds a receiver that never answers deliver_sm; beta's receipts still arrive
    at once, not after mute's response timeout."""
    mute_rx = RawEsme(server.port)
    assert mute_rx.bind("mute", "pw6", C.BIND_RECEIVER).command_status == S.ESME_ROK
    mute = Esme(server.port, "mute", "pw6", mode="tx")
    for _ in range(3):
        submit_ok(mute, next_msisdn(), registered_delivery=1)
    time.sleep(0.5)  # mute's receipts are out and unanswered
    beta = Esme(server.port, "beta", "pw2")
    t0 = time.monotonic()
    mid = submit_ok(beta, next_msisdn(), registered_delivery=1)
    check_receipt(beta.wait_receipt(mid, 15), mid, ReceiptStat.DELIVRD, 2)
    assert time.monotonic() - t0 < 3.0


@pytest.mark.parametrize(("dest", "receipt"), [(None, None), ("4915112345678", "UNDELIV")])
def test_receipt_on_failure_only(server: ServerProcess, acme: Esme, dest: str | None,
                                 receipt: str | None) -> None:
    mid = submit_ok(acme, dest or next_msisdn(), registered_delivery=2)
    if receipt is None:
        assert wait_for(lambda: any(r.smsc_message_id == mid for r in inbox(server.home)))
        acme.pump(lambda: False, 1.5)
        assert acme.receipts_for(mid) == []
    else:
        check_receipt(acme.wait_receipt(mid), mid, ReceiptStat.UNDELIV, 5, err="010")


def test_no_receipt_unless_asked(server: ServerProcess, acme: Esme) -> None:
    mid = submit_ok(acme, "4915112345679", registered_delivery=0)
    acme.pump(lambda: False, 1.5)
    assert acme.receipts_for(mid) == []


def test_receipt_in_flight_on_a_dropped_session_goes_to_the_next(server: ServerProcess) -> None:
    """The receiver reads the receipt's deliver_sm and drops the connection without
    answering: the receipt is not lost and not held for the resend interval; the next
    receiver of the account gets it."""
    rx = RawEsme(server.port)
    assert rx.bind("gamma", "pw4", C.BIND_RECEIVER).command_status == S.ESME_ROK
    tx = Esme(server.port, "gamma", "pw4", mode="tx")
    mid = submit_ok(tx, next_msisdn(), registered_delivery=1)
    rx.sock.settimeout(10)
    data = b""
    deadline = time.monotonic() + 10
    while mid.encode() not in data and time.monotonic() < deadline:
        chunk = rx.sock.recv(65536)  # read but do not answer
        assert chunk
        data += chunk
    assert mid.encode() in data
    rx.close()
    t0 = time.monotonic()
    rx2 = Esme(server.port, "gamma", "pw4", mode="rx")
    check_receipt(rx2.wait_receipt(mid, 15), mid, ReceiptStat.DELIVRD, 2)
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(("dests", "extra", "status"), [
    (["12", "ALPHA"], {}, S.ESME_RINVDSTADR),
    ([None, None], {"validity_period": "991399999999999+"}, S.ESME_RINVEXPIRY),
    ([None, None], {"schedule_delivery_time": "991399999999999+"}, S.ESME_RINVSCHED),
    (["12", None], {"priority_flag": 7}, S.ESME_RSUBMITFAIL),
])
def test_submit_multi_all_refused(server: ServerProcess, dests: list[str | None],
                                  extra: dict[str, object], status: int) -> None:
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    addrs = tuple({"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1,
                   "destination_addr": d or next_msisdn()} for d in dests)
    r = raw.call(C.SUBMIT_MULTI, source_addr="ACME", source_addr_ton=5, dest_addresses=addrs,
                 short_message=b"multi", **extra)
    assert r.command_status == status
    for a in addrs:
        assert inbox(server.home, str(a["destination_addr"])) == []


@pytest.mark.parametrize(("ref", "total", "seq", "status"), [
    (5, 2, 3, S.ESME_RINVOPTPARAMVAL),
    (5, 0, 0, S.ESME_RINVOPTPARAMVAL),
    (5, None, 1, S.ESME_RMISSINGOPTPARAM),
])
def test_sar_refused(server: ServerProcess, acme: Esme, ref: int, total: int | None, seq: int,
                     status: int) -> None:
    kw: dict[str, object] = {"sar_msg_ref_num": ref, "sar_segment_seqnum": seq}
    if total is not None:
        kw["sar_total_segments"] = total
    resp = acme.resp(acme.submit(next_msisdn(), b"part", **kw))
    assert resp.status == status


def test_message_payload_too_long(server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    dest = next_msisdn()
    r = raw.call(C.SUBMIT_SM, tlvs=[("message_payload", b"a" * (255 * 153 + 1))],
                 source_addr="ACME", source_addr_ton=5, dest_addr_ton=1, dest_addr_npi=1,
                 destination_addr=dest)
    assert r.command_status == S.ESME_RINVMSGLEN
    r = raw.call(C.SUBMIT_SM, tlvs=[("message_payload", b"a" * 1000)], source_addr="ACME",
                 source_addr_ton=5, dest_addr_ton=1, dest_addr_npi=1, destination_addr=dest)
    assert r.command_status == S.ESME_ROK
    mid = str(r.fields["message_id"])
    assert wait_for(lambda: len(inbox(server.home, dest)) == 7)  # 1000 septets: 7 parts
    assert {x.smsc_message_id for x in inbox(server.home, dest)} == {mid}


def test_submit_multi_same_number_twice_is_sent_once(server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    d = next_msisdn()
    dests = ({"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": d},
             {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1,
              "destination_addr": "+" + d},
             {"dest_flag": 2, "dl_name": "friends"})
    r = raw.call(C.SUBMIT_MULTI, source_addr="ACME", source_addr_ton=5, dest_addresses=dests,
                 short_message=b"once")
    assert r.command_status == S.ESME_ROK
    assert r.fields["unsuccess_smes"] == ({"dest_addr_ton": 0, "dest_addr_npi": 0,
                                           "destination_addr": "friends",
                                           "error_status_code": int(S.ESME_RINVDLNAME)},)
    mid = str(r.fields["message_id"])
    assert wait_for(lambda: len(inbox(server.home, d)) >= 1)
    time.sleep(0.5)
    assert [x.smsc_message_id for x in inbox(server.home, d)] == [mid]
    r = raw.call(C.SUBMIT_MULTI, source_addr="ACME", source_addr_ton=5, dest_addresses=(),
                 short_message=b"none")
    assert r.command_status == S.ESME_RINVNUMDESTS


def test_smpp33_receiver_gets_receipts_without_tlvs(server: ServerProcess, acme: Esme) -> None:
    rx = RawEsme(server.port)
    r = rx.call(C.BIND_RECEIVER, system_id="gamma", password="pw4", interface_version=0x33)
    assert r.command_status == S.ESME_ROK
    tx = Esme(server.port, "gamma", "pw4", mode="tx")
    mid = submit_ok(tx, next_msisdn(), registered_delivery=1)
    deadline = time.monotonic() + 10
    p = None
    while p is None and time.monotonic() < deadline:
        q = rx.read(max(0.01, deadline - time.monotonic()))
        assert q is not None
        if q.command_id == C.DELIVER_SM:
            p = q
    assert p is not None
    assert p.tlvs == ()
    text = p.fields["short_message"]
    assert isinstance(text, bytes)
    assert parse_receipt(text).id == mid
