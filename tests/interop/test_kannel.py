"""Kannel 1.4.5 as a third-party ESME: bearerbox binds to a running adressat node as a
transceiver; messages go in through Kannel's sendsms HTTP interface, reach the netsim handsets,
and come back to Kannel as receipts, which smsbox reports on the dlr-url."""

from __future__ import annotations

import hashlib
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from adressat_nodes import Node  # noqa: E402
from dlr_server import DlrServer  # noqa: E402
from e2e_kit import customer_inbox, wait_for  # noqa: E402
from peer_kannel import Kannel  # noqa: E402

from adressat.delivery.netsim_adapter import build_parts  # noqa: E402
from adressat.netsim.inbox import InboxRecord  # noqa: E402

pytestmark = pytest.mark.slow

DELIVERED, FAILED, SMSC_ACCEPTED, SMSC_REJECTED = 1, 2, 8, 16
MASK = DELIVERED | FAILED | SMSC_ACCEPTED | SMSC_REJECTED
# netsim's default 100,000 subscribers, apart from the numbers other test files use
_numbers = itertools.count(46701090000)


@pytest.fixture
def dlr() -> Iterator[DlrServer]:
    with DlrServer() as d:
        yield d


def _for(hits: list[dict[str, str]], ref: str) -> list[int]:
    return [int(h["s"]) for h in hits if h.get("r") == ref]


def test_sendsms_reaches_handsets_and_receipts_come_back(kannel_node: Node, kannel: Kannel,
                                                          dlr: DlrServer) -> None:
    sent: dict[str, tuple[str, str]] = {}  # number -> (dlr ref, text)
    for i in range(5):
        number = str(next(_numbers))
        text = f"kannel interop {i}"
        code, body = kannel.send("+" + number, text, dlr_mask=MASK, dlr_url=dlr.url(r=str(i)))
        assert code == 202, (code, body)
        sent[number] = (str(i), text)

    def arrived() -> list[InboxRecord]:
        return [r for r in customer_inbox(kannel_node.home) if r.msisdn in sent]

    recs = wait_for(lambda: (lambda a: a if len(a) >= len(sent) else None)(arrived()), 20, 0.2)
    recs = recs or arrived()
    assert sorted(r.msisdn for r in recs) == sorted(sent), (recs, kannel.logs())
    ours = {}  # dlr ref -> adressat's message id
    for r in recs:
        ref, text = sent[r.msisdn]
        assert not r.duplicate
        on_air = build_parts(r.smsc_message_id, text.encode(), 0, 0)
        assert r.content_sha256 == hashlib.sha256(on_air[0]).hexdigest(), r
        ours[ref] = r.smsc_message_id

    refs = sorted(ours)
    hits = wait_for(lambda: all(DELIVERED in _for(dlr.snapshot(), r) for r in refs)
                    and dlr.snapshot(), 20, 0.2) or dlr.snapshot()
    for ref in refs:
        statuses = _for(hits, ref)
        assert statuses.count(DELIVERED) == 1, (ref, hits, kannel.logs())
        assert FAILED not in statuses and SMSC_REJECTED not in statuses, (ref, hits)
        # every report of this message (SMSC accepted, delivered) names adressat's id for it
        assert {h["f"] for h in hits if h.get("r") == ref} == {ours[ref]}, (ref, hits)


def test_invalid_destination_refused_and_reported_failed(kannel_node: Node, kannel: Kannel,
                                                         dlr: DlrServer) -> None:
    before = len(customer_inbox(kannel_node.home))
    code, body = kannel.send("+1234", "to nowhere", dlr_mask=MASK, dlr_url=dlr.url(r="bad"))
    assert code == 202, (code, body)  # smsbox queues it; the refusal comes from the SMSC
    hits = wait_for(lambda: _for(dlr.snapshot(), "bad"), 20, 0.2)
    # Kannel 1.4.5 reports an SMSC refusal as 16 ("SMSC rejected", not 2 "failed"), with
    # adressat's command_status in the text: "NACK/0x0000000b/Invalid Destination Address"
    assert hits == [SMSC_REJECTED], (dlr.snapshot(), kannel.logs())
    report = next(h for h in dlr.snapshot() if h.get("r") == "bad")
    assert report["a"].startswith("NACK/0x0000000b/"), report
    assert report["f"] == "", report  # no message id: nothing was accepted
    assert len(customer_inbox(kannel_node.home)) == before
