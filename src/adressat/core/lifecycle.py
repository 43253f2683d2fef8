"""The message state machine as data (DESIGN.md, "Message lifecycle"; STYLE.md #4).

``TRANSITIONS[old]`` is the set of states ``old`` may move to; any other move is an
:class:`IllegalTransition`. Final states have no exits: a final state is written once.

Decisions recorded here:

* ``CANCELLED`` is a final state added to the DESIGN.md list for SMPP ``cancel_sm``: the
  submitter withdrew a message that was not yet final nor in flight. Folding it into REJECTED
  would make receipts (stat ``DELETED``) and the audit trail lie about why a message ended.
* ``HELD`` (route breaker open) is not expired while held: it leaves only when an operator
  releases it (back to ROUTED, after which it may expire normally), cancels it, or discards it
  (UNDELIVERABLE).
* ``DEFERRED -> QUARANTINED`` exists so a late identity mismatch found after the lease was
  recovered still fails closed.
* Lease recovery after a crash is ``DISPATCHED -> DEFERRED``.
* ``FORWARDED`` (issue 11): a partner operator answered ESME_ROK. It leaves only by the
  partner's receipt (DELIVERED, UNDELIVERABLE (also for its DELETED), EXPIRED, REJECTED)
  or, when none came by validity end plus a grace, ``UNKNOWN``: final, and the sender's
  receipt says so (message_state UNKNOWN) rather than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping

from adressat.core.model import FINAL_STATES, State

S = State

TRANSITIONS: Mapping[State, frozenset[State]] = {
    S.ACCEPTED: frozenset({S.ROUTED, S.REJECTED, S.UNDELIVERABLE, S.CANCELLED}),
    S.ROUTED: frozenset({S.DISPATCHED, S.HELD, S.EXPIRED, S.UNDELIVERABLE, S.CANCELLED}),
    S.DISPATCHED: frozenset(
        {S.DELIVERED, S.DEFERRED, S.UNDELIVERABLE, S.QUARANTINED, S.EXPIRED, S.HELD,
         S.FORWARDED}
    ),
    # a partner accepted it: only its receipt (or the end of waiting for one) ends it; never
    # claimed again (I3: another attempt could reach the recipient a second time)
    S.FORWARDED: frozenset(
        {S.DELIVERED, S.UNDELIVERABLE, S.EXPIRED, S.REJECTED, S.UNKNOWN}
    ),
    S.DEFERRED: frozenset(
        {S.DISPATCHED, S.HELD, S.EXPIRED, S.UNDELIVERABLE, S.QUARANTINED, S.CANCELLED}
    ),
    S.HELD: frozenset({S.ROUTED, S.UNDELIVERABLE, S.CANCELLED}),
    S.DELIVERED: frozenset(),
    S.EXPIRED: frozenset(),
    S.UNDELIVERABLE: frozenset(),
    S.REJECTED: frozenset(),
    S.QUARANTINED: frozenset(),
    S.CANCELLED: frozenset(),
    S.UNKNOWN: frozenset(),
}


class IllegalTransition(ValueError):
    """Our own misuse: a move the lifecycle table does not allow."""

    def __init__(self, old: State, new: State) -> None:
        super().__init__(f"illegal transition {old.value} -> {new.value}")
        self.old = old
        self.new = new


def is_legal(old: State, new: State) -> bool:
    return new in TRANSITIONS[old]


def check_transition(old: State, new: State) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(old, new)


def is_final(state: State) -> bool:
    return state in FINAL_STATES


assert all(not TRANSITIONS[s] for s in FINAL_STATES), "final states have no exits"
assert set(TRANSITIONS) == set(State), "every state has a row"
