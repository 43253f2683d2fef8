"""/metrics against a real Prometheus server, scraping the running node every second.

The node runs as its two processes; Prometheus (Debian's package, installed by the test
command, started here on loopback) scrapes ``/metrics``. The counts it then answers through
its query API must be what the client saw: accepted, refused by status, delivered by account
and route, submit latencies counted, receipts sent (none pending), the session bound, figures
of both processes (store commits of each).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from adressat.smpp.constants import CommandStatus as S
from adressat.testing.esme import EsmeClient
from adressat.testing.server import ServerProcess, adressat, free_port

pytestmark = pytest.mark.slow

GOOD = 150
BAD = 7  # an invalid destination each: ESME_RINVDSTADR


def _prometheus(tmp: Path, target_port: int) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("prometheus")
    assert exe, "prometheus is not installed (./scripts/test installs Debian's package)"
    port = free_port()
    conf = tmp / "prometheus.yml"
    conf.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: adressat\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target_port}']\n"
    )
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [exe, f"--config.file={conf}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("prometheus did not become ready: "
                         + (tmp / "prometheus.log").read_text()[-2000:])


def _query(port: int, q: str) -> float | None:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    result = body["data"]["result"]
    if not result:
        return None
    return float(result[0]["value"][1])


def _until(port: int, q: str, want: float, timeout_s: float = 20.0) -> float | None:
    """The query's value once it equals ``want`` (scrapes lag a second or two), else the
    last value seen."""
    deadline = time.monotonic() + timeout_s
    got = None
    while time.monotonic() < deadline:
        got = _query(port, q)
        if got == want:
            return got
        time.sleep(0.5)
    return got


async def _traffic(port: int) -> tuple[list[str], int]:
    client = EsmeClient("127.0.0.1", port, "prom", "prom", window=20)
    await client.connect(retry_for_s=10.0)
    good = await client.submit_many(
        [(str(46701000200 + i), b"metrics %04d" % i) for i in range(GOOD)])
    bad = await client.submit_many([("12", b"nope")] * BAD)
    ids = [r.message_id for r in good if r.status == S.ESME_ROK and r.message_id]
    refused = sum(1 for r in bad if r.status == S.ESME_RINVDSTADR)
    missing = await client.wait_receipts(ids, 30.0)
    assert not missing
    # stay bound: the session gauge is checked while the client is connected
    await asyncio.sleep(0.1)
    return ids, refused


def test_prometheus_sees_what_the_client_saw(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert adressat(home, "account", "add", "prom", "--password", "prom").returncode == 0
    server = ServerProcess(home, None, "--quiet-network", "--subscribers", "10000").start()
    prom = None
    try:
        prom, pport = _prometheus(tmp_path, server.http_port)
        ids, refused = asyncio.run(asyncio.wait_for(_traffic(server.port), 90.0))
        assert len(ids) == GOOD and refused == BAD
        assert _until(pport, 'up{job="adressat"}', 1.0) == 1.0, "scrape failed"
        checks = {
            "sum(adressat_messages_accepted_total)": GOOD,
            'adressat_messages_accepted_total{account="prom"}': GOOD,
            'adressat_messages_refused_total{status="ESME_RINVDSTADR"}': BAD,
            'sum(adressat_messages_final_total{account="prom",route="netsim",'
            'state="DELIVERED"})': GOOD,
            'sum(adressat_delivery_attempts_total{outcome="DELIVERED"})': GOOD,
            "adressat_submit_latency_seconds_count": GOOD + BAD,
            "adressat_delivery_latency_seconds_count": GOOD,
            "sum(adressat_queue_messages)": 0,
            "adressat_receipts_pending": 0,
            "adressat_ready": 1,
            "adressat_delivery_process_restarts_total": 0,
        }
        seen = {q: _until(pport, q, float(want)) for q, want in checks.items()}
        wrong = {q: (seen[q], want) for q, want in checks.items() if seen[q] != want}
        assert not wrong, wrong
        # figures of both processes, merged under one family
        for proc in ("smpp", "delivery"):
            n = _query(pport, f'adressat_store_commit_seconds_count{{process="{proc}"}}')
            assert n is not None and n > 0, proc
            # each process's collector pauses, from the full collection after start-up on
            n = _query(pport, f'adressat_gc_pause_seconds_count{{process="{proc}",'
                              f'generation="2"}}')
            assert n is not None and n >= 1, proc
        for q in ("adressat_store_wal_bytes", "adressat_store_db_bytes",
                  "adressat_disk_free_bytes"):
            v = _query(pport, q)
            assert v is not None and v > 0, q
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(10)
            except subprocess.TimeoutExpired:
                prom.kill()
        server.stop()
