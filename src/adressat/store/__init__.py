"""adressat.store: the Store interface and its back ends (the only place with SQL)."""

from adressat.store.base import (
    AccountExists,
    DuplicateDelivery,
    DuplicateMessage,
    NotPending,
    StaleState,
    Store,
    StoreError,
    Transition,
    UnknownMessage,
)
from adressat.store.memory import MemoryStore
from adressat.store.sqlite import SqliteStore

__all__ = [
    "AccountExists",
    "DuplicateDelivery",
    "DuplicateMessage",
    "MemoryStore",
    "NotPending",
    "SqliteStore",
    "StaleState",
    "Store",
    "StoreError",
    "Transition",
    "UnknownMessage",
]
