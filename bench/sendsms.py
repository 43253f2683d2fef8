"""Kannel-compatible sendsms benchmark: ``../shared/peers/http_load.py`` (the client that
drives Kannel's smsbox in the peers' harness) against a real ``adressat run`` (SQLite, fsync,
--quiet-network), GET /cgi-bin/sendsms at concurrency C. Prints http_load's JSON line with
``"bench": "sendsms"`` added. For Kannel's figure in the same run:
``SYSTEMS=kannel MODES=submit ../shared/peers/run_peers.sh`` just before or after.

    .venv/bin/python bench/sendsms.py --peers ../shared/peers -n 20000 -c 50
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from adressat.testing.server import ServerProcess, adressat


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", type=Path,
                   default=Path(__file__).resolve().parents[2] / "shared" / "peers")
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("-c", "--concurrency", type=int, default=50)
    p.add_argument("--run-args", default="", metavar="ARGS",
                   help="more arguments for adressat run (A/B of a setting in one session)")
    args = p.parse_args()
    load = args.peers / "http_load.py"
    if not load.exists():
        print(f"no {load}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="adressat-bench-") as tmp:
        home = Path(tmp)
        out = adressat(home, "account", "add", "bench", "--password", "bench")
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            return 1
        with ServerProcess(home, None, "--quiet-network", "--subscribers", "1000000",
                           *shlex.split(args.run_args)) as server:
            url = f"http://127.0.0.1:{server.http_port}/cgi-bin/sendsms"
            common = [sys.executable, str(load), "--url", url, "--src", "BENCH"]
            assert server.proc is not None
            # warm-up: the first password check, imports, the first fsyncs
            subprocess.run([*common, "-n", "500", "-c", "10"], capture_output=True,
                           timeout=120, check=False)
            run = subprocess.run([*common, "-n", str(args.n), "-c", str(args.concurrency),
                                  "--watch", f"adressat={server.proc.pid}"],
                                 capture_output=True, text=True, timeout=600, check=False)
    if run.returncode:
        print(run.stdout + run.stderr, file=sys.stderr)
        return 1
    line = json.loads(run.stdout.strip().splitlines()[-1])
    print(json.dumps({"bench": "sendsms", **line}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
