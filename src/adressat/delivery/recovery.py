"""Attempts cut short: by a crash or a restart, or by a store that could not take their
outcome. Their messages come back DEFERRED (due now), each with an ``INTERRUPTED`` attempt
record naming the identity it had addressed, so the retry goes only there (I3: the worker's
retry identity check) and the handset recognises the resend by its TP-SCTS."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from adressat.core.model import AttemptRecord, Message, State
from adressat.store.base import Store, StoreError, StoreUnavailable

__all__ = ["INTERRUPTED", "interrupted"]

log = logging.getLogger("adressat.delivery.worker")

#: Outcome name of the attempt record written for an attempt cut short by a crash/restart.
INTERRUPTED = "INTERRUPTED"


def interrupted(store: Store, listed: Sequence[Message], now: float, node: int) -> int:
    """DISPATCHED -> DEFERRED (due now), each with an INTERRUPTED attempt record naming
    the identity it had addressed; returns how many moved."""
    moved = 0
    for msg in listed:
        try:
            with store.savepoint():
                store.transition(
                    msg.id,
                    State.DISPATCHED,
                    State.DEFERRED,
                    now,
                    expected_attempts=msg.attempts,
                    next_attempt_at=now,
                )
                store.append_attempt(
                    AttemptRecord(
                        message_id=msg.id,
                        account=msg.account,
                        destination=msg.destination,
                        # the identity it was about to go to, if it got that far (the
                        # retry goes only there: _retry_identity_check)
                        imsi=msg.addressed_imsi,
                        route=msg.route,
                        node=node,
                        attempt=msg.attempts,
                        started_at=now,
                        ended_at=now,
                        outcome=INTERRUPTED,
                        error=None,
                    )
                )
        except StoreUnavailable:
            raise  # the whole step fails: retried by the loop
        except StoreError as e:
            log.error(
                "lease not recovered",
                extra={"message_id": msg.id, "route": msg.route,
                       "error_type": type(e).__name__},
            )
            continue
        moved += 1
    return moved
