"""The pure checks of the interconnect configuration and the partner range test (issue 11)."""

from __future__ import annotations

import pytest

from adressat.core.interconnect_config import (
    check_connector,
    check_partner,
    check_route,
    in_ranges,
    window_minutes,
)
from adressat.core.model import ConnectorConfig, RouteConfig


def test_in_ranges_is_a_prefix_test_on_e164_digits() -> None:
    ranges = ("4670", "4673")
    assert in_ranges("46701000001", ranges) and in_ranges("46731234567", ranges)
    assert not in_ranges("46761234567", ranges)
    assert not in_ranges("4670", ())  # no ranges: nowhere
    assert not in_ranges("467", ranges)  # shorter than the prefix


@pytest.mark.parametrize(
    ("window", "minutes"),
    [("00:00-24:00", (0, 1440)), ("22:00-06:00", (1320, 360)), ("9:05-9:06", (545, 546))],
)
def test_window_minutes(window: str, minutes: tuple[int, int]) -> None:
    assert window_minutes(window) == minutes


@pytest.mark.parametrize("window", ["", "22:00", "22-06", "24:01-01:00", "10:60-11:00",
                                    "10:00-10:00", " 10:00-11:00", "10:00 - 11:00"])
def test_window_refused(window: str) -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        window_minutes(window)


def test_a_good_connector_and_route_pass() -> None:
    check_connector(ConnectorConfig("a.b-c_1", "10.0.0.1", 65535, "sys", ""))
    check_route(RouteConfig("r", ("a", "b"), ("46", "4676"), "tele2", "bank", "22:00-06:00"))


def test_messages_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"port 0 not in 1\.\.65535"):
        check_connector(ConnectorConfig("c", "h", 0, "s", "p"))
    with pytest.raises(ValueError, match="window 0 not in"):
        check_connector(ConnectorConfig("c", "h", 1, "s", "p", window=0))
    with pytest.raises(ValueError, match="bind 'rx' not one of trx, tx"):
        check_connector(ConnectorConfig("c", "h", 1, "s", "p", bind="rx"))
    with pytest.raises(ValueError, match="via names no connector"):
        check_route(RouteConfig("r", ()))
    with pytest.raises(ValueError, match="at least one range"):
        check_partner([], ())


def test_partner_checks() -> None:
    check_partner(None, ())
    check_partner(["4670", "4673"], ["t2"])
    with pytest.raises(ValueError):
        check_partner(None, ["t2"])  # connectors only for a partner
    with pytest.raises(ValueError):
        check_partner("4670", ())  # a string is not a list of ranges
