"""Contract of the store's part of issue 12 (HTTP senders), on every back end: API keys,
an account's callback settings, idempotency records, the callbacks outbox written by the
store itself in the transaction of each state change it reports (every path), the per-message
order of ``due_callbacks``, retention of both, and ``messages_by_reference``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from store_helpers import make_msg

from adressat.core.callbacks import (
    Callback,
    CallbackEvent,
    encode_spec,
    make_spec,
)
from adressat.core.interconnect import canonical_id, id_candidates
from adressat.core.model import AttemptRecord, ForwardPart, Message, PartnerReceipt, State
from adressat.store import SqliteStore, StaleState, Store, Transition
from adressat.store.base import (
    FinishedAttempt,
    IdempotencyExists,
    UnknownAccount,
)

S = State
E = CallbackEvent
NOW = 2000.0
ALL = tuple(CallbackEvent)
URL = "https://hooks.acme.example/sms"


def _cb(events: tuple[CallbackEvent, ...] = ALL, kind: str = "webhook", url: str = URL) -> str:
    return encode_spec(make_spec(kind, url, events))


def _msg(events: tuple[CallbackEvent, ...] | None = ALL, **kw: Any) -> Message:
    extra: dict[str, int | str] = dict(kw.pop("extra", {}))
    if events is not None:
        extra["cb"] = _cb(events)
        extra["channel"] = "http"
    return make_msg(extra=extra, **kw)


def _events(store: Store, m: Message) -> list[tuple[CallbackEvent, State]]:
    return [(c.event, c.state) for c in store.callbacks_of_message(m.id)]


def _claim(store: Store, *msgs: Message, now: float = NOW) -> list[Message]:
    store.insert_messages(list(msgs))
    claimed = store.claim_due(len(msgs), now, 60.0, "w1")
    by_id = {m.id: m for m in claimed}
    assert set(by_id) == {m.id for m in msgs}
    return [by_id[m.id] for m in msgs]


def _record(m: Message, outcome: str = "DELIVERED") -> AttemptRecord:
    return AttemptRecord(m.id, m.account, m.destination, "240010000000001", m.route, 1,
                         m.attempts, NOW, NOW + 1, outcome, 0)


def _delivered(m: Message) -> FinishedAttempt:
    return FinishedAttempt(
        m, S.DELIVERED,
        {"error": 0, "delivered_imsi": "240010000000001", "delivered_msisdn": m.destination},
        _record(m), NOW + 1,
    )


def _deferred(m: Message, at: float = NOW + 30) -> FinishedAttempt:
    return FinishedAttempt(m, S.DEFERRED, {"error": 3, "next_attempt_at": at},
                           _record(m, "TEMPORARY"), NOW + 1)


# --- API keys and callback settings ------------------------------------------------------------

def _hash(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


def test_api_keys_add_list_revoke(store: Store) -> None:
    store.add_account("acme", "h")
    store.add_account("other", "h")
    store.add_api_key("acme", "a1b2c3d4e5f6", _hash(b"s1"), NOW)
    store.add_api_key("acme", "0123456789ab", _hash(b"s2"), NOW + 1)
    k = store.api_key("a1b2c3d4e5f6")
    assert k is not None and k.account == "acme" and k.secret_hash == _hash(b"s1")
    assert k.created_at == NOW and k.revoked_at is None
    assert "secret" not in repr(k) and _hash(b"s1").hex() not in repr(k)
    assert [x.key_id for x in store.api_keys("acme")] == ["a1b2c3d4e5f6", "0123456789ab"]
    assert store.api_keys("other") == [] and store.api_key("ffffffffffff") is None
    assert store.revoke_api_key("other", "a1b2c3d4e5f6", NOW + 2) is False  # not its key
    assert store.revoke_api_key("acme", "a1b2c3d4e5f6", NOW + 2) is True
    assert store.revoke_api_key("acme", "a1b2c3d4e5f6", NOW + 3) is False  # once
    k2 = store.api_key("a1b2c3d4e5f6")
    assert k2 is not None and k2.revoked_at == NOW + 2


def test_api_key_refusals_change_nothing(store: Store) -> None:
    store.add_account("acme", "h")
    with pytest.raises(UnknownAccount):
        store.add_api_key("nobody", "a1b2c3d4e5f6", _hash(b"s"), NOW)
    with pytest.raises(ValueError):
        store.add_api_key("acme", "a1b2c3d4e5f6", b"short", NOW)
    with pytest.raises(ValueError):
        store.add_api_key("acme", "not_hex!", _hash(b"s"), NOW)
    assert store.api_keys("acme") == [] and store.api_keys("nobody") == []
    store.add_api_key("acme", "a1b2c3d4e5f6", _hash(b"s"), NOW)
    with pytest.raises(Exception, match="exists"):
        store.add_api_key("acme", "a1b2c3d4e5f6", _hash(b"t"), NOW)
    [k] = store.api_keys("acme")
    assert k.secret_hash == _hash(b"s")


def test_account_callbacks_settings(store: Store) -> None:
    store.add_account("acme", "h")
    a = store.get_account("acme")
    assert a is not None and a.callback_url is None and a.callback_hosts == ()
    assert a.webhook_secret is None
    secret = bytes(range(32))
    store.set_account_callbacks("acme", url=URL, hosts=("B.example", "b.example", "c.example"),
                                secret=secret)
    a = store.get_account("acme")
    assert a is not None and a.callback_url == URL
    assert a.callback_hosts == ("b.example", "c.example") and a.webhook_secret == secret
    assert secret.hex() not in repr(a) and "password" not in repr(a)
    [listed] = [x for x in store.list_accounts() if x.name == "acme"]
    assert listed == a
    for bad in (
        {"url": "ftp://x/", "hosts": (), "secret": secret},
        {"url": URL, "hosts": ("a/b",), "secret": secret},
        {"url": URL, "hosts": (), "secret": b"short"},
    ):
        with pytest.raises(ValueError):
            store.set_account_callbacks("acme", **bad)  # type: ignore[arg-type]
    assert store.get_account("acme") == a  # nothing changed
    with pytest.raises(UnknownAccount):
        store.set_account_callbacks("nobody", url=None, hosts=(), secret=None)
    store.set_account_callbacks("acme", url=None, hosts=(), secret=None)
    a = store.get_account("acme")
    assert a is not None and a.callback_url is None and a.webhook_secret is None


# --- client_reference ----------------------------------------------------------------------------

def test_messages_by_reference(store: Store) -> None:
    a = make_msg(client_reference="order-17", submitted_at=1000.0)
    b = make_msg(client_reference="order-17", submitted_at=1001.0)
    other_account = make_msg(account="other", client_reference="order-17")
    other_ref = make_msg(client_reference="order-18")
    none = make_msg()
    store.insert_messages([a, b, other_account, other_ref, none])
    got = store.messages_by_reference("acme", "order-17", 10)
    assert [m.id for m in got] == [b.id, a.id]  # newest first, only the account's
    assert got[0] == store.get_message(b.id) and got[0].client_reference == "order-17"
    assert [m.id for m in store.messages_by_reference("acme", "order-17", 1)] == [b.id]
    assert store.messages_by_reference("acme", "nothing", 10) == []
    assert store.get_message(none.id).client_reference is None  # type: ignore[union-attr]


def test_client_reference_too_long_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="client_reference"):
        store.insert_messages([make_msg(client_reference="x" * 65)])
    with pytest.raises(ValueError, match="client_reference"):
        store.insert_messages([make_msg(client_reference="")])
    assert store.count_unfinished() == 0
    store.insert_messages([make_msg(client_reference="x" * 64)])


# --- idempotency ---------------------------------------------------------------------------------

def test_idempotency_put_get(store: Store) -> None:
    h = hashlib.sha256(b"{}").digest()
    assert store.idempotency_get("acme", "k1") is None
    store.idempotency_put("acme", "k1", h, 202, '{"id":"x"}', NOW)
    r = store.idempotency_get("acme", "k1")
    assert r is not None and (r.account, r.key, r.body_hash) == ("acme", "k1", h)
    assert (r.status, r.response, r.created_at) == (202, '{"id":"x"}', NOW)
    assert store.idempotency_get("other", "k1") is None  # keys are per account
    with pytest.raises(IdempotencyExists):
        store.idempotency_put("acme", "k1", b"\x00" * 32, 202, "{}", NOW + 1)
    r2 = store.idempotency_get("acme", "k1")
    assert r2 == r  # the first answer stays
    with pytest.raises(ValueError):
        store.idempotency_put("acme", "", h, 202, "{}", NOW)
    with pytest.raises(ValueError):
        store.idempotency_put("acme", "k" * 256, h, 202, "{}", NOW)
    with pytest.raises(ValueError):
        store.idempotency_put("acme", "k2", h, 42, "{}", NOW)
    assert store.idempotency_get("acme", "k2") is None


def test_idempotency_put_with_its_messages_is_one_unit(store: Store) -> None:
    h = b"\x01" * 32
    m1, m2 = make_msg(), make_msg()
    with store.batch():
        store.insert_messages([m1])
        store.idempotency_put("acme", "k", h, 202, "first", NOW)
    # a second request with the same key racing the first: its savepoint writes nothing
    with store.batch():
        with pytest.raises(IdempotencyExists), store.savepoint():
            store.insert_messages([m2])
            store.idempotency_put("acme", "k", h, 202, "second", NOW)
    assert store.get_message(m1.id) is not None and store.get_message(m2.id) is None
    r = store.idempotency_get("acme", "k")
    assert r is not None and r.response == "first"
    # and a batch that fails keeps neither the message nor the record
    m3 = make_msg()
    with pytest.raises(RuntimeError), store.batch():
        store.insert_messages([m3])
        store.idempotency_put("acme", "k3", h, 202, "x", NOW)
        raise RuntimeError("boom")
    assert store.get_message(m3.id) is None and store.idempotency_get("acme", "k3") is None


def test_prune_idempotency(store: Store) -> None:
    for i in range(5):
        store.idempotency_put("acme", f"k{i}", b"\x01" * 32, 202, "{}", NOW + i)
    assert store.prune_idempotency(NOW + 2, limit=1) == 1
    assert store.idempotency_get("acme", "k0") is None
    assert store.prune_idempotency(NOW + 2) == 1
    assert store.prune_idempotency(NOW + 2) == 0
    assert [store.idempotency_get("acme", f"k{i}") is not None for i in range(5)] == [
        False, False, True, True, True]


def test_idempotency_is_durable(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "a.db")
    s.idempotency_put("acme", "k", b"\x02" * 32, 202, '{"ok":1}', NOW)
    s.close()
    s = SqliteStore(tmp_path / "a.db")
    r = s.idempotency_get("acme", "k")
    s.close()
    assert r is not None and r.response == '{"ok":1}'


# --- the outbox: every path writes its event -----------------------------------------------------

def test_insert_writes_accepted_from_the_row_itself(store: Store) -> None:
    m = _msg(client_reference="r1")
    store.insert_messages([m])
    [c] = store.callbacks_of_message(m.id)
    assert (c.event, c.state, c.at, c.next_attempt_at) == (E.ACCEPTED, S.ROUTED, 1000.0, 1000.0)
    assert (c.account, c.source_addr, c.destination) == (m.account, m.source_addr, m.destination)
    assert (c.kind, c.url, c.attempts, c.last_status) == ("webhook", URL, 0, None)
    assert c.sent_at is None and c.gave_up_at is None and c.event_id > 0
    assert store.pending_callbacks() == 1


def test_nothing_without_a_spec_or_not_asked(store: Store) -> None:
    plain = make_msg()
    finals = _msg(events=(E.DELIVERED, E.FAILED))
    a, b = _claim(store, plain, finals)
    store.finish_attempts([_deferred(a), _deferred(b)])
    assert store.callbacks_of_message(plain.id) == []
    assert store.callbacks_of_message(finals.id) == []  # neither ACCEPTED nor DEFERRED asked
    assert store.pending_callbacks() == 0


def test_end_at_once_in_the_accepting_transaction(store: Store) -> None:
    m = _msg()
    with store.batch():
        store.insert_messages([m])
        store.transition(m.id, S.ROUTED, S.UNDELIVERABLE, NOW, error=11)
    assert _events(store, m) == [(E.ACCEPTED, S.ROUTED), (E.FAILED, S.UNDELIVERABLE)]
    failed = store.callbacks_of_message(m.id)[1]
    assert failed.error == 11 and failed.at == NOW


def test_finish_attempts_together_writes_each_event(store: Store) -> None:
    a, b, c = _claim(store, _msg(), _msg(), make_msg())
    out = store.finish_attempts([_delivered(a), _deferred(b), _delivered(c)])
    assert all(isinstance(x, Message) for x in out)
    assert _events(store, a) == [(E.ACCEPTED, S.ROUTED), (E.DELIVERED, S.DELIVERED)]
    assert _events(store, b) == [(E.ACCEPTED, S.ROUTED), (E.DEFERRED, S.DEFERRED)]
    assert store.callbacks_of_message(c.id) == []
    deferred = store.callbacks_of_message(b.id)[1]
    assert deferred.error == 3 and deferred.at == NOW + 1


def test_finish_attempts_one_by_one_and_a_refused_item_writes_none(store: Store) -> None:
    a, b = _claim(store, _msg(), _msg())
    stale = FinishedAttempt(  # a claim that is not the stored one (another attempt)
        b.__class__(**{**{f: getattr(b, f) for f in b.__dataclass_fields__}, "attempts": 7}),
        S.DELIVERED, {"error": 0}, _record(b), NOW + 1,
    )
    out = store.finish_attempts([_delivered(a), stale])
    assert isinstance(out[0], Message) and isinstance(out[1], StaleState)
    assert _events(store, a)[-1] == (E.DELIVERED, S.DELIVERED)
    assert _events(store, b) == [(E.ACCEPTED, S.ROUTED)]  # nothing of the refused item


def test_a_rewritten_extra_keeps_the_spec(store: Store) -> None:
    [a] = _claim(store, _msg())
    item = FinishedAttempt(a, S.UNDELIVERABLE, {"error": 9, "extra": {"connector": "x"}},
                           _record(a, "PERMANENT"), NOW + 1)
    store.finish_attempts([item])
    assert _events(store, a)[-1] == (E.FAILED, S.UNDELIVERABLE)


def test_expire_cancel_recover(store: Store) -> None:
    expiring = _msg(expires_at=1500.0)
    cancelled = _msg()
    store.insert_messages([expiring, cancelled])
    [ex] = store.expire_due(NOW)
    assert ex.id == expiring.id
    assert _events(store, expiring)[-1] == (E.FAILED, S.EXPIRED)
    store.cancel(cancelled.id, "acme", NOW)
    assert _events(store, cancelled)[-1] == (E.FAILED, S.CANCELLED)
    [lost] = _claim(store, _msg())
    assert store.recover_leases(NOW + 120) == 1  # the lease ran out (a crash)
    assert _events(store, lost) == [(E.ACCEPTED, S.ROUTED), (E.DEFERRED, S.DEFERRED)]
    assert store.callbacks_of_message(lost.id)[1].at == NOW + 120


def test_hold_release_claim_replace_write_no_event(store: Store) -> None:
    m = _msg()
    store.insert_messages([m])
    store.hold_route("netsim", NOW)
    store.release_route("netsim", NOW)
    store.replace(m.id, "acme", NOW, content=b"new", tag=b"\x02" * 16)
    store.claim_due(1, NOW, 60.0, "w1")
    assert _events(store, m) == [(E.ACCEPTED, S.ROUTED)]


def _item(m: Message) -> FinishedAttempt:
    rec = AttemptRecord(m.id, m.account, m.destination, None, m.route, 1, m.attempts, NOW,
                        NOW + 1, "FORWARDED", 0)
    return FinishedAttempt(m, S.FORWARDED, {"error": 0, "extra": {**m.extra, "connector": "hub"}},
                           rec, NOW + 1)


def _part(m: Message, pid: str) -> list[ForwardPart]:
    return [ForwardPart(m.id, 1, 1, "hub", canonical_id(pid), S.FORWARDED, None, NOW + 1)]


def test_forwarded_then_partner_receipt(store: Store) -> None:
    [m] = _claim(store, _msg(route="out"))
    store.record_forwarded(_item(m), _part(m, "a1"))
    assert _events(store, m)[-1] == (E.FORWARDED, S.FORWARDED)
    store.apply_partner_receipt(PartnerReceipt("hub", id_candidates("a1"), S.DELIVERED,
                                               NOW + 2), NOW + 2)
    assert _events(store, m) == [
        (E.ACCEPTED, S.ROUTED), (E.FORWARDED, S.FORWARDED), (E.DELIVERED, S.DELIVERED)]


def test_forwarded_many_receipts_and_unknown(store: Store) -> None:
    a, b, c = _claim(store, _msg(route="out"), _msg(route="out"), _msg(route="out",
                                                                        expires_at=2100.0))
    store.record_forwarded_many([(_item(a), _part(a, "1")), (_item(b), _part(b, "2")),
                                 (_item(c), _part(c, "3"))])
    store.apply_partner_receipts(
        [PartnerReceipt("hub", id_candidates("1"), S.UNDELIVERABLE, NOW + 2),
         PartnerReceipt("hub", id_candidates("2"), S.DELIVERED, NOW + 2)], NOW + 2)
    assert _events(store, a)[-1] == (E.FAILED, S.UNDELIVERABLE)
    assert _events(store, b)[-1] == (E.DELIVERED, S.DELIVERED)
    [unknown] = store.expire_forwarded(5000.0, 60.0)
    assert unknown.id == c.id
    assert _events(store, c)[-1] == (E.FAILED, S.UNKNOWN)


def test_a_failed_unit_of_work_leaves_no_event(store: Store) -> None:
    m = _msg()
    with pytest.raises(RuntimeError), store.batch():
        store.insert_messages([m])
        raise RuntimeError("boom")
    assert store.callbacks_of_message(m.id) == [] and store.pending_callbacks() == 0


def test_apply_transitions_writes_events(store: Store) -> None:
    m = _msg(state=S.ACCEPTED)
    store.insert_messages([m])
    store.apply_transitions([Transition(m.id, S.ACCEPTED, S.REJECTED, {"error": 5})], NOW)
    assert _events(store, m) == [(E.ACCEPTED, S.ACCEPTED), (E.FAILED, S.REJECTED)]


# --- due_callbacks: per message in order ---------------------------------------------------------

def _ids(cbs: list[Callback]) -> list[int]:
    return [c.event_id for c in cbs]


def test_due_is_the_oldest_pending_of_each_message(store: Store) -> None:
    a, b = _claim(store, _msg(), _msg())
    store.finish_attempts([_delivered(a), _deferred(b)])
    [a1, a2] = store.callbacks_of_message(a.id)
    [b1, b2] = store.callbacks_of_message(b.id)
    assert a1.event_id < a2.event_id and b1.event_id < b2.event_id
    assert _ids(store.due_callbacks(NOW + 5, 100)) == [a1.event_id, b1.event_id]
    assert _ids(store.due_callbacks(NOW + 5, 1)) == [a1.event_id]
    assert store.due_callbacks(999.0, 100) == []  # none due yet (accepted at 1000)
    store.callbacks_sent([a1.event_id], NOW + 5)
    assert _ids(store.due_callbacks(NOW + 5, 100)) == [b1.event_id, a2.event_id]
    # b's first fails: its later event waits behind it, however due that one is
    store.callback_retry(b1.event_id, NOW + 100, 503)
    assert _ids(store.due_callbacks(NOW + 5, 100)) == [a2.event_id]
    assert _ids(store.due_callbacks(NOW + 100, 100)) == [a2.event_id, b1.event_id]
    store.callback_gave_up(b1.event_id, NOW + 100, 404)
    assert b2.event_id in _ids(store.due_callbacks(NOW + 100, 100))
    got = {c.event_id: c for c in store.callbacks_of_message(b.id)}
    assert got[b1.event_id].attempts == 2 and got[b1.event_id].last_status == 404
    assert got[b1.event_id].gave_up_at == NOW + 100 and got[b1.event_id].sent_at is None
    assert store.pending_callbacks() == 2  # a2, b2


def test_marks_touch_only_pending_rows(store: Store) -> None:
    m = _msg()
    store.insert_messages([m])
    [c] = store.callbacks_of_message(m.id)
    store.callbacks_sent([c.event_id], NOW)
    store.callbacks_sent([c.event_id], NOW + 9)
    store.callback_retry(c.event_id, NOW + 50, 500)
    store.callback_gave_up(c.event_id, NOW + 60, 500)
    [after] = store.callbacks_of_message(m.id)
    assert after.sent_at == NOW and after.attempts == 1 and after.gave_up_at is None
    assert after.last_status is None and after.next_attempt_at == 1000.0
    store.callbacks_sent([], NOW)
    store.callbacks_sent([123456789], NOW)  # unknown: nothing
    assert store.pending_callbacks() == 0


def test_due_order_by_time_then_id(store: Store) -> None:
    ms = [_msg(submitted_at=1000.0 + i) for i in range(4)]
    store.insert_messages(ms)
    cbs = [store.callbacks_of_message(m.id)[0] for m in ms]
    store.callback_retry(cbs[0].event_id, 1500.0, 0)
    assert _ids(store.due_callbacks(NOW, 10)) == [c.event_id for c in (*cbs[1:], cbs[0])]


# --- retention -----------------------------------------------------------------------------------

def test_prune_callbacks_and_ids_never_repeat(store: Store) -> None:
    ms = [_msg(events=(E.ACCEPTED,)) for _ in range(3)]
    store.insert_messages(ms)
    c0, c1, c2 = (store.callbacks_of_message(m.id)[0] for m in ms)
    store.callbacks_sent([c0.event_id], NOW)
    store.callback_gave_up(c2.event_id, NOW + 1, 410)
    assert store.prune_callbacks(NOW) == 0  # before, not at
    assert store.prune_callbacks(NOW + 10, limit=1) == 1
    assert store.prune_callbacks(NOW + 10) == 1
    assert store.prune_callbacks(NOW + 10) == 0
    assert [store.callbacks_of_message(m.id) != [] for m in ms] == [False, True, False]
    assert store.pending_callbacks() == 1  # pending stays
    m = _msg(events=(E.ACCEPTED,))
    store.insert_messages([m])
    [new] = store.callbacks_of_message(m.id)
    assert new.event_id > c2.event_id  # the newest was pruned: its id is not given again


def test_delete_records_takes_the_callbacks_of_its_messages(store: Store) -> None:
    m = _msg()
    keep = _msg()
    store.insert_messages([m, keep])
    store.transition(m.id, S.ROUTED, S.UNDELIVERABLE, NOW, error=1)
    store.transition(keep.id, S.ROUTED, S.UNDELIVERABLE, NOW + 500, error=1)
    store.purge_content(NOW + 1)
    d = store.delete_records(NOW + 1)
    assert d.messages == 1
    assert store.callbacks_of_message(m.id) == []
    assert len(store.callbacks_of_message(keep.id)) == 2


def test_events_behind_a_retried_one_are_not_due_before_it(store: Store) -> None:
    [m] = _claim(store, _msg())
    [accepted] = store.callbacks_of_message(m.id)
    store.callback_retry(accepted.event_id, NOW + 300, 503)  # the receiver is down
    store.finish_attempts([_deferred(m, at=NOW + 30)])
    [_, deferred] = store.callbacks_of_message(m.id)
    # written behind a pending event: due no sooner than it (the poll never reads it)
    assert deferred.at == NOW + 1 and deferred.next_attempt_at == NOW + 300
    store.callback_retry(accepted.event_id, NOW + 900, 503)
    [_, deferred] = store.callbacks_of_message(m.id)
    assert deferred.next_attempt_at == NOW + 900  # pushed along with it
    assert store.due_callbacks(NOW + 899, 10) == []
    assert _ids(store.due_callbacks(NOW + 900, 10)) == [accepted.event_id]
    store.callbacks_sent([accepted.event_id], NOW + 900)
    assert _ids(store.due_callbacks(NOW + 900, 10)) == [deferred.event_id]


def test_removing_an_account_removes_its_keys(store: Store) -> None:
    store.add_account("acme", "h")
    store.add_api_key("acme", "a1b2c3d4e5f6", _hash(b"s"), NOW)
    assert store.remove_account("acme")
    store.add_account("acme", "h2")  # the same name again: none of the old keys
    assert store.api_keys("acme") == [] and store.api_key("a1b2c3d4e5f6") is None


def test_the_outbox_is_durable(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "a.db")
    m = _msg()
    s.insert_messages([m])
    s.transition(m.id, S.ROUTED, S.UNDELIVERABLE, NOW, error=1)
    before = s.callbacks_of_message(m.id)
    s.close()
    s = SqliteStore(tmp_path / "a.db")
    try:
        assert s.callbacks_of_message(m.id) == before and len(before) == 2
        assert _ids(s.due_callbacks(NOW, 10)) == [before[0].event_id]
    finally:
        s.close()
