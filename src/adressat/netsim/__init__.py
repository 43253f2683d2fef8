"""adressat.netsim: the built-in simulated operator network (register, nodes, handsets)."""

from adressat.netsim.faults import (
    CATALOGUE,
    NO_FAULTS,
    Faults,
    FaultSpec,
    FaultState,
    FaultSwitchboard,
)
from adressat.netsim.forward import Ack, Failure, FailureReason, ForwardResult, NetSms
from adressat.netsim.inbox import InboxCorrupt, InboxRecord, inbox_path, read_inbox
from adressat.netsim.network import LateAckCallback, Network, NetworkStats
from adressat.netsim.register import (
    Absent,
    AbsentReason,
    Reachability,
    Register,
    RegisterError,
    RegisterEvent,
    RegisterUnavailable,
    RoutingInfo,
    SubscriberState,
    Unknown,
)
from adressat.netsim.settings import MSISDN_FIRST, SUBSCRIBERS_MAX, NetsimSettings

__all__ = [
    "Absent",
    "AbsentReason",
    "Ack",
    "CATALOGUE",
    "Failure",
    "FailureReason",
    "FaultSpec",
    "FaultState",
    "FaultSwitchboard",
    "Faults",
    "ForwardResult",
    "InboxCorrupt",
    "InboxRecord",
    "LateAckCallback",
    "MSISDN_FIRST",
    "NO_FAULTS",
    "NetSms",
    "NetsimSettings",
    "Network",
    "NetworkStats",
    "Reachability",
    "Register",
    "RegisterError",
    "RegisterEvent",
    "RegisterUnavailable",
    "RoutingInfo",
    "SUBSCRIBERS_MAX",
    "SubscriberState",
    "Unknown",
    "inbox_path",
    "read_inbox",
]
