"""The switchable fault catalogue as operations see it (``adressat fault list|on|off``).

Desired state lives in the store (``faults`` table, written by the CLI); the running node
polls it (``fault_poll_interval_s``) and applies it to the in-process switchboards: adressat's
own (``delivery.faults.InternalFaults``: ``corrupt_pairing``) and netsim's fault switchboard
(``network.faults`` with ``on``/``off``/``list``) when this netsim has one. What fired is
published by the node as JSON in the store's meta under :data:`FAULT_COUNTERS_META`.
"""

from __future__ import annotations

import json
from typing import Any

from adressat.delivery.faults import INTERNAL_FAULTS

__all__ = ["FAULT_COUNTERS_META", "known_faults", "network_switchboard", "fault_counters"]

FAULT_COUNTERS_META = "fault_counters"


def known_faults() -> dict[str, str]:
    """name -> description: adressat's own faults plus netsim's catalogue (if present)."""
    out = dict(INTERNAL_FAULTS)
    try:
        from adressat.netsim import faults as netsim_faults

        catalogue = getattr(netsim_faults, "CATALOGUE", ())
    except ImportError:
        return out
    for spec in catalogue:
        out.setdefault(str(spec.name), str(getattr(spec, "description", "")))
    return out


def network_switchboard(network: Any) -> Any | None:
    """``network.faults`` if it is a switchboard (has on/off/list), else None."""
    board = getattr(network, "faults", None)
    if board is not None and all(hasattr(board, n) for n in ("on", "off", "list")):
        return board
    return None


def fault_counters(meta_value: str | None) -> dict[str, dict[str, int]]:
    if not meta_value:
        return {}
    try:
        data = json.loads(meta_value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
