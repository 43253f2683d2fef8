"""Retry back-off: clamped steps plus jitter, never past the validity period (Postfix style)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    delays_s: tuple[float, ...] = (15.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
    jitter_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not self.delays_s or any(d <= 0 for d in self.delays_s):
            raise ValueError("delays_s must be a non-empty tuple of positive delays")
        if not 0.0 <= self.jitter_fraction < 1.0:
            raise ValueError("jitter_fraction must be in [0, 1)")

    def delay_s(self, attempts: int, jitter: float) -> float:
        """Delay after ``attempts`` attempts (>= 1); ``jitter`` in [0, 1) from the caller's
        random source spreads it by +/- ``jitter_fraction``. The last step repeats (the cap)."""
        if not 0.0 <= jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")
        step = self.delays_s[min(max(attempts, 1), len(self.delays_s)) - 1]
        return step * (1.0 + self.jitter_fraction * (2.0 * jitter - 1.0))

    def next_attempt_at(
        self, attempts: int, now: float, expires_at: float, jitter: float
    ) -> float | None:
        """When to try again, or None when that would be past ``expires_at`` (expire it)."""
        at = now + self.delay_s(attempts, jitter)
        if at >= expires_at:
            return None
        return at
