"""netsim identities: IMSI permutation, register lookups, SIM swap, recycling, determinism."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from adressat.netsim import (
    Absent,
    AbsentReason,
    NetsimSettings,
    Network,
    Reachability,
    Register,
    Unknown,
)
from adressat.netsim.identity import MSIN_SPACE, FeistelPermutation


def test_feistel_is_a_bijection_sample_and_inverse() -> None:
    perm = FeistelPermutation(42)
    rng = random.Random(1)
    xs = [0, 1, MSIN_SPACE - 1] + [rng.randrange(MSIN_SPACE) for _ in range(20000)]
    ys = [perm.forward(x) for x in xs]
    assert all(0 <= y < MSIN_SPACE for y in ys)
    fresh = FeistelPermutation(42)  # nothing remembered: the inverse is computed
    assert all(fresh.inverse(y) == x for x, y in zip(xs, ys, strict=True))
    assert all(perm.inverse(y) == x for x, y in zip(xs, ys, strict=True))
    assert len(set(ys)) == len(set(xs))
    # exhaustive injectivity on a dense block (the first 200,000 subscribers)
    block = {perm.forward(x) for x in range(200_000)}
    assert len(block) == 200_000
    # not trivially the index: consecutive subscribers get scattered MSINs
    assert sum(1 for x in range(1000) if abs(perm.forward(x + 1) - perm.forward(x)) < 1000) < 5
    with pytest.raises(ValueError):
        perm.forward(MSIN_SPACE)


def test_feistel_memory_is_bounded_and_answers_as_computing_does() -> None:
    remembering, computing = FeistelPermutation(7), FeistelPermutation(7)
    rng = random.Random(2)
    xs = [rng.randrange(MSIN_SPACE) for _ in range(FeistelPermutation.CACHE_ENTRIES_MAX + 500)]
    for x in xs + xs[-100:]:  # the last ones again: answered from memory
        y = remembering.forward(x)
        assert remembering.inverse(y) == x
        computing._forward.clear()
        computing._inverse.clear()
        assert computing.forward(x) == y
        assert len(remembering._forward) <= FeistelPermutation.CACHE_ENTRIES_MAX


def test_register_identity_round_trip() -> None:
    reg = Register(NetsimSettings.quiet(subscribers=50_000), clock=lambda: 1000.0)
    seen: set[str] = set()
    for index in list(range(0, 50_000, 97)) + [49_999]:
        msisdn = str(46701000000 + index)
        imsi = reg.identity(msisdn)
        assert len(imsi) == 15 and imsi.startswith("24001")
        assert imsi[5:] != msisdn[-10:]
        assert reg.msisdn_for_imsi(imsi) == msisdn
        info = reg.lookup(msisdn)
        assert (info.msisdn, info.imsi) == (msisdn, imsi)
        assert info.node in ("msc-1", "msc-2", "msc-3", "msc-4")
        seen.add(imsi)
    assert len(seen) == len(range(0, 50_000, 97)) + 1
    nodes = {reg.node_of(i) for i in range(1000)}
    assert nodes == {"msc-1", "msc-2", "msc-3", "msc-4"}


@pytest.mark.parametrize(
    "msisdn", ["46700999999", "46701050000", "4670100000", "+46701000001", "abc", "", "46731234567"]
)
def test_unknown_numbers(msisdn: str) -> None:
    reg = Register(NetsimSettings.quiet(subscribers=50_000))
    with pytest.raises(Unknown):
        reg.lookup(msisdn)
    with pytest.raises(Unknown):
        reg.identity(msisdn)


def test_foreign_or_malformed_imsi_is_nobody() -> None:
    reg = Register(NetsimSettings.quiet(subscribers=1000))
    imsi = reg.identity("46701000001")
    assert reg.msisdn_for_imsi("24002" + imsi[5:]) is None  # other MNC
    assert reg.msisdn_for_imsi(imsi[:-1]) is None
    assert reg.msisdn_for_imsi("x" * 15) is None
    # an MSIN that maps outside the population
    perm = FeistelPermutation(1)
    assert reg.msisdn_for_imsi(f"24001{perm.forward(5000):010d}") is None


def test_sim_swap_and_recycle_change_identity() -> None:
    reg = Register(NetsimSettings.quiet(subscribers=1000), clock=lambda: 5.0)
    msisdn = "46701000042"
    old = reg.identity(msisdn)
    new = reg.sim_swap(msisdn)
    assert new != old and reg.identity(msisdn) == new
    assert reg.lookup(msisdn).imsi == new
    assert reg.msisdn_for_imsi(old) is None  # the old SIM is retired
    assert reg.msisdn_for_imsi(new) == msisdn
    reg.detach(msisdn)
    reg.set_message_waiting(msisdn, AbsentReason.IMSI_DETACHED)
    third = reg.recycle(msisdn)
    assert third not in (old, new) and reg.msisdn_for_imsi(third) == msisdn
    assert reg.message_waiting(msisdn) is None  # the new owner inherits no waiting messages
    assert reg.lookup(msisdn).imsi == third  # and no forced absence
    kinds = [(e.kind, e.old, e.new) for e in reg.events]
    assert kinds == [("sim_swap", old, new), ("recycle", new, third)]
    # other subscribers untouched
    assert reg.identity("46701000043") == Register(NetsimSettings.quiet(subscribers=1000)).identity(
        "46701000043"
    )


def test_remembered_identities_and_nodes_follow_swaps_recycling_and_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The register remembers computed IMSIs and seeded nodes; every answer must still be
    what a register that never saw the number before gives, after each kind of change."""
    import adressat.netsim.register as register_module

    monkeypatch.setattr(register_module, "_IDENTITY_ENTRIES_MAX", 64)  # forces clearing
    settings = NetsimSettings.quiet(subscribers=1000)
    reg = Register(settings, clock=lambda: 5.0)
    numbers = [str(46701000000 + i) for i in range(0, 1000, 7)]
    for msisdn in numbers:  # fill the memory (and clear it, several times)
        imsi = reg.lookup(msisdn).imsi
        assert reg.msisdn_for_imsi(imsi) == msisdn and reg.identity(msisdn) == imsi
        assert len(reg._imsi_by_key) <= 64 and len(reg._key_by_imsi) <= 64
    msisdn = numbers[-1]  # its identity is remembered now
    index = reg.index_of(msisdn)
    old, node = reg.identity(msisdn), reg.node_of(index)
    new = reg.sim_swap(msisdn)
    assert reg.lookup(msisdn).imsi == new != old
    assert reg.msisdn_for_imsi(old) is None and reg.resolve_imsi(old) == (index, 0)
    assert reg.imsi_of(index, 0) == old
    reg.move(msisdn, "msc-9")
    assert reg.lookup(msisdn).node == "msc-9"
    third = reg.recycle(msisdn)
    assert reg.lookup(msisdn).node == node  # recycling drops the move: the seeded node again
    assert reg.msisdn_for_imsi(new) is None and reg.msisdn_for_imsi(third) == msisdn
    fresh = Register(settings)
    for m in numbers[:-1]:
        assert reg.lookup(m) == fresh.lookup(m)
    # an IMSI with other Unicode digits is not remembered as the text of its identity
    odd = old[:5] + "".join(chr(0x660 + int(c)) for c in old[5:])
    assert reg.resolve_imsi(odd) == (index, 0)
    assert reg.imsi_of(index, 0) == old


def test_move_changes_serving_node() -> None:
    reg = Register(NetsimSettings.quiet(subscribers=10))
    reg.move("46701000003", "msc-9")
    assert reg.lookup("46701000003").node == "msc-9"


def test_detached_subscriber_lookup_raises_absent() -> None:
    reg = Register(NetsimSettings.quiet(subscribers=10))
    reg.detach("46701000003")
    with pytest.raises(Absent) as info:
        reg.lookup("46701000003")
    assert info.value.reason is AbsentReason.IMSI_DETACHED
    reg.attach("46701000003")
    assert reg.lookup("46701000003").msisdn == "46701000003"


def test_absent_fraction_matches_settings() -> None:
    s = NetsimSettings(subscribers=40_000, absent_fraction=0.04, memory_full_fraction=0.01)
    reg = Register(s, clock=lambda: 1_700_000_000.0)
    counts = {r: 0 for r in Reachability}
    for index in range(40_000):
        counts[reg.state_of(index, 1_700_000_000.0).reachability] += 1
    assert 0.03 < counts[Reachability.ABSENT] / 40_000 < 0.05
    assert 0.005 < counts[Reachability.MEMORY_FULL] / 40_000 < 0.015


def _behaviour(seed: int, tmp: Path) -> list[object]:
    now = [1_700_000_000.0]
    s = NetsimSettings(seed=seed, subscribers=5000, absent_fraction=0.05)
    net = Network(tmp, s, clock=lambda: now[0])
    reg = net.register
    out: list[object] = [reg.identity(str(46701000000 + i)) for i in range(0, 5000, 250)]
    out += [reg.node_of(i) for i in range(50)]
    out += [reg.state_of(i, now[0]) for i in range(0, 5000, 7)]
    out += [net._draw_latency_s() for _ in range(50)]
    net.close()
    return out


def test_seeded_determinism(tmp_path: Path) -> None:
    a = _behaviour(7, tmp_path / "a")
    b = _behaviour(7, tmp_path / "b")
    c = _behaviour(8, tmp_path / "c")
    assert a == b
    assert a != c
