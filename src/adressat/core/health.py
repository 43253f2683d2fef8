"""Health episodes (DESIGN.md, "Heal or shout").

A failing dependency is retried with backoff and raised as an alarm with its cause, start and
end: an :class:`Episode`. While one is open the node is not ready (``/health/ready``,
``adressat status``) and ``adressat audit`` reports it unhealthy. :class:`HealthBook` is the
pure bookkeeping each process keeps: ``failed()`` opens an episode (or counts one more failure
of the open one), ``recovered()`` closes it; each returns the episode that opened or closed,
so the caller logs, counts and writes it exactly once. Time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = ["Episode", "EpisodeKind", "HealthBook", "Backoff", "ADVISORY_KINDS"]


class EpisodeKind(StrEnum):
    #: a write to the store failed for a reason outside the data (disk full, I/O error,
    #: read-only file, a lock held past its limit); submits are refused while it lasts
    STORE_UNWRITABLE = "store_unwritable"
    #: an iteration of the delivery worker's loop failed (it is retried with backoff)
    DELIVERY_LOOP_FAILING = "delivery_loop_failing"
    #: the delivery process ended or stopped answering; the SMPP process starts a new one
    DELIVERY_PROCESS_DOWN = "delivery_process_down"
    #: a due message has waited unclaimed past the limit
    DELIVERY_STALLED = "delivery_stalled"
    #: a configured connector to a partner has not been bound for longer than its limit
    #: (cause: the connectors down when it opened); its messages wait or fail over
    CONNECTOR_DOWN = "connector_down"
    #: a changed TLS certificate or key file did not load (cause: why); the previous one is
    #: still served, so it alone does not make the node unready
    TLS_RELOAD_FAILED = "tls_reload_failed"
    #: the periodic read of the routes and connectors from the store failed (cause: the
    #: error); the process routes by what it read last, so the operator's latest route or
    #: connector change has not taken effect
    ROUTES_REFRESH_FAILING = "routes_refresh_failing"
    #: the periodic read of the accounts from the store failed (cause: the error); a disabled
    #: or removed account's sessions, a new password or rate have not taken effect
    ACCOUNTS_REFRESH_FAILING = "accounts_refresh_failing"


#: episodes that are said (log, store, metrics, status) but leave the node ready: it serves
#: (the refreshes: the process serves by the settings it read last; that is said, but a load
#: balancer draining the node would not bring the change about)
ADVISORY_KINDS = frozenset({EpisodeKind.TLS_RELOAD_FAILED, EpisodeKind.ROUTES_REFRESH_FAILING,
                            EpisodeKind.ACCOUNTS_REFRESH_FAILING})


@dataclass(frozen=True, slots=True)
class Episode:
    """One episode. ``cause`` is a short machine-readable name (``disk_full``,
    ``exit_code=70`` ...), never message text; ``failures`` counts the failed tries while it
    lasted. ``id`` is the store's (0 until written)."""

    kind: EpisodeKind
    process: str
    cause: str
    started_at: float
    ended_at: float | None = None
    failures: int = 1
    id: int = 0

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "process": self.process,
            "cause": self.cause,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "failures": self.failures,
        }


class HealthBook:
    """The open episodes of one process, at most one per kind."""

    def __init__(self, process: str) -> None:
        self.process = process
        self._open: dict[EpisodeKind, Episode] = {}

    def failed(self, kind: EpisodeKind, cause: str, now: float) -> Episode | None:
        """A failure: the episode it opens (None when one of this kind is open already,
        whose count goes up; its first cause is kept)."""
        ep = self._open.get(kind)
        if ep is not None:
            self._open[kind] = replace(ep, failures=ep.failures + 1)
            return None
        ep = Episode(kind, self.process, cause, now)
        self._open[kind] = ep
        return ep

    def recovered(self, kind: EpisodeKind, now: float) -> Episode | None:
        """The dependency works again: the episode it closes, if one was open."""
        ep = self._open.pop(kind, None)
        if ep is None:
            return None
        return replace(ep, ended_at=max(now, ep.started_at))

    def is_open(self, kind: EpisodeKind) -> bool:
        return kind in self._open

    def get(self, kind: EpisodeKind) -> Episode | None:
        return self._open.get(kind)

    def open_episodes(self) -> list[Episode]:
        return sorted(self._open.values(), key=lambda e: e.started_at)


@dataclass
class Backoff:
    """Delays between retries of a failing step: doubling from ``delay_s_min`` up to
    ``delay_s_max``, with up to ``jitter_fraction`` taken off at random (the caller passes
    the random number, 0..1) so that two processes do not retry in step."""

    delay_s_min: float = 0.1
    delay_s_max: float = 5.0
    jitter_fraction: float = 0.2
    failures: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.delay_s_min <= self.delay_s_max:
            raise ValueError("need 0 < delay_s_min <= delay_s_max")
        if not 0 <= self.jitter_fraction < 1:
            raise ValueError("jitter_fraction must be within [0, 1)")

    def failed(self, rand: float) -> float:
        """One more failure: the delay before the next try."""
        self.failures += 1
        delay = min(self.delay_s_max, self.delay_s_min * 2.0 ** min(self.failures - 1, 30))
        return delay * (1 - self.jitter_fraction * rand)

    def succeeded(self) -> None:
        self.failures = 0
