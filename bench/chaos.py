"""Chaos benchmark: the chaos scenario (tests/chaos/chaos_kit.py) one fault at a time, each on
a fresh server and data directory, judged from outside (the clients' records and the
handsets' inbox, cross-checked with ``adressat audit``). Prints ONE JSON line:

per fault: ``sent`` (acked submits), ``delivered`` (DELIVRD receipts), ``quarantined``
(UNDELIV receipts with an integrity error), ``alarms`` (integrity alarms on the route: for
SMSC-side faults, the firings stopped before the wire), ``held`` (held on the route at the end
of the window, released afterwards), ``wrong_identity`` (inbox records at a wrong identity:
another number, or the number's new holder), ``detected`` (of those: quarantined or alarmed,
sender told), ``undetected`` (must be 0), ``lost`` (must be 0), ``duplicates_discarded``
(resends the handset discarded: same identity, seen once), ``duplicates_stored`` (same
identity, stored twice: must be 0), ``kills`` (SIGKILLs inside the window), ``problems`` (the
test's findings). SMSC-side faults must show wrong_identity 0 (prevented); network-side faults
detected == wrong_identity.

Each fault runs twice by default: breaker on (the product: the first alarm holds the route)
and breaker off (threshold 0: every firing meets the guards, so ``alarms`` and ``detected``
show what they stop at scale).

    .venv/bin/python bench/chaos.py [--seed N] [--only NAME] [--breaker on|off|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "chaos"))
from chaos_kit import WINDOWS, analyse, scenario  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=20230120)
    p.add_argument("--only", default=None, help="one fault name")
    p.add_argument(
        "--breaker", choices=("on", "off", "both"), default="both",
        help="on: the route's breaker trips at the first integrity alarm (the product);"
        " off: threshold 0, so every firing of a fault meets the guards (what they stop)",
    )
    args = p.parse_args()
    rows = []
    t0 = time.monotonic()
    modes = ("on", "off") if args.breaker == "both" else (args.breaker,)
    for i, (w, mode) in enumerate((w, m) for w in WINDOWS for m in modes):
        if args.only and w.name != args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="adressat-chaos-") as tmp:
            run = asyncio.run(
                scenario(
                    Path(tmp) / "home",
                    (w,),
                    seed=args.seed + i,
                    baseline_s=1.0,
                    baseline_kill=False,
                    receipts_wait_s=40.0,
                    server_args=() if mode == "on" else ("--breaker-alarms-threshold", "0"),
                )
            )
            f = analyse(run)
        a = f["audit"]
        wrong = f["wrong_identity_other_number"] + f["wrong_identity_same_number"]
        [win] = f["windows"]
        rows.append({
            "fault": w.label,
            "side": w.side,
            "breaker": mode,
            "rate": w.rate,
            "fired": win["fired"],
            "sent": f["acked"],
            "delivered": f["delivered"],
            "quarantined": f["quarantined"],
            "alarms": f["alarms"],
            "held": win["held_messages"],
            "wrong_identity": wrong,
            "detected": wrong - int(a["misdelivered_undetected"] or 0),
            "undetected": a["misdelivered_undetected"],
            "lost": f["lost"],
            "duplicates_discarded": f["duplicates_discarded"],
            "duplicates_stored": f["duplicates_stored"],
            "kills": f["kills"],
            "problems": len(f["problems"]),
            "problem_samples": f["problems"][:3],
        })
    print(json.dumps({"bench": "chaos", "seed": args.seed,
                      "seconds": round(time.monotonic() - t0, 1), "faults": rows}))
    return 0 if all(r["problems"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
