"""adressat.delivery: the delivery worker (a thin shell over core and the store) and the
adapters that put messages on a route (netsim; the smpp connector later)."""

from adressat.delivery.adapter import Adapter, Outcome, OutcomeKind
from adressat.delivery.errors import INTEGRITY_ERRORS, DeliveryError
from adressat.delivery.netsim_adapter import NetsimAdapter, build_parts, legacy_reference
from adressat.delivery.worker import DeliveryWorker

__all__ = [
    "Adapter",
    "DeliveryError",
    "DeliveryWorker",
    "INTEGRITY_ERRORS",
    "NetsimAdapter",
    "Outcome",
    "OutcomeKind",
    "build_parts",
    "legacy_reference",
]
