"""Who may reach which part of the HTTP listener (issue 13).

One listener serves two audiences: business senders (the messages API, Kannel's sendsms, the
API's documents, the health probes a load balancer asks) and the operator's own people and
tools (status, metrics, alerts, the dashboard, the care console, which shows a subscriber's
messages by number). Opening the listener to senders (``--http-host 0.0.0.0``, HTTPS) must not
open the operator's views with it. So every path is the operator's unless it is named here as
public, and an operator path answers only to a peer address in ``operator_allow_ip`` (loopback
by default): a route added later is closed until someone decides otherwise.

The answer to anyone else is 403 problem+json naming no more than that the path is the
operator's; it does not say whether the path exists (a 404 for an unknown path would).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiohttp import web

__all__ = ["PUBLIC_PATHS", "PUBLIC_PREFIXES", "is_public", "operator_gate", "parse_networks"]

log = logging.getLogger("adressat.api.access")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: exact public paths
PUBLIC_PATHS = frozenset({
    "/v1/messages", "/v1/messages/batch", "/cgi-bin/sendsms", "/openapi.json", "/docs",
    "/health/live", "/health/ready",
})
#: public path prefixes (a message by id; the problem pages the API's answers link to)
PUBLIC_PREFIXES = ("/v1/messages/", "/problems/")

OPERATOR_NETWORKS_DEFAULT = ("127.0.0.0/8", "::1/128")


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or bare addresses) as networks; ValueError names the first bad one."""
    out: list[Network] = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR: {c!r}") from None
    return tuple(out)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _allowed(peer: str | None, networks: Sequence[Network]) -> bool:
    if not peer:
        return False
    try:
        addr = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in n for n in networks)


def operator_gate(networks: Sequence[Network]) -> Callable[[web.Request, Handler],
                                                           Awaitable[web.StreamResponse]]:
    """The aiohttp middleware: public paths pass; the rest only from ``networks``."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_public(request.path) or _allowed(request.remote, networks):
            return await handler(request)
        log.warning("operator path refused", extra={"peer": request.remote,
                                                    "path": request.path[:200]})
        return web.json_response(
            {"type": "about:blank", "title": "Forbidden", "status": 403,
             "detail": "this path is open only to the operator's addresses"},
            status=403, content_type="application/problem+json")

    return gate
