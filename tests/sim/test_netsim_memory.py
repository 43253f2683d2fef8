"""A 2.7M-subscriber network costs almost nothing: identities are computed, not stored."""

from __future__ import annotations

import asyncio
import gc
import os
import random
from pathlib import Path

from adressat.netsim import SUBSCRIBERS_MAX, Ack, NetsimSettings, NetSms, Network
from adressat.sms import encode_scts

MIB = 1024 * 1024


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_full_size_network_memory(tmp_path: Path) -> None:
    gc.collect()
    before = _rss_bytes()
    now = [1_700_000_000.0]
    net = Network(
        tmp_path,
        NetsimSettings(
            subscribers=SUBSCRIBERS_MAX,
            ack_latency_ms_min=0,
            ack_latency_ms_max=0,
            slow_ack_fraction=0,
        ),
        clock=lambda: now[0],
    )
    reg = net.register
    rng = random.Random(3)
    # touch the whole population's state once, and a sample's identity
    absent = 0
    for index in range(0, SUBSCRIBERS_MAX, 9):
        if reg.state_of(index, now[0]).reachability.value != "present":
            absent += 1
    assert 0.01 < absent / (SUBSCRIBERS_MAX / 9) < 0.08
    last = str(46701000000 + SUBSCRIBERS_MAX - 1)
    assert reg.msisdn_for_imsi(reg.identity(last)) == last

    async def deliver() -> int:
        ok = 0
        for k in range(5000):
            msisdn = str(46701000000 + rng.randrange(SUBSCRIBERS_MAX))
            try:
                info = reg.lookup(msisdn)
            except Exception:
                continue
            sms = NetSms("A", encode_scts(1_700_000_000 + k), 0, b"x%d" % k, str(k))
            result = await net.forward_sm(info.imsi, info.node, sms)
            ok += isinstance(result, Ack)
        return ok

    assert asyncio.run(deliver()) > 4000
    for k in range(2000):  # identity changes are the stored exceptions
        reg.sim_swap(str(46701000000 + k * 1000))
    gc.collect()
    growth = _rss_bytes() - before
    print(f"RSS growth {growth / MIB:.1f} MiB")
    assert growth < 100 * MIB, f"RSS grew by {growth / MIB:.1f} MiB"
    net.close()
