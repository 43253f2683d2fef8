"""Random operation sequences give the same results on every back end as on MemoryStore."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adressat.core.model import AttemptRecord, Message, State
from adressat.store import MemoryStore, SqliteStore, Store
from adressat.store.base import FinishedAttempt

DESTS = ["46700000001", "46700000002", "46700000003"]
STATES = list(State)
#: outcomes of a claimed attempt (ROUTED: not in the lifecycle, refused)
OUTCOMES = [
    State.DELIVERED,
    State.DEFERRED,
    State.UNDELIVERABLE,
    State.QUARANTINED,
    State.EXPIRED,
    State.HELD,
    State.ROUTED,
]


def _finished(m: Message, state: State, t: int) -> FinishedAttempt:
    changes: dict[str, object] = {"error": 0 if state is State.DELIVERED else 1}
    if state is State.DELIVERED:
        changes.update(delivered_imsi="2400100", delivered_msisdn=m.destination)
    if state is State.DEFERRED:
        changes["next_attempt_at"] = float(t + 5)
    record = AttemptRecord(
        m.id, m.account, m.destination, None, m.route, 1, m.attempts, float(t), float(t), "X"
    )
    return FinishedAttempt(m, state, changes, record, float(t))

op = st.one_of(
    st.tuples(
        st.just("insert"),
        st.integers(0, 3),
        st.sampled_from(DESTS),
        st.integers(0, 40),
        st.integers(0, 3),
    ),
    st.tuples(st.just("claim"), st.integers(1, 4), st.integers(0, 60)),
    st.tuples(
        st.just("transition"),
        st.integers(0, 30),
        st.sampled_from(STATES),
        st.sampled_from(STATES),
        st.integers(0, 60),
    ),
    st.tuples(st.just("expire"), st.integers(0, 80)),
    st.tuples(st.just("recover"), st.integers(0, 80)),
    st.tuples(st.just("cancel"), st.integers(0, 30), st.sampled_from(["acme", "beta"])),
    st.tuples(st.just("hold"), st.sampled_from(["r0", "r1"])),
    st.tuples(st.just("trip"), st.sampled_from(["r0", "r1"])),
    st.tuples(st.just("release"), st.sampled_from(["r0", "r1"]), st.integers(0, 60)),
    st.tuples(st.just("receipts"), st.sampled_from(["acme", "beta"])),
    st.tuples(
        st.just("finish"),
        st.lists(
            st.tuples(st.integers(0, 12), st.sampled_from(OUTCOMES), st.integers(0, 60)),
            max_size=5,
        ),
    ),
)


def _apply(s: Store, ops: list[tuple[Any, ...]]) -> list[object]:
    out: list[object] = []
    n = 0
    claimed: list[Message] = []  # every claim so far, stale ones included
    for o in ops:
        try:
            kind = o[0]
            if kind == "insert":
                _, prio, dest, t, rd = o
                n += 1
                s.insert_messages(
                    [
                        Message(
                            id=f"{n:04d}",
                            account="acme" if n % 2 else "beta",
                            source_addr="S",
                            destination=dest,
                            content=b"c%d" % n,
                            submitted_at=float(t),
                            expires_at=float(t + 30),
                            not_before=float(t),
                            next_attempt_at=float(t),
                            state=State.ROUTED,
                            priority=prio,
                            registered_delivery=rd,
                            route=f"r{n % 2}",
                        )
                    ]
                )
                out.append(None)
            elif kind == "claim":
                got = s.claim_due(o[1], float(o[2]), 10.0, "n")
                claimed.extend(got)
                out.append([m.id for m in got])
            elif kind == "finish":
                items = [
                    _finished(claimed[i], state, t) for i, state, t in o[1] if i < len(claimed)
                ]
                out.append(
                    [r if isinstance(r, Message) else type(r).__name__
                     for r in s.finish_attempts(items)]
                )
            elif kind == "transition":
                _, i, a, b, t = o
                out.append(s.transition(f"{i:04d}", a, b, float(t)))
            elif kind == "expire":
                out.append([m.id for m in s.expire_due(float(o[1]))])
            elif kind == "recover":
                out.append(s.recover_leases(float(o[1])))
            elif kind == "cancel":
                out.append(s.cancel(f"{o[1]:04d}", o[2], 1.0))
            elif kind == "hold":
                out.append(s.hold_route(o[1], 0.0))
            elif kind == "trip":
                out.append(s.trip_route(o[1], "test", 0.0))
            elif kind == "release":
                out.append(s.release_route(o[1], float(o[2])))
            elif kind == "receipts":
                out.append([(r.message_id, r.state) for r in s.pending_receipts(o[1])])
        except Exception as e:  # noqa: BLE001
            out.append(type(e).__name__)
    out.append(s.count_by_state())
    out.append(s.list_messages())
    out.append(s.route_status())
    out.append(s.attempts_between(-1.0, 1e9))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=40))
def test_sqlite_matches_memory(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        sq = SqliteStore(Path(d) / "d.db")
        try:
            assert _apply(sq, ops) == _apply(MemoryStore(), ops)
        finally:
            sq.close()


def test_back_ends_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(MemoryStore(), Store)
    assert isinstance(SqliteStore(tmp_path / "p.db"), Store)
