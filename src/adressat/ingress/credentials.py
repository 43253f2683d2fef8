"""Credentials at the ways in (issue 13): SMPP binds, Kannel sendsms and HTTP API keys.

:class:`CredentialGuard` is the one place that decides whether a presented password or key
is let through: the lockout (core/lockout.py, kept durable through the group committer),
the bounded password checks (:class:`PasswordChecks`), the same answer and the same cost
for an unknown name as for a wrong password (an scrypt check against a dummy hash), the
log line per lockout (never a password), and the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from adressat.core.lockout import Key, Lockout, LockoutPolicy, LockoutRow, Lockouts
from adressat.core.passwords import hash_password, verify_password
from adressat.observe.metrics import CREDENTIAL_FAILURES, CREDENTIAL_LOCKOUTS
from adressat.smpp.constants import CommandStatus as S
from adressat.store.base import StoreError
from adressat.store.commit import GroupCommitter

__all__ = ["ACCOUNT", "API_KEY", "BIND_FAILURE_STATUSES", "CredentialGuard", "PasswordChecks",
           "Verdict", "address_of", "bind_status"]

log = logging.getLogger("adressat.ingress.credentials")

ACCOUNT = "account"  # realm: SMPP system_ids and sendsms usernames (the same accounts)
API_KEY = "api_key"  # realm: HTTP API key ids
BIND_FAILURE_STATUSES = ("uniform", "distinct")
PRUNE_INTERVAL_S = 60.0  # rows with nothing left to remember go at a write this often


@dataclass(frozen=True, slots=True)
class Verdict:
    """``reason``: "ok"; "unknown" (no such name), "password" (wrong password or key),
    "locked" (refused unchecked: a lockout), "busy" (refused unchecked: too many checks
    waiting), "malformed" (no name to look up)."""

    reason: str

    @property
    def ok(self) -> bool:
        return self.reason == "ok"

    @property
    def close(self) -> bool:
        """Close the SMPP session at once (nothing more to try on it now)."""
        return self.reason in ("locked", "busy")


OK = Verdict("ok")


def bind_status(verdict: Verdict, statuses: str) -> S:
    """The bind_resp status of a refused bind. ``uniform`` (the default): ESME_RBINDFAIL
    for every refusal, so neither an unknown system_id nor a lockout can be told from a
    wrong password; ``distinct``: ESME_RINVSYSID / ESME_RINVPASWD as SMPP 3.4 names them
    (for operators whose ESMEs need them), a lockout or overload still ESME_RBINDFAIL."""
    if statuses == "distinct":
        if verdict.reason == "unknown":
            return S.ESME_RINVSYSID
        if verdict.reason == "password":
            return S.ESME_RINVPASWD
    return S.ESME_RBINDFAIL


def address_of(peer: str) -> str:
    """The host part of ``host:port`` (IPv6 too: the last colon separates the port)."""
    host, sep, port = peer.rpartition(":")
    return host.strip("[]") if sep and port.isdigit() else peer


class PasswordChecks:
    """scrypt checks on a small dedicated executor: at most ``checks_max`` at once (scrypt
    N=2^14, r=8 takes 16 MiB each: the memory bound), at most ``waiting_max`` admitted
    (running and waiting) for untrusted callers and twice that for trusted ones (an
    address that bound before with that name), so a guessing storm neither queues without
    bound nor keeps the real ESME out. A check is released when its thread is done, not
    when its caller gives up (a closed connection cannot free a slot that still works)."""

    def __init__(self, checks_max: int = 1, waiting_max: int = 16) -> None:
        if checks_max < 1 or waiting_max < 1:
            raise ValueError("password_checks_max and password_checks_waiting_max must be >= 1")
        self.checks_max = checks_max
        self.waiting_max = waiting_max
        self.admitted = 0
        self._pool = ThreadPoolExecutor(max_workers=checks_max,
                                        thread_name_prefix="adressat-password")
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    def admit(self, trusted: bool) -> bool:
        limit = self.waiting_max * (2 if trusted else 1)
        if self.admitted >= limit:
            return False
        self.admitted += 1
        return True

    def _release(self) -> None:
        self.admitted -= 1

    def _check(self, password: str, stored: str | None) -> bool:
        if stored is None:
            # an unknown name: the same scrypt, against a hash no password matches
            with self._dummy_lock:
                if self._dummy is None:
                    self._dummy = hash_password(os.urandom(16).hex(), os.urandom(16))
                dummy = self._dummy
            verify_password(password, dummy)
            return False
        return verify_password(password, stored)

    async def verify(self, password: str, stored: str | None) -> bool:
        """Check an admitted attempt (after :meth:`admit` said True)."""
        loop = asyncio.get_running_loop()
        work = self._pool.submit(self._check, password, stored)

        def done(_: object) -> None:  # on the check's thread (or here, if cancelled unrun)
            try:
                loop.call_soon_threadsafe(self._release)
            except RuntimeError:  # the loop is closed: nobody counts any more
                return

        work.add_done_callback(done)
        return await asyncio.wrap_future(work)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class CredentialGuard:
    """Lockout plus bounded checks for every way in. ``committer`` None: counters in memory
    only (unit tests); else written through it, all changes of ``flush_s`` in one op."""

    def __init__(
        self,
        policy: LockoutPolicy | None = None,
        *,
        committer: GroupCommitter | None = None,
        checks_max: int = 1,
        waiting_max: int = 16,
        statuses: str = "uniform",
        flush_s: float = 0.5,
        refusal_delay_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if statuses not in BIND_FAILURE_STATUSES:
            raise ValueError(f"bind_failure_statuses must be one of {BIND_FAILURE_STATUSES}")
        if not 0 < flush_s < float("inf"):
            raise ValueError("credential_flush_s must be > 0")
        if not 0 <= refusal_delay_s <= 60:
            raise ValueError("credential_refusal_delay_s must be 0..60")
        self.refusal_delay_s = refusal_delay_s
        self.lockouts = Lockouts(policy)
        self.checks = PasswordChecks(checks_max, waiting_max)
        self.committer = committer
        self.statuses = statuses
        self.flush_s = flush_s
        self.clock = clock
        self._flush: asyncio.TimerHandle | None = None
        self._writing: asyncio.Future[None] | None = None
        self._pruned_at = 0.0
        self.write_failures = 0

    # -- the ways in ----------------------------------------------------------------------------
    async def check_password(self, principal: str, address: str, password: str,
                             stored_hash: str | None, *, realm: str = ACCOUNT) -> Verdict:
        """Whether ``password`` is the one of ``principal`` (``stored_hash``; None: no such
        name) from ``address``. An unknown name costs the same check as a wrong password."""
        refused = self.refused_unchecked(realm, principal, address)
        if refused is None and not self.checks.admit(
                self.lockouts.trusted(realm, principal, address, self.clock())):
            refused = self._refuse(realm, "busy")
        if refused is not None:
            # unchecked, so cheap: answered after a while all the same (a tarpit), so that a
            # locked-out guesser cannot turn its refusals into a storm of reconnects
            if self.refusal_delay_s:
                await asyncio.sleep(self.refusal_delay_s)
            return refused
        ok = await self.checks.verify(password, stored_hash)
        if ok and stored_hash is not None:
            self.succeeded(realm, principal, address)
            return OK
        return self.failed(realm, principal, address,
                           "password" if stored_hash is not None else "unknown")

    def refused_unchecked(self, realm: str, principal: str | None,
                          address: str) -> Verdict | None:
        """"locked" when a lockout refuses the attempt before any check, else None."""
        if self.lockouts.locked(realm, principal, address, self.clock()) is None:
            return None
        return self._refuse(realm, "locked")

    def failed(self, realm: str, principal: str | None, address: str, reason: str) -> Verdict:
        """A checked attempt that failed: counted (it may lock), logged, answered."""
        for lockout in self.lockouts.failure(realm, principal, address, self.clock()):
            self._locked(lockout)
        self._changed()
        return self._refuse(realm, reason)

    def succeeded(self, realm: str, principal: str, address: str) -> None:
        if self.lockouts.success(realm, principal, address, self.clock()):
            self._changed()

    @staticmethod
    def _refuse(realm: str, reason: str) -> Verdict:
        """Counted here; logged by the way in, with its session or request."""
        CREDENTIAL_FAILURES.labels(realm, reason).inc()
        return Verdict(reason)

    def _locked(self, lo: Lockout) -> None:
        CREDENTIAL_LOCKOUTS.labels(lo.realm, lo.scope).inc()
        log.warning("credential lockout", extra={
            "realm": lo.realm, "scope": lo.scope, "principal": lo.principal[:64],
            "peer": lo.address, "lockout_s": lo.seconds, "lockouts": lo.lockouts,
            "until": round(lo.until, 3)})

    # -- the store's copy -----------------------------------------------------------------------
    async def load(self) -> int:
        """Read the store's rows (at start: a restart keeps every lockout); how many."""
        if self.committer is None:
            return 0
        rows = await self.committer.read(lambda s: s.lockout_rows())
        self.lockouts.load(rows, self.clock())
        if self.lockouts.changed:  # pruned at load
            self._changed()
        return len(self.lockouts)

    def _changed(self) -> None:
        if self.committer is None or self._flush is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._flush = loop.call_later(self.flush_s, self._write)

    def _write(self) -> None:
        """Every change since the last write, as one op of the group committer (a storm of
        failures costs one write per ``flush_s``, not one per failure)."""
        self._flush = None
        now = self.clock()
        if now - self._pruned_at >= PRUNE_INTERVAL_S:
            self._pruned_at = now
            self.lockouts.prune(now)
        if self.committer is None or not self.lockouts.changed:
            return
        puts, deletes = self.lockouts.take_changes()
        try:
            fut = self.committer.enqueue(lambda s: s.put_lockout_rows(puts, deletes))
        except StoreError as e:
            self._write_failed(puts, deletes, e)
            return
        self._writing = fut

        def done(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is not None:
                self._write_failed(puts, deletes, f.exception())

        fut.add_done_callback(done)

    def _write_failed(self, puts: list[LockoutRow], deletes: list[Key],
                      error: BaseException | None) -> None:
        self.write_failures += 1
        log.warning("lockout counters not written; retried",
                    extra={"error_type": type(error).__name__, "rows": len(puts)})
        self.lockouts.retake(puts, deletes)
        self._changed()

    async def aclose(self) -> None:
        """Write what is pending, then stop the checks."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._write()
        if self._writing is not None:
            try:
                await self._writing
            except Exception:  # noqa: BLE001 - said by _write_failed; stopping anyway
                log.warning("lockout counters not written at stop")
        self.checks.close()
