"""One refusal table: every reason a submission is refused, with what each way in answers.

Every ingress (SMPP, the HTTP messages API, Kannel's sendsms) raises
:class:`~adressat.core.accept.Refused` with a :class:`~adressat.core.accept.Refusal`, and
answers from this table only: its SMPP command_status (SMPP 3.4 5.1.3), its HTTP status and its
RFC 9457 problem type. A reason missing here is a test failure (tests/ingress/test_refusals.py),
not a 500 at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adressat.core.accept import Refusal, Refused
from adressat.smpp.constants import CommandStatus as S
from adressat.store.base import StoreUnavailable

__all__ = ["Answer", "ANSWERS", "Overloaded", "PROBLEM_BASE", "commit_refusal", "problem",
           "smpp_status"]

#: problem types are relative URIs on the node's own HTTP listener (``/problems/<slug>``),
#: where the API's docs page explains each one
PROBLEM_BASE = "/problems/"
RETRY_AFTER_S = 1  # said with every temporary refusal over HTTP (Retry-After)


@dataclass(frozen=True, slots=True)
class Answer:
    smpp: S
    http: int
    slug: str  # the problem type's last segment
    title: str  # the problem's title: fixed per type (RFC 9457 3.1.4); details go in detail
    temporary: bool = False  # the sender should retry later (HTTP: Retry-After)


ANSWERS: dict[Refusal, Answer] = {
    Refusal.INVALID_DESTINATION: Answer(S.ESME_RINVDSTADR, 422, "invalid-destination",
                                        "The destination is not a valid number"),
    Refusal.DESTINATION_NOT_ALLOWED: Answer(S.ESME_RINVDSTADR, 422, "destination-not-allowed",
                                            "This account may not send to that destination"),
    Refusal.INVALID_SOURCE: Answer(S.ESME_RINVSRCADR, 422, "invalid-source",
                                   "The source address is not valid"),
    Refusal.SOURCE_NOT_ALLOWED: Answer(S.ESME_RINVSRCADR, 403, "source-not-allowed",
                                       "This account may not use that source address"),
    Refusal.INVALID_SCHEDULE: Answer(S.ESME_RINVSCHED, 422, "invalid-schedule",
                                     "The scheduled delivery time is not valid"),
    Refusal.INVALID_EXPIRY: Answer(S.ESME_RINVEXPIRY, 422, "invalid-validity",
                                   "The validity period is not valid"),
    Refusal.MESSAGE_TOO_LONG: Answer(S.ESME_RINVMSGLEN, 422, "message-too-long",
                                     "The message is longer than allowed"),
    Refusal.INVALID_CONTENT: Answer(S.ESME_RSUBMITFAIL, 422, "invalid-content",
                                    "The content cannot be sent in that data coding"),
    Refusal.INVALID_PRIORITY: Answer(S.ESME_RINVPRTFLG, 422, "invalid-priority",
                                     "The priority is not valid"),
    Refusal.INVALID_ESM_CLASS: Answer(S.ESME_RINVESMCLASS, 422, "invalid-udh",
                                      "The message type or its user data header is not valid"),
    Refusal.INVALID_PARAMETER: Answer(S.ESME_RINVOPTPARAMVAL, 422, "invalid-parameter",
                                      "A parameter has a value that is not allowed"),
    Refusal.MISSING_PARAMETER: Answer(S.ESME_RMISSINGOPTPARAM, 422, "missing-parameter",
                                      "A parameter that goes with another one is missing"),
    Refusal.PARAMETER_NOT_ALLOWED: Answer(S.ESME_ROPTPARNOTALLWD, 422, "parameter-not-allowed",
                                          "A parameter is given twice or not allowed here"),
    Refusal.THROTTLED: Answer(S.ESME_RTHROTTLED, 429, "throttled",
                              "The account is over its throughput limit", temporary=True),
    Refusal.QUEUE_FULL: Answer(S.ESME_RMSGQFUL, 429, "queue-full",
                               "The message queue is full; try again later", temporary=True),
    Refusal.SYSTEM_ERROR: Answer(S.ESME_RSYSERR, 500, "system-error",
                                 "The message could not be stored", temporary=True),
}


class Overloaded(Refused):
    """Back-pressure, before anything is durable: THROTTLED or QUEUE_FULL (temporary)."""

    def __init__(self, queue_full: bool) -> None:
        super().__init__(Refusal.QUEUE_FULL if queue_full else Refusal.THROTTLED)
        self.queue_full = queue_full


def smpp_status(reason: Refusal) -> S:
    return ANSWERS[reason].smpp


def commit_refusal(error: BaseException) -> Refusal:
    """The refusal a failed commit is answered with: nothing is durable, so the sender must
    not take it for accepted. A store that cannot write now (disk full, I/O error) is said as
    a temporary full queue, which senders retry later; anything else is our fault."""
    if isinstance(error, Refused):
        return error.reason
    return Refusal.QUEUE_FULL if isinstance(error, StoreUnavailable) else Refusal.SYSTEM_ERROR


def problem(reason: Refusal, detail: str = "", **members: Any) -> dict[str, Any]:
    """The RFC 9457 problem object of a refusal (its HTTP status is ``ANSWERS[reason].http``).
    ``detail`` must never carry message text or a number (I6): it names fields."""
    a = ANSWERS[reason]
    body: dict[str, Any] = {"type": PROBLEM_BASE + a.slug, "title": a.title, "status": a.http}
    if detail:
        body["detail"] = detail
    body["reason"] = reason.value
    body.update(members)
    return body
