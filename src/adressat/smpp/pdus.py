"""The Pdu value object: header, body fields by spec name, TLVs in wire order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .constants import RESPONSE_BIT, CommandId, CommandStatus, TlvTag
from .errors import SmppEncodeError, SmppError
from .schema import BODIES, RESPONSE_OF, TLV_TAG_BY_NAME, TLVS, WIRE_ONLY_KINDS, default_value

# Body field values: int for integers, str for C-octet strings and times (latin-1, so any
# octet round-trips), bytes for short_message, tuple of dicts for submit_multi lists.
ListItem = dict[str, int | str]
FieldValue = int | str | bytes | tuple[ListItem, ...]
# TLV values: int for integer TLVs, str for C-octet string TLVs, bytes for octet TLVs and for
# every unknown tag.
TlvValue = int | str | bytes
TlvKey = int | str

# Values never shown by repr (privacy: message text must not reach logs).
_SECRET_FIELDS = frozenset({"short_message", "password"})
_SECRET_TLVS = frozenset({TlvTag.MESSAGE_PAYLOAD})


def tlv_tag(key: TlvKey) -> int:
    """A TLV tag from a spec name (``"message_payload"``) or a number; local error if unknown."""
    if isinstance(key, str):
        try:
            return TLV_TAG_BY_NAME[key]
        except KeyError:
            raise SmppEncodeError(f"unknown TLV name {key!r}") from None
    if not 0 <= key <= 0xFFFF:
        raise SmppEncodeError("TLV tag out of range")
    return TLVS_TAG_ENUM.get(key, key)


TLVS_TAG_ENUM: dict[int, int] = {int(t): t for t in TLVS}


def _normalise_tlvs(
    tlvs: Mapping[TlvKey, TlvValue] | Iterable[tuple[TlvKey, TlvValue]],
) -> tuple[tuple[int, TlvValue], ...]:
    items = tlvs.items() if isinstance(tlvs, Mapping) else tlvs
    return tuple((tlv_tag(k), v) for k, v in items)


class Pdu(NamedTuple):
    """One SMPP PDU (an immutable tuple). Treat ``fields`` as read-only.

    ``fields`` maps spec field names to values (see ``schema.BODIES``); it is empty for
    PDUs without a body and for error responses sent without a body. ``tlvs`` is the
    optional part in wire order: ``(tag, value)`` pairs, tags as ``TlvTag`` when known.
    Build with ``Pdu.make`` (fills defaults, checks names); ``decode`` builds it directly.
    A NamedTuple rather than a frozen dataclass: construction is 4x cheaper, and decode
    builds one per PDU.
    """

    command_id: int
    sequence_number: int
    command_status: int
    fields: dict[str, FieldValue]
    tlvs: tuple[tuple[int, TlvValue], ...] = ()

    @classmethod
    def make(
        cls,
        command_id: int,
        sequence_number: int,
        command_status: int = 0,
        *,
        tlvs: Mapping[TlvKey, TlvValue] | Iterable[tuple[TlvKey, TlvValue]] = (),
        **fields: FieldValue,
    ) -> Pdu:
        """A PDU with every body field present (defaults: 0, "", b"", ()).

        Unknown field names raise ``SmppEncodeError``. A response with a non-zero status and
        no fields given has an empty body (SMPP 3.4 4.4.2: the body is not returned).
        """
        spec = _MAKE_SPECS.get(command_id)
        if spec is None:
            spec = _make_spec(command_id)
        cid, defaults, names = spec
        if fields and not names.issuperset(fields):
            unknown = set(fields) - names
            raise SmppEncodeError(f"{cid.spec_name} has no field(s) {sorted(unknown)}")
        if cid & RESPONSE_BIT and command_status and not fields:
            full: dict[str, FieldValue] = {}
        else:
            full = defaults.copy()  # schema order; given values replace the defaults
            for name, v in fields.items():
                if v is not None:
                    full[name] = v
        status = _STATUS_ENUM.get(command_status, command_status)
        return cls(cid, sequence_number, status, full, _normalise_tlvs(tlvs) if tlvs else ())

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    def tlv(self, key: TlvKey, default: TlvValue | None = None) -> TlvValue | None:
        """The value of the first TLV with this tag or spec name."""
        tag = tlv_tag(key)
        for t, v in self.tlvs:
            if t == tag:
                return v
        return default

    def response(
        self,
        command_status: int = 0,
        *,
        tlvs: Mapping[TlvKey, TlvValue] | Iterable[tuple[TlvKey, TlvValue]] = (),
        **fields: FieldValue,
    ) -> Pdu:
        """The response to this request with the same sequence_number.

        ``pdu.response(message_id="abc")`` or ``pdu.response(CommandStatus.ESME_RTHROTTLED)``
        (error responses carry no body unless fields are given). Local error for PDUs that
        are not answered (responses, outbind, alert_notification).
        """
        resp = RESPONSE_OF.get(self.command_id)  # type: ignore[call-overload]
        if resp is None:
            raise SmppEncodeError("this PDU has no response")
        return Pdu.make(resp, self.sequence_number, command_status, tlvs=tlvs, **fields)

    def __repr__(self) -> str:
        fields = {
            k: (f"<{len(v)} octets>" if k in _SECRET_FIELDS and isinstance(v, (bytes, str)) else v)
            for k, v in self.fields.items()
        }
        tlvs = [
            (t, f"<{len(v)} octets>" if t in _SECRET_TLVS and isinstance(v, bytes) else v)
            for t, v in self.tlvs
        ]
        cid = _CID_NAME.get(self.command_id, hex(self.command_id))
        status = _STATUS_NAME.get(self.command_status, hex(self.command_status))
        return f"Pdu({cid}, seq={self.sequence_number}, {status}, {fields}, tlvs={tlvs})"


_CID_NAME = {int(c): c.spec_name for c in CommandId}
_MAKE_SPECS: dict[int, tuple[CommandId, dict[str, FieldValue], frozenset[str]]] = {}


def _make_spec(command_id: int) -> tuple[CommandId, dict[str, FieldValue], frozenset[str]]:
    """Per command: its enum, the body fields with their defaults in schema order, their
    names (what ``Pdu.make`` needs, computed once)."""
    try:
        cid = CommandId(command_id)
    except ValueError:
        raise SmppEncodeError("unknown command_id") from None
    body = [f for f in BODIES[cid] if f.kind not in WIRE_ONLY_KINDS]
    defaults: dict[str, FieldValue] = {f.name: default_value(f) for f in body}  # type: ignore[misc]
    spec = (cid, defaults, frozenset(defaults))
    _MAKE_SPECS[command_id] = spec
    return spec
_STATUS_NAME = {int(s): s.name for s in CommandStatus}
_STATUS_ENUM: dict[int, int] = {int(s): s for s in CommandStatus}


def generic_nack(sequence_number: int, command_status: int) -> Pdu:
    return Pdu(CommandId.GENERIC_NACK, sequence_number, command_status, {}, ())


def error_response(error: SmppError) -> Pdu:
    """What to send back for a PDU that failed to decode.

    A request that has a response gets that response with the error status and no body;
    anything else (unknown command_id, unreadable header, a bad response) gets generic_nack.
    """
    seq = error.sequence_number if error.sequence_number is not None else 0
    cid = error.command_id
    resp = RESPONSE_OF.get(cid) if cid is not None else None  # type: ignore[call-overload]
    if resp is None:
        return generic_nack(seq, error.command_status)
    return Pdu(resp, seq, error.command_status, {}, ())
