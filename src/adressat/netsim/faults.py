"""Hooks where seeded faults plug into the simulated network.

``Faults`` is the honest network: every hook passes things through unchanged. A fault model
subclasses it and overrides the hooks it needs; ``Register`` and ``Network`` consult the one
they were given at these points:

- ``on_lookup``: SRI-for-SM answer (stale routing after a SIM swap: return the old IMSI;
  register unavailable: raise ``RegisterUnavailable``).
- ``before_forward``: MT-ForwardSM arrives at a node (node down, system failure, timeouts).
- ``recipients``: which handsets (IMSIs) the node actually delivers to (a node that swaps
  messages between concurrent deliveries, double delivery to a second handset).
- ``on_ack``: the answer on its way back (lost ack -> ``Failure(TIMEOUT)``, late ack).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from adressat.netsim.forward import Ack, Failure, NetSms

if TYPE_CHECKING:
    from adressat.netsim.register import Register, RoutingInfo

__all__ = ["Faults", "NO_FAULTS"]


class Faults:
    def on_lookup(self, register: Register, msisdn: str, info: RoutingInfo) -> RoutingInfo:
        return info

    def before_forward(self, imsi: str, node: str, sms: NetSms) -> Failure | None:
        return None

    def recipients(self, imsi: str, node: str, sms: NetSms) -> Sequence[str]:
        return (imsi,)

    async def on_ack(
        self, result: Ack | Failure, imsi: str, node: str, sms: NetSms
    ) -> Ack | Failure:
        return result


NO_FAULTS = Faults()
