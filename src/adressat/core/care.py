"""Care records (docs/care.md): a subscriber's complaint and the verdict the audit trail gave.

Pure values: no clock, no store, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Complaint", "Verdict"]


class Verdict(StrEnum):
    #: a message from the sender reached the complainant's handset (its acknowledging identity
    #: was the complainant's number) while its destination was another number
    MISDELIVERED = "misdelivered"
    #: the sender's message was addressed to the complainant's own number (delivered where it
    #: was sent: a matter for the sender's data, not the network)
    ADDRESSED_TO_COMPLAINANT = "addressed_to_complainant"
    #: nothing on record reached the complainant: the node believes every candidate went to
    #: its destination. Itself a signal (an undetected misdelivery would look like this)
    UNEXPLAINED = "unexplained"


@dataclass(frozen=True, slots=True)
class Complaint:
    """One recorded complaint. ``id`` is given by the store (0 before it is added).
    ``number`` is the complainant's E.164 digits; ``sender`` the sender as shown to them
    (digits of a number, or an alphanumeric sender id); ``message_id`` the misdelivered (or
    addressed) message found, None when none; ``route``/``serving_node`` the place the verdict
    names ("" when none is known)."""

    at: float
    number: str
    about_at: float
    sender: str
    message_id: str | None
    verdict: str
    route: str = ""
    serving_node: str = ""
    id: int = 0
