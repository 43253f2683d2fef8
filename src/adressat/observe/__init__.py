"""adressat.observe: metrics, structured logs, canary, alerts, audit."""

from adressat.observe.audit import audit, iter_messages

__all__ = ["audit", "iter_messages"]
