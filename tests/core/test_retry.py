from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adressat.core.retry import RetryPolicy
from adressat.core.scheduling import counter_key, give_scts, takes_scts

P = RetryPolicy()
jit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@given(jit)
def test_first_retry_within_20_s(j: float) -> None:
    at = P.next_attempt_at(1, 1000.0, 10_000.0, j)
    assert at is not None and 1000.0 < at <= 1020.0


def test_growth_and_cap() -> None:
    ds = [P.delay_s(n, 0.5) for n in range(1, 12)]
    assert ds[:6] == [15.0, 30.0, 60.0, 300.0, 900.0, 3600.0]
    assert all(d == 3600.0 for d in ds[6:])
    assert ds == sorted(ds)


@given(st.integers(1, 50), st.floats(0, 1e9), st.floats(0, 1e5), jit)
def test_never_past_expiry(n: int, now: float, validity: float, j: float) -> None:
    at = P.next_attempt_at(n, now, now + validity, j)
    if at is not None:
        assert now < at < now + validity
    else:
        assert now + P.delay_s(n, j) >= now + validity


@given(st.integers(1, 20), jit)
def test_jitter_bounds(n: int, j: float) -> None:
    base = P.delays_s[min(n, len(P.delays_s)) - 1]
    assert base * 0.9 <= P.delay_s(n, j) <= base * 1.1


def test_invalid() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(delays_s=())
    with pytest.raises(ValueError):
        P.delay_s(1, 1.0)


def test_tp_scts_counter_key_and_stamp() -> None:
    assert counter_key("46701000042") == 46701000042
    # not E.164 digits (never stored, but a claim must not fail on it): a hash above them all
    odd = counter_key("4670１")
    assert odd == counter_key("4670１") and odd > 10**15 and odd < 2**63
    assert counter_key("1" * 16) > 10**15
    # TS 23.040 6.2: the second the message reached the SC, bumped past the last one given
    assert give_scts(None, 1000.9) == 1000
    assert give_scts(999, 1000.2) == 1000
    assert give_scts(1000, 1000.7) == 1001  # two within one second: distinct
    assert give_scts(1001, 1000.99) == 1002  # the bump is kept, and carried on
    assert give_scts(5000, 1000.0) == 5001  # the clock stepped back: still distinct
    # the first attempt takes one, a resend keeps its own, a message attempted before v9
    # (no stamp, attempts > 0) keeps its legacy identity
    assert takes_scts(None, 0) and not takes_scts(1000, 0)
    assert not takes_scts(1000, 3) and not takes_scts(None, 1)
