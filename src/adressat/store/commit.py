"""Group commit: one writer thread, many asyncio callers, one transaction (one fsync) per batch.

``await committer.run(fn)`` queues ``fn(store)``; the writer thread takes everything queued
(up to ``batch_max`` per lane), writes the plain inserts first as one executemany, runs each
other operation in its own savepoint, all inside ONE ``store.batch()``, commits once, and only
then resolves each caller's future or calls its callback (so a caller that hears "done" knows
its write is durable, I1). An operation that raises fails only its own caller. If the commit
itself fails, every caller of that batch gets the error. The queue is bounded: when it is full
``run`` raises :class:`CommitQueueFull` at once (answer ESME_RTHROTTLED / HTTP 503), never
blocking the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from adressat.core.model import Message
from adressat.store.base import Store, StoreError, StoreUnavailable

T = TypeVar("T")

#: Called on the caller's loop once the batch holding the insert is over: None when the
#: messages are durable, else the error (nothing of them was written).
InsertDone = Callable[[BaseException | None], None]


class CommitQueueFull(StoreError):
    """Back-pressure: too many writes waiting for the writer thread."""


class CommitterClosed(StoreError):
    pass


@dataclass(slots=True)
class _Op(Generic[T]):
    fn: Callable[[Store], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


@dataclass(slots=True)
class _Insert:
    """A plain insert (the submit path): its messages join one executemany with the other
    inserts of the batch. Exactly one of ``future`` / ``done`` is set."""

    msgs: Sequence[Message]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None] | None
    done: InsertDone | None


def _store_failure(*results: Sequence[tuple[bool, Any]]) -> BaseException | None:
    """A batch that committed may still have ops that failed alone because the store could
    not do them (StoreUnavailable: a statement that hit a full disk, say): the first such."""
    for rs in results:
        for ok, value in rs:
            if not ok and isinstance(value, StoreUnavailable):
                return value
    return None


def _resolve_all(items: Sequence[tuple[Any, bool, Any, bool]]) -> None:
    for target, ok, value, is_callback in items:
        if is_callback:
            target(None if ok else value)  # an InsertDone
        else:
            _resolve(target, ok, value)


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # the caller was cancelled; the write happened anyway
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class GroupCommitter:
    """Two lanes into one writer thread: plain inserts (:meth:`insert_then`, ``insert``) and
    any other operation (:meth:`run`, :meth:`enqueue`). Each batch writes the queued inserts
    first, as ONE executemany (the submit path does not wait behind other writes of the
    batch; if it fails, each insert is retried alone so only the faulty one fails), then the
    operations, each in its own savepoint; then one commit. ``batch_max`` bounds each lane's
    share of one batch; ``queue_max`` bounds what may wait (CommitQueueFull beyond)."""

    def __init__(
        self,
        store: Store,
        *,
        batch_max: int = 2000,
        queue_max: int = 100_000,
        name: str = "adressat-group-commit",
        inline: bool = False,
    ) -> None:
        """``inline=True``: no writer thread; each batch runs on the event loop at the end
        of the loop iteration that queued it. CPython's sqlite3 module lets go of the GIL
        around every step of a statement (every row of an executemany or a fetch): a writer
        thread beside a busy loop waits up to a switch interval to get it back each time
        (measured: a 100-row executemany 1 ms alone, 263 ms beside a busy thread), and it
        holds the store's write lock meanwhile. Inline, the loop is blocked for the batch's
        SQL instead; the delivery process, whose loop has nothing more urgent, runs so."""
        if batch_max < 1:
            raise ValueError("batch_max must be >= 1")
        self.store = store
        self.batch_max = batch_max
        self.queue_max = queue_max
        # deque.append / popleft are atomic: the loop appends, the writer takes; the event
        # is set only when the writer may be asleep (not once per message)
        self._ops: deque[_Op[Any]] = deque()
        self._inserts: deque[_Insert] = deque()
        self._wake = threading.Event()
        self._wake_scheduled = False
        self.inline = inline
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self._stopping = False
        self.batches = 0  # transactions committed by the writer
        self.ops = 0  # operations run (each insert call counts as one)
        self.failed_batches = 0
        # after every batch: (None or the error that failed it, operations, seconds); for
        # metrics and the store's health (heal or shout). Must not raise.
        self.on_batch: Callable[[BaseException | None, int, float], None] | None = None

    def start(self) -> GroupCommitter:
        if not self.inline:
            self._thread.start()
        return self

    async def run(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` in the next batch; return its result once the batch is committed."""
        return await self.enqueue(fn)

    async def read(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)``, which only reads, and return its result: inline, at once on the
        loop, outside any transaction (the loop is the only user of the connection between
        batches; in WAL mode a plain read sees every committed write, its own and the other
        process's, and takes no write lock, so it neither waits for the other process nor
        makes it wait); with a writer thread, in the next batch like :meth:`run`."""
        if self.inline:
            if self._closed:
                raise CommitterClosed("group committer is stopped")
            return fn(self.store)
        return await self.enqueue(fn)

    def _check_room(self) -> None:
        if self._closed:
            raise CommitterClosed("group committer is stopped")
        if len(self._ops) + len(self._inserts) >= self.queue_max:
            raise CommitQueueFull("commit queue full")

    def _wake_writer(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake the writer at the end of this loop iteration, not at the first write of it:
        everything the loop queues meanwhile (a window of submits read in one go) goes into
        one batch instead of a few small ones."""
        if not self._wake_scheduled:
            self._wake_scheduled = True
            loop.call_soon(self._wake_now)

    def _wake_now(self) -> None:
        self._wake_scheduled = False
        if self.inline:
            self._drain()
        elif not self._wake.is_set():
            self._wake.set()

    def enqueue(
        self, fn: Callable[[Store], T], inserts: Sequence[Message] | None = None
    ) -> asyncio.Future[T]:
        """Queue ``fn(store)`` and return the future of its committed result, without a
        coroutine. Raises CommitQueueFull / CommitterClosed. ``inserts``: ``fn`` only inserts
        these messages, so they may join the batch's executemany instead."""
        self._check_room()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        if inserts is not None:
            self._inserts.append(_Insert(inserts, loop, fut, None))  # type: ignore[arg-type]
        else:
            self._ops.append(_Op(fn, loop, fut))
        self._wake_writer(loop)
        return fut

    def insert_then(self, msgs: Sequence[Message], done: InsertDone) -> None:
        """Insert messages all-or-nothing and call ``done(None)`` on this loop once they are
        durable, or ``done(error)``. The per-message path: no future, one wake-up of the loop
        per batch for all the callbacks. Raises CommitQueueFull / CommitterClosed at once."""
        self._check_room()
        loop = asyncio.get_running_loop()
        self._inserts.append(_Insert(msgs, loop, None, done))
        self._wake_writer(loop)

    async def insert(self, msg: Message) -> None:
        """Insert one message; resolves once it is durably committed."""
        await self.insert_many([msg])

    async def insert_many(self, msgs: Sequence[Message]) -> None:
        """Insert messages all-or-nothing; resolves once they are durably committed."""
        msgs = list(msgs)
        await self.enqueue(lambda s: s.insert_messages(msgs), msgs)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        if self.inline:
            self._drain()
        elif self._thread.is_alive():
            self._wake.set()
            self._thread.join(timeout_s)

    async def aclose(self) -> None:
        if self.inline:
            self.stop()
        else:
            await asyncio.get_running_loop().run_in_executor(None, self.stop)

    # --- writer thread -------------------------------------------------------------------------
    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            wake.clear()  # before taking: an append after this sets it again
            self._drain()
            if self._stopping:
                return

    def _drain(self) -> None:
        inserts, ops = self._inserts, self._ops
        while inserts or ops:
            ins = [inserts.popleft() for _ in range(min(len(inserts), self.batch_max))]
            batch = [ops.popleft() for _ in range(min(len(ops), self.batch_max))]
            self._run_batch(ins, batch)

    def _run_batch(self, ins: list[_Insert], ops: list[_Op[Any]]) -> None:
        store = self.store
        t0 = time.perf_counter()
        try:
            with store.batch():
                ins_results = self._insert_all(ins) if ins else []
                results = [self._one(op) for op in ops]
        except BaseException as e:  # the commit (or the batch) failed: nobody is durable
            self.failed_batches += 1
            self._post(ins, [(False, e)] * len(ins), ops, [(False, e)] * len(ops))
            self._report(e, len(ins) + len(ops), time.perf_counter() - t0)
            if not isinstance(e, Exception):
                raise
            return
        self.batches += 1
        self.ops += len(ins) + len(ops)
        self._post(ins, ins_results, ops, results)
        error = _store_failure(ins_results, results)
        self._report(error, len(ins) + len(ops), time.perf_counter() - t0)

    def _report(self, error: BaseException | None, ops: int, seconds: float) -> None:
        """The batch hook: on the loop when inline, else on the writer thread."""
        if self.on_batch is not None:
            self.on_batch(error, ops, seconds)

    def _insert_all(self, ins: list[_Insert]) -> list[tuple[bool, Any]]:
        """All inserts as one executemany; on any error (nothing of it written) each one
        alone, so only the faulty one fails."""
        store = self.store
        msgs = ins[0].msgs if len(ins) == 1 else [m for it in ins for m in it.msgs]
        try:
            with store.savepoint():
                store.insert_messages(msgs)
            return [(True, None)] * len(ins)
        except Exception:  # noqa: BLE001 - each one alone below, for its own result
            pass
        out: list[tuple[bool, Any]] = []
        for it in ins:
            try:
                with store.savepoint():
                    store.insert_messages(it.msgs)
                out.append((True, None))
            except Exception as e:  # noqa: BLE001 - delivered to its own caller
                out.append((False, e))
        return out

    def _one(self, op: _Op[Any]) -> tuple[bool, Any]:
        try:
            with self.store.savepoint():
                return (True, op.fn(self.store))
        except Exception as e:  # noqa: BLE001 - delivered to its own caller
            return (False, e)

    def _post(self, ins: Sequence[_Insert], ins_results: Sequence[tuple[bool, Any]],
              ops: Sequence[_Op[Any]], results: Sequence[tuple[bool, Any]]) -> None:
        """Hand the results back: one wake-up of each caller's loop per batch, not per op
        (each call_soon_threadsafe writes to the loop's self-pipe)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any, bool]]] = {}
        for it, (ok, value) in zip(ins, ins_results, strict=True):
            if it.done is not None:
                by_loop.setdefault(it.loop, []).append((it.done, ok, value, True))
            else:
                by_loop.setdefault(it.loop, []).append((it.future, ok, value, False))
        for op, (ok, value) in zip(ops, results, strict=True):
            by_loop.setdefault(op.loop, []).append((op.future, ok, value, False))
        for loop, items in by_loop.items():
            if self.inline:  # on the callers' own loop already
                _resolve_all(items)
                continue
            try:
                loop.call_soon_threadsafe(_resolve_all, items)
            except RuntimeError:  # the caller's loop is closed
                pass
