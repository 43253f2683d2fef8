"""Message ids unique across restarts and nodes (I5), without a counter file.

Layout (128 bits, rendered as 32 lowercase hex digits, fits SMPP message_id's 65 octets)::

    48 bits  milliseconds since the epoch (never goes backwards within one generator)
    16 bits  node id
    64 bits  random start for each new millisecond, then incremented by one (the per-ms sequence)

Within one generator ids are strictly increasing, also when the clock stalls or rolls back
(the millisecond is held at the last one used). Across restarts with a rolled-back clock, or a
lost node number, two generators collide only if their 64-bit random starts fall within the
number of ids they issue in the same millisecond: negligible. Time and entropy are passed in.
"""

from __future__ import annotations

_MS_MAX = (1 << 48) - 1
_NODE_MAX = (1 << 16) - 1
_LOW_MAX = (1 << 64) - 1


class IdGenerator:
    def __init__(self, node: int) -> None:
        if not 0 <= node <= _NODE_MAX:
            raise ValueError(f"node must be in 0..{_NODE_MAX}")
        self.node = node
        self._last_ms = -1
        self._last_low = 0

    def next_id(self, now_ms: int, entropy: bytes) -> str:
        """A new id. ``entropy`` is 8 fresh random octets (``os.urandom(8)``)."""
        if len(entropy) < 8:
            raise ValueError("entropy must be at least 8 octets")
        if now_ms < 0:
            raise ValueError("now_ms must be >= 0")
        ms = now_ms & _MS_MAX
        if ms > self._last_ms:
            low = int.from_bytes(entropy[:8], "big") >> 1  # leave headroom for the sequence
        else:
            ms = self._last_ms
            low = self._last_low + 1
            if low > _LOW_MAX:
                ms += 1
                if ms > _MS_MAX:
                    raise OverflowError("id time field exhausted")
                low = int.from_bytes(entropy[:8], "big") >> 1
        self._last_ms = ms
        self._last_low = low
        return f"{ms:012x}{self.node:04x}{low:016x}"


def id_time_ms(message_id: str) -> int:
    """The millisecond field of an id (for forensics)."""
    return int(message_id[:12], 16)


def id_node(message_id: str) -> int:
    return int(message_id[12:16], 16)
