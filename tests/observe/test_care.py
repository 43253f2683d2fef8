"""The care console's logic over a memory store (observe/care.py): masking, parsing what a
person types, the complaint's verdicts, the history and the queue shape."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from store_helpers import make_msg  # noqa: E402

from adressat.core.integrity import Alarm, AlarmKind  # noqa: E402
from adressat.core.model import CANARY_ACCOUNT, AttemptRecord, State  # noqa: E402
from adressat.observe import care  # noqa: E402
from adressat.store import MemoryStore  # noqa: E402

NOW = 2_000_000_000.0
ME = "46701000001"


def test_mask_number() -> None:
    assert care.mask_number("46701231234") == "+4670***1234"
    assert care.mask_number("4670123") == "+46***23"
    assert care.mask_number("12") == "+***"
    assert care.mask_number("Clinic") == "Clinic"
    assert care.mask_number(None) is None


@pytest.mark.parametrize("text", ["+46701000001", "0046701000001", "46701000001",
                                  "070-100 00 01", " +46 70 100 00 01 "])
def test_parse_number_as_people_type_it(text: str) -> None:
    assert care.parse_number(text) == ME


@pytest.mark.parametrize("text", ["", "12", "+4670100000x", "abc", "+" + "9" * 30])
def test_parse_number_refuses(text: str) -> None:
    with pytest.raises(care.CareError):
        care.parse_number(text)


def test_parse_sender() -> None:
    assert care.parse_sender("My Clinic") == ("My Clinic",)
    assert care.parse_sender("+46701000001")[:2] == (ME, "+" + ME)
    for bad in ("", "   ", "far too long sender id"):
        with pytest.raises(care.CareError):
            care.parse_sender(bad)


def test_check_time() -> None:
    assert care.check_time(NOW - 1, NOW, "t") == NOW - 1
    for bad in (-1.0, NOW + 3600, float("inf")):
        with pytest.raises(care.CareError):
            care.check_time(bad, NOW, "t")


def _store() -> tuple[MemoryStore, dict[str, str]]:
    s = MemoryStore()
    t = NOW - 600
    ids = {}
    rows = [
        ("wrong", dict(destination="46701000007", account="acme", state=State.ROUTED)),
        ("same", dict(destination="46701000008", account="acme", state=State.ROUTED)),
        ("same_b", dict(destination="46701000009", account="beta", state=State.ROUTED)),
        ("elsewhere", dict(destination="46701000010", account="acme", state=State.ROUTED)),
        ("canary", dict(destination=ME, account=CANARY_ACCOUNT, state=State.ROUTED)),
    ]
    for i, (name, kw) in enumerate(rows):
        m = make_msg(source_addr="Clinic", submitted_at=t + i, **kw)
        ids[name] = m.id
        s.insert_messages([m])
        node = "msc-1" if name == "elsewhere" else "msc-2"
        s.append_attempt(AttemptRecord(m.id, m.account, m.destination, "2400", "netsim", 1, 1,
                                       t + i, t + i + 1, "X", serving_node=node))
    # "wrong" was acknowledged by ME's handset: QUARANTINED, the identity in the alarm
    s.transition(ids["wrong"], State.ROUTED, State.CANCELLED, t + 2)
    s.append_alarm(Alarm(t + 2, AlarmKind.IDENTITY_MISMATCH, (ids["wrong"],), "acme", "netsim",
                         1, "netsim", f"error=1 imsi=2401 msisdn={ME} network_node=msc-2"))
    return s, ids


def test_complaint_misdelivered_names_the_place_and_the_same_way() -> None:
    s, ids = _store()
    c, ans = care.judge_complaint(s, ME, NOW - 590, ("Clinic",), window_s=3600, now=NOW,
                                  limit=100)
    assert c.verdict == ans["verdict"] == "misdelivered" and c.message_id == ids["wrong"]
    assert (c.route, c.serving_node) == ("netsim", "msc-2")
    assert ans["message"]["intended_for"] == "+4670***0007"
    assert ans["candidates"] == 4  # the canary message left out
    same = ans["same_way"]["accounts"]
    assert {k: [x["id"] for x in v] for k, v in same.items()} == {
        "acme": [ids["same"]], "beta": [ids["same_b"]]}
    assert "46701000008" not in str(ans) and "46701000007" not in str(ans)


def test_complaint_addressed_to_the_complainant_and_unexplained() -> None:
    s, ids = _store()
    c, _ = care.judge_complaint(s, "46701000008", NOW, ("Clinic",), window_s=3600, now=NOW,
                                limit=100)
    assert c.verdict == "addressed_to_complainant" and c.message_id == ids["same"]
    c, ans = care.judge_complaint(s, "46701000099", NOW, ("Clinic",), window_s=3600, now=NOW,
                                  limit=100)
    assert c.verdict == "unexplained" and c.message_id is None and ans["message"] is None
    assert (c.route, c.serving_node) == ("netsim", "msc-2")  # most of the sender's traffic
    c, ans = care.judge_complaint(s, ME, NOW - 10 * 3600, ("Clinic",), window_s=3600, now=NOW,
                                  limit=100)
    assert c.verdict == "unexplained" and ans["candidates"] == 0 and c.route == ""


def test_lookup_leaves_out_canaries_and_masks_the_other_party() -> None:
    s, ids = _store()
    out = s.insert_messages([make_msg(source_addr=ME, destination="46701000055",
                                      submitted_at=NOW - 5)])
    assert out is None
    got = care.lookup(s, ME, NOW - 3600, NOW, limit=100, now=NOW)
    assert [m["direction"] for m in got["messages"]] == ["from", "reached"]
    assert got["messages"][0]["destination"] == "+4670***0055"
    # what reached ME's handset though it was for another (the alarm's identity), masked
    assert got["messages"][1]["id"] == ids["wrong"]
    assert got["messages"][1]["destination"] == "+4670***0007"
    assert got["messages"][1]["serving_node"] == "msc-2"


def test_history_never_has_the_text_and_queue_shape_sums() -> None:
    s, ids = _store()
    h = care.message_history(s, ids["wrong"], NOW)
    assert h is not None and "content" not in h and h["content_octets"] > 0
    assert [a["serving_node"] for a in h["attempts"]] == ["msc-2"]
    assert [a["kind"] for a in h["alarms"]] == ["identity_mismatch"]
    assert care.message_history(s, "nope", NOW) is None
    q = care.queue_shape(s, NOW)
    assert q["total"]["total"] == s.count_unfinished() == 4
    assert q["total"]["buckets"][1] == 4  # 5-10 minutes old
    assert {r["serving_node"]: r["total"] for r in q["serving_nodes"]} == {"msc-1": 1,
                                                                         "msc-2": 3}
