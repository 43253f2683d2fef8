"""Lockout of credential guessing (issue 13): who may try a password or an API key now, and
what a failure or a success changes. Pure: time is passed in; the caller keeps the rows
durable (``Store.put_lockout_rows``) and answers.

Failures are counted per realm (``account``: an SMPP system_id and a sendsms username are
one name space; ``api_key``: HTTP key ids) in three rows:

- PAIR (principal, address): the ordinary case, a mistyped or guessed password from one
  place. A success resets it.
- ADDRESS (every principal from one address): one address sweeping many names.
- PRINCIPAL (one principal from every address): a guesser spread over many addresses. Its
  threshold is much higher, and it never locks out an address that is *trusted* for that
  principal (a pair with a success in the last ``trusted_s``): a storm from elsewhere
  cannot shut the real ESME out. A trusted pair is judged by its own failures only (so one
  bad ESME behind a shared address does not lock the good ones behind it either).

Reaching a threshold within ``window_s`` locks the row for ``lockout_s_min * 2**k`` (k: the
row's earlier lockouts, forgotten after ``forget_s`` without failures), at most
``lockout_s_max``. Attempts while locked are refused without a check and are not counted
(no write under a storm). Unknown principals are counted exactly like known ones, so the
lockout tells nothing about which names exist.

The rows are bounded (``rows_max``): rows with nothing left to remember go first, then the
oldest untrusted, then the oldest trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Scope(StrEnum):
    PAIR = "pair"
    ADDRESS = "address"
    PRINCIPAL = "principal"


Key = tuple[str, str, str, str]  # realm, scope, principal, address


@dataclass(slots=True)
class LockoutRow:
    """One counter (``principal`` is "" in an ADDRESS row, ``address`` "" in a PRINCIPAL
    row). ``last_success_at`` only in PAIR rows."""

    realm: str
    scope: str
    principal: str
    address: str
    failures: int = 0
    window_start: float = 0.0
    lockouts: int = 0
    locked_until: float = 0.0
    last_failure_at: float = 0.0
    last_success_at: float | None = None

    @property
    def key(self) -> Key:
        return (self.realm, self.scope, self.principal, self.address)


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """Every limit of the lockout (app/settings.py names them ``credential_*``)."""

    failures_max: int = 10  # per (principal, address) within window_s
    address_failures_max: int = 50  # per address, every principal
    principal_failures_max: int = 200  # per principal, every untrusted address
    window_s: float = 600.0
    lockout_s_min: float = 60.0  # the first lockout; doubling with each next one...
    lockout_s_max: float = 3600.0  # ...up to this
    forget_s: float = 86400.0  # no failure this long: the row's lockouts are forgotten
    trusted_s: float = 30 * 86400.0  # a pair's success makes its address trusted this long
    rows_max: int = 20_000

    def __post_init__(self) -> None:
        for name in ("failures_max", "address_failures_max", "principal_failures_max",
                     "rows_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("window_s", "lockout_s_min", "lockout_s_max", "forget_s", "trusted_s"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} must be > 0 and finite")
        if self.lockout_s_max < self.lockout_s_min:
            raise ValueError("lockout_s_max must be >= lockout_s_min")

    def lockout_s(self, earlier_lockouts: int) -> float:
        return min(self.lockout_s_max, self.lockout_s_min * 2.0 ** min(earlier_lockouts, 60))

    def threshold(self, scope: str) -> int:
        if scope == Scope.PAIR:
            return self.failures_max
        if scope == Scope.ADDRESS:
            return self.address_failures_max
        return self.principal_failures_max


@dataclass(frozen=True, slots=True)
class Lockout:
    """A row that has just been locked (for a log line and a metric)."""

    realm: str
    scope: str
    principal: str
    address: str
    seconds: float
    until: float
    lockouts: int  # this row's lockouts so far, this one included


def _pair(realm: str, principal: str, address: str) -> Key:
    return (realm, Scope.PAIR.value, principal, address)


class Lockouts:
    """The rows, in memory (the store keeps a copy: :meth:`take_changes`)."""

    def __init__(self, policy: LockoutPolicy | None = None) -> None:
        self.policy = policy or LockoutPolicy()
        self.rows: dict[Key, LockoutRow] = {}
        self._dirty: set[Key] = set()
        self._deleted: set[Key] = set()

    def __len__(self) -> int:
        return len(self.rows)

    # -- judging --------------------------------------------------------------------------------
    def trusted(self, realm: str, principal: str, address: str, now: float) -> bool:
        row = self.rows.get(_pair(realm, principal, address))
        return (row is not None and row.last_success_at is not None
                and now - row.last_success_at < self.policy.trusted_s)

    def locked(self, realm: str, principal: str | None, address: str,
               now: float) -> Scope | None:
        """The scope that refuses this attempt now, or None. ``principal`` None: an
        attempt that named none (a malformed key): judged by its address alone."""
        if principal is not None:
            pair = self.rows.get(_pair(realm, principal, address))
            if pair is not None and pair.locked_until > now:
                return Scope.PAIR
            if self.trusted(realm, principal, address, now):
                return None
        row = self.rows.get((realm, Scope.ADDRESS.value, "", address))
        if row is not None and row.locked_until > now:
            return Scope.ADDRESS
        if principal is not None:
            row = self.rows.get((realm, Scope.PRINCIPAL.value, principal, ""))
            if row is not None and row.locked_until > now:
                return Scope.PRINCIPAL
        return None

    # -- recording ------------------------------------------------------------------------------
    def failure(self, realm: str, principal: str | None, address: str,
                now: float) -> list[Lockout]:
        """Count a failed attempt in each of its rows; the rows it locks."""
        keys: list[Key] = [(realm, Scope.ADDRESS.value, "", address)]
        if principal is not None:
            keys += [_pair(realm, principal, address),
                     (realm, Scope.PRINCIPAL.value, principal, "")]
        p = self.policy
        out: list[Lockout] = []
        for key in keys:
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = LockoutRow(*key, window_start=now)
            if now - row.last_failure_at > p.forget_s:
                row.lockouts = 0
            if now - row.window_start >= p.window_s:
                row.failures = 0
                row.window_start = now
            row.failures += 1
            row.last_failure_at = now
            if row.failures >= p.threshold(row.scope) and row.locked_until <= now:
                seconds = p.lockout_s(row.lockouts)
                row.locked_until = now + seconds
                row.lockouts += 1
                row.failures = 0
                row.window_start = now
                out.append(Lockout(realm, row.scope, row.principal, row.address, seconds,
                                   row.locked_until, row.lockouts))
            self._mark(key)
        if len(self.rows) > p.rows_max:
            self.prune(now)
        return out

    def success(self, realm: str, principal: str, address: str, now: float) -> bool:
        """A right password or key from ``address``: its pair starts afresh and the address
        is trusted for ``principal``. False when nothing needed writing (the steady state:
        a trusted pair without failures, its trust refreshed at most hourly)."""
        key = _pair(realm, principal, address)
        row = self.rows.get(key)
        if (row is not None and row.failures == 0 and row.locked_until <= now
                and row.last_success_at is not None
                and now - row.last_success_at < min(3600.0, self.policy.trusted_s / 2)):
            return False
        if row is None:
            row = self.rows[key] = LockoutRow(*key)
        row.failures = 0
        row.window_start = now
        row.lockouts = 0
        row.locked_until = 0.0
        row.last_success_at = now
        self._mark(key)
        if len(self.rows) > self.policy.rows_max:
            self.prune(now)
        return True

    # -- bounds ---------------------------------------------------------------------------------
    def _useless(self, row: LockoutRow, now: float) -> bool:
        p = self.policy
        return (row.locked_until <= now and now - row.last_failure_at > p.forget_s
                and (row.last_success_at is None or now - row.last_success_at >= p.trusted_s))

    def prune(self, now: float) -> int:
        """Drop rows with nothing left to remember; if still over ``rows_max``, down to
        nine tenths of it: the oldest untrusted first (by last activity), then the oldest
        trusted. How many went."""
        gone = [k for k, r in self.rows.items() if self._useless(r, now)]
        for k in gone:
            self._drop(k)
        target = self.policy.rows_max
        if len(self.rows) > target:
            target = max(1, self.policy.rows_max * 9 // 10)

            def age(r: LockoutRow) -> tuple[bool, float]:
                trusted = r.last_success_at is not None
                return (trusted, max(r.last_failure_at, r.last_success_at or 0.0))

            by_age = sorted(self.rows.values(), key=age)
            extra = by_age[: len(self.rows) - target]
            for r in extra:
                self._drop(r.key)
            gone += [r.key for r in extra]
        return len(gone)

    def _drop(self, key: Key) -> None:
        del self.rows[key]
        self._dirty.discard(key)
        self._deleted.add(key)

    def _mark(self, key: Key) -> None:
        self._dirty.add(key)
        self._deleted.discard(key)

    # -- the store's copy -----------------------------------------------------------------------
    @property
    def changed(self) -> bool:
        return bool(self._dirty or self._deleted)

    def take_changes(self) -> tuple[list[LockoutRow], list[Key]]:
        """The rows to write (copies) and the keys to delete since the last call."""
        puts = [replace(self.rows[k]) for k in self._dirty]
        deletes = list(self._deleted)
        self._dirty.clear()
        self._deleted.clear()
        return puts, deletes

    def retake(self, puts: list[LockoutRow], deletes: list[Key]) -> None:
        """A write that failed: its rows (their current values) are written next time."""
        for row in puts:
            if row.key in self.rows:
                self._dirty.add(row.key)
        for key in deletes:
            if key not in self.rows:
                self._deleted.add(key)

    def load(self, rows: list[LockoutRow], now: float) -> None:
        """The store's rows at start (a restart keeps every lockout), then pruned."""
        for row in rows:
            self.rows[row.key] = replace(row)
        self.prune(now)
