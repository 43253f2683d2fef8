"""Subscriber identities computed from the subscriber index: no object per subscriber.

IMSI = MCC + MNC + MSIN (10 digits). MSIN = P(generation * 10^7 + index) where P is a keyed
Feistel permutation of 0..10^10-1 (two halves of 10^5, modular addition, 6 rounds): a
bijection, so every (index, generation) has its own IMSI and the IMSI -> subscriber lookup is
the inverse permutation. ``generation`` counts identity changes of the number (SIM swap,
recycling), so an old SIM's IMSI never comes back.
"""

from __future__ import annotations

import random

__all__ = ["FeistelPermutation", "mix64", "INDEX_SPACE", "MSIN_SPACE"]

MASK64 = (1 << 64) - 1
HALF = 100_000
MSIN_SPACE = HALF * HALF  # 10^10
INDEX_SPACE = 10_000_000  # index < 10^7; generation < 1000
ROUNDS = 6


def mix64(x: int) -> int:
    """splitmix64 finaliser: a fast, well-mixed 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


class FeistelPermutation:
    """A keyed bijection of 0..10^10-1.

    One delivery computes the same few values several times (the routing answer, the SMSC's
    cross-check, the serving node's and the handset's lookups, the acknowledgement check), so
    recent results are remembered both ways. The function is pure (a SIM swap changes its
    input, the generation, not its output), so remembering them changes nothing it answers.
    """

    __slots__ = ("_keys", "_reversed_keys", "_forward", "_inverse")

    CACHE_ENTRIES_MAX = 65_536

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"netsim-imsi-{seed}")
        self._keys = tuple(rng.getrandbits(64) for _ in range(ROUNDS))
        self._reversed_keys = self._keys[::-1]
        self._forward: dict[int, int] = {}
        self._inverse: dict[int, int] = {}

    def _remember(self, x: int, y: int) -> None:
        if len(self._forward) >= self.CACHE_ENTRIES_MAX:
            self._forward.clear()
            self._inverse.clear()
        self._forward[x] = y
        self._inverse[y] = x

    def forward(self, x: int) -> int:
        y = self._forward.get(x)
        if y is not None:
            return y
        y = self.permute(x)
        self._remember(x, y)
        return y

    def inverse(self, y: int) -> int:
        x = self._inverse.get(y)
        if x is not None:
            return x
        x = self.unpermute(y)
        self._remember(x, y)
        return x

    def permute(self, x: int) -> int:
        """``forward`` without the memory (for a caller that remembers the answers itself).
        mix64 is written out in the loop: this runs once for every number not seen lately."""
        if not 0 <= x < MSIN_SPACE:
            raise ValueError("outside the permutation domain")
        left, right = divmod(x, HALF)
        for key in self._keys:
            h = ((right ^ key) + 0x9E3779B97F4A7C15) & MASK64
            h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & MASK64
            left, right = right, (left + (h ^ (h >> 31))) % HALF
        return left * HALF + right

    def unpermute(self, y: int) -> int:
        """``inverse`` without the memory."""
        if not 0 <= y < MSIN_SPACE:
            raise ValueError("outside the permutation domain")
        left, right = divmod(y, HALF)
        for key in self._reversed_keys:
            h = ((left ^ key) + 0x9E3779B97F4A7C15) & MASK64
            h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & MASK64
            left, right = (right - (h ^ (h >> 31))) % HALF, left
        return left * HALF + right
