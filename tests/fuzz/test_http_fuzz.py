"""Hypothesis-generated raw HTTP requests against the running node's HTTP listener, on a real
socket: the messages API (``/v1/messages``, ``/v1/messages/batch``, ``/v1/messages/{id}``)
and the Kannel-compatible ``/cgi-bin/sendsms``.

Invariant: every request gets an answer (never a hang: each read is bounded), never a 5xx;
every 4xx of the messages API is ``application/problem+json`` with its status in the body;
a 202 of the messages API only for a request its model allows (a valid key, exactly one of
text and binary, a destination the router normalised to E.164); a 202 of sendsms only with the
account's right password."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adressat.testing.server import ServerProcess, adressat

KEY_RE = re.compile(r"adr_[0-9a-f]{12}_[A-Za-z0-9_-]+")
GOOD_TO = ["+46701000001", "46701000002", "+46701000003"]
_SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    home: Path = tmp_path_factory.mktemp("httpfuzz") / "home"
    assert adressat(home, "account", "add", "demo", "--password", "pw").returncode == 0
    out = adressat(home, "account", "key", "add", "demo")
    m = KEY_RE.search(out.stdout)
    assert m, out.stdout
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "1000") as srv:
        yield srv, m.group(0)


def _exchange(port: int, raw: bytes, timeout_s: float = 15.0) -> tuple[int, dict[str, str],
                                                                        bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(raw)
        data = b""
        for _ in range(10_000):
            chunk = s.recv(65536)  # raises TimeoutError: a hang fails the test
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), lines[0][:80]
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


def _request(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             *[f"{k}: {v}" for k, v in headers]]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False), st.text(max_size=30))
_FIELD = st.sampled_from(["to", "from", "text", "binary", "data_coding", "validity_s",
                          "send_at", "priority", "callback_url", "callback_events",
                          "client_reference", "extra"])
_VALUES = {
    "to": st.one_of(st.sampled_from(GOOD_TO), st.text(max_size=40),
                    st.lists(st.sampled_from(GOOD_TO), max_size=3)),
    "from": st.sampled_from(["Shop", "+46701000999", "", "x" * 30, "Bank\u00e5"]),
    "text": st.one_of(st.text(max_size=200), st.just("hi")),
    "binary": st.sampled_from(["0102", "zz", "0", "", "00" * 10]),
    "priority": st.integers(-3, 6),
    "send_at": st.sampled_from(["2030-01-01T00:00:00Z", "yesterday", "2020-01-01T00:00:00"]),
}
_BODY_DICT = st.dictionaries(_FIELD, _JSON_SCALAR, max_size=6).flatmap(
    lambda d: st.fixed_dictionaries({k: _VALUES.get(k, st.just(v)) for k, v in d.items()}))
_BODY = st.one_of(
    _BODY_DICT.map(lambda d: json.dumps(d).encode()),
    st.builds(lambda to, text: json.dumps({"to": to, "from": "Shop", "text": text}).encode(),
              st.sampled_from(GOOD_TO), st.text(min_size=1, max_size=100)),
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"to": "+46701000001"', b"\xff\xfe{}"]),
)
_CTYPE = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                          "application/x-www-form-urlencoded", "", "application/json;;;"])


def _valid_message(body: bytes) -> bool:
    """What the API may accept with 202: the model's rules a client can read in the docs."""
    try:
        d = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(d, dict) or not isinstance(d.get("to"), str):
        return False
    return (isinstance(d.get("from"), str) and 1 <= len(d["from"]) <= 20
            and ("text" in d) != ("binary" in d))


@_SETTINGS
@given(method=st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE"]),
       path=st.sampled_from(["/v1/messages", "/v1/messages/batch", "/v1/messages/x",
                             "/v1/messages/" + "9" * 30, "/v1/messages?limit=5"]),
       auth=st.sampled_from(["good", "none", "bad", "garbage"]),
       ctype=_CTYPE, body=_BODY,
       extra=st.lists(st.tuples(st.sampled_from(["Idempotency-Key", "X-Forwarded-For",
                                                 "Accept", "Authorization"]),
                                st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                        max_size=300)), max_size=2))
def test_messages_api_answers_every_request_without_5xx(
        node: tuple[ServerProcess, str], method: str, path: str, auth: str, ctype: str,
        body: bytes, extra: list[tuple[str, str]]) -> None:
    srv, key = node
    headers = [("Authorization", {"good": f"Bearer {key}", "bad": "Bearer adr_000000000000_x",
                                  "garbage": "Basic Zm9vOmJhcg=="}[auth])] if auth != "none" else []
    if ctype:
        headers.append(("Content-Type", ctype))
    headers += extra
    status, h, answer = _exchange(srv.http_port, _request(method, path, headers, body))
    assert status < 500, (status, answer[:300])
    if 400 <= status < 500 and status not in (404, 405) or (status == 404 and auth == "good"
                                                            and method == "GET"):
        assert h.get("content-type", "").startswith("application/problem+json"), (status, h)
        assert json.loads(answer)["status"] == status
    if status == 202:
        assert auth == "good" and method == "POST"  # the first Authorization header counts
        if path == "/v1/messages":
            assert _valid_message(body), body
            assert re.fullmatch(r"\+[1-9][0-9]{5,14}", json.loads(answer)["to"]), answer


_QS_NAME = st.sampled_from(["username", "user", "password", "pass", "to", "from", "text",
                            "coding", "dlr-mask", "udh", "validity", "charset", "mclass",
                            "x", ""])
_QS_VALUE = st.one_of(st.text(max_size=40), st.sampled_from(["demo", "pw", "46701000001",
                                                             "%zz", "0", "-1", "99999"]))


@_SETTINGS
@given(params=st.lists(st.tuples(_QS_NAME, _QS_VALUE), max_size=8),
       method=st.sampled_from(["GET", "POST"]), raw_tail=st.sampled_from(["", "&", "&&=", "%"]),
       form=st.booleans())
def test_sendsms_answers_every_request_without_5xx(
        node: tuple[ServerProcess, str], params: list[tuple[str, str]], method: str,
        raw_tail: str, form: bool) -> None:
    srv, _ = node
    qs = "&".join(f"{quote(k)}={quote(v)}" for k, v in params) + raw_tail
    if method == "POST" and form:
        raw = _request("POST", "/cgi-bin/sendsms",
                       [("Content-Type", "application/x-www-form-urlencoded")], qs.encode())
    else:
        raw = _request(method, f"/cgi-bin/sendsms?{qs}", [], b"")
    status, _, answer = _exchange(srv.http_port, raw)
    assert status < 500 or status == 503, (status, answer[:300])  # 503: Kannel's "try later"
    if 200 <= status < 300:
        given_pw = {v for k, v in params if k in ("password", "pass")}
        given_user = {v for k, v in params if k in ("username", "user")}
        assert "pw" in given_pw and "demo" in given_user, (params, answer[:200])
