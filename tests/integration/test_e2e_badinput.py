"""Malformed and hostile input against the real ``adressat run``, over raw sockets."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
from e2e_kit import RawEsme, close_all, customer_inbox, frame, inbox, wait_for

from adressat.smpp import codec
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import Pdu
from adressat.testing.server import ServerProcess, adressat, audit

OPEN_STATES = ("ACCEPTED", "ROUTED", "DISPATCHED", "DEFERRED")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("badinput")
    for name, pw in [("acme", "pw1"), ("vanish", "pw2")]:
        out = adressat(home, "account", "add", name, "--password", pw)
        assert out.returncode == 0, out.stderr
    srv = ServerProcess(home, None, "--quiet-network").start()
    try:
        yield srv
        wait_for(lambda: not any(audit(home)["states"][s]  # type: ignore[index]
                                 for s in OPEN_STATES), 20, 0.5)
        report = audit(home)
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
def bound(server: ServerProcess) -> RawEsme:
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    return raw


def assert_alive(raw: RawEsme) -> None:
    r = raw.call(C.ENQUIRE_LINK)
    assert r.command_id == C.ENQUIRE_LINK_RESP
    assert r.command_status == S.ESME_ROK


def assert_closed(raw: RawEsme, timeout_s: float = 5.0) -> list[Pdu]:
    """Read until EOF (what arrives before it is returned); fails if the server keeps it open."""
    got: list[Pdu] = []
    deadline = time.monotonic() + timeout_s
    for _ in range(100_000):
        try:
            p = raw.read(max(0.01, deadline - time.monotonic()))
        except ConnectionResetError:
            return got
        except TimeoutError:
            raise AssertionError(f"connection still open; got {got}") from None
        if p is None:
            return got
        got.append(p)
    raise AssertionError("too many PDUs")


SUBMIT = dict(source_addr="ACME", source_addr_ton=5, dest_addr_ton=1, dest_addr_npi=1,
              short_message=b"x")


def test_submit_before_bind(server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    r = raw.call(C.SUBMIT_SM, destination_addr="46701002001", **SUBMIT)
    assert r.command_id == C.SUBMIT_SM_RESP
    assert r.command_status == S.ESME_RINVBNDSTS
    assert raw.bind("acme", "pw1").command_status == S.ESME_ROK  # and a bind still works
    assert inbox(server.home, "46701002001") == []


def test_unknown_command_id(bound: RawEsme) -> None:
    bound.send_raw(frame(0x00000999, 77, b"\x01\x02\x03"))
    r = bound.wait_resp(77)
    assert r.command_id == C.GENERIC_NACK
    assert r.command_status == S.ESME_RINVCMDID
    assert_alive(bound)


def test_truncated_submit_body(bound: RawEsme) -> None:
    bound.send_raw(frame(C.SUBMIT_SM, 78, b"\x00\x05\x00ACME\x00\x01"))
    r = bound.wait_resp(78)
    assert r.command_id == C.SUBMIT_SM_RESP
    assert r.command_status == S.ESME_RINVCMDLEN
    assert_alive(bound)


def test_cstring_without_nul(server: ServerProcess, bound: RawEsme) -> None:
    # destination_addr runs past its 21 octets without a NUL
    body = b"\x00\x05\x00ACME\x00\x01\x01" + b"4670100200212345678901234567890"
    bound.send_raw(frame(C.SUBMIT_SM, 79, body))
    r = bound.wait_resp(79)
    assert r.command_id == C.SUBMIT_SM_RESP
    assert r.command_status == S.ESME_RINVDSTADR
    assert_alive(bound)
    # a bind whose system_id has no NUL at all
    raw = RawEsme(server.port)
    raw.send_raw(frame(C.BIND_TRANSMITTER, 5, b"acme"))
    r = raw.wait_resp(5)
    assert r.command_id == C.BIND_TRANSMITTER_RESP
    assert r.command_status != S.ESME_ROK
    r = raw.call(C.SUBMIT_SM, destination_addr="46701002002", **SUBMIT)
    assert r.command_status == S.ESME_RINVBNDSTS  # not bound


def test_pdu_too_long_closes_without_buffering(server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1").command_status == S.ESME_ROK
    raw.send_raw(struct.pack(">IIII", 64 * 1024 + 17, C.SUBMIT_SM, 0, 9) + b"\0" * 1024)
    got = assert_closed(raw)
    assert all(p.command_status == S.ESME_RINVCMDLEN for p in got)
    # the server did not wait for the rest: sending it now fails (or vanishes into a closed
    # socket), and the server is still fine for others
    sent = 0
    with pytest.raises(OSError):  # noqa: PT012 - the error comes from one of the sends
        for _ in range(200):
            raw.sock.sendall(b"\0" * 65536)
            sent += 65536
            time.sleep(0.001)
    assert sent < 64 * 65536
    other = RawEsme(server.port)
    assert other.bind("acme", "pw1").command_status == S.ESME_ROK
    assert_alive(other)


@pytest.mark.parametrize("length", [0, 8, 15])
def test_command_length_below_header_closes(server: ServerProcess, length: int) -> None:
    raw = RawEsme(server.port)
    raw.send_raw(struct.pack(">IIII", length, C.ENQUIRE_LINK, 0, 1))
    got = assert_closed(raw)
    assert all(p.command_status == S.ESME_RINVCMDLEN for p in got)


def test_bad_pdu_budget_closes(bound: RawEsme) -> None:
    for i in range(30):
        try:
            bound.send_raw(frame(0x00000999, 100 + i, b""))
        except OSError:
            break
    got = assert_closed(bound)
    nacks = [p for p in got if p.command_id == C.GENERIC_NACK]
    assert 1 <= len(nacks) <= 11
    assert all(p.command_status == S.ESME_RINVCMDID for p in nacks)


def test_byte_at_a_time_and_pipelined(server: ServerProcess, bound: RawEsme) -> None:
    dests = ["46701002010", "46701002011", "46701002012"]
    frames = [codec.encode(Pdu.make(C.SUBMIT_SM, 200 + i, destination_addr=d, **SUBMIT))
              for i, d in enumerate(dests)]
    for b in frames[0]:
        bound.send_raw(bytes([b]))
    bound.send_raw(frames[1] + frames[2])  # two PDUs in one segment
    resps = [bound.wait_resp(200 + i) for i in range(3)]
    assert [r.command_status for r in resps] == [S.ESME_ROK] * 3
    mids = [str(r.fields["message_id"]) for r in resps]
    assert len(set(mids)) == 3
    for d, mid in zip(dests, mids, strict=True):
        assert wait_for(lambda d=d, mid=mid: [x.smsc_message_id  # type: ignore[misc]
                                              for x in inbox(server.home, d)] == [mid])


def test_unsolicited_response(bound: RawEsme) -> None:
    bound.send_pdu(Pdu.make(C.DELIVER_SM_RESP, 4242))
    # ignored or answered with generic_nack; either way the session goes on
    assert_alive(bound)


@pytest.mark.parametrize(("n", "first"), [(50, 46701003000), (500, 46701004000)])
def test_peer_vanishes_mid_window(server: ServerProcess, n: int, first: int) -> None:
    """50 submit_sm, then the socket closes before any response is read. Whatever the server
    committed is delivered exactly once; nothing it did not commit reaches anyone."""
    raw = RawEsme(server.port)
    assert raw.bind("vanish", "pw2", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    dests = [str(first + i) for i in range(n)]
    data = b"".join(codec.encode(Pdu.make(C.SUBMIT_SM, 10 + i, destination_addr=d,
                                          registered_delivery=1, **SUBMIT))
                    for i, d in enumerate(dests))
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    torn = codec.encode(Pdu.make(C.SUBMIT_SM, 9999, destination_addr=str(first + n),
                                 registered_delivery=1, **SUBMIT))
    raw.send_raw(data + torn[: len(torn) // 2])  # the last one never arrives whole
    raw.sock.close()  # RST: responses in flight have nowhere to go
    time.sleep(1.0)

    def settled() -> bool:
        st = audit(server.home)["states"]
        return not any(st[s] for s in OPEN_STATES)  # type: ignore[index]

    assert wait_for(settled, 20, 0.3)
    report = audit(server.home)
    assert report["ok"] is True, report
    assert report["lost"] == 0
    assert report["misdelivered"] == 0
    assert report["duplicate_deliveries"] == 0
    # every committed message reached its own number exactly once
    by_dest = {d: inbox(server.home, d) for d in dests}
    assert all(len(v) <= 1 for v in by_dest.values())
    assert inbox(server.home, str(first + n)) == []
    delivered = sum(len(v) for v in by_dest.values())
    states = report["states"]
    assert isinstance(states, dict)
    # the vanish account only sent these: its messages are the DELIVERED ones in this range
    assert delivered >= 1, by_dest
    print(f"vanish: {delivered} of {n} committed and delivered")
    assert all(r.msisdn == d for d, v in by_dest.items() for r in v)
    # the receipts wait for a receiver of the account, then all arrive, once each
    rx = RawEsme(server.port)
    assert rx.bind("vanish", "pw2", C.BIND_RECEIVER).command_status == S.ESME_ROK
    receipts: list[Pdu] = []
    deadline = time.monotonic() + 15
    while len(receipts) < delivered and time.monotonic() < deadline:
        try:
            p = rx.read(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        assert p is not None
        if p.command_id == C.DELIVER_SM:
            receipts.append(p)
    ids = sorted(str(p.tlv("receipted_message_id")) for p in receipts)
    assert ids == sorted(v[0].smsc_message_id for v in by_dest.values() if v)


def test_unbind_answers_pipelined_submits_first(server: ServerProcess) -> None:
    """submit_sm x20 and unbind in one segment: every submit is answered before unbind_resp
    (a committed message without its response would be sent again by the ESME)."""
    raw = RawEsme(server.port)
    assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    dests = [str(46701005000 + i) for i in range(20)]
    raw.send_raw(b"".join(codec.encode(Pdu.make(C.SUBMIT_SM, 10 + i, destination_addr=d,
                                                **SUBMIT)) for i, d in enumerate(dests))
                 + codec.encode(Pdu.make(C.UNBIND, 99)))
    got = assert_closed(raw)
    assert [p.command_id for p in got] == [C.SUBMIT_SM_RESP] * 20 + [C.UNBIND_RESP]
    assert sorted(p.sequence_number for p in got[:20]) == list(range(10, 30))
    assert all(p.command_status == S.ESME_ROK for p in got)
    mids = {d: str(p.fields["message_id"]) for d, p in
            zip(dests, sorted(got[:20], key=lambda p: p.sequence_number), strict=True)}
    for d in dests:
        assert wait_for(lambda d=d: [x.smsc_message_id  # type: ignore[misc]
                                     for x in inbox(server.home, d)] == [mids[d]])


def test_duplicate_sequence_number_in_flight(server: ServerProcess, bound: RawEsme) -> None:
    """A second request with the number of one still being answered gets no answer (the
    ESME would match it to the first) and is not taken."""
    a, b = "46701005100", "46701005101"
    bound.send_raw(codec.encode(Pdu.make(C.SUBMIT_SM, 500, destination_addr=a, **SUBMIT))
                   + codec.encode(Pdu.make(C.SUBMIT_SM, 500, destination_addr=b, **SUBMIT)))
    r = bound.wait_resp(500)
    assert r.command_status == S.ESME_ROK
    assert_alive(bound)
    assert not [p for p in bound.pending if p.sequence_number == 500]
    mid = str(r.fields["message_id"])
    assert wait_for(lambda: [x.smsc_message_id for x in inbox(server.home, a)] == [mid])
    time.sleep(0.5)
    assert inbox(server.home, b) == []


def test_sigterm_answers_what_it_committed(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A graceful stop (SIGTERM) while submits are in flight: every message the server
    committed has had its submit_sm_resp ESME_ROK sent, so the ESME will not send it again."""
    home = tmp_path_factory.mktemp("sigterm")
    assert adressat(home, "account", "add", "acme", "--password", "pw1").returncode == 0
    srv = ServerProcess(home, None, "--quiet-network").start()
    try:
        raw = RawEsme(srv.port)
        assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
        n = 2000
        raw.send_raw(b"".join(codec.encode(Pdu.make(C.SUBMIT_SM, 10 + i,
                                                    destination_addr=str(46701010000 + i),
                                                    **SUBMIT)) for i in range(n)))
        time.sleep(0.02)
        assert srv.stop() == 0
        got = assert_closed(raw, 10)
    finally:
        srv.stop()
    ok = [p for p in got if p.command_id == C.SUBMIT_SM_RESP and p.command_status == S.ESME_ROK]
    report = audit(home)
    assert report["total"] == len(ok), (report["total"], len(ok), len(got))


def test_bind_attempts_are_limited(server: ServerProcess) -> None:
    """Three failed binds on one connection, then the server closes it: no unlimited
    password guessing."""
    raw = RawEsme(server.port)
    for i in range(2):
        assert raw.bind("acme", f"bad{i}").command_status == S.ESME_RBINDFAIL
    raw.request(C.BIND_TRANSCEIVER, system_id="nobody", password="pw1", interface_version=0x34)
    got = assert_closed(raw)
    assert [(p.command_id, p.command_status) for p in got] == [
        (C.BIND_TRANSCEIVER_RESP, S.ESME_RBINDFAIL)]
    # a new connection may try again, and the right password works
    other = RawEsme(server.port)
    assert other.bind("acme", "bad").command_status == S.ESME_RBINDFAIL
    assert other.bind("acme", "pw1").command_status == S.ESME_ROK


def test_receipts_survive_a_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Receipts wait in the store while no receiver is bound, across a stop and a start."""
    home = tmp_path_factory.mktemp("restart")
    assert adressat(home, "account", "add", "acme", "--password", "pw1").returncode == 0
    srv = ServerProcess(home, None, "--quiet-network").start()
    mids: dict[str, str] = {}
    try:
        raw = RawEsme(srv.port)
        assert raw.bind("acme", "pw1", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
        for i in range(5):
            d = str(46701012000 + i)
            r = raw.call(C.SUBMIT_SM, destination_addr=d, registered_delivery=1, **SUBMIT)
            assert r.command_status == S.ESME_ROK
            mids[str(r.fields["message_id"])] = d
        assert wait_for(lambda: len(customer_inbox(home)) == 5)
        raw.close()
        assert srv.stop() == 0
        assert audit(home)["receipts_pending"] == 5
        srv = ServerProcess(home, None, "--quiet-network").start()
        rx = RawEsme(srv.port)
        assert rx.bind("acme", "pw1", C.BIND_RECEIVER).command_status == S.ESME_ROK
        got: list[Pdu] = []
        deadline = time.monotonic() + 15
        while len(got) < 5 and time.monotonic() < deadline:
            p = rx.read(max(0.01, deadline - time.monotonic()))
            assert p is not None
            if p.command_id == C.DELIVER_SM:
                got.append(p)
        assert sorted(str(p.tlv("receipted_message_id")) for p in got) == sorted(mids)
        assert all(p.fields["source_addr"] == mids[str(p.tlv("receipted_message_id"))]
                   for p in got)
        assert wait_for(lambda: audit(home)["receipts_pending"] == 0)
    finally:
        srv.stop()


def test_no_message_text_in_the_log(server: ServerProcess, bound: RawEsme) -> None:
    secret = b"SECRET-7f3a9c-TEXT"
    for kw in [{}, {"priority_flag": 9}, {"validity_period": "991399999999999+"}]:
        bound.call(C.SUBMIT_SM, destination_addr="46701012100",
                   **{**SUBMIT, "short_message": secret, **kw})
    bound.send_raw(frame(C.SUBMIT_SM, 4000, b"\x00\x05\x00ACME\x00\x01\x01" + secret))
    bound.wait_resp(4000)
    assert wait_for(lambda: len(inbox(server.home, "46701012100")) == 1)
    assert secret not in server.log_path.read_bytes()


def test_bind_abandoned_before_its_answer_leaves_no_receiver(server: ServerProcess) -> None:
    """Connections that send bind_receiver and vanish before the answer (the password check
    takes a moment) must not stay registered as receivers: receipts would be sent into
    them and wait for the response timeout."""
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(codec.encode(Pdu.make(C.BIND_RECEIVER, 1, system_id="vanish",
                                        password="pw2", interface_version=0x34)))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(0.5)
    rx = RawEsme(server.port)
    assert rx.bind("vanish", "pw2", C.BIND_RECEIVER).command_status == S.ESME_ROK
    tx = RawEsme(server.port)
    assert tx.bind("vanish", "pw2", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    mids = set()
    for i in range(3):
        r = tx.call(C.SUBMIT_SM, destination_addr=str(46701013000 + i), registered_delivery=1,
                    **SUBMIT)
        assert r.command_status == S.ESME_ROK
        mids.add(str(r.fields["message_id"]))
    got: set[str] = set()
    deadline = time.monotonic() + 5
    while not mids <= got and time.monotonic() < deadline:
        try:
            p = rx.read(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        assert p is not None
        if p.command_id == C.DELIVER_SM:
            got.add(str(p.tlv("receipted_message_id")))
    assert mids <= got


def test_receipts_waiting_for_window_on_a_lost_connection(server: ServerProcess) -> None:
    """More receipts than the deliver_sm window are queued on a receiver that answers none
    and then drops: those waiting for the window must fail over too, not wait forever."""
    rx = RawEsme(server.port)
    assert rx.bind("vanish", "pw2", C.BIND_RECEIVER).command_status == S.ESME_ROK
    tx = RawEsme(server.port)
    assert tx.bind("vanish", "pw2", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    n = 150  # > window_size_max (100)
    tx.send_raw(b"".join(codec.encode(Pdu.make(C.SUBMIT_SM, 10 + i, registered_delivery=1,
                                                destination_addr=str(46701014000 + i),
                                                **SUBMIT)) for i in range(n)))
    mids = {str(tx.wait_resp(10 + i).fields["message_id"]) for i in range(n)}
    rx.sock.settimeout(10)
    data = b""
    deadline = time.monotonic() + 10
    while data.count(b"\x00\x00\x00\x05") < 100 and time.monotonic() < deadline:
        chunk = rx.sock.recv(65536)  # deliver_sm read, never answered
        assert chunk
        data += chunk
    rx.close()
    rx2 = RawEsme(server.port)
    assert rx2.bind("vanish", "pw2", C.BIND_RECEIVER).command_status == S.ESME_ROK
    got: set[str] = set()
    deadline = time.monotonic() + 8
    while not mids <= got and time.monotonic() < deadline:
        try:
            p = rx2.read(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        assert p is not None
        if p.command_id == C.DELIVER_SM:
            got.add(str(p.tlv("receipted_message_id")))
    assert len(mids - got) == 0


SM_HEAD = (b"\x00\x05\x00ACME\x00\x01\x01" + b"46701016000\x00" + b"\x00\x00\x00"
           + b"\x00\x00" + b"\x00\x00\x00\x00")


@pytest.mark.parametrize(("body", "status"), [
    (SM_HEAD + b"\xff" + b"a" * 255, S.ESME_RINVMSGLEN),  # sm_length over 254
    (SM_HEAD + b"\x0a" + b"a" * 5, S.ESME_RINVMSGLEN),  # sm_length past the end
    (SM_HEAD + b"\x00" + struct.pack(">HH", 0x0424, 100) + b"abc", S.ESME_RINVOPTPARSTREAM),
    (SM_HEAD + b"\x01x" + struct.pack(">HH", 0x020E, 4) + b"\0\0\0\1", S.ESME_RINVPARLEN),
    (SM_HEAD + b"\x00" + struct.pack(">HH", 0x0424, 3) + b"abc"
     + struct.pack(">HH", 0x0424, 3) + b"def", S.ESME_ROPTPARNOTALLWD),  # payload twice
    (SM_HEAD + b"\x01x" + struct.pack(">HH", 0x0424, 0), S.ESME_RINVMSGLEN),  # both
    (SM_HEAD + b"\x01x" + struct.pack(">HH", 0x1401, 2) + b"zz", S.ESME_ROK),  # unknown TLV
])
def test_malformed_submit_fields(bound: RawEsme, body: bytes, status: int) -> None:
    bound.send_raw(frame(C.SUBMIT_SM, 50, body))
    r = bound.wait_resp(50)
    assert r.command_id == C.SUBMIT_SM_RESP
    assert r.command_status == status
    assert_alive(bound)
