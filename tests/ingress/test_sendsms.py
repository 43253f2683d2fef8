"""The pure parts of the Kannel-compatible sendsms: parameters, answers, coding, credentials
cache. What a client meets on the wire: tests/integration/test_e2e_sendsms.py."""

from __future__ import annotations

import pytest

from adressat.core.accept import Refusal
from adressat.core.callbacks import CallbackEvent, decode_spec
from adressat.core.model import Account
from adressat.ingress.refusals import ANSWERS
from adressat.ingress.sendsms import (
    AuthCache,
    KannelError,
    dcs_for,
    events_for_dlr_mask,
    kannel_answer,
    params_from_headers,
    parse_form,
    parse_request,
    submissions,
)
from adressat.sms.encodings import gsm7_encode


def _req(**kv: str | bytes) -> dict[str, bytes]:
    base: dict[str, bytes] = {"to": b"46701000001", "from": b"Shop", "text": b"hi"}
    base.update({k.replace("_", "-"): v if isinstance(v, bytes) else v.encode()
                 for k, v in kv.items()})
    return base


def _error(params: dict[str, bytes], **kw: object) -> tuple[int, str]:
    with pytest.raises(KannelError) as e:
        parse_request(params, **kw)  # type: ignore[arg-type]
    return e.value.status, e.value.text


def test_parse_form_reads_octets_plus_as_space_and_the_first_of_a_name() -> None:
    got = parse_form(b"text=h%C3%A5+j%00&to=1&to=2&flag&=x")
    assert got["text"] == "hå j\x00".encode()
    assert got["to"] == b"1"
    assert got["flag"] == b""


def test_every_refusal_has_a_kannel_answer_and_temporary_ones_are_503() -> None:
    for reason in Refusal:
        status, text = kannel_answer(reason)
        if ANSWERS[reason].temporary:
            assert (status, text) == (503, "Temporal failure, try again later.")
        else:
            assert status in (400, 403) and text
    assert kannel_answer(Refusal.INVALID_DESTINATION) == (403, "Not routable. Do not try again.")


def test_missing_and_empty_receiver_are_kannels_answers() -> None:
    p = _req()
    del p["to"]
    assert _error(p) == (400, "Missing receiver number, rejected")
    assert _error(p, post=True) == (400, "Missing receiver(s) number(s), rejected")
    assert _error(_req(to="")) == (400, "Empty receiver number not allowed, rejected")
    assert _error(_req(to="4670100000x")) == (
        400, "Number(s) has/have been denied by white- and/or black-lists.")
    assert _error(_req(**{"from": ""})) == (400, "Sender missing and no global set, rejected")


@pytest.mark.parametrize(("field", "value", "name"), [
    ("dlr-mask", "64", "DLR-Mask"), ("mclass", "4", "MClass"), ("pid", "256", "PID"),
    ("rpi", "3", "RPI"), ("alt-dcs", "2", "Alt-DCS"), ("mwi", "8", "MWI"),
    ("coding", "3", "Coding"), ("compress", "2", "Compress"), ("validity", "-5", "Validity"),
    ("deferred", "x", "Deferred"), ("priority", "4", "Priority"), ("dlr-url", "ftp://x", "DLR-URL"),
])
def test_each_field_out_of_range_is_that_fields_misformed_answer(field: str, value: str,
                                                                  name: str) -> None:
    assert _error(_req(**{field: value})) == (400, f"{name} field misformed, rejected")


def test_udh_must_carry_its_own_length() -> None:
    assert _error(_req(udh=b"\x05\x00\x03\x01")) == (400, "UDH field misformed, rejected")
    r = parse_request(_req(udh=b"\x05\x00\x03\x07\x02\x01", text=b"\x01\x02"))
    assert r.esm_class == 0x40 and r.data_coding == 0x04  # with a UDH: 8-bit unless said
    assert r.content == b"\x05\x00\x03\x07\x02\x01\x01\x02"


def test_receivers_split_on_spaces_once_each_and_bounded() -> None:
    r = parse_request(_req(to="+46701000001 46701000002  +46701000001"))
    assert r.receivers == ("+46701000001", "46701000002")
    assert _error(_req(to="1 2 3"), receivers_max=2) == (400, "Too many receivers, rejected")


def test_codings_and_charsets() -> None:
    seven = parse_request(_req(text="Hå €".encode()))
    assert seven.data_coding == 0 and seven.content == gsm7_encode("Hå €")
    latin = parse_request(_req(text="Hå".encode("latin-1"), charset=b"ISO-8859-1"))
    assert latin.content == gsm7_encode("Hå")
    assert parse_request(_req(text="a😀".encode())).content == gsm7_encode("a?")  # as Kannel
    eight = parse_request(_req(text=b"\x00\xff", coding=b"1"))
    assert (eight.data_coding, eight.content) == (4, b"\x00\xff")
    ucs = parse_request(_req(text="Ж".encode("utf-16-be"), coding=b"2"))
    assert (ucs.data_coding, ucs.content) == (8, b"\x04\x16")
    ucs8 = parse_request(_req(text="Ж".encode(), coding=b"2", charset=b"UTF-8"))
    assert ucs8.content == b"\x04\x16"
    assert _error(_req(text=b"\x04", coding=b"2")) == (400, "Charset or body misformed, rejected")
    assert _error(_req(text=b"\xff", charset=b"UTF-8")) == (
        400, "Charset or body misformed, rejected")
    assert _error(_req(charset=b"no-such-charset")) == (400, "Charset or body misformed, rejected")


def test_dcs_as_kannels_fields_to_dcs() -> None:
    assert dcs_for(0, None, None, False, True) == 0x00
    assert dcs_for(1, 1, None, False, True) == 0x15
    assert dcs_for(2, 0, None, False, True) == 0x18
    assert dcs_for(0, 0, None, True, True) == 0xF0
    assert dcs_for(1, None, None, True, True) == 0xF5
    assert dcs_for(0, None, 0, False, True) == 0xD8  # voicemail waiting, active, 7-bit
    assert dcs_for(0, None, 4, False, True) == 0xC0  # inactive


def test_submissions_carry_channel_callback_times_and_no_smpp_receipt() -> None:
    r = parse_request(_req(to="+46701000001 0701000002", validity=b"10", deferred=b"5",
                           dlr_mask=b"3", dlr_url=b"http://127.0.0.1:9/d?s=%d&id=%I"))
    subs = submissions(r, "shop", 1000.0)
    assert [(s.dest_addr, s.dest_ton) for s in subs] == [("46701000001", 1), ("0701000002", 0)]
    s = subs[0]
    assert s.registered_delivery == 0 and s.extra["channel"] == "kannel"
    assert s.schedule_at == 1300.0 and s.expires_at == 1900.0
    assert (s.source_addr, s.source_ton) == ("Shop", 5)
    spec = decode_spec(str(s.extra["cb"]))
    assert spec.kind == "kannel" and spec.url == "http://127.0.0.1:9/d?s=%d&id=%I"
    assert spec.events == {CallbackEvent.DELIVERED, CallbackEvent.FAILED}
    no_cb = submissions(parse_request(_req(dlr_url=b"http://h/x")), "shop", 0.0)[0]
    assert "cb" not in no_cb.extra  # a dlr-url without a mask asks for nothing (Kannel)


def test_dlr_mask_events() -> None:
    assert events_for_dlr_mask(8) == {CallbackEvent.ACCEPTED}
    assert events_for_dlr_mask(4) == {CallbackEvent.DEFERRED, CallbackEvent.FORWARDED}
    assert events_for_dlr_mask(16) == {CallbackEvent.FAILED}
    assert events_for_dlr_mask(0) == frozenset()


def test_kannel_post_headers() -> None:
    p = params_from_headers({"X-Kannel-To": " 46701000001 ", "X-Kannel-UDH": "0500030102 01",
                             "X-Kannel-Username": "u", "Other": "x"}, b"body")
    assert p["to"] == b"46701000001" and p["username"] == b"u" and p["text"] == b"body"
    assert "other" not in p
    p2 = params_from_headers({"X-Kannel-UDH": "%05%00%03%01%02%01"}, b"")
    assert p2["udh"] == b"\x05\x00\x03\x01\x02\x01"


def test_auth_cache_keys_on_the_stored_hash_and_expires_and_is_bounded() -> None:
    c = AuthCache(60.0, 2)
    a = Account("shop", "scrypt$1")
    c.put(a, "pw", 0.0)
    assert c.hit(a, "pw", 1.0)
    assert not c.hit(a, "other", 1.0)
    assert not c.hit(Account("shop", "scrypt$2"), "pw", 1.0)  # password changed
    assert not c.hit(a, "pw", 61.0)
    for i in range(5):
        c.put(Account(f"a{i}", "h"), "pw", 100.0)
    assert len(c) == 2


class _Reader:
    """A committer's read() over one account (the only store call _authorise makes)."""

    def __init__(self, account: Account | None) -> None:
        self.account = account

    async def read(self, fn: object) -> Account | None:
        return self.account


def test_a_good_password_is_checked_once_a_wrong_one_every_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from adressat.core.passwords import hash_password
    from adressat.ingress import credentials, sendsms

    stored = hash_password("pw", b"saltsalt", n=2)
    calls: list[str] = []

    real = credentials.verify_password

    def counting(password: str, encoded: str) -> bool:
        calls.append(password)
        return real(password, encoded)

    monkeypatch.setattr(credentials, "verify_password", counting)
    now = [0.0]
    ep = sendsms.SendSms(None, _Reader(Account("shop", stored)), {},  # type: ignore[arg-type]
                         auth_cache_s=60.0, clock=lambda: now[0])

    async def run() -> None:
        good = {"username": b"shop", "password": b"pw"}
        for _ in range(3):
            assert (await ep._authorise(good, "127.0.0.1")).name == "shop"
        assert calls == ["pw"]
        for _ in range(2):
            with pytest.raises(KannelError) as e:
                await ep._authorise({"user": b"shop", "pass": b"bad"}, "127.0.0.1")
            assert (e.value.status, e.value.text) == (403, "Authorization failed for sendsms")
        assert calls == ["pw", "bad", "bad"]
        now[0] = 61.0  # the cached check has expired: checked again
        await ep._authorise(good, "127.0.0.1")
        assert calls == ["pw", "bad", "bad", "pw"]
        ep.committer = _Reader(None)  # type: ignore[assignment]
        with pytest.raises(KannelError):  # unknown name: refused, after a full check too
            await ep._authorise({"username": b"ghost", "password": b"pw"}, "127.0.0.1")
        assert len(calls) == 5
        # the account record itself is read again after account_cache_s: gone, refused
        now[0] = 63.0
        with pytest.raises(KannelError):
            await ep._authorise(good, "127.0.0.1")

    asyncio.run(run())


def test_a_burst_with_the_same_credentials_waits_for_one_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from adressat.core.passwords import hash_password
    from adressat.ingress import credentials, sendsms

    stored = hash_password("pw", b"saltsalt", n=2)
    calls: list[str] = []
    real = credentials.verify_password

    def counting(password: str, encoded: str) -> bool:
        calls.append(password)
        return real(password, encoded)

    monkeypatch.setattr(credentials, "verify_password", counting)
    ep = sendsms.SendSms(None, _Reader(Account("shop", stored)), {})  # type: ignore[arg-type]

    async def run() -> None:
        got = await asyncio.gather(*(ep._authorise({"user": b"shop", "pass": b"pw"}, "127.0.0.1")
                                     for _ in range(20)))
        assert {a.name for a in got} == {"shop"}
        assert calls == ["pw"]
        assert not ep._checking

    asyncio.run(run())
