"""Helpers shared by the store tests."""

from __future__ import annotations

from typing import Any

from adressat.core.model import Message, State

_counter = iter(range(1, 10**9))


def make_msg(**kw: Any) -> Message:
    n = next(_counter)
    base: dict[str, Any] = dict(
        id=f"{n:032x}",
        account="acme",
        source_addr="ACME",
        destination=f"4670{n:07d}",
        content="hälsning ✓".encode(),
        submitted_at=1000.0,
        expires_at=5000.0,
        not_before=1000.0,
        next_attempt_at=1000.0,
        state=State.ROUTED,
        route="netsim",
        tag=b"\x01" * 16,
        registered_delivery=1,
    )
    base.update(kw)
    return Message(**base)
