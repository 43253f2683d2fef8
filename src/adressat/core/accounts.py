"""Accounts an operator controls (issue 13): the rules, pure.

What an operator may set on an account, checked here once for the CLI and the store alike
(ValueError with a message that names the option), and what the running node decides with
them: which source addresses an account may use (sender rules), which addresses it may bind or
use its HTTP keys from (``allow_ip``), and what happens to its queued messages when it is
disabled, enabled or removed (moves the lifecycle table allows, checked at import).

Limits: ``throughput_per_s`` and ``sessions_max`` are a whole number >= 1, or None: said
``unlimited`` in and out, never a magic 0 (``sessions_max`` None: the node-wide
``account_sessions_max`` applies).

Sender rules (``--senders``), one of:

* ``+46701234567`` or ``46701234567``: that number exactly (E.164 digits, '+' optional);
* ``4670100*``: every number that starts with those digits;
* ``4670100-4670199`` (or with '+'): every number whose first digits, as many as the two ends
  have (they must have as many), lie between the two, inclusive;
* ``MyBank``: that alphanumeric sender name (at least one letter, 1..11 characters, no
  spaces at either end), matched without regard to case: "MYBANK" and "mybank" show the same
  name on a handset, so allowing one allows the other, and no other account can take it by
  spelling it differently.

A source made of digits only (with an optional '+' or '00' before them) is a number whatever
its TON says, so an "alphanumeric" 46701234567 is judged as the number it shows as. No rules:
any source (as before issue 13). An empty source is allowed only when there are no rules.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from adressat.core.lifecycle import check_transition
from adressat.core.model import Account, State

#: how "no limit" is written in the CLI's input and output
UNLIMITED = "unlimited"
#: the largest throughput (messages per second) and sessions_max an account may be given
THROUGHPUT_PER_S_MAX = 1_000_000
SESSIONS_MAX_MAX = 10_000
#: entries of --allow-ip and of --senders, at most
ALLOW_IP_ENTRIES_MAX = 100
SENDER_RULES_MAX = 1000
ALPHANUMERIC_SENDER_LENGTH_MAX = 11  # TS 23.040 alphanumeric originator
NUMBER_DIGITS_MAX = 15  # E.164

# --- what happens to an account's messages (the lifecycle table decides if they may) ----------
#: ``account disable`` (not --keep-queue): its queued messages are held, not sent
HOLD_ON_DISABLE: frozenset[State] = frozenset({State.ROUTED, State.DEFERRED})
#: a message of a disabled account claimed anyway (it was in flight at the disable and came
#: back deferred, or was released from a route's hold) is held instead of sent
HOLD_CLAIMED = (State.DISPATCHED, State.HELD)
#: ``account enable``: what its disable held goes back to the queue
RELEASE_ON_ENABLE = (State.HELD, State.ROUTED)
#: ``account remove`` (not --keep-queue): every message not yet final nor in flight ends
#: CANCELLED (the operator withdrew it; a receipt is written, as for cancel_sm)
CANCEL_ON_REMOVE: frozenset[State] = frozenset(
    {State.ACCEPTED, State.ROUTED, State.DEFERRED, State.HELD})
#: ``messages.held_by`` of a message held because its account is disabled (route release
#: never releases it; account enable does)
HELD_BY_ACCOUNT = "account"

for _old in HOLD_ON_DISABLE:
    check_transition(_old, State.HELD)
check_transition(*HOLD_CLAIMED)
check_transition(*RELEASE_ON_ENABLE)
for _old in CANCEL_ON_REMOVE:
    check_transition(_old, State.CANCELLED)


# --- limits ------------------------------------------------------------------------------------
def parse_limit(text: str, option: str, most: int) -> int | None:
    """``N`` (1..most) or ``unlimited`` (None). ValueError names ``option``."""
    t = text.strip().lower()
    if t == UNLIMITED:
        return None
    try:
        n = int(t)
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not a whole number nor '{UNLIMITED}'") from None
    if n < 1:
        raise ValueError(f"{option}: {n} is not allowed: at least 1, or '{UNLIMITED}'"
                         " (to stop an account, disable it)")
    if n > most:
        raise ValueError(f"{option}: {n} is more than {most}; for no limit say '{UNLIMITED}'")
    return n


#: how ``--sessions-max`` says "the node-wide account_sessions_max" (stored as None)
DEFAULT = "default"


def parse_sessions_max(text: str) -> int | None:
    """``N`` (1..SESSIONS_MAX_MAX) or ``default`` (None: the node's account_sessions_max)."""
    t = text.strip().lower()
    if t == DEFAULT:
        return None
    if t == UNLIMITED:
        raise ValueError(f"--sessions-max: a number, or '{DEFAULT}' (the node's"
                         " --account-sessions-max; the listener's --sessions-max bounds all)")
    return parse_limit(t, "--sessions-max", SESSIONS_MAX_MAX)


def check_limit(value: int | None, option: str, most: int) -> int | None:
    """A stored limit: None (unlimited) or a whole number 1..most."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{option}: not a whole number")
    return parse_limit(str(value), option, most)


def limit_text(value: int | None) -> str:
    return UNLIMITED if value is None else str(value)


# --- allow-ip ----------------------------------------------------------------------------------
def check_allow_ip(entries: Iterable[str]) -> tuple[str, ...]:
    """Networks in CIDR notation (a bare address is one host), normalised (``10.1.0.0/16``,
    ``2001:db8::/32``); host bits set are refused as a likely mistake."""
    out: list[str] = []
    for e in entries:
        text = str(e).strip()
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as err:
            raise ValueError(f"--allow-ip: {text!r} is not an address or network in CIDR"
                             f" notation ({err})") from None
        if str(net) not in out:
            out.append(str(net))
    if len(out) > ALLOW_IP_ENTRIES_MAX:
        raise ValueError(f"--allow-ip: at most {ALLOW_IP_ENTRIES_MAX} networks")
    return tuple(out)


def ip_allowed(host: str, allow_ip: Sequence[str]) -> bool:
    """Whether a peer at ``host`` (an address, IPv4-mapped IPv6 read as IPv4) may use the
    account: any address when ``allow_ip`` is empty; nothing that is not an address else."""
    if not allow_ip:
        return True
    try:
        addr = ipaddress.ip_address(host.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for entry in allow_ip:
        net = ipaddress.ip_network(entry)
        if addr.version == net.version and addr in net:
            return True
    return False


def peer_host(peer: str) -> str:
    """The address of a ``host:port`` peer as the transports write it (IPv6 unbracketed)."""
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() else peer


# --- sender rules ------------------------------------------------------------------------------
def _digits(text: str) -> str | None:
    t = text[1:] if text.startswith("+") else text
    return t if t.isdigit() and t.isascii() else None


@dataclass(frozen=True, slots=True)
class SenderRule:
    """One rule, as parsed: ``kind`` "number" (lo == hi, the whole number), "prefix" (lo),
    "range" (lo..hi, same length) or "name" (lo: the name, case-folded)."""

    kind: str
    lo: str
    hi: str = ""

    def matches_number(self, digits: str) -> bool:
        if self.kind == "number":
            return digits == self.lo
        if self.kind == "prefix":
            return digits.startswith(self.lo)
        if self.kind == "range":
            head = digits[: len(self.lo)]
            return len(head) == len(self.lo) and self.lo <= head <= self.hi
        return False

    def text(self) -> str:
        if self.kind == "number":
            return "+" + self.lo
        if self.kind == "prefix":
            return "+" + self.lo + "*"
        if self.kind == "range":
            return f"+{self.lo}-+{self.hi}"
        return self.hi  # the name as the operator wrote it


def parse_sender_rule(text: str) -> SenderRule:
    rule = _parse_sender_rule(text)
    if rule.kind != "name" and rule.lo.startswith("0"):
        raise ValueError(f"--senders: {text!r}: numbers in E.164, from the country code"
                         " (46701234567, not 0701234567)")
    return rule


def _parse_sender_rule(text: str) -> SenderRule:
    t = text.strip()
    bad = f"--senders: {text!r} is not a sender rule (a number +46701234567, a prefix" \
          " 4670100*, a range 4670100-4670199, or a name of 1..11 characters with a letter)"
    if not t:
        raise ValueError(bad)
    if t.endswith("*"):
        digits = _digits(t[:-1])
        if digits is None or not 1 <= len(digits) <= NUMBER_DIGITS_MAX:
            raise ValueError(bad)
        return SenderRule("prefix", digits)
    lo_text, dash, hi_text = t.partition("-")
    if dash and _digits(lo_text) is not None:
        lo, hi = _digits(lo_text), _digits(hi_text)
        if hi is None or lo is None or len(lo) != len(hi) or len(lo) > NUMBER_DIGITS_MAX:
            raise ValueError(f"--senders: {text!r}: a range has two numbers of as many digits,"
                             " e.g. 4670100-4670199")
        if lo > hi:
            raise ValueError(f"--senders: {text!r}: the range's first end is above its last")
        return SenderRule("range", lo, hi)
    digits = _digits(t)
    if digits is not None:
        if not 1 <= len(digits) <= NUMBER_DIGITS_MAX:
            raise ValueError(bad)
        return SenderRule("number", digits)
    if (len(t) > ALPHANUMERIC_SENDER_LENGTH_MAX or not t.isprintable()
            or not any(ch.isalpha() for ch in t) or "*" in t):
        raise ValueError(bad)
    return SenderRule("name", t.casefold(), t)


def check_senders(rules: Iterable[str]) -> tuple[str, ...]:
    """The rules as stored: each parsed (ValueError for a bad one), written back in one
    canonical form, duplicates dropped."""
    out: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for r in rules:
        rule = parse_sender_rule(r)
        key = (rule.kind, rule.lo, rule.hi if rule.kind != "name" else "")
        if key not in seen:
            seen.add(key)
            out.append(rule.text())
    if len(out) > SENDER_RULES_MAX:
        raise ValueError(f"--senders: at most {SENDER_RULES_MAX} rules")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SenderRules:
    """The compiled rules of one account; ``allows(source)`` is the check of every submit."""

    numbers: frozenset[str]
    names: frozenset[str]
    others: tuple[SenderRule, ...]  # prefixes and ranges

    @classmethod
    def of(cls, rules: Sequence[str]) -> SenderRules | None:
        """None when there are no rules (any source)."""
        if not rules:
            return None
        parsed = [parse_sender_rule(r) for r in rules]
        return cls(frozenset(p.lo for p in parsed if p.kind == "number"),
                   frozenset(p.lo for p in parsed if p.kind == "name"),
                   tuple(p for p in parsed if p.kind in ("prefix", "range")))

    def allows(self, source: str) -> bool:
        s = source.strip()
        digits = _digits(s)
        if digits is not None and not s.startswith("+") and digits.startswith("00"):
            digits = digits[2:]  # the international prefix: 0046... is +46...
        if digits:
            return digits in self.numbers or any(r.matches_number(digits) for r in self.others)
        return bool(s) and s.casefold() in self.names


#: what ``Store.update_account`` may change (the others have their own commands)
ACCOUNT_FIELDS = ("password_hash", "throughput_per_s", "sessions_max", "allow_ip", "senders")


def check_account_fields(**fields: object) -> dict[str, object]:
    """The given account fields, checked and normalised (ValueError, naming the option):
    the store calls it before it writes anything."""
    out: dict[str, object] = {}
    for k, v in fields.items():
        if k == "password_hash":
            if not isinstance(v, str) or not v:
                raise ValueError("password_hash: a hash is required")
            out[k] = v
        elif k == "throughput_per_s":
            out[k] = check_limit(v, "--throughput", THROUGHPUT_PER_S_MAX)  # type: ignore[arg-type]
        elif k == "sessions_max":
            out[k] = check_limit(v, "--sessions-max", SESSIONS_MAX_MAX)  # type: ignore[arg-type]
        elif k == "allow_ip":
            out[k] = check_allow_ip(_strings(v, "--allow-ip"))
        elif k == "senders":
            out[k] = check_senders(_strings(v, "--senders"))
        else:
            raise ValueError(f"{k}: not an account field one may change")
    return out


def _strings(v: object, option: str) -> list[str]:
    if isinstance(v, str) or not isinstance(v, Iterable):
        raise ValueError(f"{option}: a list")
    return [str(x) for x in v]


def account_refusal(account: Account, peer: str) -> str | None:
    """Why ``account`` may not be used from ``peer`` (``host:port`` or a bare address) now:
    "disabled", "not from an allowed address", or None. The same check at a bind, at an HTTP
    or sendsms request, and for a bound session when the account changes."""
    if account.disabled:
        return "disabled"
    if account.allow_ip and not ip_allowed(peer_host(peer), account.allow_ip):
        return "not from an allowed address"
    return None
