"""api/access.py: which paths are public, and which peers are the operator's."""

from __future__ import annotations

import pytest

from adressat.api.access import _allowed, is_public, parse_networks

NETS = parse_networks(["127.0.0.0/8", "::1/128", "192.0.2.0/24"])


@pytest.mark.parametrize(("path", "public"), [
    ("/v1/messages", True), ("/v1/messages/batch", True), ("/v1/messages/abc", True),
    ("/cgi-bin/sendsms", True), ("/problems/x", True), ("/health/ready", True),
    ("/status", False), ("/metrics", False), ("/v1/care/lookup", False), ("/", False),
    ("/v1/messagesX", False), ("/v1/alerts", False), ("/docs/../status", False),
])
def test_public_paths(path: str, public: bool) -> None:
    assert is_public(path) is public


@pytest.mark.parametrize(("peer", "ok"), [
    ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("192.0.2.7", True), ("198.51.100.1", False), ("::ffff:198.51.100.1", False),
    ("fe80::1%eth0", False), ("", False), (None, False), ("not-an-ip", False),
])
def test_operator_peers(peer: str | None, ok: bool) -> None:
    assert _allowed(peer, NETS) is ok


def test_a_bad_network_names_itself() -> None:
    with pytest.raises(ValueError, match="10.0.0.0/33"):
        parse_networks(["10.0.0.0/33"])
