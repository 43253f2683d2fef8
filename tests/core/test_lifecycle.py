from __future__ import annotations

import itertools

import pytest

from adressat.core.lifecycle import TRANSITIONS, IllegalTransition, check_transition, is_legal
from adressat.core.model import FINAL_STATES, State

S = State

# The expected table, written out independently of lifecycle.py.
LEGAL = {
    (S.ACCEPTED, S.ROUTED), (S.ACCEPTED, S.REJECTED), (S.ACCEPTED, S.UNDELIVERABLE),
    (S.ACCEPTED, S.CANCELLED),
    (S.ROUTED, S.DISPATCHED), (S.ROUTED, S.HELD), (S.ROUTED, S.EXPIRED),
    (S.ROUTED, S.UNDELIVERABLE), (S.ROUTED, S.CANCELLED),
    (S.DISPATCHED, S.DELIVERED), (S.DISPATCHED, S.DEFERRED), (S.DISPATCHED, S.UNDELIVERABLE),
    (S.DISPATCHED, S.QUARANTINED), (S.DISPATCHED, S.EXPIRED), (S.DISPATCHED, S.HELD),
    (S.DISPATCHED, S.FORWARDED),
    (S.FORWARDED, S.DELIVERED), (S.FORWARDED, S.UNDELIVERABLE), (S.FORWARDED, S.EXPIRED),
    (S.FORWARDED, S.REJECTED), (S.FORWARDED, S.UNKNOWN),
    (S.DEFERRED, S.DISPATCHED), (S.DEFERRED, S.HELD), (S.DEFERRED, S.EXPIRED),
    (S.DEFERRED, S.UNDELIVERABLE), (S.DEFERRED, S.QUARANTINED), (S.DEFERRED, S.CANCELLED),
    (S.HELD, S.ROUTED), (S.HELD, S.UNDELIVERABLE), (S.HELD, S.CANCELLED),
}


@pytest.mark.parametrize("old,new", list(itertools.product(State, State)))
def test_every_pair(old: State, new: State) -> None:
    if (old, new) in LEGAL:
        check_transition(old, new)
        assert is_legal(old, new)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(old, new)
        assert not is_legal(old, new)


def test_final_states_have_no_exits() -> None:
    assert FINAL_STATES == {
        S.DELIVERED, S.EXPIRED, S.UNDELIVERABLE, S.REJECTED, S.QUARANTINED, S.CANCELLED,
        S.UNKNOWN,
    }
    for s in FINAL_STATES:
        assert TRANSITIONS[s] == frozenset()


def test_held_is_not_expired_while_held() -> None:
    assert not is_legal(S.HELD, S.EXPIRED)
    assert not is_legal(S.HELD, S.DISPATCHED)


def test_every_non_final_state_reaches_a_final_state() -> None:
    for s in State:
        seen, todo = set(), [s]
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            todo.extend(TRANSITIONS[x])
        assert seen & FINAL_STATES
