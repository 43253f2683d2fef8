"""Heal or shout: episodes said in the log, counted, and written to the store.

:class:`EpisodeRecorder` wraps one process's :class:`~adressat.core.health.HealthBook`. A
failure opens an episode (an ERROR line with its kind, cause and process; the hook
``on_change`` for metrics and the heartbeat), a recovery closes it (a WARNING line with how long
it lasted). Each is written to the store through the process's group committer: when it opens
if the store can write then, else whole when it ends (the store failing is the commonest
episode). Nothing here waits for the store: the writes are tasks of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from adressat.core.health import ADVISORY_KINDS, Episode, EpisodeKind, HealthBook
from adressat.observe.metrics import EPISODES
from adressat.store.base import StoreError, StoreUnavailable
from adressat.store.commit import GroupCommitter

__all__ = ["EpisodeRecorder", "RECENT_EPISODES_MAX", "failure_cause"]

log = logging.getLogger("adressat.health")

#: ended episodes a process remembers for ``adressat status`` (the store keeps all of them)
RECENT_EPISODES_MAX = 20
#: the store is writable again after this many writes in a row over at least this long
STORE_RECOVERY_WRITES = 3
STORE_RECOVERY_S = 1.0


def failure_cause(e: BaseException) -> str:
    """The short name an episode gives a failure: the store's cause, else the error type."""
    return e.cause if isinstance(e, StoreUnavailable) else type(e).__name__


class EpisodeRecorder:
    def __init__(
        self,
        process: str,
        committer: GroupCommitter | None,
        clock: Callable[[], float],
        on_change: Callable[[Episode], None] | None = None,
    ) -> None:
        self.book = HealthBook(process)
        self.committer = committer
        self.clock = clock
        self.on_change = on_change
        self.recent: deque[Episode] = deque(maxlen=RECENT_EPISODES_MAX)
        self.opened_total = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: dict[EpisodeKind, asyncio.Task[Any]] = {}
        self._ids: dict[tuple[EpisodeKind, float], int] = {}

    def failed(self, kind: EpisodeKind, cause: str, *, step: str = "",
               error_type: str = "") -> Episode | None:
        """A failure of ``kind``: the episode it opened, or None if one was open already."""
        ep = self.book.failed(kind, cause, self.clock())
        if ep is None:
            return None
        self.opened_total += 1
        EPISODES.labels(ep.kind.value, ep.process).inc()
        log.error("episode started", extra={"kind": ep.kind.value, "cause": ep.cause,
                                            "proc": ep.process, "step": step,
                                            "error_type": error_type})
        self._changed(ep)
        return ep

    def recovered(self, kind: EpisodeKind, *, pid: int | None = None) -> Episode | None:
        ep = self.book.recovered(kind, self.clock())
        if ep is None:
            return None
        self.recent.append(ep)
        log.warning("episode ended", extra={
            "kind": ep.kind.value, "cause": ep.cause, "proc": ep.process,
            "failures": ep.failures, "pid": pid,
            "seconds": round((ep.ended_at or ep.started_at) - ep.started_at, 3)})
        self._changed(ep)
        return ep

    def is_open(self, kind: EpisodeKind) -> bool:
        return self.book.is_open(kind)

    def open_episodes(self) -> list[Episode]:
        return self.book.open_episodes()

    def _changed(self, ep: Episode) -> None:
        if self.on_change is not None:
            try:
                self.on_change(ep)
            except Exception as e:  # noqa: BLE001 - a broken hook must not hide the episode
                log.error("episode hook failed", extra={"error_type": type(e).__name__})
        if self.committer is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (shutting down): the log line is said
            return
        # one kind's writes in order: an end waits for its start's write (and its id)
        task = loop.create_task(self._write(ep, self._pending.get(ep.kind)))
        self._pending[ep.kind] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, ep: Episode, before: asyncio.Task[Any] | None) -> None:
        assert self.committer is not None
        if before is not None:
            await asyncio.wait([before])
        key = (ep.kind, ep.started_at)
        if not ep.is_open:  # its start's row if that was written, else a whole one
            ep = replace(ep, id=self._ids.pop(key, 0))
        try:
            stored = await self.committer.run(lambda s: s.write_episode(ep))
        except StoreError:
            return  # the store is what fails; the episode is written when it ends
        if stored.is_open:
            self._ids[key] = stored.id  # at most one open per kind
        elif self.recent and self.recent[-1].started_at == stored.started_at:
            self.recent[-1] = stored

    async def close_stale(self, process: str | None = None) -> int:
        """At a start: episodes the store still has open from an earlier run (its process
        died while they lasted) end now, with a log line; a condition that still holds opens
        a new one as soon as it is seen again."""
        assert self.committer is not None
        now = self.clock()
        stale = await self.committer.read(lambda s: s.episodes(open_only=True, limit=1000))
        n = 0
        for e in stale:
            if process is not None and e.process != process:
                continue
            ended = replace(e, ended_at=max(now, e.started_at))
            await self.committer.run(lambda s, ep=ended: s.write_episode(ep))
            log.warning("episode ended with its process", extra={
                "kind": e.kind.value, "cause": e.cause, "proc": e.process,
                "episode_id": e.id})
            n += 1
        return n

    async def drain(self) -> None:
        """Wait for the episode writes under way (at a clean stop)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)


class NodeHealth:
    """The SMPP process's view of the whole node: its own episodes (the store unable to
    write, the delivery process down, delivery stalled) and the delivery process's (its
    heartbeat carries them). ``ready()`` is ``/health/ready``: the store can write, the
    delivery side runs and says it is alive, no episode is open and no due message has waited
    unclaimed past ``due_wait_s_max``."""

    def __init__(
        self,
        recorder: EpisodeRecorder,
        *,
        heartbeat_timeout_s: float,
        due_wait_s_max: float,
        delivery_alive: Callable[[], bool] | None = None,
    ) -> None:
        self.recorder = recorder
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.due_wait_s_max = due_wait_s_max
        # in-process delivery (no heartbeat): whether its worker still runs
        self.delivery_alive = delivery_alive
        self.delivery_episodes: list[dict[str, Any]] = []
        self.heartbeat_age_s: Callable[[], float | None] = lambda: None
        self.oldest_due_s: float | None = None
        self.store_failures = 0
        self._writable_since: float | None = None
        self._writes_ok = 0

    # --- inputs ----------------------------------------------------------------------------
    def store_result(self, error: BaseException | None) -> None:
        """After every committed (or failed) batch of this process, and the probe's."""
        from adressat.store.base import StoreUnavailable

        kind = EpisodeKind.STORE_UNWRITABLE
        if error is None:
            if not self.recorder.is_open(kind):
                return
            # over only when writes have worked for a while: on a full disk one write may
            # still find room (a WAL that starts again from its beginning) and the next not
            now = self.recorder.clock()
            if self._writable_since is None:
                self._writable_since, self._writes_ok = now, 0
            self._writes_ok += 1
            if (self._writes_ok >= STORE_RECOVERY_WRITES
                    and now - self._writable_since >= STORE_RECOVERY_S):
                self._writable_since = None
                self.recorder.recovered(kind)
        elif isinstance(error, StoreUnavailable):
            self.store_failures += 1
            self._writable_since = None
            self.recorder.failed(kind, error.cause)

    def heartbeat(self, hb: dict[str, Any]) -> None:
        self.delivery_episodes = list(hb.get("episodes") or ())[:16]
        if self.recorder.is_open(EpisodeKind.DELIVERY_PROCESS_DOWN):
            self.recorder.recovered(EpisodeKind.DELIVERY_PROCESS_DOWN, pid=hb.get("pid"))

    def delivery_down(self, cause: str) -> None:
        self.delivery_episodes = []
        self.recorder.failed(EpisodeKind.DELIVERY_PROCESS_DOWN, cause)

    def due_wait(self, oldest_due_s: float | None) -> None:
        """How long the oldest due message has waited unclaimed (None: none is due)."""
        self.oldest_due_s = oldest_due_s
        if oldest_due_s is not None and oldest_due_s > self.due_wait_s_max:
            self.recorder.failed(EpisodeKind.DELIVERY_STALLED,
                                 f"oldest_due_s={int(oldest_due_s)}")
        elif self.recorder.is_open(EpisodeKind.DELIVERY_STALLED):
            self.recorder.recovered(EpisodeKind.DELIVERY_STALLED)

    # --- outputs ---------------------------------------------------------------------------
    @property
    def store_writable(self) -> bool:
        return not self.recorder.is_open(EpisodeKind.STORE_UNWRITABLE)

    def ready(self) -> tuple[bool, list[str]]:
        reasons = [f"{e.kind.value}: {e.cause}" for e in self.recorder.open_episodes()
                   if e.kind not in ADVISORY_KINDS]
        if self.delivery_alive is not None:
            if not self.delivery_alive():
                reasons.append("delivery: worker not running")
        else:
            age = self.heartbeat_age_s()
            if age is None:
                if not self.recorder.is_open(EpisodeKind.DELIVERY_PROCESS_DOWN):
                    reasons.append("delivery_process: starting")
            elif age > self.heartbeat_timeout_s:
                reasons.append(f"delivery_process: silent for {age:.0f} s")
        reasons += [f"{e.get('kind')}: {e.get('cause')} (delivery process)"
                    for e in self.delivery_episodes if e.get("kind") not in ADVISORY_KINDS]
        return not reasons, reasons

    def open_episodes(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.recorder.open_episodes()] + list(
            self.delivery_episodes)

    def snapshot(self) -> dict[str, Any]:
        ok, reasons = self.ready()
        return {
            "ready": ok,
            "reasons": reasons,
            "episodes_open": self.open_episodes(),
            "episodes_recent": [e.as_dict() for e in self.recorder.recent],
            "oldest_due_s": self.oldest_due_s,
            "delivery_heartbeat_age_s": self.heartbeat_age_s(),
        }
