"""Prometheus metrics of both processes, merged at one ``/metrics`` (prometheus_client).

A node is two processes. The SMPP process serves ``/metrics``; its own figures live in its
ordinary registry. The delivery process's figures go through prometheus_client's
multiprocess mode: the SMPP process starts it with ``PROMETHEUS_MULTIPROC_DIR`` set to
``<home>/metrics`` (emptied at each start of the node), so its counters and histograms are
written to memory-mapped files there and outlive a restart of that process (a counter of a
process that died keeps counting in the sum, as a counter must). ``exposition()`` reads both
and merges families of one name (their samples differ by the ``process`` label), so every
family appears once. Figures that are states rather than events (queue depth, receipts
pending, sessions, WAL and database bytes, disk free, readiness) are read when scraped
(:class:`ScrapeFigures`), never kept up to date on the message path.

On the message path, counts are kept in a dict and added to the metric once per loop turn
(:class:`TurnCounts`): one ``inc`` per label set and turn instead of one per message. Label
values are account names, route names, states, outcomes and status names: never numbers or
text (I6).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections import Counter as _Counts
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "PROCESS",
    "ACCEPTED",
    "REFUSED",
    "FINAL",
    "HELD",
    "ATTEMPTS",
    "ALARMS",
    "EPISODES",
    "SUBMIT_LATENCY",
    "HTTP_REQUESTS",
    "HTTP_LATENCY",
    "CREDENTIAL_FAILURES",
    "CREDENTIAL_LOCKOUTS",
    "DELIVERY_LATENCY",
    "COMMIT_SECONDS",
    "COMMIT_OPS",
    "GC_PAUSE",
    "TurnCounts",
    "ScrapeFigures",
    "exposition",
    "multiprocess_env",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PROCESS_ENV = "ADRESSAT_PROCESS"
#: which process this is: "smpp" (serves /metrics) or "delivery"
PROCESS = os.environ.get(PROCESS_ENV, "smpp")
disable_created_metrics()  # a _created sample cannot be merged across processes

ACCEPTED = Counter("adressat_messages_accepted", "Messages accepted (durable) by account",
                   ["account"])
REFUSED = Counter("adressat_messages_refused",
                  "Submits refused, by SMPP command_status name", ["status"])
FINAL = Counter("adressat_messages_final",
                "Messages that reached a final state, by account, route and state",
                ["account", "route", "state"])
HELD = Counter("adressat_messages_held", "Messages held by a route breaker, by account and route",
               ["account", "route"])
ATTEMPTS = Counter("adressat_delivery_attempts",
                   "Delivery attempts by route, outcome and serving node (\"\": none answered)",
                   ["route", "outcome", "serving_node"])
ALARMS = Counter("adressat_alarms_raised", "Integrity alarms raised, by kind", ["kind"])
# interconnect (issue 11): what each partner said, by connector
PARTNER_SUBMITS = Counter("adressat_partner_submits",
                          "submit_sm to partners by connector and result (accepted, refused,"
                          " unanswered, id_reused: accepted under an id given before)",
                          ["connector", "result"])
PARTNER_RECEIPTS = Counter("adressat_partner_receipts",
                           "Receipts from partners by connector and outcome (final, part, held,"
                           " ambiguous, repeat, intermediate, late, not_a_receipt, not_written)",
                           ["connector", "outcome"])
EPISODES = Counter("adressat_episodes", "Health episodes started (heal or shout), by kind",
                   ["kind", "process"])
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0)
SUBMIT_LATENCY = Histogram("adressat_submit_latency_seconds",
                           "submit_sm / data_sm: PDU in to response out", buckets=_LATENCY_BUCKETS)
HTTP_REQUESTS = Counter("adressat_http_api_requests",
                        "Requests to the HTTP messages API and sendsms, by endpoint and status",
                        ["endpoint", "status"])
HTTP_LATENCY = Histogram("adressat_http_api_latency_seconds",
                         "HTTP messages API and sendsms: request in to answer out",
                         ["endpoint"], buckets=_LATENCY_BUCKETS)
# issue 13 (credentials): refused credentials by realm ("account": SMPP binds and sendsms,
# "api_key") and reason (unknown, password, locked, busy, malformed), and lockouts by scope
CREDENTIAL_FAILURES = Counter("adressat_credential_failures",
                              "Credentials refused, by realm and reason", ["realm", "reason"])
CREDENTIAL_LOCKOUTS = Counter("adressat_credential_lockouts",
                              "Lockouts started (credential guessing), by realm and scope"
                              " (pair, address, principal)", ["realm", "scope"])
DELIVERY_LATENCY = Histogram(
    "adressat_delivery_latency_seconds", "Accepted to final state",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
             14400.0, 86400.0),
)
COMMIT_SECONDS = Histogram("adressat_store_commit_seconds",
                           "One group-commit batch: its transaction, commit and fsync",
                           ["process"], buckets=_LATENCY_BUCKETS)
GC_PAUSE = Histogram("adressat_gc_pause_seconds",
                     "Collections of the cyclic garbage collector: the process's loop stood"
                     " still meanwhile (app/heap.py)", ["process", "generation"],
                     buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                              0.5, 1.0))
# ingress pacing (ingress/pacing.py): submits that waited before their commit while the
# delivery process was behind, and how long each waited
INGRESS_HELD = Counter("adressat_ingress_held",
                       "Submits held before their commit while delivery was behind")
INGRESS_HOLD_SECONDS = Histogram("adressat_ingress_hold_seconds",
                                 "How long a held submit waited before its commit",
                                 buckets=_LATENCY_BUCKETS)
COMMIT_OPS = Histogram("adressat_store_batch_operations", "Operations in one group-commit batch",
                       ["process"], buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000))


def observe_batch(error: BaseException | None, ops: int, seconds: float) -> None:
    """The GroupCommitter's batch hook: commit latency and batch size of this process."""
    if error is None:
        COMMIT_SECONDS.labels(PROCESS).observe(seconds)
        COMMIT_OPS.labels(PROCESS).observe(ops)


class TurnCounts:
    """Counts of one loop turn, added to their metric at the end of it (one ``inc`` per label
    set and turn). ``add`` costs a dict update."""

    def __init__(self, metric: Counter) -> None:
        self.metric = metric
        self._counts: _Counts[tuple[str, ...]] = _Counts()
        self._scheduled = False

    def add(self, *labels: str) -> None:
        self._counts[labels] += 1
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: at once
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        counts, self._counts = self._counts, _Counts()
        for labels, n in counts.items():
            self.metric.labels(*labels).inc(n)


def multiprocess_env(home: Path) -> dict[str, str]:
    """The environment of a delivery process: its metrics go to ``<home>/metrics``."""
    return {MULTIPROC_ENV: str(home / "metrics"), PROCESS_ENV: "delivery"}


def reset_multiprocess_dir(home: Path) -> Path:
    """Empty ``<home>/metrics`` (at the node's start: figures of an earlier run are not
    this run's; prometheus_client's rule for the directory)."""
    path = home / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def mark_dead(home: Path, pid: int) -> None:
    """A delivery process ended: its live gauges go (its counters stay, as they must)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(home / "metrics"))


class ScrapeFigures:
    """Families read when scraped: ``read()`` returns them (called by the HTTP handler in an
    executor thread, with the store reads it needs)."""

    def __init__(self, read: Callable[[], Iterable[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        return self._read()


def gauge(name: str, doc: str, value: float | None = None,
          labelled: dict[tuple[str, ...], float] | None = None,
          labels: Iterable[str] = ()) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, value=value, labels=list(labels) or None)
    for lv, v in (labelled or {}).items():
        g.add_metric(list(lv), v)
    return g


def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _merge(families: Iterable[Metric]) -> list[Metric]:
    """One family per name; samples with the same name and labels from both processes are
    added (counters and histogram buckets, sums and counts add up; the gauges are the SMPP
    process's alone)."""
    by_name: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for f in families:
        if f.name not in by_name:
            by_name[f.name] = Metric(f.name, f.documentation, f.type, f.unit)
            values[f.name] = {}
        vals = values[f.name]
        for sm in f.samples:
            key = (sm.name, tuple(sorted(sm.labels.items())))
            vals[key] = vals.get(key, 0.0) + sm.value
    out = []
    for name, fam in by_name.items():
        for (sample_name, labels), v in values[name].items():
            fam.add_sample(sample_name, dict(labels), v)
        out.append(fam)
    return out


class _Merged:
    def __init__(self, sources: list[Any]) -> None:
        self.sources = sources

    def collect(self) -> list[Metric]:
        return _merge(f for s in self.sources for f in s.collect())


def exposition(home: Path | None, extra: Iterable[Any] = ()) -> bytes:
    """The text of ``/metrics``: this process's registry, the delivery process's files
    (``home`` given and the directory there), and ``extra`` collectors, merged."""
    sources: list[Any] = [REGISTRY]
    if home is not None and (home / "metrics").is_dir():
        mp = CollectorRegistry()
        MultiProcessCollector(mp, path=str(home / "metrics"))
        sources.append(mp)
    sources.extend(extra)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Merged(sources))  # type: ignore[arg-type]
    return generate_latest(reg)
