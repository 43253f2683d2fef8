"""core.accounts: limits said explicitly, CIDRs, sender rules (syntax and matching), the
address check, and that the moves it makes are the lifecycle's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adressat.core import accounts as A
from adressat.core.lifecycle import is_legal
from adressat.core.model import Account, State


def test_limits_are_a_number_or_unlimited() -> None:
    assert A.parse_limit("5", "--throughput", 100) == 5
    assert A.parse_limit("Unlimited", "--throughput", 100) is None
    for bad, said in (("-3", "at least 1"), ("0", "unlimited"), ("x", "whole number"),
                      ("101", "more than 100"), ("1.5", "whole number")):
        with pytest.raises(ValueError, match=said):
            A.parse_limit(bad, "--throughput", 100)
    assert A.parse_sessions_max("default") is None and A.parse_sessions_max("4") == 4
    with pytest.raises(ValueError, match="default"):
        A.parse_sessions_max("unlimited")
    assert A.limit_text(None) == "unlimited" and A.limit_text(7) == "7"


def test_allow_ip() -> None:
    assert A.check_allow_ip(["10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "10.0.0.0/8"]) == (
        "10.0.0.0/8", "127.0.0.1/32", "2001:db8::/32")
    for bad in ("10.0.0.1/8", "nowhere", "300.0.0.1", ""):
        with pytest.raises(ValueError, match="CIDR"):
            A.check_allow_ip([bad])
    nets = ("10.0.0.0/8", "2001:db8::/32")
    assert A.ip_allowed("10.1.2.3", nets) and A.ip_allowed("2001:db8::1", nets)
    assert A.ip_allowed("::ffff:10.0.0.1", nets)  # IPv4-mapped
    assert not A.ip_allowed("127.0.0.1", nets) and not A.ip_allowed("junk", nets)
    assert A.ip_allowed("anything", ())
    assert A.peer_host("127.0.0.1:4000") == "127.0.0.1" and A.peer_host("::1:4000") == "::1"


def test_sender_rule_syntax_and_canonical_form() -> None:
    assert A.check_senders(["46701234567", "+4670100*", "4670100-+4670199", "MyBank",
                            "+46701234567", "MYBANK"]) == (
        "+46701234567", "+4670100*", "+4670100-+4670199", "MyBank")
    for bad in ("", "*", "46-4", "4670199-4670100", "Way Too Long", "12a*", "+",
                "1234567890123456", "\x00ab", "0701234567", "070*"):
        with pytest.raises(ValueError, match="--senders"):
            A.check_senders([bad])


def test_sender_matching() -> None:
    r = A.SenderRules.of(["+46701234567", "4670100*", "4680100-4680199", "MyBank"])
    assert r is not None
    for ok in ("+46701234567", "46701234567", "0046701234567", "46701009999",
               "46801500000", "4680199", "mybank", "MYBANK"):
        assert r.allows(ok), ok
    for no in ("46701234568", "4670200000", "46802000000", "468019", "OtherBank", "",
               "MyBank2", "0701234567"):
        assert not r.allows(no), no
    assert A.SenderRules.of([]) is None  # no rules: any source


@given(st.from_regex(r"\+?[1-9][0-9]{0,14}", fullmatch=True))
def test_a_number_rule_allows_exactly_that_number(number: str) -> None:
    r = A.SenderRules.of([number])
    assert r is not None and r.allows(number)
    assert not r.allows(number.lstrip("+") + "0")


def test_account_refusal() -> None:
    a = Account("a", "h", allow_ip=("10.0.0.0/8",))
    assert A.account_refusal(a, "10.0.0.1:5000") is None
    assert A.account_refusal(a, "127.0.0.1:5000") == "not from an allowed address"
    assert A.account_refusal(Account("a", "h", disabled_at=1.0), "x") == "disabled"


def test_the_moves_are_the_lifecycles() -> None:
    assert all(is_legal(s, State.HELD) for s in A.HOLD_ON_DISABLE)
    assert is_legal(*A.HOLD_CLAIMED) and is_legal(*A.RELEASE_ON_ENABLE)
    assert all(is_legal(s, State.CANCELLED) for s in A.CANCEL_ON_REMOVE)


def test_check_account_fields() -> None:
    assert A.check_account_fields(throughput_per_s=None, senders=["MyBank"]) == {
        "throughput_per_s": None, "senders": ("MyBank",)}
    for bad in ({"throughput_per_s": True}, {"allow_ip": "10.0.0.0/8"}, {"name": "x"}):
        with pytest.raises(ValueError):
            A.check_account_fields(**bad)
