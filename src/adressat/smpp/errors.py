"""SMPP errors: the peer's fault carries the wire status to answer with; our misuse is local."""

from __future__ import annotations

from .constants import CommandStatus


class SmppError(Exception):
    """A PDU received from the peer is invalid.

    ``command_status`` is the status to answer with; ``sequence_number`` and ``command_id``
    are set when the header could be read. The message names fields, never their content.
    """

    def __init__(
        self,
        command_status: CommandStatus,
        reason: str,
        *,
        command_id: int | None = None,
        sequence_number: int | None = None,
    ) -> None:
        super().__init__(f"{command_status.name}: {reason}")
        self.command_status = command_status
        self.reason = reason
        self.command_id = command_id
        self.sequence_number = sequence_number


class SmppEncodeError(ValueError):
    """We tried to encode an invalid PDU (our own misuse, never the peer's fault)."""
