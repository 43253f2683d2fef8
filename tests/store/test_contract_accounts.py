"""Store contract of accounts an operator controls (schema v21, issue 13), both back ends:
the new fields round trip and are checked, every change moves accounts_version on, disable
holds the queue (and a route's release leaves it held), enable releases it, a claimed message
of a disabled account is held unsent, remove cancels the queue with receipts or keeps it."""

from __future__ import annotations

import pytest
from store_helpers import make_msg

from adressat.core.model import State
from adressat.store import Store
from adressat.store.base import UnknownAccount

NOW = 2000.0


def _acme(store: Store) -> None:
    store.add_account("acme", "scrypt$h", 10, sessions_max=3, allow_ip=["10.0.0.0/8"],
                      senders=["MyBank", "4670100*"])


def test_the_new_fields_round_trip(store: Store) -> None:
    _acme(store)
    a = store.get_account("acme")
    assert a is not None
    assert (a.throughput_per_s, a.sessions_max, a.allow_ip, a.senders) == (
        10, 3, ("10.0.0.0/8",), ("MyBank", "+4670100*"))
    assert not a.disabled and a.disabled_at is None
    store.add_account("plain", "h")
    p = store.get_account("plain")
    assert p is not None and (p.throughput_per_s, p.sessions_max, p.allow_ip, p.senders) == (
        None, None, (), ())


@pytest.mark.parametrize("bad", [
    {"throughput_per_s": -3}, {"throughput_per_s": 0}, {"sessions_max": 0},
    {"allow_ip": ["10.0.0.1/8"]}, {"allow_ip": ["x"]}, {"senders": ["4-40"]},
    {"senders": ["*"]}, {"password_hash": ""}, {"partner": True},
])
def test_bad_values_are_refused_and_nothing_is_written(store: Store, bad: dict[str, object]
                                                       ) -> None:
    _acme(store)
    before = (store.get_account("acme"), store.accounts_version())
    with pytest.raises(ValueError):
        store.update_account("acme", **bad)
    assert (store.get_account("acme"), store.accounts_version()) == before
    if "password_hash" not in bad and "partner" not in bad:
        with pytest.raises(ValueError):
            store.add_account("other", "h", **({"throughput_per_s": None} | bad))
        assert store.get_account("other") is None


def test_every_change_moves_the_version_on(store: Store) -> None:
    v0 = store.accounts_version()
    _acme(store)
    v1 = store.accounts_version()
    a = store.update_account("acme", throughput_per_s=None, senders=[], password_hash="h2")
    assert (a.throughput_per_s, a.senders, a.password_hash, a.sessions_max) == (
        None, (), "h2", 3)
    v2 = store.accounts_version()
    store.disable_account("acme", NOW)
    v3 = store.accounts_version()
    store.enable_account("acme", NOW)
    v4 = store.accounts_version()
    store.remove_account("acme", NOW)
    assert v0 < v1 < v2 < v3 < v4 < store.accounts_version()
    for op in (lambda: store.update_account("acme", sessions_max=2),
               lambda: store.disable_account("acme", NOW),
               lambda: store.enable_account("acme", NOW)):
        with pytest.raises(UnknownAccount):
            op()


def test_disable_holds_the_queue_and_enable_releases_it(store: Store) -> None:
    _acme(store)
    store.add_account("beta", "h")
    queued = make_msg(next_attempt_at=NOW + 100)
    deferred = make_msg(state=State.DEFERRED)
    other = make_msg(account="beta")
    store.insert_messages([queued, deferred, other])
    assert store.disable_account("acme", NOW) == 2
    a = store.get_account("acme")
    assert a is not None and a.disabled and a.disabled_at == NOW
    assert store.accounts_holding_queue() == frozenset({"acme"})
    assert {store.get_message(m.id).state for m in (queued, deferred)} == {State.HELD}  # type: ignore[union-attr]
    assert store.get_message(other.id).state is State.ROUTED  # type: ignore[union-attr]
    assert [m.id for m in store.claim_due(10, NOW + 1000, 30, "n1")] == [other.id]
    # a route's release leaves what the disable held
    store.release_route("netsim", NOW)
    assert store.get_message(queued.id).state is State.HELD  # type: ignore[union-attr]
    assert store.enable_account("acme", NOW + 5) == 2
    got = store.get_message(queued.id)
    assert got is not None and got.state is State.ROUTED and got.next_attempt_at == NOW + 5
    assert store.accounts_holding_queue() == frozenset()


def test_keep_queue_leaves_messages_queued(store: Store) -> None:
    _acme(store)
    m = make_msg()
    store.insert_messages([m])
    assert store.disable_account("acme", NOW, keep_queue=True) == 0
    assert store.get_message(m.id).state is State.ROUTED  # type: ignore[union-attr]
    assert store.accounts_holding_queue() == frozenset()
    a = store.get_account("acme")
    assert a is not None and a.disabled and a.disabled_keep_queue


def test_a_claimed_message_of_a_disabled_account_is_held_unsent(store: Store) -> None:
    _acme(store)
    m = make_msg()
    store.insert_messages([m])
    [claimed] = store.claim_due(10, NOW, 30, "n1")
    assert store.hold_claimed_of_disabled(claimed.id, claimed.attempts, NOW) is None  # enabled
    store.disable_account("acme", NOW)
    held = store.hold_claimed_of_disabled(claimed.id, claimed.attempts, NOW)
    assert held is not None and held.state is State.HELD and held.attempts == 0
    store.enable_account("acme", NOW)
    assert store.get_message(m.id).state is State.ROUTED  # type: ignore[union-attr]


def test_remove_cancels_the_queue_with_receipts_or_keeps_it(store: Store) -> None:
    _acme(store)
    store.add_account("beta", "h")
    a1, a2 = make_msg(), make_msg(state=State.DEFERRED)
    b1 = make_msg(account="beta")
    store.insert_messages([a1, a2, b1])
    store.disable_account("acme", NOW)  # a1, a2 HELD: remove cancels HELD ones too
    assert store.remove_account("acme", NOW, keep_queue=False)
    for m in (a1, a2):
        got = store.get_message(m.id)
        assert got is not None and got.state is State.CANCELLED and got.final_at == NOW
    assert {r.message_id for r in store.pending_receipts("acme")} == {a1.id, a2.id}
    assert store.remove_account("beta", NOW, keep_queue=True)
    assert store.get_message(b1.id).state is State.ROUTED  # type: ignore[union-attr]
    assert store.get_account("acme") is None and not store.remove_account("acme", NOW)
