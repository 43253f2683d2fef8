"""The cyclic garbage collector, set for a long-running server's latency, and its pauses
measured.

Measured in the SMPP process under ``bench/http_api.py`` (POST /v1/messages, 1,000 req/s
paced), with CPython's defaults (thresholds 700, 10, 10; nothing frozen): 12 full
collections, 794 ms in all, the longest 78 ms; 1,511 young ones, 1.06 s in all. A full
collection scans every tracked object: the modules, the numbering plan's metadata and every
table built at start-up, each time. Every pause stops the event loop and lands in some
request's latency.

So once a serving process has started: one collection, then ``gc.freeze()`` (what start-up
built is never scanned again; it is not garbage) and a larger first threshold (fewer young
collections; most of a young collection's cost is the same whatever the threshold). In the
same run: 1 full collection after start-up, 155 young ones, 0.18 s in all (about a tenth);
paced p99 144 -> 82 ms. Cycles are still collected; memory stays bounded (``bench/soak.py``
measures it over the hour).

Every pause is observed in ``adressat_gc_pause_seconds{process, generation}``. The collector
calls back in the middle of whatever allocated, possibly inside a metric's own lock, so the
callback only appends to a list; a task of the loop moves them into the histogram each second.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

from adressat.observe.metrics import GC_PAUSE, PROCESS

log = logging.getLogger("adressat.heap")

#: allocations less deallocations before a young collection (CPython's default: 700)
GEN0_THRESHOLD = 10_000
#: a pause this long is said in the log as well (WARNING): the loop stood still for it
PAUSE_LOGGED_S = 0.25
_PAUSES_KEPT_MAX = 10_000  # between two flushes (a flush a second: never reached)

_started = 0.0  # perf_counter() at the start of the running collection (0: none seen yet)
_pauses: list[tuple[int, float]] = []
_task: asyncio.Task[None] | None = None  # the flush task, held so it is not collected


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
    elif _started and len(_pauses) < _PAUSES_KEPT_MAX:
        _pauses.append((int(info["generation"]), time.perf_counter() - _started))


def flush() -> list[tuple[int, float]]:
    """Move the pauses seen since the last flush into the histogram; returns them."""
    taken = _pauses[:]
    del _pauses[:len(taken)]
    for gen, seconds in taken:
        GC_PAUSE.labels(PROCESS, str(gen)).observe(seconds)
        if seconds >= PAUSE_LOGGED_S:
            log.warning("garbage collection paused the loop",
                        extra={"generation": gen, "pause_s": round(seconds, 3)})
    return taken


async def _flush_every(interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            flush()
        except Exception:  # noqa: BLE001 - said, and the next second tries again
            log.exception("gc pauses not recorded", extra={"pauses": len(_pauses)})


def settle(interval_s: float = 1.0) -> None:
    """Call once, on the loop, when the process is serving. The full collection before the
    freeze is the first pause observed."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, g1, g2)
    global _task
    if _task is None or _task.done():
        _task = asyncio.get_running_loop().create_task(_flush_every(interval_s),
                                                       name="gc-pauses")
