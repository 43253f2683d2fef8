"""Stream framing: whole SMPP frames out of arbitrary TCP chunks, with bounded memory."""

from __future__ import annotations

import struct

from .constants import HEADER_LENGTH, CommandStatus
from .errors import SmppError

_LENGTH = struct.Struct(">I")
_HEADER = struct.Struct(">IIII")


class FrameBuffer:
    """bytearray + read offset; compacted lazily, so splitting is linear in the input.

    The command_length of the next frame is checked as soon as its first 4 octets arrive:
    below 16 or above ``pdu_length_max`` raises SmppError(ESME_RINVCMDLEN) at once, before any
    body is buffered; after that the buffer is dropped and every call raises the same error.
    """

    def __init__(self, pdu_length_max: int = 65536) -> None:
        if pdu_length_max < HEADER_LENGTH:
            raise ValueError("pdu_length_max below the header length")
        self.pdu_length_max = pdu_length_max
        self._buf = bytearray()
        self._off = 0
        self._broken: SmppError | None = None

    @property
    def buffered_octets(self) -> int:
        return len(self._buf) - self._off

    @property
    def broken(self) -> bool:
        """A command_length was out of range: the stream cannot be resynced."""
        return self._broken is not None

    @property
    def announced_length(self) -> int | None:
        """command_length of the frame being read, None if fewer than 4 octets of it."""
        if self._broken is not None or len(self._buf) - self._off < 4:
            return None
        return int(_LENGTH.unpack_from(self._buf, self._off)[0])

    def _check_head(self) -> int | None:
        """Length of the frame at the read offset, None if fewer than 4 octets buffered."""
        buf, off = self._buf, self._off
        if len(buf) - off < 4:
            return None
        (length,) = _LENGTH.unpack_from(buf, off)
        if length < HEADER_LENGTH or length > self.pdu_length_max:
            seq = cid = None
            if len(buf) - off >= HEADER_LENGTH:
                _, cid, _, seq = _HEADER.unpack_from(buf, off)
            self._broken = SmppError(
                CommandStatus.ESME_RINVCMDLEN,
                "command_length out of range",
                command_id=cid,
                sequence_number=seq,
            )
            self._buf = bytearray()
            self._off = 0
            raise self._broken
        return int(length)

    def feed(self, data: bytes) -> None:
        if self._broken is not None:
            raise self._broken
        if self._off and self._off == len(self._buf):
            self._buf.clear()
            self._off = 0
        self._buf += data
        self._check_head()

    def next_frame(self) -> bytes | None:
        if self._broken is not None:
            raise self._broken
        length = self._check_head()
        if length is None:
            return None
        off = self._off
        end = off + length
        buf = self._buf
        if len(buf) < end:
            return None
        frame = bytes(buf[off:end])
        if end == len(buf):
            buf.clear()
            self._off = 0
        elif end > 65536 and end * 2 > len(buf):
            del buf[:end]
            self._off = 0
        else:
            self._off = end
        return frame
