#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris, libFuzzer) of the SMPP decoder and the SMPP session.

    PYTHONPATH=src python scripts/fuzz_long.py --seconds 300 [--target decoder|session|all]
        [--corpus DIR] [--artifacts DIR]

Runs each target in a child process for its share of ``--seconds`` (``all``: half each) and
prints ONE JSON line: per target the executions, executions per second, libFuzzer's coverage
(``cov``: edges, ``ft``: features), the corpus size and the crashes found (inputs kept under
``--artifacts`` as ``crash-*``; replay one with ``--replay FILE --target T``).

The invariants are those of the bounded campaigns in tests/fuzz: a frame decodes (and then
encodes back to the same octets) or raises SmppError with a CommandStatus whose answer
encodes; the reader's buffer stays bounded; the session raises nothing but SessionError for
our own misuse, keeps both windows within their limits, and is silent once closed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PDU_LENGTH_MAX = 4096
TARGETS = ("decoder", "session")


# -- the targets (run in the child, under atheris' instrumentation) -----------------------------

def _load() -> dict[str, object]:
    import atheris

    with atheris.instrument_imports(include=["adressat.smpp"]):
        from adressat.smpp import buffer, codec, errors, pdus, session  # noqa: F401
    # the per-command decoders and encoders are generated from the schema at import (exec'd
    # source, which the import hook does not see): instrument them one by one
    for table in (codec.DECODERS, codec.ENCODERS):
        for cid, fn in list(table.items()):
            table[cid] = atheris.instrument_func(fn)
    return {"atheris": atheris, "codec": codec, "errors": errors, "pdus": pdus,
            "session": session}


def decoder_target(m: dict[str, object]):  # type: ignore[no-untyped-def]
    codec, errors, pdus = m["codec"], m["errors"], m["pdus"]
    from adressat.smpp.constants import CommandStatus

    def check_frame(frame: bytes) -> None:
        try:
            pdu = codec.decode(frame)  # type: ignore[attr-defined]
        except errors.SmppError as e:  # type: ignore[attr-defined]
            assert isinstance(e.command_status, CommandStatus) and e.command_status != 0
            codec.encode(pdus.error_response(e))  # type: ignore[attr-defined]
            return
        assert codec.encode(pdu) == frame  # type: ignore[attr-defined]

    def one(data: bytes) -> None:
        check_frame(data)
        if len(data) >= 4:  # the same octets as a stream, in chunks the first octet picks
            step = data[0] % 61 + 1
            reader = codec.PduReader(PDU_LENGTH_MAX)  # type: ignore[attr-defined]
            for i in range(0, len(data), step):
                try:
                    reader.feed(data[i : i + step])
                    while (frame := reader.next_frame()) is not None:
                        check_frame(frame)
                except errors.SmppError as e:  # type: ignore[attr-defined]
                    assert e.command_status == CommandStatus.ESME_RINVCMDLEN
                    assert reader.buffered_octets == 0
                    return
                assert reader.buffered_octets <= PDU_LENGTH_MAX

    return one


def session_target(m: dict[str, object]):  # type: ignore[no-untyped-def]
    atheris, sess, pdus = m["atheris"], m["session"], m["pdus"]
    from adressat.smpp.constants import RESPONSE_BIT, CommandId

    limits = sess.SessionLimits(  # type: ignore[attr-defined]
        pdu_length_max=512, window_size_max=3, inbound_window_max=4, response_timeout_s=5.0,
        enquire_link_interval_s=7.0, idle_timeout_s=30.0, pdu_read_timeout_s=3.0,
        bind_timeout_s=20.0, bad_pdus_max=6)
    requests = sorted(sess.SEND_STATES)  # type: ignore[attr-defined]
    statuses = [0, 0, 0x0E, 0x58, 0x08]

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)  # type: ignore[attr-defined]
        role = sess.Role.SMSC if fdp.ConsumeBool() else sess.Role.ESME  # type: ignore[attr-defined]
        now = 0.0
        s = sess.Session(role, now, limits)  # type: ignore[attr-defined]
        pending: list[object] = []
        closed_seen = False
        for _ in range(64):
            if fdp.remaining_bytes() == 0:
                break
            op = fdp.ConsumeIntInRange(0, 5)
            if op <= 1:  # the peer: octets
                s.receive_data(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 80)), now)
            elif op == 2:  # time passes
                now += fdp.ConsumeIntInRange(0, 12000) / 1000
                s.handle_timer(now)
            elif op == 3 and pending:  # the application answers
                req = pending.pop(fdp.ConsumeIntInRange(0, len(pending) - 1))
                status = statuses[fdp.ConsumeIntInRange(0, len(statuses) - 1)]
                try:
                    s.send(req.response(status), now)  # type: ignore[attr-defined]
                except sess.SessionError:  # type: ignore[attr-defined]
                    assert s.is_closed
            else:  # the application sends a request, allowed or not
                cid = requests[fdp.ConsumeIntInRange(0, len(requests) - 1)]
                try:
                    s.send(pdus.Pdu.make(cid, 0), now)  # type: ignore[attr-defined]
                except sess.SessionError:  # type: ignore[attr-defined]
                    allowed = sess.SEND_STATES[cid].get(role, ())  # type: ignore[attr-defined]
                    assert s.state not in allowed or s.window_free == 0 or s.is_closed
            out = s.data_to_send()
            if closed_seen:
                assert not out, "spoke after close"
            while (ev := s.next_event()) is not None:
                if isinstance(ev, sess.RequestReceived) and (  # type: ignore[attr-defined]
                        ev.pdu.command_id not in sess.UNANSWERED):  # type: ignore[attr-defined]
                    assert not ev.pdu.command_id & RESPONSE_BIT
                    assert ev.pdu.command_id != CommandId.GENERIC_NACK
                    pending.append(ev.pdu)
            assert s.outstanding <= limits.window_size_max
            assert s.unanswered <= limits.inbound_window_max
            if s.is_closed:
                assert s.get_timer() is None
                closed_seen = True

    return one


def _seeds(target: str) -> list[bytes]:
    from adressat.smpp.codec import encode
    from adressat.smpp.pdus import Pdu
    from adressat.smpp.schema import BODIES

    frames = []
    for cid in BODIES:
        fields = {"system_id": "acme", "password": "pw"} if "system_id" in {
            f.name for f in BODIES[cid]} else {}
        try:
            frames.append(encode(Pdu.make(cid, 1, **fields)))
        except ValueError:
            continue
    if target == "decoder":
        return frames
    # session: role, then "the peer sends <frame>" ops, answers and time between them
    bind = encode(Pdu.make(0x09, 1, system_id="acme", password="pw"))
    return [b"\x01" + b"\x00" + bytes([len(bind)]) + bind + b"\x03\x00\x00" + b"\x00"
            + bytes([min(len(f), 80)]) + f[:80] + b"\x02\x10\x00" for f in frames]


def child(target: str, seconds: int, corpus: Path, artifacts: Path, replay: str | None) -> None:
    m = _load()
    atheris = m["atheris"]
    one = decoder_target(m) if target == "decoder" else session_target(m)
    if replay:
        one(Path(replay).read_bytes())
        print("no failure")
        return
    argv = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-timeout=10",
            "-rss_limit_mb=2048", f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
            "-max_len=2048"]
    atheris.Setup(argv, one)  # type: ignore[attr-defined]
    atheris.Fuzz()  # type: ignore[attr-defined]


_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+ .*exec/s: (\d+)")
_STATS = re.compile(r"stat::(\w+):\s+(\d+)")


def parent(args: argparse.Namespace) -> int:
    targets = TARGETS if args.target == "all" else (args.target,)
    share = max(1, args.seconds // len(targets))
    root = Path(args.corpus or tempfile.mkdtemp(prefix="adressat-fuzz-"))
    artifacts = Path(args.artifacts or root / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {"seconds": args.seconds, "engine": "atheris/libFuzzer",
                                 "corpus": str(root), "targets": {}}
    crashes_total = 0
    for target in targets:
        corpus = root / target
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(_seeds(target)):
            (corpus / f"seed-{i:03d}").write_bytes(seed)
        before = set(artifacts.glob("crash-*"))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent.parent / "src"),
                                             env.get("PYTHONPATH", "")])
        # libFuzzer stops at the first crash: run again (same corpus) until the time is used
        seconds_left, execs, runs, last = share, 0, 0, None
        while seconds_left > 0 and runs < 20:
            runs += 1
            started = os.times().elapsed
            proc = subprocess.run(
                [sys.executable, __file__, "--child", target, "--seconds", str(seconds_left),
                 "--corpus", str(corpus), "--artifacts", str(artifacts)],
                capture_output=True, text=True, env=env, check=False,
                timeout=seconds_left + 120)
            seconds_left -= max(1, int(os.times().elapsed - started))
            stats = dict(_STATS.findall(proc.stderr))
            execs += int(stats.get("number_of_executed_units", 0))
            done = _DONE.findall(proc.stderr)
            if done:
                last = done[-1]
            if proc.returncode == 0:
                break
            sys.stderr.write(proc.stderr[-3000:])
        crashes = sorted(set(artifacts.glob("crash-*")) - before)
        crashes_total += len(crashes)
        cov = {"cov": int(last[1]), "ft": int(last[2]), "corpus": int(last[3])} if last else {}
        result["targets"][target] = {  # type: ignore[index]
            "seconds": share, "execs": execs, "execs_per_s": round(execs / share, 1), **cov,
            "crashes": len(crashes), "crash_files": [str(c) for c in crashes],
        }
    result["crashes"] = crashes_total
    print(json.dumps(result))
    return 1 if crashes_total else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=300)
    p.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    p.add_argument("--corpus", help="corpus directory (kept: a later run starts from it)")
    p.add_argument("--artifacts", help="where crashing inputs go (default <corpus>/artifacts)")
    p.add_argument("--replay", help="run one input (a crash file) through --target")
    p.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    args = p.parse_args()
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is needed: pip install atheris (in the test extras)", file=sys.stderr)
        return 2
    if args.child or args.replay:
        child(args.child or args.target, args.seconds, Path(args.corpus or "."),
              Path(args.artifacts or "."), args.replay)
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
