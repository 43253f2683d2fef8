"""The pure parts of the callback sender: signatures, the webhook body, Kannel's dlr-url
escapes, what an HTTP status means, the backoff (ingress/callbacks.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from adressat.core.callbacks import BadCallbackSpec, Callback, CallbackEvent
from adressat.core.model import Account, State
from adressat.ingress.callbacks import (
    DLR_TYPE,
    RetryPolicy,
    Verdict,
    events_for_dlr_mask,
    expand_dlr_url,
    kannel_reply,
    kannel_report,
    kannel_spec,
    parse_retry_after,
    rfc3339,
    sign,
    url_allowed,
    verdict,
    verify,
    webhook_body,
)

SECRET = bytes(range(32))
AT = datetime(2026, 12, 3, 20, 11, 33, 250000, tzinfo=UTC).timestamp()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "http-api.md"


def _cb(event: CallbackEvent = CallbackEvent.DELIVERED, state: State = State.DELIVERED,
        error: int | None = None, **kw: object) -> Callback:
    base: dict[str, object] = dict(
        event_id=42, message_id="0190c0ffee0000010000000000000001", account="acme",
        kind="webhook", url="https://hooks.example.com/sms", event=event, state=state,
        error=error, at=AT, source_addr="Acme", destination="46701000001", attempts=0,
        next_attempt_at=AT, last_status=None, sent_at=None, gave_up_at=None)
    base.update(kw)
    return Callback(**base)  # type: ignore[arg-type]


# --- signatures ------------------------------------------------------------------------------

def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, 1764792693, body)
    t, v1 = header.split(",")
    assert t == "t=1764792693"
    assert v1 == "v1=" + hmac.new(SECRET, b"1764792693." + body, hashlib.sha256).hexdigest()


def test_verify_accepts_its_own_signature_within_tolerance() -> None:
    body = webhook_body(_cb())
    header = sign(SECRET, 1000, body)
    assert verify(SECRET, header, body, now=1000)
    assert verify(SECRET, header, body, now=1300)
    assert verify(SECRET, header, body, now=700)


@pytest.mark.parametrize("case", ["other body", "other secret", "too old", "too new",
                                  "no t", "no v1", "two t", "bad t", "garbage", "empty",
                                  "v1 of another t"])
def test_verify_refuses(case: str) -> None:
    body = b'{"id":"1"}'
    header = sign(SECRET, 1000, body)
    secret, now = SECRET, 1000.0
    if case == "other body":
        body = b'{"id":"2"}'
    elif case == "other secret":
        secret = b"x" * 32
    elif case == "too old":
        now = 1301
    elif case == "too new":
        now = 699
    elif case == "no t":
        header = header.split(",")[1]
    elif case == "no v1":
        header = header.split(",")[0]
    elif case == "two t":
        header = "t=1000," + header
    elif case == "bad t":
        header = header.replace("t=1000", "t=1e3")
    elif case == "garbage":
        header = "sha256=deadbeef"
    elif case == "empty":
        header = ""
    elif case == "v1 of another t":
        header = "t=1001," + header.split(",")[1]
    assert not verify(secret, header, body, now)


def test_verify_takes_any_of_several_v1_and_ignores_unknown_items() -> None:
    body = b"{}"
    good = sign(SECRET, 5000, body).split(",")[1]
    header = f"t=5000,v1={'0' * 64},{good},v9=whatever"
    assert verify(SECRET, header, body, now=5000)


def test_the_verify_snippet_in_the_docs_works() -> None:
    """docs/http-api.md "Verifying callbacks": its Python snippet, run as a receiver would,
    accepts our signature and refuses a changed body and a replay."""
    text = DOCS.read_text()
    assert "## Verifying callbacks" in text
    section = text.split("## Verifying callbacks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    ns: dict[str, object] = {}
    exec(compile(code.group(1), str(DOCS), "exec"), ns)  # noqa: S102 - our own docs
    check = ns["verify_adressat_signature"]
    body = webhook_body(_cb())
    header = sign(SECRET, 1_764_792_693, body)
    assert check(SECRET, header, body, now=1_764_792_700)  # type: ignore[operator]
    assert not check(SECRET, header, body + b" ", now=1_764_792_700)  # type: ignore[operator]
    assert not check(SECRET, header, body, now=1_764_792_693 + 301)  # type: ignore[operator]


# --- the webhook body ------------------------------------------------------------------------

def test_webhook_body_fields() -> None:
    doc = json.loads(webhook_body(_cb(CallbackEvent.FAILED, State.EXPIRED, error=8),
                                  client_reference="order-17"))
    assert doc == {"id": "42", "type": "message.failed",
                   "message_id": "0190c0ffee0000010000000000000001", "state": "expired",
                   "error": 8, "at": "2026-12-03T20:11:33.250Z", "to": "+46701000001",
                   "from": "Acme", "client_reference": "order-17"}
    intl = json.loads(webhook_body(_cb(source_addr="46709999999"), None, True))
    assert intl["from"] == "+46709999999"


def test_webhook_body_without_reference_has_no_such_key_and_is_stable() -> None:
    a, b = webhook_body(_cb()), webhook_body(_cb())
    assert a == b  # the same event: the same bytes
    assert "client_reference" not in json.loads(a)
    assert json.loads(a)["error"] is None


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert datetime.fromisoformat(rfc3339(AT)).timestamp() == pytest.approx(AT)


# --- Kannel ----------------------------------------------------------------------------------

def _report(event: CallbackEvent = CallbackEvent.DELIVERED, state: State = State.DELIVERED,
            **kw: object):  # type: ignore[no-untyped-def]
    return kannel_report(_cb(event, state, kind="kannel", **kw), route="netsim",
                         submitted_at=AT - 60, partner_id=None)


def test_dlr_types() -> None:
    assert DLR_TYPE == {CallbackEvent.DELIVERED: 1, CallbackEvent.FAILED: 2,
                        CallbackEvent.DEFERRED: 4, CallbackEvent.FORWARDED: 4,
                        CallbackEvent.ACCEPTED: 8}


def test_kannel_escapes_of_the_issue() -> None:
    url = "http://app.example/dlr?type=%d&reply=%A&from=%p&to=%P&t=%t&ts=%T&smsc=%i&id=%I"
    out = expand_dlr_url(url, _report())
    q = dict(p.split("=", 1) for p in out.split("?", 1)[1].split("&"))
    assert q["type"] == "1"
    assert q["from"] == "Acme" and q["to"] == "46701000001"
    assert q["t"] == "2026-12-03+20:11:33"
    assert q["ts"] == str(int(AT))
    assert q["smsc"] == "netsim"
    assert q["id"] == "0190c0ffee0000010000000000000001"
    # the reply is an SMPP receipt text, encoded (spaces and colons)
    assert q["reply"].startswith("id%3A0190c0ffee0000010000000000000001%20sub%3A001%20dlvrd%3A001")
    assert "stat%3ADELIVRD" in q["reply"]


def test_kannel_failed_and_accepted_and_buffered() -> None:
    assert "stat:EXPIRED err:008" in kannel_reply(
        _cb(CallbackEvent.FAILED, State.EXPIRED, error=8), AT - 60)
    assert kannel_reply(_cb(CallbackEvent.ACCEPTED, State.ROUTED), AT) == "ACK/"
    assert "stat:ENROUTE" in kannel_reply(_cb(CallbackEvent.DEFERRED, State.DEFERRED), AT)
    assert expand_dlr_url("%d", _report(CallbackEvent.FAILED, State.UNDELIVERABLE)) == "2"
    assert expand_dlr_url("%d", _report(CallbackEvent.ACCEPTED, State.ROUTED)) == "8"
    assert expand_dlr_url("%d", _report(CallbackEvent.DEFERRED, State.DEFERRED)) == "4"


def test_kannel_values_are_url_encoded() -> None:
    r = kannel_report(_cb(kind="kannel", source_addr="A&B=C D+", destination="0046701"),
                      route="route/1")
    assert expand_dlr_url("%p|%i|%q|%Q", r) == (
        "A%26B%3DC%20D%2B|route%2F1|A%26B%3DC%20D%2B|%2B46701")


def test_kannel_foreign_id_is_the_partners_else_ours() -> None:
    cb = _cb(kind="kannel")
    assert expand_dlr_url("%F", kannel_report(cb, partner_id="ab12")) == "ab12"
    assert expand_dlr_url("%F", kannel_report(cb)) == cb.message_id


def test_kannel_words_of_the_reply() -> None:
    r = _report(CallbackEvent.ACCEPTED, State.ROUTED)  # reply "ACK/"
    assert expand_dlr_url("%k|%s|%r|%a|%b", r) == "ACK%2F|||ACK%2F|ACK%2F"
    r = _report()  # "id:... sub:001 dlvrd:001 submit date:..."
    assert expand_dlr_url("%s,%s,%S", r) == "sub%3A001,dlvrd%3A001,submit"
    assert expand_dlr_url("%k", r) == "id%3A0190c0ffee0000010000000000000001"


def test_kannel_percent_unknown_and_trailing() -> None:
    r = _report()
    assert expand_dlr_url("100%%", r) == "100%"
    assert expand_dlr_url("a%Zb", r) == "a%Zb"  # unknown: as written, as in Kannel
    assert expand_dlr_url("x%20y", r) == "x%20y"  # an encoded space survives
    assert expand_dlr_url("end%", r) == "end%"
    assert expand_dlr_url("%o%O%D%f%u%m%M%x", r) == ""
    assert expand_dlr_url("%n|%B|%c|%C", r) == "acme|000|0|UTF-8"


def test_kannel_R_is_the_dlr_url_itself_encoded() -> None:
    cb = _cb(kind="kannel", url="http://h/x?a=%R")
    assert expand_dlr_url(cb.url, kannel_report(cb)) == "http://h/x?a=http%3A%2F%2Fh%2Fx%3Fa%3D%25R"


# --- statuses and backoff --------------------------------------------------------------------

@pytest.mark.parametrize(("status", "v"), [
    (200, Verdict.SENT), (204, Verdict.SENT), (299, Verdict.SENT),
    (0, Verdict.RETRY), (500, Verdict.RETRY), (503, Verdict.RETRY), (429, Verdict.RETRY),
    (408, Verdict.RETRY),
    (301, Verdict.GIVE_UP), (400, Verdict.GIVE_UP), (401, Verdict.GIVE_UP),
    (404, Verdict.GIVE_UP), (410, Verdict.GIVE_UP), (100, Verdict.GIVE_UP),
])
def test_verdict(status: int, v: Verdict) -> None:
    assert verdict(status) is v


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("120", 0) == 120
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after("soon", 0) is None
    now = 1_764_792_693.0
    date = format_datetime(datetime.fromtimestamp(now + 30, tz=UTC), usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(30, abs=1)
    past = format_datetime(datetime.fromtimestamp(now - 30, tz=UTC), usegmt=True)
    assert parse_retry_after(past, now) == 0


def test_backoff_ceiling_doubles_from_min_to_max() -> None:
    p = RetryPolicy(1.0, 3600.0, 86400.0)
    assert [p.ceiling_s(n) for n in range(4)] == [1, 2, 4, 8]
    assert p.ceiling_s(12) == 3600 and p.ceiling_s(10_000) == 3600


def test_backoff_has_full_jitter_within_the_ceiling() -> None:
    p = RetryPolicy(1.0, 3600.0, 86400.0)
    rng = random.Random(7)
    delays = [p.delay_s(5, rng) for _ in range(2000)]
    assert all(0 <= d <= 32 for d in delays)
    assert min(delays) < 2 and max(delays) > 30  # spread over the whole range
    assert 14 < sum(delays) / len(delays) < 18  # uniform: mean about 16


def test_next_attempt_honours_retry_after_and_clamps_it() -> None:
    p = RetryPolicy(1.0, 60.0, 86400.0)
    rng = random.Random(1)
    at = p.next_attempt_at(at=0, attempts=0, now=10, rng=rng, retry_after_s=30)
    assert at == 40  # 30 s, more than the jittered <= 1 s
    at = p.next_attempt_at(at=0, attempts=0, now=10, rng=rng, retry_after_s=10_000)
    assert at == 70  # clamped to delay_s_max


def test_next_attempt_never_past_keep_and_then_gives_up() -> None:
    p = RetryPolicy(1.0, 3600.0, 100.0)
    rng = random.Random(2)
    for _ in range(100):
        at = p.next_attempt_at(at=0, attempts=20, now=99, rng=rng)
        assert at is not None and 99 <= at <= 100  # the last try at the deadline at most
    assert p.next_attempt_at(at=0, attempts=0, now=100, rng=rng) is None
    assert p.next_attempt_at(at=0, attempts=0, now=5000, rng=rng) is None


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(0, 1, 1)
    with pytest.raises(ValueError):
        RetryPolicy(2, 1, 1)


# --- whose hosts -----------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "ok"), [
    ("https://hooks.example.com/other/path", True),
    ("http://HOOKS.example.com:8080/x", True),
    ("https://b.example/z", True),
    ("https://evil.example/", False),
    ("https://hooks.example.com.evil.example/", False),
    ("https://user@hooks.example.com/", False),
    ("https://hooks.example.com@evil.example/", False),
    ("ftp://hooks.example.com/", False),
    ("https://hooks.example.com:99999/", False),
    ("not a url", False),
])
def test_url_allowed_only_to_the_accounts_hosts(url: str, ok: bool) -> None:
    acct = Account(name="acme", password_hash="x", callback_url="https://hooks.example.com/sms",
                   callback_hosts=("b.example",))
    assert url_allowed(url, acct) is ok


def test_an_account_without_callback_settings_allows_nothing() -> None:
    assert not url_allowed("https://hooks.example.com/", Account(name="a", password_hash="x"))


def test_the_example_in_the_docs_is_what_we_send_and_its_signature_verifies() -> None:
    section = DOCS.read_text().split("## Verifying callbacks", 1)[1]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    header = re.search(r"Adressat-Signature: (\S+)", section).group(1)  # type: ignore[union-attr]
    cb = _cb(event_id=1042)
    ours = webhook_body(cb, "order-17")
    assert json.loads(ours) == example  # the same fields and values as documented
    assert verify(SECRET, header, ours, now=1_764_792_693)


def test_kannel_spec_from_a_dlr_mask() -> None:
    spec = kannel_spec("http://app.example/dlr?t=%d&id=%I", 3)
    assert spec is not None and spec.kind == "kannel"
    assert spec.events == {CallbackEvent.DELIVERED, CallbackEvent.FAILED}
    assert kannel_spec("http://app.example/dlr", 31).events == set(CallbackEvent)  # type: ignore[union-attr]
    spec16 = kannel_spec("http://app.example/dlr", 16)  # a partner's refusal after our 202
    assert spec16 is not None and spec16.events == {CallbackEvent.FAILED}
    assert kannel_spec("http://app.example/dlr", 0) is None
    assert events_for_dlr_mask(4) == {CallbackEvent.DEFERRED, CallbackEvent.FORWARDED}
    assert events_for_dlr_mask(8) == {CallbackEvent.ACCEPTED}


@pytest.mark.parametrize("url", ["ftp://app.example/", "http://%p.example/dlr", "app.example",
                                 "http:///dlr", "http://app.example/a b"])
def test_kannel_spec_refuses_what_is_not_a_plain_url(url: str) -> None:
    with pytest.raises(BadCallbackSpec):
        kannel_spec(url, 1)
