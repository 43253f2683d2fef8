"""Group commit: one writer thread, many asyncio callers, one transaction (one fsync) per batch.

``await committer.run(fn)`` queues ``fn(store)``; the writer thread takes everything queued
(up to ``batch_max``), runs each operation in its own savepoint inside ONE ``store.batch()``,
commits once, and only then resolves each caller's future (so a caller that hears "done" knows
its write is durable, I1). An operation that raises fails only its own caller. If the commit
itself fails, every caller of that batch gets the error. The queue is bounded: when it is full
``run`` raises :class:`CommitQueueFull` at once (answer ESME_RTHROTTLED / HTTP 503), never
blocking the event loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from adressat.core.model import Message
from adressat.store.base import Store, StoreError

T = TypeVar("T")


class CommitQueueFull(StoreError):
    """Back-pressure: too many writes waiting for the writer thread."""


class CommitterClosed(StoreError):
    pass


@dataclass(slots=True)
class _Op(Generic[T]):
    fn: Callable[[Store], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    inserts: Sequence[Message] | None = None  # set for plain inserts, which are coalesced


_STOP = object()


def _resolve_all(items: Sequence[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in items:
        _resolve(fut, ok, value)


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # the caller was cancelled; the write happened anyway
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class GroupCommitter:
    def __init__(
        self,
        store: Store,
        *,
        batch_max: int = 2000,
        queue_max: int = 100_000,
        name: str = "adressat-group-commit",
    ) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be >= 1")
        self.store = store
        self.batch_max = batch_max
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_max)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self.batches = 0  # transactions committed by the writer
        self.ops = 0  # operations run

    def start(self) -> GroupCommitter:
        self._thread.start()
        return self

    async def run(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` in the next batch; return its result once the batch is committed."""
        return await self._submit(fn, None)

    async def _submit(self, fn: Callable[[Store], T], inserts: Sequence[Message] | None) -> T:
        return await self.enqueue(fn, inserts)

    def enqueue(
        self, fn: Callable[[Store], T], inserts: Sequence[Message] | None = None
    ) -> asyncio.Future[T]:
        """Queue ``fn(store)`` and return the future of its committed result, without a
        coroutine (the per-message hot path). Raises CommitQueueFull / CommitterClosed."""
        if self._closed:
            raise CommitterClosed("group committer is stopped")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        try:
            self._queue.put_nowait(_Op(fn, loop, fut, inserts))
        except queue.Full:
            raise CommitQueueFull("commit queue full") from None
        return fut

    async def insert(self, msg: Message) -> None:
        """Insert one message; resolves once it is durably committed."""
        await self.insert_many([msg])

    async def insert_many(self, msgs: Sequence[Message]) -> None:
        """Insert messages all-or-nothing; resolves once they are durably committed."""
        msgs = list(msgs)
        await self._submit(lambda s: s.insert_messages(msgs), msgs)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout_s)

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    # --- writer thread -------------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            ops: list[_Op[Any]] = [first]
            while len(ops) < self.batch_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                ops.append(nxt)
            self._run_batch(ops)

    def _run_batch(self, ops: list[_Op[Any]]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            with self.store.batch():
                i = 0
                while i < len(ops):
                    j = i
                    while j < len(ops) and ops[j].inserts is not None:
                        j += 1
                    if j - i > 1 and self._insert_run(ops[i:j]):
                        results.extend((True, None) for _ in range(j - i))
                        i = j
                        continue
                    for op in ops[i : max(j, i + 1)]:
                        results.append(self._one(op))
                    i = max(j, i + 1)
        except BaseException as e:  # the commit (or the batch) failed: nobody is durable
            self._post(ops, [(False, e)] * len(ops))
            if not isinstance(e, Exception):
                raise
            return
        self.batches += 1
        self.ops += len(ops)
        self._post(ops, results)

    def _insert_run(self, ops: Sequence[_Op[Any]]) -> bool:
        """Consecutive plain inserts as one executemany; False (nothing written) on any error,
        and the caller retries them one by one so only the faulty one fails."""
        msgs = [m for op in ops for m in (op.inserts or ())]
        try:
            with self.store.savepoint():
                self.store.insert_messages(msgs)
        except Exception:  # noqa: BLE001
            return False
        return True

    def _one(self, op: _Op[Any]) -> tuple[bool, Any]:
        try:
            with self.store.savepoint():
                return (True, op.fn(self.store))
        except Exception as e:  # noqa: BLE001 - delivered to its own caller
            return (False, e)

    @staticmethod
    def _post(ops: Sequence[_Op[Any]], results: Sequence[tuple[bool, Any]]) -> None:
        """Hand the results back: one wake-up of each caller's loop per batch, not per op
        (each call_soon_threadsafe writes to the loop's self-pipe)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]]
        by_loop = {}
        for op, (ok, value) in zip(ops, results, strict=True):
            by_loop.setdefault(op.loop, []).append((op.future, ok, value))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve_all, items)
            except RuntimeError:  # the caller's loop is closed
                pass
