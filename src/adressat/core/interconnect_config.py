"""What may be stored of the interconnect configuration (issue 11): connectors, routes and
partner accounts. Pure checks, each raising ``ValueError`` with one line that says what is
wrong and what is allowed (the CLI prints it as it is); both store back ends call them before
they write, so nothing that breaks these rules is ever stored, whoever calls the store.

Also the partner range check of the SMPP ingress (:func:`in_ranges`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from adressat.core.interconnect import RECEIPT_ID_FORMATS
from adressat.core.model import (
    CONNECTOR_BINDS,
    CONNECTOR_STATES,
    ConnectorConfig,
    ConnectorStatus,
    RouteConfig,
)

#: connector and route names: what the dimension labels, logs and the CLI show
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: routes the node has of its own (``route list`` shows them after the operator's routes);
#: an operator route of that name would share their breaker
BUILTIN_ROUTES: tuple[str, ...] = ("netsim", "unroutable")
#: an E.164 number has at most 15 digits; a prefix or range is 1..15 of them
E164_DIGITS_MAX = 15
#: SMPP 3.4 C-Octet strings of the bind: system_id 16, password 9, system_type 13 (with NUL)
SYSTEM_ID_LENGTH_MAX = 15
PASSWORD_LENGTH_MAX = 8
SYSTEM_TYPE_LENGTH_MAX = 12
HOST_LENGTH_MAX = 253
WINDOW_MAX = 10_000  # submits in flight on one connector
_WINDOW_RE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")


def check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ValueError(f"{what} name {name!r}: 1..64 of A-Z a-z 0-9 _ . -")


def check_digits(what: str, value: str) -> None:
    """A prefix or range of E.164 digits (no '+', no spaces)."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() \
            or not 1 <= len(value) <= E164_DIGITS_MAX:
        raise ValueError(f"{what} {value!r}: 1..{E164_DIGITS_MAX} digits of an E.164 number"
                         " (no '+')")


def check_connector(cfg: ConnectorConfig) -> None:
    check_name("connector", cfg.name)
    if not cfg.host or len(cfg.host) > HOST_LENGTH_MAX or any(c.isspace() for c in cfg.host):
        raise ValueError(f"connector {cfg.name}: host must be a host name or address")
    if not isinstance(cfg.port, int) or isinstance(cfg.port, bool) \
            or not 1 <= cfg.port <= 65535:
        raise ValueError(f"connector {cfg.name}: port {cfg.port!r} not in 1..65535")
    if not cfg.system_id or len(cfg.system_id) > SYSTEM_ID_LENGTH_MAX \
            or not cfg.system_id.isprintable():
        raise ValueError(f"connector {cfg.name}: system id must be 1..{SYSTEM_ID_LENGTH_MAX}"
                         " printable characters")
    if len(cfg.password) > PASSWORD_LENGTH_MAX or not cfg.password.isprintable():
        raise ValueError(f"connector {cfg.name}: password must be at most"
                         f" {PASSWORD_LENGTH_MAX} printable characters (SMPP 3.4)")
    if len(cfg.system_type) > SYSTEM_TYPE_LENGTH_MAX or not cfg.system_type.isprintable():
        raise ValueError(f"connector {cfg.name}: system type must be at most"
                         f" {SYSTEM_TYPE_LENGTH_MAX} printable characters")
    if cfg.bind not in CONNECTOR_BINDS:
        raise ValueError(f"connector {cfg.name}: bind {cfg.bind!r} not one of"
                         f" {', '.join(CONNECTOR_BINDS)}")
    if not isinstance(cfg.window, int) or not 1 <= cfg.window <= WINDOW_MAX:
        raise ValueError(f"connector {cfg.name}: window {cfg.window!r} not in 1..{WINDOW_MAX}")
    if not isinstance(cfg.throughput_per_s, int) or cfg.throughput_per_s < 0:
        raise ValueError(f"connector {cfg.name}: throughput {cfg.throughput_per_s!r} must be"
                         " >= 0 messages per second (0: no limit)")
    if not cfg.enquire_link_s > 0 or cfg.enquire_link_s == float("inf"):
        raise ValueError(f"connector {cfg.name}: enquire link interval must be > 0 seconds")
    if cfg.receipt_ids not in RECEIPT_ID_FORMATS:
        raise ValueError(f"connector {cfg.name}: receipt ids {cfg.receipt_ids!r} not one of"
                         f" {', '.join(RECEIPT_ID_FORMATS)}")


def check_connector_status(st: ConnectorStatus) -> None:
    check_name("connector", st.name)
    if st.state not in CONNECTOR_STATES:
        raise ValueError(f"connector {st.name}: state {st.state!r} not one of"
                         f" {', '.join(CONNECTOR_STATES)}")


def window_minutes(window: str) -> tuple[int, int]:
    """``"HH:MM-HH:MM"`` as (start, end) minutes after midnight (may wrap midnight; start
    inclusive, end exclusive, as ``routing.router`` reads it). Raises ValueError."""
    m = _WINDOW_RE.fullmatch(window) if isinstance(window, str) else None
    bad = ValueError(f"window {window!r}: HH:MM-HH:MM, 00:00..24:00, start != end")
    if m is None:
        raise bad
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if m1 > 59 or m2 > 59 or start > 1440 or end > 1440 or start == end:
        raise bad
    return start, end


def check_route(cfg: RouteConfig) -> None:
    check_name("route", cfg.name)
    if cfg.name in BUILTIN_ROUTES:
        raise ValueError(f"route name {cfg.name!r} is a built-in route's")
    if not cfg.via:
        raise ValueError(f"route {cfg.name}: via names no connector")
    for c in cfg.via:
        check_name("connector", c)
    if len(set(cfg.via)) != len(cfg.via):
        raise ValueError(f"route {cfg.name}: a connector named twice in via")
    for p in cfg.prefixes:
        check_digits("prefix", p)
    if cfg.operator is not None:
        check_name("operator", cfg.operator)
    if cfg.account is not None and (not cfg.account or not cfg.account.isprintable()):
        raise ValueError(f"route {cfg.name}: account must be an account name")
    if cfg.window is not None:
        window_minutes(cfg.window)
    if not isinstance(cfg.position, int) or cfg.position < 0:
        raise ValueError(f"route {cfg.name}: position must be >= 0 (0: after the last)")


def check_partner(partner_ranges: Sequence[str] | None, partner_connectors: Sequence[str]) -> None:
    """``partner_ranges`` None: not a partner (and then no partner connectors); a partner has
    at least one range."""
    if partner_ranges is None:
        if partner_connectors:
            raise ValueError("partner connectors given for an account that is not a partner")
        return
    if isinstance(partner_ranges, str) or not partner_ranges:
        raise ValueError("a partner account needs at least one range (E.164 prefixes)")
    for r in partner_ranges:
        check_digits("range", r)
    if isinstance(partner_connectors, str):
        raise ValueError("partner connectors: a list of connector names")
    for c in partner_connectors:
        check_name("connector", c)


def in_ranges(e164: str, ranges: Sequence[str]) -> bool:
    """A normalised destination (E.164 digits) inside one of a partner's ranges (prefixes)."""
    return any(e164.startswith(r) for r in ranges)
