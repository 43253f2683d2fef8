"""The operator's paths of the HTTP listener answer only to the operator's addresses (issue 13):
opening the listener to senders does not open the care console, status, metrics or alerts.

Tests reach the node from 127.0.0.1 only; to be a peer outside the allowed addresses, the node
is told that only 10.0.0.0/8 is the operator's."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_e2e_http_api import new_key

from adressat.testing.server import ServerProcess, adressat

pytestmark = pytest.mark.slow

OPERATOR = ["/status", "/metrics", "/v1/alerts", "/v1/live", "/v1/canaries", "/",
            "/dashboard", "/v1/care/lookup?number=46701000001", "/v1/care/messages/x",
            "/no/such/path"]
PUBLIC = ["/health/live", "/openapi.json", "/docs", "/problems/unauthorized"]


def _get(url: str, headers: dict[str, str] | None = None,
         data: bytes | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
            return int(r.status), r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read(), e.headers.get("Content-Type", "")


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("gate") / "home"
    out = adressat(home, "account", "add", "demo", "--password", "pw")
    assert out.returncode == 0, out.stderr
    with ServerProcess(home, None, "--quiet-network",
                       "--operator-allow-ip", "10.0.0.0/8") as server:
        yield f"http://127.0.0.1:{server.http_port}", home


@pytest.mark.parametrize("path", OPERATOR)
def test_an_operator_path_is_refused_to_another_address(closed: tuple[str, Path],
                                                        path: str) -> None:
    status, body, ctype = _get(closed[0] + path)
    assert status == 403, (path, status)
    assert ctype.startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["status"] == 403
    # nothing of the node: no figures, no numbers, not whether the path exists
    assert b"46701000001" not in body and b"adressat_" not in body


@pytest.mark.parametrize("path", PUBLIC)
def test_the_senders_paths_answer_anyone(closed: tuple[str, Path], path: str) -> None:
    status, _, _ = _get(closed[0] + path)
    assert status in (200, 302), (path, status)


def test_a_sender_still_sends_when_operator_paths_are_closed(closed: tuple[str, Path]) -> None:
    base, home = closed
    key = new_key(home, "demo")
    body = json.dumps({"to": "+46701000002", "from": "Gate", "text": "hello"}).encode()
    status, answer, _ = _get(base + "/v1/messages", {"Authorization": f"Bearer {key}",
                                                     "Content-Type": "application/json"}, body)
    assert status == 202, answer
    mid = json.loads(answer)["id"]
    status, answer, _ = _get(base + f"/v1/messages/{mid}", {"Authorization": f"Bearer {key}"})
    assert status == 200 and json.loads(answer)["id"] == mid


def test_the_default_opens_operator_paths_to_loopback_only(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "home", None, "--quiet-network") as server:
        status, body = server.http_get("/status")
        assert status == 200 and b"ready" in body


def test_a_bad_cidr_is_refused_at_start(tmp_path: Path) -> None:
    out = adressat(tmp_path / "home", "run", "--operator-allow-ip", "10.0.0.0/33")
    assert out.returncode == 2
    assert "not an address or CIDR" in out.stderr
