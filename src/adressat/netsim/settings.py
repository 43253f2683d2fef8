"""Named limits of the simulated network (units last, STYLE.md #7)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NetsimSettings", "MSISDN_FIRST", "SUBSCRIBERS_MAX"]

MSISDN_FIRST = 46701000000
SUBSCRIBERS_MAX = 2_700_000


@dataclass(frozen=True, slots=True)
class NetsimSettings:
    """Behaviour of the simulated operator network. Everything random is drawn from ``seed``.

    Fractions are of the subscriber population at any moment. Set the fractions and latencies
    to 0 for throughput benchmarks (``NetsimSettings.quiet()``).
    """

    seed: int = 1
    subscribers: int = 100_000
    msisdn_first: int = MSISDN_FIRST
    mcc: str = "240"
    mnc: str = "01"
    nodes: tuple[str, ...] = ("msc-1", "msc-2", "msc-3", "msc-4")
    # canary SIMs (test phones in a lab) per serving node: always attached, memory never
    # full (the random model passes them by); faults still act on them. ``register.canaries()``
    canaries_per_node: int = 2
    # how far from the top of the number range the register looks for them
    canary_search_subscribers_max: int = 100_000

    # absent subscribers (switched off, out of coverage): come back later, then alertSC
    absent_fraction: float = 0.03
    absent_duration_s_min: float = 30.0
    absent_duration_s_max: float = 600.0
    # of absences, the share the register knows about (IMSI detach); the rest are found by a
    # failed delivery (no paging response) and flagged in the register afterwards (MNRF)
    absent_detached_fraction: float = 0.5

    # handset memory full: clears after a while, then alertSC
    memory_full_fraction: float = 0.005
    memory_full_duration_s_min: float = 60.0
    memory_full_duration_s_max: float = 1800.0

    # acknowledgement latency of MT-ForwardSM
    ack_latency_ms_min: float = 1.0
    ack_latency_ms_max: float = 20.0
    slow_ack_fraction: float = 0.02
    slow_ack_latency_ms_min: float = 100.0
    slow_ack_latency_ms_max: float = 2000.0

    # a handset remembers (TP-OA, TP-SCTS, part) of the last SMS-DELIVERs it stored, to
    # discard resends: this many per handset; over all handsets at most
    # ``duplicate_memory_entries_max`` (the handsets used longest ago forget first); reloaded
    # from the inbox at start
    handset_delivers_remembered_max: int = 256
    duplicate_memory_entries_max: int = 200_000
    inbox_reload_bytes_max: int = 64 * 1024 * 1024
    inbox_fsync: bool = False
    # the evidence log is bounded: a file of this size becomes inbox.<n>.log, and at most
    # inbox_files_max of those are kept (about 17 x 64 MiB; 1.5 h of evidence at 1,000 msg/s)
    inbox_rotate_bytes: int = 64 * 1024 * 1024
    inbox_files_max: int = 16

    # how often the background task looks for subscribers that came back (alertSC)
    alert_poll_interval_s: float = 0.1
    register_events_max: int = 10_000
    # acknowledgements that arrive after the SMSC stopped waiting (late, duplicated, stray),
    # held until due on the late-ack channel; beyond this many the newest are dropped (counted)
    late_acks_pending_max: int = 100_000
    identity_changes_per_number_max: int = 999

    def __post_init__(self) -> None:
        if not 1 <= self.subscribers <= SUBSCRIBERS_MAX:
            raise ValueError(f"subscribers must be 1..{SUBSCRIBERS_MAX}")
        last = self.msisdn_first + self.subscribers - 1
        if len(str(self.msisdn_first)) != len(str(last)):
            raise ValueError("the number range must keep one length")
        if not self.nodes:
            raise ValueError("at least one serving node")
        if self.canaries_per_node < 0 or self.canary_search_subscribers_max < 0:
            raise ValueError("canaries_per_node and canary_search_subscribers_max must be >= 0")
        if len(self.mcc) != 3 or len(self.mnc) != 2 or not (self.mcc + self.mnc).isdigit():
            raise ValueError("mcc must be 3 digits and mnc 2 digits")
        for name in (
            "absent_fraction",
            "memory_full_fraction",
            "slow_ack_fraction",
            "absent_detached_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        for low, high in (
            ("absent_duration_s_min", "absent_duration_s_max"),
            ("memory_full_duration_s_min", "memory_full_duration_s_max"),
            ("ack_latency_ms_min", "ack_latency_ms_max"),
            ("slow_ack_latency_ms_min", "slow_ack_latency_ms_max"),
        ):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo < 0 or hi < lo:
                raise ValueError(f"need 0 <= {low} <= {high}")
        if not 1 <= self.handset_delivers_remembered_max <= self.duplicate_memory_entries_max:
            raise ValueError(
                "need 1 <= handset_delivers_remembered_max <= duplicate_memory_entries_max"
            )
        if self.absent_fraction and self.absent_duration_s_max <= 0:
            raise ValueError("absent_duration_s_max must be > 0")
        if self.memory_full_fraction and self.memory_full_duration_s_max <= 0:
            raise ValueError("memory_full_duration_s_max must be > 0")

    @property
    def msisdn_range(self) -> tuple[int, int]:
        """The inclusive E.164 range of the population (for ``Router(own_ranges=...)``)."""
        return self.msisdn_first, self.msisdn_first + self.subscribers - 1

    @classmethod
    def quiet(cls, **overrides: object) -> NetsimSettings:
        """Everyone reachable, no latency: for benchmarks and exact tests."""
        base: dict[str, object] = dict(
            absent_fraction=0.0,
            memory_full_fraction=0.0,
            ack_latency_ms_min=0.0,
            ack_latency_ms_max=0.0,
            slow_ack_fraction=0.0,
            slow_ack_latency_ms_min=0.0,
            slow_ack_latency_ms_max=0.0,
        )
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]
