"""The collector's settings for a serving process and its pauses (app/heap.py), in this
process: settle() is undone after each test."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from adressat.app import heap
from adressat.observe.metrics import GC_PAUSE, PROCESS


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()
    if heap._on_gc in gc.callbacks:
        gc.callbacks.remove(heap._on_gc)
    heap._pauses.clear()


def _count(gen: str) -> float:
    for metric in GC_PAUSE.collect():
        for s in metric.samples:
            if s.name.endswith("_count") and s.labels == {"process": PROCESS, "generation": gen}:
                return s.value
    return 0.0


def test_settle_freezes_start_up_raises_the_threshold_and_observes_pauses(
        restored: None) -> None:
    before = _count("2"), _count("0")

    async def serving() -> None:
        heap.settle(interval_s=0.05)
        assert gc.get_freeze_count() > 0  # start-up's objects are out of the collector's sight
        assert gc.get_threshold()[0] == heap.GEN0_THRESHOLD
        gc.collect(0)  # a young pause, after the full one of settle()
        await asyncio.sleep(0.2)  # the flush task moves them into the histogram

    asyncio.run(serving())
    assert _count("2") >= before[0] + 1
    assert _count("0") >= before[1] + 1
    assert heap.flush() == []  # nothing left behind


def test_flush_logs_a_long_pause(restored: None, caplog: pytest.LogCaptureFixture) -> None:
    heap._pauses.append((2, heap.PAUSE_LOGGED_S + 0.01))
    heap._pauses.append((0, 0.001))
    with caplog.at_level("WARNING", logger="adressat.heap"):
        taken = heap.flush()
    assert [g for g, _ in taken] == [2, 0]
    said = [r for r in caplog.records if r.getMessage() == "garbage collection paused the loop"]
    assert len(said) == 1 and said[0].generation == 2  # type: ignore[attr-defined]
