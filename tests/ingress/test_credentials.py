"""The credential guard (issue 13): lockout rows and their backoff with time passed in
(core/lockout.py), the bounded password checks, the statuses a refused bind gets, and the
guard's write-through to a real store (SQLite) through the group committer."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from adressat.core.lockout import LockoutPolicy, LockoutRow, Lockouts, Scope
from adressat.core.passwords import hash_password
from adressat.ingress import credentials
from adressat.ingress.credentials import (
    ACCOUNT,
    CredentialGuard,
    PasswordChecks,
    Verdict,
    address_of,
    bind_status,
)
from adressat.smpp.constants import CommandStatus as S
from adressat.store.commit import GroupCommitter
from adressat.store.sqlite import SqliteStore

R = ACCOUNT
NO_DELAY = 0.0  # refusals unchecked are answered at once here (the tarpit is the node's)
POLICY = LockoutPolicy(failures_max=3, address_failures_max=6, principal_failures_max=9,
                       window_s=100.0, lockout_s_min=10.0, lockout_s_max=40.0,
                       forget_s=1000.0, trusted_s=5000.0, rows_max=50)


def fail(lo: Lockouts, n: int, principal: str | None, address: str, now: float) -> list[str]:
    scopes: list[str] = []
    for _ in range(n):
        scopes += [e.scope for e in lo.failure(R, principal, address, now)]
    return scopes


# --- the lockout, time passed in ----------------------------------------------------------------

def test_a_pair_locks_after_failures_max_with_a_doubling_backoff_up_to_the_max() -> None:
    lo = Lockouts(POLICY)
    assert fail(lo, 2, "acme", "10.0.0.1", 0.0) == []
    assert lo.locked(R, "acme", "10.0.0.1", 0.0) is None
    assert fail(lo, 1, "acme", "10.0.0.1", 0.0) == ["pair"]
    assert lo.locked(R, "acme", "10.0.0.1", 9.9) is Scope.PAIR
    assert lo.locked(R, "acme", "10.0.0.2", 9.9) is None  # another address: not this lock
    assert lo.locked(R, "other", "10.0.0.1", 9.9) is None  # another name neither
    assert lo.locked(R, "acme", "10.0.0.1", 10.0) is None
    waits = []
    t = 10.0
    for _ in range(4):
        events = lo.failure(R, "acme", "10.0.0.1", t)
        events += lo.failure(R, "acme", "10.0.0.1", t)
        events += lo.failure(R, "acme", "10.0.0.1", t)
        pair = [e for e in events if e.scope == "pair"]
        assert len(pair) == 1
        waits.append(pair[0].seconds)
        t = pair[0].until
    assert waits == [20.0, 40.0, 40.0, 40.0]  # 10, then doubling, capped at lockout_s_max


def test_failures_outside_the_window_do_not_add_up() -> None:
    lo = Lockouts(POLICY)
    fail(lo, 2, "acme", "a", 0.0)
    assert fail(lo, 2, "acme", "a", 100.0) == []  # a new window: 2 of 3
    assert fail(lo, 1, "acme", "a", 150.0) == ["pair"]


def test_a_success_resets_the_pair_and_earlier_lockouts() -> None:
    lo = Lockouts(POLICY)
    fail(lo, 3, "acme", "a", 0.0)  # locked 10 s
    assert lo.success(R, "acme", "a", 10.0)
    fail(lo, 2, "acme", "a", 11.0)
    assert lo.locked(R, "acme", "a", 11.0) is None
    assert lo.success(R, "acme", "a", 12.0)
    events = lo.failure(R, "acme", "a", 13.0) + lo.failure(R, "acme", "a", 13.0)
    events += lo.failure(R, "acme", "a", 13.0)
    assert [e.seconds for e in events if e.scope == "pair"] == [10.0]  # from the start again


def test_the_steady_state_success_writes_nothing() -> None:
    lo = Lockouts(POLICY)
    assert lo.success(R, "acme", "a", 0.0)
    lo.take_changes()
    assert not lo.success(R, "acme", "a", 1.0)
    assert not lo.changed


def test_one_address_sweeping_names_is_locked_for_every_untrusted_name() -> None:
    lo = Lockouts(POLICY)
    lo.success(R, "mine", "a", 0.0)  # an account this address really has
    scopes = []
    for i in range(6):
        scopes += fail(lo, 1, f"name{i}", "a", 1.0)
    assert scopes == ["address"]
    assert lo.locked(R, "name99", "a", 2.0) is Scope.ADDRESS  # a name never tried too
    assert lo.locked(R, "mine", "a", 2.0) is None  # trusted: judged by its own pair only
    assert lo.locked(R, "name99", "b", 2.0) is None


def test_a_name_guessed_from_many_addresses_stays_open_where_it_bound_before() -> None:
    """The DoS the per-name lockout could be: guessers elsewhere lock the name, but the
    address the real ESME binds from is trusted and judged by its own pair only."""
    lo = Lockouts(POLICY)
    lo.success(R, "acme", "esme-host", 0.0)
    scopes = []
    for i in range(9):
        scopes += fail(lo, 1, "acme", f"guesser{i}", 1.0)
    assert scopes == ["principal"]
    assert lo.locked(R, "acme", "guesser-new", 2.0) is Scope.PRINCIPAL
    assert lo.locked(R, "acme", "esme-host", 2.0) is None
    # trust ends after trusted_s: then the name's lockout counts there too
    assert lo.locked(R, "acme", "esme-host", 5001.0) is None  # the lock has ended anyway
    fail(lo, 9, "acme", "elsewhere", 5001.0)
    assert lo.locked(R, "acme", "esme-host", 5002.0) is Scope.PRINCIPAL


def test_unknown_and_known_names_are_counted_alike() -> None:
    """The lockout is no oracle: nothing in it depends on whether the name exists (the
    guard calls failure() the same way for both), so the rows of a real name and of a made
    up one behave the same."""
    a, b = Lockouts(POLICY), Lockouts(POLICY)
    ea = fail(a, 3, "acme", "x", 0.0)
    eb = fail(b, 3, "nobody", "x", 0.0)
    assert ea == eb == ["pair"]


def test_malformed_attempts_count_against_the_address_only() -> None:
    lo = Lockouts(POLICY)
    assert fail(lo, 6, None, "a", 0.0) == ["address"]
    assert {k[1] for k in lo.rows} == {"address"}
    assert lo.locked(R, None, "a", 1.0) is Scope.ADDRESS


def test_rows_are_bounded_useless_ones_first_then_the_oldest_untrusted() -> None:
    lo = Lockouts(POLICY)  # rows_max 50
    lo.success(R, "acme", "esme", 0.0)
    for i in range(200):  # a flood from many addresses with made-up names
        lo.failure(R, f"n{i}", f"10.0.{i}.1", 1.0 + i)
        assert len(lo) <= 50
    assert lo.trusted(R, "acme", "esme", 300.0)  # the trusted pair outlived the flood
    puts, deletes = lo.take_changes()
    assert len(puts) <= 50 and deletes  # the store is told what went
    lo2 = Lockouts(POLICY)
    lo2.failure(R, "old", "b", 0.0)
    assert lo2.prune(2000.0) == 3  # past forget_s, not locked, not trusted: nothing to keep


def test_the_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="failures_max"):
        LockoutPolicy(failures_max=0)
    with pytest.raises(ValueError, match="lockout_s_max"):
        LockoutPolicy(lockout_s_min=10.0, lockout_s_max=5.0)
    with pytest.raises(ValueError, match="window_s"):
        LockoutPolicy(window_s=float("inf"))
    with pytest.raises(ValueError):
        CredentialGuard(statuses="loud")


# --- statuses and addresses ---------------------------------------------------------------------

@pytest.mark.parametrize(("reason", "uniform", "distinct"), [
    ("unknown", S.ESME_RBINDFAIL, S.ESME_RINVSYSID),
    ("password", S.ESME_RBINDFAIL, S.ESME_RINVPASWD),
    ("locked", S.ESME_RBINDFAIL, S.ESME_RBINDFAIL),
    ("busy", S.ESME_RBINDFAIL, S.ESME_RBINDFAIL),
])
def test_bind_statuses(reason: str, uniform: S, distinct: S) -> None:
    assert bind_status(Verdict(reason), "uniform") is uniform
    assert bind_status(Verdict(reason), "distinct") is distinct


def test_address_of_a_peer() -> None:
    assert address_of("127.0.0.1:4242") == "127.0.0.1"
    assert address_of("::1:4242") == "::1"
    assert address_of("?") == "?"


# --- the guard: checks and their bound ----------------------------------------------------------

def test_an_unknown_name_costs_one_scrypt_as_a_wrong_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = credentials.verify_password

    def counting(password: str, encoded: str) -> bool:
        calls.append((password, encoded.split("$")[1]))
        return real(password, encoded)

    monkeypatch.setattr(credentials, "verify_password", counting)
    stored = hash_password("pw", b"saltsalt")
    guard = CredentialGuard(POLICY, refusal_delay_s=NO_DELAY, clock=lambda: 0.0)

    async def run() -> None:
        assert (await guard.check_password("acme", "a", "bad", stored)).reason == "password"
        assert (await guard.check_password("ghost", "a", "bad", None)).reason == "unknown"
        assert (await guard.check_password("acme", "a", "pw", stored)).ok

    asyncio.run(run())
    # the dummy hash has the parameters of a real one (N=2^14): the same work
    assert calls == [("bad", "16384"), ("bad", "16384"), ("pw", "16384")]
    guard.checks.close()


def test_locked_attempts_are_refused_without_a_check_even_with_the_right_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = credentials.verify_password
    monkeypatch.setattr(credentials, "verify_password",
                        lambda p, e: calls.append(p) or real(p, e))
    stored = hash_password("pw", b"saltsalt", n=2)
    now = [0.0]
    guard = CredentialGuard(POLICY, refusal_delay_s=NO_DELAY, clock=lambda: now[0])

    async def run() -> None:
        for _ in range(3):
            await guard.check_password("acme", "a", "bad", stored)
        assert (await guard.check_password("acme", "a", "pw", stored)).reason == "locked"
        assert (await guard.check_password("ghost", "a", "pw", None)).reason != "locked"
        now[0] = 10.0
        assert (await guard.check_password("acme", "a", "pw", stored)).ok

    asyncio.run(run())
    assert calls == ["bad", "bad", "bad", "pw", "pw"]  # none for the locked attempt
    guard.checks.close()


def test_checks_beyond_the_waiting_bound_are_refused_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One check at a time; 3 admitted (6 for a trusted address); the rest 'busy' without
    waiting. A slot is freed when the check's thread is done."""
    gate = threading.Event()
    threads: set[str] = set()

    def slow(password: str, encoded: str) -> bool:
        threads.add(threading.current_thread().name)
        gate.wait(10.0)
        return password == "pw"

    monkeypatch.setattr(credentials, "verify_password", slow)
    guard = CredentialGuard(POLICY, refusal_delay_s=NO_DELAY,
                            checks_max=1, waiting_max=3, clock=lambda: 0.0)
    guard.lockouts.success(R, "acme", "trusted", 0.0)

    async def run() -> None:
        tasks = [asyncio.ensure_future(guard.check_password(f"n{i}", f"10.0.0.{i}", "x", "h"))
                 for i in range(5)]
        trusted = [asyncio.ensure_future(guard.check_password("acme", "trusted", "pw", "h"))
                   for _ in range(3)]
        await asyncio.sleep(0.05)
        done = [t.result().reason for t in tasks if t.done()]
        assert done == ["busy", "busy"]  # two over the bound, answered at once
        assert not any(t.done() for t in trusted)  # within the trusted reserve
        assert guard.checks.admitted == 6
        over = await guard.check_password("acme", "trusted", "pw", "h")
        assert over.reason == "busy"  # the trusted reserve is bounded too
        gate.set()
        got = await asyncio.gather(*tasks, *trusted)
        assert [v.reason for v in got] == ["password"] * 3 + ["busy"] * 2 + ["ok"] * 3
        assert guard.checks.admitted == 0

    asyncio.run(run())
    assert len(threads) == 1  # one dedicated thread, not the default executor's many
    guard.checks.close()


def test_a_caller_that_gives_up_does_not_free_a_slot_still_working(
        monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    monkeypatch.setattr(credentials, "verify_password", lambda p, e: gate.wait(10.0) and False)
    checks = PasswordChecks(checks_max=1, waiting_max=2)

    async def run() -> None:
        assert checks.admit(False)
        task = asyncio.ensure_future(checks.verify("x", "h"))
        await asyncio.sleep(0.01)
        task.cancel()  # the connection closed
        await asyncio.sleep(0.01)
        assert checks.admitted == 1  # its thread still runs scrypt
        gate.set()
        for _ in range(100):
            if checks.admitted == 0:
                break
            await asyncio.sleep(0.01)
        assert checks.admitted == 0

    asyncio.run(run())
    checks.close()


# --- the guard and a real store -----------------------------------------------------------------

def test_counters_reach_the_store_in_one_write_and_come_back_at_load(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "adressat.db")
    committer = GroupCommitter(store, inline=True).start()
    stored = hash_password("pw", b"saltsalt", n=2)

    async def run() -> None:
        guard = CredentialGuard(POLICY, refusal_delay_s=NO_DELAY,
                                committer=committer, flush_s=0.05, clock=lambda: 1.0)
        before = store.commits
        for _ in range(3):  # a pair lockout
            await guard.check_password("acme", "a", "bad", stored)
        await asyncio.sleep(0.2)
        assert store.commits - before == 1  # three failures, one commit
        rows = {(r.scope, r.principal, r.address): r for r in store.lockout_rows()}
        assert rows[("pair", "acme", "a")].locked_until == 11.0
        assert rows[("address", "", "a")].failures == 3
        await guard.aclose()
        again = CredentialGuard(POLICY, refusal_delay_s=NO_DELAY,
                                committer=committer, clock=lambda: 2.0)  # a restart
        assert await again.load() == 3
        assert (await again.check_password("acme", "a", "pw", stored)).reason == "locked"
        await again.aclose()

    asyncio.run(run())
    committer.stop()
    store.close()


def test_a_failed_write_is_written_again(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "adressat.db")
    committer = GroupCommitter(store, inline=True).start()
    real = store.put_lockout_rows
    failures = [1]

    def flaky(rows: list[LockoutRow], deleted: list[tuple[str, str, str, str]] = []) -> None:  # noqa: B006
        if failures[0]:
            failures[0] -= 1
            raise OSError("disk")
        real(rows, deleted)

    store.put_lockout_rows = flaky  # type: ignore[method-assign]

    async def run() -> None:
        guard = CredentialGuard(POLICY, refusal_delay_s=NO_DELAY,
                                committer=committer, flush_s=0.02, clock=lambda: 1.0)
        guard.failed(R, "acme", "a", "password")
        for _ in range(100):
            await asyncio.sleep(0.02)
            if store.lockout_rows():
                break
        assert guard.write_failures == 1
        assert len(store.lockout_rows()) == 3

    asyncio.run(run())
    committer.stop()
    store.close()
