"""adressat's ``/cgi-bin/sendsms`` answers as Kannel 1.4.5's smsbox does, byte for byte: the
same requests to both (the same credentials: Kannel's sendsms-user and the node's account are
both ``kannel``/``kannelpw``), the same status, body and content type.

Where adressat answers differently on purpose (a destination that is not a number of anyone:
Kannel queues it, adressat refuses it; a parameter that is not a number: Kannel's sscanf lets
it through as undefined), the difference is in ingress/sendsms.py's doc, not here."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from adressat_nodes import Node  # noqa: E402
from peer_kannel import SENDSMS_PASSWORD, SENDSMS_USER, Kannel  # noqa: E402

pytestmark = pytest.mark.slow

_OK = {"username": SENDSMS_USER, "password": SENDSMS_PASSWORD, "from": "Shop",
       "to": "+46701091900", "text": "compat"}


def _call(url: str, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, data=data, headers=headers or {},  # noqa: S310
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
            return int(r.status), r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read(), e.headers.get("Content-Type", "")


def _both(kannel_node: Node, kannel: Kannel, query: str, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[tuple[int, bytes, str], ...]:
    ours = f"http://127.0.0.1:{kannel_node.server.http_port}/cgi-bin/sendsms?{query}"
    theirs = f"http://127.0.0.1:{kannel.sendsms_port}/cgi-bin/sendsms?{query}"
    return _call(theirs, data, headers), _call(ours, data, headers)


CASES: list[dict[str, str | None]] = [
    {},  # accepted
    {"password": "wrong"}, {"username": "nobody"}, {"password": None},
    {"to": None}, {"to": ""}, {"to": "4670abc"}, {"from": None},
    {"udh": "\x05\x00"}, {"dlr-mask": "99"}, {"dlr-url": "mailto:x"}, {"mclass": "5"},
    {"pid": "300"}, {"rpi": "3"}, {"alt-dcs": "2"}, {"mwi": "8"}, {"coding": "7"},
    {"compress": "2"}, {"validity": "-5"}, {"deferred": "-5"}, {"priority": "9"},
    {"charset": "NO-SUCH-CHARSET"},
]


@pytest.mark.parametrize("change", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in
                                                                   c.items()) or "accepted")
def test_get_answers_match_kannel(kannel_node: Node, kannel: Kannel,
                                  change: dict[str, str | None]) -> None:
    q = {**_OK, **change}
    theirs, ours = _both(kannel_node, kannel, urlencode({k: v for k, v in q.items()
                                                        if v is not None}))
    assert ours == theirs


@pytest.mark.parametrize(("ctype", "headers"), [
    ("image/png", {}),
    ("text/plain", {"X-Kannel-Username": SENDSMS_USER, "X-Kannel-Password": SENDSMS_PASSWORD,
                    "X-Kannel-From": "Shop"}),  # no X-Kannel-To
    ("text/plain", {"X-Kannel-Username": SENDSMS_USER, "X-Kannel-Password": "wrong",
                    "X-Kannel-To": "+46701091901"}),
    ("text/plain", {"X-Kannel-Username": SENDSMS_USER, "X-Kannel-Password": SENDSMS_PASSWORD,
                    "X-Kannel-From": "Shop", "X-Kannel-To": "+46701091902"}),
])
def test_post_answers_match_kannel(kannel_node: Node, kannel: Kannel, ctype: str,
                                   headers: dict[str, str]) -> None:
    theirs, ours = _both(kannel_node, kannel, "", b"compat post",
                         {"Content-Type": ctype, **headers})
    assert ours == theirs
