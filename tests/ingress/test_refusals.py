"""The one refusal table: every reason has its SMPP status and HTTP problem, none shared by
two reasons that a sender must tell apart."""

from __future__ import annotations

import pytest

from adressat.core.accept import Refusal, Refused
from adressat.ingress.refusals import ANSWERS, Overloaded, commit_refusal, problem, smpp_status
from adressat.smpp.constants import CommandStatus as S
from adressat.store.base import StoreUnavailable


@pytest.mark.parametrize("reason", list(Refusal))
def test_every_reason_has_an_answer(reason: Refusal) -> None:
    a = ANSWERS[reason]
    assert a.smpp != S.ESME_ROK
    assert 400 <= a.http < 600
    p = problem(reason, "field 'to'")
    assert p["type"].endswith("/" + a.slug) and p["status"] == a.http
    assert p["reason"] == reason.value and p["detail"] == "field 'to'"


def test_problem_types_are_distinct() -> None:
    slugs = [a.slug for a in ANSWERS.values()]
    assert len(slugs) == len(set(slugs))


def test_temporary_refusals_are_the_ones_to_retry() -> None:
    temporary = {r for r, a in ANSWERS.items() if a.temporary}
    assert temporary == {Refusal.THROTTLED, Refusal.QUEUE_FULL, Refusal.SYSTEM_ERROR}
    assert ANSWERS[Refusal.THROTTLED].http == ANSWERS[Refusal.QUEUE_FULL].http == 429


def test_overloaded_is_a_refusal() -> None:
    assert smpp_status(Overloaded(queue_full=True).reason) == S.ESME_RMSGQFUL
    assert smpp_status(Overloaded(queue_full=False).reason) == S.ESME_RTHROTTLED


def test_a_failed_commit_is_never_said_as_accepted() -> None:
    assert commit_refusal(StoreUnavailable("disk_full")) is Refusal.QUEUE_FULL
    assert commit_refusal(RuntimeError("boom")) is Refusal.SYSTEM_ERROR
    assert commit_refusal(Refused(Refusal.THROTTLED)) is Refusal.THROTTLED
