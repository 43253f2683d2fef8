"""adressat.routing: E.164 normalisation, number portability, the router."""

from adressat.routing.numbers import InvalidNumber, Npi, Ton, normalise, normalise_source
from adressat.routing.portability import PortabilityFileError, PortabilityTable
from adressat.routing.router import Route, Router, RouteRule, RuleError

__all__ = [
    "InvalidNumber",
    "Npi",
    "PortabilityFileError",
    "PortabilityTable",
    "Route",
    "RouteRule",
    "Router",
    "RuleError",
    "Ton",
    "normalise",
    "normalise_source",
]
