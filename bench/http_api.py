"""HTTP messages API benchmark: POST /v1/messages against a real ``adressat run`` (SQLite, fsync
on, --quiet-network). Prints one JSON line.

The client is a lean asyncio HTTP/1.1 loop over persistent connections with the requests
pre-encoded (a general client such as httpx spends more CPU per request than the server, on
the same two cores). Phases:

* ``closed``: N requests at concurrency C (default 50) -> accepted per second, p50/p99;
* ``paced``: R requests per second (default 1,000) for S seconds, open loop, each latency from
  its scheduled send time (so a stalled server is not hidden by a client that waits) -> p50/p99;
* ``smpp_alone`` / ``smpp_beside_http``: the SMPP submit rate (window 100) alone, then with the
  paced HTTP load running beside it -> their ratio (the issue asks it to stay unchanged).

    .venv/bin/python bench/http_api.py -n 20000 -c 50 --paced-rate 1000 --paced-s 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from adressat.testing.load import LoadClient
from adressat.testing.server import ServerProcess, adressat

FIRST = 46701000000
KEY_RE = re.compile(r"adr_[0-9a-f]{12}_[A-Za-z0-9_-]+")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def request(port: int, key: str, number: int) -> bytes:
    body = json.dumps({"to": f"+{number}", "from": "Bench", "text": "your code is 123456"})
    return (f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


class Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, data: bytes) -> int:
        """One request, its status (0: the connection failed)."""
        for _ in range(2):  # one reconnect when the server closed an idle connection
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection("127.0.0.1",
                                                                             self.port)
                assert self.reader is not None
                self.writer.write(data)
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                await self.reader.readexactly(int(m.group(1)) if m else 0)
                return status
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                self.close()
        return 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def closed(port: int, key: str, n: int, concurrency: int, offset: int,
                 subscribers: int) -> dict[str, float]:
    reqs = [request(port, key, FIRST + (offset + i) % subscribers) for i in range(n)]
    lat: list[float] = []
    codes: dict[int, int] = {}
    it = iter(reqs)

    async def worker() -> None:
        c = Conn(port)
        for data in it:
            t0 = time.perf_counter()
            status = await c.send(data)
            lat.append((time.perf_counter() - t0) * 1000)
            codes[status] = codes.get(status, 0) + 1
        c.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.perf_counter() - t0
    return {"n": n, "accepted": codes.get(202, 0), "codes": codes,
            "accepted_per_s": round(codes.get(202, 0) / took, 1),
            "p50_ms": round(pct(lat, 0.5), 2), "p99_ms": round(pct(lat, 0.99), 2)}


async def paced(port: int, key: str, rate: float, seconds: float, offset: int,
                subscribers: int, conns: int = 100) -> dict[str, float]:
    n = int(rate * seconds)
    reqs = [request(port, key, FIRST + (offset + i) % subscribers) for i in range(n)]
    lat: list[float] = []
    codes: dict[int, int] = {}
    idle: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(conns):
        idle.put_nowait(Conn(port))
    start = time.perf_counter()

    async def one(i: int, data: bytes) -> None:
        c = await idle.get()
        status = await c.send(data)
        lat.append((time.perf_counter() - (start + i / rate)) * 1000)  # from its schedule
        codes[status] = codes.get(status, 0) + 1
        idle.put_nowait(c)

    tasks = []
    for i, data in enumerate(reqs):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, data)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return {"rate": rate, "n": n, "accepted": codes.get(202, 0), "codes": codes,
            "p50_ms": round(pct(lat, 0.5), 2), "p99_ms": round(pct(lat, 0.99), 2)}


async def smpp_rate(port: int, n: int, offset: int, subscribers: int) -> float:
    client = await LoadClient.connect("127.0.0.1", port, "bench", "bench", timeout_s=20)
    dests = [str(FIRST + (offset + i) % subscribers) for i in range(n)]
    run = await client.submit_all(dests, registered_delivery=0, window=100)
    await client.close()
    return round(len(run.acked()) / (run.finished_at - run.started_at), 1)


async def main_async(args: argparse.Namespace, smpp_port: int, http_port: int,
                     key: str) -> dict[str, object]:
    subs = args.subscribers
    await closed(http_port, key, min(2000, args.n), args.concurrency, 0, subs)  # warm-up
    res: dict[str, object] = {}
    res["closed"] = await closed(http_port, key, args.n, args.concurrency, args.n, subs)
    res["paced"] = await paced(http_port, key, args.paced_rate, args.paced_s, 2 * args.n, subs)
    alone = await smpp_rate(smpp_port, args.smpp_n, 3 * args.n, subs)
    # the same SMPP load with the paced HTTP load beside it, for as long as it lasts
    http = asyncio.create_task(paced(http_port, key, args.paced_rate / 2, args.paced_s,
                                     4 * args.n, subs))
    beside = await smpp_rate(smpp_port, args.smpp_n, 5 * args.n, subs)
    res["http_beside"] = await http
    res["smpp_alone_rate"] = alone
    res["smpp_beside_http_rate"] = beside
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("-c", "--concurrency", type=int, default=50)
    p.add_argument("--paced-rate", type=float, default=1000.0)
    p.add_argument("--paced-s", type=float, default=10.0)
    p.add_argument("--smpp-n", type=int, default=20000)
    p.add_argument("--subscribers", type=int, default=1_000_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="adressat-bench-") as tmp:
        home = Path(tmp)
        for argv in (("account", "add", "bench", "--password", "bench"),):
            out = adressat(home, *argv)
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                return 1
        out = adressat(home, "account", "key", "add", "bench")
        m = KEY_RE.search(out.stdout)
        if not m:
            print(out.stdout + out.stderr, file=sys.stderr)
            return 1
        with ServerProcess(home, None, "--quiet-network", "--subscribers",
                           str(args.subscribers)) as server:
            res = asyncio.run(main_async(args, server.port, server.http_port, m.group(0)))
    closed_ = res["closed"]
    paced_ = res["paced"]
    line = {
        "bench": "http",
        "concurrency": args.concurrency,
        "accepted_per_s": closed_["accepted_per_s"],  # type: ignore[index]
        "closed_p99_ms": closed_["p99_ms"],  # type: ignore[index]
        "paced_rate": args.paced_rate,
        "paced_p50_ms": paced_["p50_ms"],  # type: ignore[index]
        "paced_p99_ms": paced_["p99_ms"],  # type: ignore[index]
        "smpp_alone_rate": res["smpp_alone_rate"],
        "smpp_beside_http_rate": res["smpp_beside_http_rate"],
        "smpp_ratio": round(float(res["smpp_beside_http_rate"])  # type: ignore[arg-type]
                            / float(res["smpp_alone_rate"]), 3),  # type: ignore[arg-type]
        "detail": res,
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
