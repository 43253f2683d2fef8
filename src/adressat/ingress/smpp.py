"""What adressat answers to an ESME's requests: bind, submit_sm, submit_multi, data_sm,
query_sm, cancel_sm, replace_sm.

Translates SMPP into :class:`Submission` and store operations and back into SMPP statuses;
the session state machine has already checked that each request is legal in its state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from adressat.core.accept import Refusal, Refused, Submission
from adressat.core.accounts import SenderRules, account_refusal
from adressat.core.interconnect_config import in_ranges
from adressat.core.model import Account, Message, State
from adressat.core.tag import binding_tag
from adressat.delivery.smpp_adapter import HOPS_TLV
from adressat.observe.metrics import FINAL, REFUSED, SUBMIT_LATENCY, TurnCounts
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.constants import EsmClass, MessageState
from adressat.smpp.pdus import Pdu, tlv_tag
from adressat.smpp.times import SmppTimeError, format_smpp_time, parse_smpp_time
from adressat.sms.encodings import Alphabet, EncodingError, codec_for_data_coding
from adressat.sms.segment import ConcatInfo, UdhError, concat_udh, parse_udh
from adressat.store.base import NotPending, Store, StoreUnavailable, UnknownMessage
from adressat.store.commit import GroupCommitter
from adressat.transport.smpp_server import LATER, Later, SmppConnection

from .commit import Ingress
from .credentials import CredentialGuard, address_of, bind_status
from .receipts import ReceiptSender
from .refusals import commit_refusal, smpp_status

log = logging.getLogger("adressat.smpp.service")

ESM_UDHI = EsmClass.GSM_UDHI
ESM_MESSAGE_TYPE = EsmClass.TYPE_MASK
TP_UD_OCTETS_MAX = 140  # one SMS on the air (3GPP TS 23.040 9.2.3.24)
TP_UD_SEPTETS_MAX = 160
QUERY_STATE: dict[State, MessageState] = {
    State.ACCEPTED: MessageState.ACCEPTED,
    State.ROUTED: MessageState.ENROUTE,
    State.DISPATCHED: MessageState.ENROUTE,
    State.DEFERRED: MessageState.ENROUTE,
    State.HELD: MessageState.ENROUTE,
    State.DELIVERED: MessageState.DELIVERED,
    State.EXPIRED: MessageState.EXPIRED,
    State.UNDELIVERABLE: MessageState.UNDELIVERABLE,
    State.QUARANTINED: MessageState.UNDELIVERABLE,
    State.REJECTED: MessageState.REJECTED,
    State.CANCELLED: MessageState.DELETED,
}


def check_one_part(content: bytes, data_coding: int) -> None:
    """Content that carries its own UDH is one SMS part: it must fit one SMS on the air with
    that UDH, or it would be accepted and then never deliverable. Raises Refused."""
    try:
        _, rest = parse_udh(content)
    except UdhError:
        raise Refused(Refusal.INVALID_ESM_CLASS) from None  # UDHI set, no valid UDH
    udh_octets = len(content) - len(rest)
    try:
        gsm7 = codec_for_data_coding(data_coding).alphabet is Alphabet.GSM7
    except (EncodingError, ValueError):
        gsm7 = False  # carried as opaque octets
    if gsm7:
        fits = (udh_octets * 8 + 6) // 7 + len(rest) <= TP_UD_SEPTETS_MAX
    else:
        fits = len(content) <= TP_UD_OCTETS_MAX
    if not fits:
        raise Refused(Refusal.MESSAGE_TOO_LONG)


def check_message_type(esm_class: int) -> None:
    if esm_class & ESM_MESSAGE_TYPE:
        # bits 2-5 name a receipt or an acknowledgement: an SMSC sends those, an ESME
        # submits only default-type messages (SMPP 3.4 5.2.12)
        raise Refused(Refusal.INVALID_ESM_CLASS)


READ_TLVS = ("message_payload", "sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum",
             "user_message_reference")
READ_TLV_TAGS = tuple(tlv_tag(name) for name in READ_TLVS)


@dataclass
class TokenBucket:
    """Per-account throughput limit (messages per second, burst of one second)."""

    rate_per_s: float
    tokens: float = 0.0
    at: float = 0.0

    def take(self, now: float, n: int = 1) -> bool:
        """Take ``n`` tokens (one per message). More than one second's worth is granted only
        to a full bucket and leaves a debt that later submits wait out, so a submit_multi to
        many destinations counts every message without being refused forever."""
        self.tokens = min(self.rate_per_s, self.tokens + (now - self.at) * self.rate_per_s)
        self.at = now
        if self.tokens >= min(float(n), self.rate_per_s):
            self.tokens -= n
            return True
        return False


BIND_WINDOW_S = 60.0  # account_binds_per_minute_max counts the binds of the last minute


@dataclass
class BindWindow:
    """The accepted binds of one account in the last ``window_s`` (a sliding log, at most
    ``binds_max`` entries): exact, where a token bucket would let a burst through."""

    binds_max: int
    window_s: float = BIND_WINDOW_S
    times: deque[float] = field(default_factory=deque)

    def full(self, now: float) -> bool:
        while self.times and self.times[0] <= now - self.window_s:
            self.times.popleft()
        return len(self.times) >= self.binds_max

    def take(self, now: float) -> None:
        self.times.append(now)


def _refused(conn: SmppConnection, pdu: Pdu, status: S) -> Pdu:
    """The answer to a submit refused before its commit (a line per refusal at debug)."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("submit refused", extra={"session": conn.conn_id, "account": conn.account,
                                           "seq": pdu.sequence_number, "status": status})
    return pdu.response(status)


@dataclass
class SmppService:
    ingress: Ingress
    receipts: ReceiptSender
    committer: GroupCommitter
    system_id: str = "adressat"
    throughput_per_s_default: int = 0
    bind_attempts_max: int = 3  # failed binds on one connection, then it is closed
    # per account, node-wide defaults (no per-account column yet); 0: no limit
    account_sessions_max: int = 10  # bound sessions at once (TX, RX and TRX alike)
    account_binds_per_minute_max: int = 120  # accepted binds in any 60 s
    clock: Callable[[], float] = time.time
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    sessions: set[SmppConnection] = field(default_factory=set)
    _refused: TurnCounts = field(default_factory=lambda: TurnCounts(REFUSED))
    # sessions of each account that are bound or whose bind was admitted (the slot is taken
    # before the bind_resp leaves, so two binds racing for the last one cannot both get it)
    account_sessions: dict[str, set[SmppConnection]] = field(default_factory=dict)
    bind_windows: dict[str, BindWindow] = field(default_factory=dict)
    binds_refused: int = 0  # over account_sessions_max or account_binds_per_minute_max
    # partner accounts (issue 11): the E.164 prefixes each may submit to, from its account
    # record as loaded at its latest bind; an account not here is not a partner
    partner_ranges: dict[str, tuple[str, ...]] = field(default_factory=dict)
    partner_via: dict[str, str] = field(default_factory=dict)  # connectors it never goes back
    _ending: set[asyncio.Future[None]] = field(default_factory=set)  # unbinds under way
    # issue 13: lockout and bounded password checks (app/node.py passes the node's, shared
    # with sendsms and the HTTP API; the default keeps its counters in memory only)
    guard: CredentialGuard = field(default_factory=CredentialGuard)

    # -- connection events ----------------------------------------------------------------------
    def on_bound(self, conn: SmppConnection) -> None:
        self.sessions.add(conn)
        if conn.session.can_receive and conn.account:
            self.receipts.add_receiver(conn.account, conn)

    def on_closed(self, conn: SmppConnection) -> None:
        self.sessions.discard(conn)
        if conn.account:
            self.receipts.remove_receiver(conn.account, conn)
            held = self.account_sessions.get(conn.account)
            if held is not None:
                held.discard(conn)
                if not held:
                    del self.account_sessions[conn.account]

    # -- dispatch -------------------------------------------------------------------------------
    def handle(self, conn: SmppConnection, pdu: Pdu) -> Pdu | Awaitable[Pdu] | Later:
        cid = pdu.command_id
        if cid in (C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER):
            return self._bind(conn, pdu)
        if cid in (C.SUBMIT_SM, C.DATA_SM):
            return self._submit(conn, pdu)
        if cid == C.SUBMIT_MULTI:
            return self._submit_multi(conn, pdu)
        if cid == C.QUERY_SM:
            return self._query(conn, pdu)
        if cid == C.CANCEL_SM:
            return self._cancel(conn, pdu)
        if cid == C.REPLACE_SM:
            return self._replace(conn, pdu)
        return pdu.response(S.ESME_RINVCMDID)

    # -- bind -------------------------------------------------------------------------------------
    async def _bind(self, conn: SmppConnection, pdu: Pdu) -> Pdu:
        system_id = str(pdu.fields["system_id"])
        password = str(pdu.fields["password"])
        account = await self.committer.read(lambda s: s.get_account(system_id))
        if account is not None and self._bind_rate_full(system_id, self.clock()):
            # before the password check: a reconnect storm costs no scrypt per bind
            return self._bind_over_limit(conn, pdu, system_id, "binds per minute",
                                         self.account_binds_per_minute_max)
        # issue 13: lockout, bounded scrypt, one answer and one cost for unknown and wrong
        verdict = await self.guard.check_password(
            system_id, address_of(conn.peer), password,
            None if account is None else account.password_hash)
        if not verdict.ok or account is None:
            log.info("bind refused: credentials", extra={  # which, for the operator only
                "session": conn.conn_id, "account": system_id, "peer": conn.peer,
                "reason": verdict.reason})
            return self._bind_failed(conn, pdu, bind_status(verdict, self.guard.statuses),
                                     close=verdict.close)
        why = account_refusal(account, conn.peer)  # issue 13: disabled, or not from allow_ip
        if why is not None:
            return self._bind_not_now(conn, pdu, system_id, why)
        refusal = self._admit_bind(conn, system_id, self.clock(), account.sessions_max)
        if refusal is not None:
            return self._bind_over_limit(conn, pdu, system_id, *refusal)
        conn.account = system_id
        conn.interface_version = int(pdu.fields.get("interface_version", 0x34))  # type: ignore[arg-type]
        rate = account.throughput_per_s or self.throughput_per_s_default
        if rate and system_id not in self.buckets:
            self.buckets[system_id] = TokenBucket(float(rate), float(rate), self.clock())
        elif not rate:
            self.buckets.pop(system_id, None)
        if account.partner:
            self.partner_ranges[system_id] = account.partner_ranges
            # loop prevention: never back out through the partner's own connectors (by
            # default the connector of the account's name)
            self.partner_via[system_id] = ",".join(account.partner_connectors or (system_id,))
        else:
            self.partner_ranges.pop(system_id, None)
            self.partner_via.pop(system_id, None)
        log.info("bound", extra={"session": conn.conn_id, "account": system_id,
                                 "mode": C(pdu.command_id).name})
        return pdu.response(system_id=self.system_id)

    def _bind_rate_full(self, account: str, now: float) -> bool:
        window = self.bind_windows.get(account)
        return window is not None and window.full(now)

    def _admit_bind(self, conn: SmppConnection, account: str,
                    now: float, sessions_max: int | None = None) -> tuple[str, int] | None:
        """Check and take, in one step on the loop (no await between them), a session slot
        and a place in the bind window of ``account``; (limit name, value) if over one.
        ``sessions_max``: the account's own limit (None: the node-wide one)."""
        held = self.account_sessions.get(account, set())
        limit = sessions_max or self.account_sessions_max
        if limit and len(held) >= limit:
            return "sessions", limit
        window = None
        if self.account_binds_per_minute_max:
            window = self.bind_windows.setdefault(
                account, BindWindow(self.account_binds_per_minute_max))
            if window.full(now):
                return "binds per minute", self.account_binds_per_minute_max
        if conn.is_gone:
            return None  # closed while its password was checked: on_closed has run already
        if window is not None:
            window.take(now)
        self.account_sessions.setdefault(account, held).add(conn)
        return None

    def _bind_over_limit(self, conn: SmppConnection, pdu: Pdu, account: str, limit: str,
                         value: int) -> Pdu:
        """ESME_RBINDFAIL, then close: the credentials are right, the account is at a
        limit; the ESME's own reconnect delay is the back-off."""
        self.binds_refused += 1
        log.warning(
            "bind refused: account at its limit; closing the session",
            extra={"session": conn.conn_id, "peer": conn.peer, "account": account,
                   "limit_name": limit, "limit": value,
                   "sessions": len(self.account_sessions.get(account, ()))},
        )
        conn.close_after_response()
        return pdu.response(S.ESME_RBINDFAIL)

    def _bind_not_now(self, conn: SmppConnection, pdu: Pdu, account: str, why: str) -> Pdu:
        """ESME_RBINDFAIL, then close: right credentials, but the account is disabled or
        this address is not one it may bind from (issue 13)."""
        self.binds_refused += 1
        log.warning("bind refused; closing the session",
                    extra={"session": conn.conn_id, "peer": conn.peer, "account": account,
                           "reason": why})
        conn.close_after_response()
        return pdu.response(S.ESME_RBINDFAIL)

    def _bind_failed(self, conn: SmppConnection, pdu: Pdu, status: S,
                     close: bool = False) -> Pdu:
        """No unlimited password guessing on one connection: after ``bind_attempts_max``
        failures (or at once, ``close``: locked out or too many checks waiting) the answer
        is followed by a close."""
        conn.failed_binds += 1
        if close or conn.failed_binds >= self.bind_attempts_max:
            log.warning("bind attempts exhausted; closing",
                        extra={"session": conn.conn_id, "peer": conn.peer,
                               "attempts": conn.failed_binds})
            conn.close_after_response()
        return pdu.response(status)

    # -- accounts an operator controls (issue 13) -------------------------------------------------
    def apply_accounts(self, accounts: list[Account], unbind_timeout_s: float) -> int:
        """The accounts as stored now (the node polls for changes): throughput, sender rules
        and partner ranges take effect for every session; a session whose account is gone,
        disabled or no longer allowed from its address is ended (unbind, then close).
        Returns how many sessions it ends."""
        by_name = {a.name: a for a in accounts}
        now = self.clock()
        for a in accounts:
            rate = a.throughput_per_s or self.throughput_per_s_default
            bucket = self.buckets.get(a.name)
            if not rate:
                self.buckets.pop(a.name, None)
            elif bucket is None:
                self.buckets[a.name] = TokenBucket(float(rate), float(rate), now)
            elif bucket.rate_per_s != rate:
                bucket.rate_per_s = float(rate)
                bucket.tokens = min(bucket.tokens, float(rate))
            if a.partner:
                self.partner_ranges[a.name] = a.partner_ranges
                self.partner_via[a.name] = ",".join(a.partner_connectors or (a.name,))
            else:
                self.partner_ranges.pop(a.name, None)
                self.partner_via.pop(a.name, None)
        for gone in [n for n in self.buckets if n not in by_name]:
            del self.buckets[gone]
        self.ingress.senders = {a.name: r for a in accounts
                                if (r := SenderRules.of(a.senders)) is not None}
        ended = 0
        for conn in list(self.sessions):
            if conn.account is None:
                continue
            now_is = by_name.get(conn.account)
            why = "removed" if now_is is None else account_refusal(now_is, conn.peer)
            if why is None:
                continue
            log.warning("ending the session: its account changed",
                        extra={"session": conn.conn_id, "account": conn.account,
                               "peer": conn.peer, "reason": why})
            self.sessions.discard(conn)  # ended once, though the poll comes again
            task = asyncio.ensure_future(conn.unbind_and_close(unbind_timeout_s))
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)
            ended += 1
        return ended

    # -- submit ---------------------------------------------------------------------------------
    def _throttle(self, account: str, messages: int = 1) -> None:
        bucket = self.buckets.get(account)
        if bucket is not None and not bucket.take(self.clock(), messages):
            raise Refused(Refusal.THROTTLED)

    def _build(self, account: str, sub: Submission, now: float) -> Message:
        """The message of a submission (validated, normalised, not yet durable): the one way
        from a submit to a message for submit_sm, data_sm and submit_multi alike. A partner
        account's destination must lie in its ranges, judged on the E.164 number after
        normalisation (so "0701..." and "+4670..." are one number): else ESME_RINVDSTADR."""
        no_via = self.partner_via.get(account)
        if no_via is not None:
            sub = replace(sub, extra={**sub.extra, "no_via": no_via})
        msg = self.ingress.build(sub, now)
        ranges = self.partner_ranges.get(account)
        if ranges is not None and not in_ranges(msg.destination, ranges):
            raise Refused(Refusal.DESTINATION_NOT_ALLOWED)
        return msg

    def _submission(self, account: str, pdu: Pdu, dest: tuple[int, int, str] | None = None,
                    ) -> Submission:
        f = pdu.fields
        now = self.clock()
        content = f.get("short_message", b"")
        assert isinstance(content, bytes)
        esm_class = int(f.get("esm_class", 0))  # type: ignore[arg-type]
        extra: dict[str, int | str] = {}
        if pdu.tlvs:  # most submits carry none
            content, esm_class = self._read_tlvs(pdu, content, esm_class, extra)
        else:
            check_message_type(esm_class)
        if esm_class & ESM_UDHI:
            check_one_part(content, int(f.get("data_coding", 0)))  # type: ignore[arg-type]
        try:
            schedule = parse_smpp_time(str(f.get("schedule_delivery_time", "")), now)
        except SmppTimeError:
            raise Refused(Refusal.INVALID_SCHEDULE) from None
        try:
            expires = parse_smpp_time(str(f.get("validity_period", "")), now)
        except SmppTimeError:
            raise Refused(Refusal.INVALID_EXPIRY) from None
        if dest is None:
            dest = (int(f["dest_addr_ton"]), int(f["dest_addr_npi"]),  # type: ignore[arg-type]
                    str(f["destination_addr"]))
        return Submission(
            account=account,
            source_addr=str(f["source_addr"]),
            source_ton=int(f["source_addr_ton"]),  # type: ignore[arg-type]
            source_npi=int(f["source_addr_npi"]),  # type: ignore[arg-type]
            dest_ton=dest[0],
            dest_npi=dest[1],
            dest_addr=dest[2],
            content=content,
            data_coding=int(f.get("data_coding", 0)),  # type: ignore[arg-type]
            esm_class=esm_class,
            registered_delivery=int(f.get("registered_delivery", 0)),  # type: ignore[arg-type]
            priority=int(f.get("priority_flag", 0)),  # type: ignore[arg-type]
            protocol_id=int(f.get("protocol_id", 0)),  # type: ignore[arg-type]
            schedule_at=schedule,
            expires_at=expires,
            extra=extra,
        )

    @staticmethod
    def _read_tlvs(pdu: Pdu, content: bytes, esm_class: int,
                   extra: dict[str, int | str]) -> tuple[bytes, int]:
        """message_payload, SAR and user_message_reference: the content and esm_class to
        store; what to pass on goes into ``extra``."""
        tags = [t for t, _ in pdu.tlvs]
        for tag in READ_TLV_TAGS:  # read as one value each: a second one would be ignored
            if tags.count(tag) > 1:
                raise Refused(Refusal.PARAMETER_NOT_ALLOWED)
        payload = pdu.tlv("message_payload")
        if payload is not None:
            if content:
                raise Refused(Refusal.MESSAGE_TOO_LONG)  # both short_message and message_payload
            content = payload if isinstance(payload, bytes) else str(payload).encode("latin-1")
        check_message_type(esm_class)
        ref, total, seq = (pdu.tlv("sar_msg_ref_num"), pdu.tlv("sar_total_segments"),
                           pdu.tlv("sar_segment_seqnum"))
        if ref is not None or total is not None or seq is not None:
            if ref is None or total is None or seq is None or esm_class & ESM_UDHI:
                raise Refused(Refusal.MISSING_PARAMETER if not esm_class & ESM_UDHI
                              else Refusal.INVALID_PARAMETER)
            try:
                info = ConcatInfo(int(ref), int(total), int(seq))
            except ValueError:
                raise Refused(Refusal.INVALID_PARAMETER) from None
            # what goes on the air: the SAR parameters become a concatenation UDH
            content = concat_udh(info, ref16=info.reference > 255) + content
            esm_class |= ESM_UDHI
            extra["sar"] = f"{info.reference}/{info.total}/{info.seqnum}"
        umr = pdu.tlv("user_message_reference")
        if isinstance(umr, int):
            extra["user_message_reference"] = umr
        hops = pdu.tlv(HOPS_TLV)  # SMSCs it has been through (another adressat's count)
        if isinstance(hops, int):
            extra["hops"] = hops
        return content, esm_class

    def _submit(self, conn: SmppConnection, pdu: Pdu) -> Pdu | Later:
        """Refusals are answered at once; an accepted message is answered by the commit's
        callback, after its commit (I1). No future, coroutine or task per submit: this is the
        path every message takes."""
        t0 = time.perf_counter()
        account = conn.account
        assert account is not None
        try:
            self._throttle(account)
            sub = self._submission(account, pdu)
            self.ingress.check_capacity()
            msg = self._build(account, sub, self.clock())
            self.ingress.commit_then(
                [msg], functools.partial(self._committed, conn, pdu, msg.id, t0),
                wanted=lambda: not conn.is_gone)
        except Refused as e:
            self.ingress.refused += 1
            return self._refuse(conn, pdu, smpp_status(e.reason), t0)
        return LATER

    def _refuse(self, conn: SmppConnection, pdu: Pdu, status: S, t0: float) -> Pdu:
        self._refused.add(status.name)
        SUBMIT_LATENCY.observe(time.perf_counter() - t0)
        return _refused(conn, pdu, status)

    def _committed(self, conn: SmppConnection, pdu: Pdu, message_id: str, t0: float,
                   error: BaseException | None) -> None:
        if error is None:
            conn.answer(pdu.response(message_id=message_id))
            SUBMIT_LATENCY.observe(time.perf_counter() - t0)
            return
        # nothing durable: the sender must not take it for accepted
        status = smpp_status(commit_refusal(error))
        log.error("commit failed", extra={"session": conn.conn_id, "account": conn.account,
                                          "status": status.name, "seq": pdu.sequence_number,
                                          "error_type": type(error).__name__})
        self._refused.add(status.name)
        conn.answer(pdu.response(status))
        SUBMIT_LATENCY.observe(time.perf_counter() - t0)

    async def _submit_multi(self, conn: SmppConnection, pdu: Pdu) -> Pdu:
        """One message per SME destination, committed together; the response carries the id
        of the first accepted one and lists each refused destination with its status.
        Distribution lists are not kept here: each dl_name is refused (ESME_RINVDLNAME)."""
        account = conn.account
        assert account is not None
        dests = pdu.fields["dest_addresses"]
        assert isinstance(dests, tuple)
        if not dests:
            return pdu.response(S.ESME_RINVNUMDESTS)
        now = self.clock()
        msgs = []
        seen: set[str] = set()  # E.164 destinations already taken
        unsuccess: list[dict[str, int | str]] = []
        try:
            self._throttle(account, len(dests))  # throughput counts messages, not PDUs
            self.ingress.check_capacity()
        except Refused as e:
            status = smpp_status(e.reason)
            self._refused.add(status.name)
            return pdu.response(status)
        for d in dests:
            if d.get("dest_flag") != 1:
                unsuccess.append({"dest_addr_ton": 0, "dest_addr_npi": 0,
                                  "destination_addr": str(d.get("dl_name", ""))[:20],
                                  "error_status_code": int(S.ESME_RINVDLNAME)})
                continue
            ton, npi, addr = int(d["dest_addr_ton"]), int(d["dest_addr_npi"]), str(
                d["destination_addr"])
            try:
                msg = self._build(account, self._submission(account, pdu, (ton, npi, addr)), now)
                if msg.destination not in seen:  # one number listed twice gets it once
                    seen.add(msg.destination)
                    msgs.append(msg)
                continue
            except Refused as e:
                status = smpp_status(e.reason)
            unsuccess.append({"dest_addr_ton": ton, "dest_addr_npi": npi,
                              "destination_addr": addr, "error_status_code": int(status)})
        if not msgs:
            # one reason for every destination (all invalid, or a bad validity or schedule
            # shared by all) is said as it is; mixed reasons as ESME_RSUBMITFAIL
            statuses = {int(u["error_status_code"]) for u in unsuccess}
            status = S(statuses.pop()) if len(statuses) == 1 else S.ESME_RSUBMITFAIL
            self._refused.add(status.name)
            return pdu.response(status)
        try:
            await self.ingress.commit(msgs)
        except (Refused, StoreUnavailable) as e:  # nothing durable, as for submit_sm
            status = smpp_status(commit_refusal(e))
            self._refused.add(status.name)
            return pdu.response(status)
        return pdu.response(message_id=msgs[0].id, unsuccess_smes=tuple(unsuccess))

    # -- query / cancel / replace ---------------------------------------------------------------
    async def _own_message(self, conn: SmppConnection, message_id: str) -> Message | None:
        msg = await self.committer.read(lambda s: s.get_message(message_id))
        if msg is None or msg.account != conn.account:
            return None  # another account's message does not exist for this one (I4)
        return msg

    async def _query(self, conn: SmppConnection, pdu: Pdu) -> Pdu:
        mid = str(pdu.fields["message_id"])
        msg = await self._own_message(conn, mid)
        if msg is None:
            return pdu.response(S.ESME_RQUERYFAIL)
        final = format_smpp_time(msg.final_at) if msg.final_at else ""
        return pdu.response(
            message_id=mid,
            final_date=final,
            message_state=int(QUERY_STATE[msg.state]),
            error_code=min(int(msg.error or 0), 255),
        )

    async def _cancel(self, conn: SmppConnection, pdu: Pdu) -> Pdu:
        mid = str(pdu.fields["message_id"])
        account = conn.account
        assert account is not None
        if not mid:  # cancelling by source/destination alone is not offered
            return pdu.response(S.ESME_RCANCELFAIL)
        now = self.clock()
        try:
            msg = await self.committer.run(lambda s: s.cancel(mid, account, now))
        except (UnknownMessage, NotPending):
            return pdu.response(S.ESME_RCANCELFAIL)
        self.receipts.wake(account)
        FINAL.labels(account, msg.route, msg.state.value).inc()
        log.debug("cancelled", extra={"message_id": mid, "account": account,
                                      "session": conn.conn_id,
                                     "state": msg.state.value})
        return pdu.response()

    async def _replace(self, conn: SmppConnection, pdu: Pdu) -> Pdu:
        f = pdu.fields
        mid = str(f["message_id"])
        account = conn.account
        assert account is not None
        now = self.clock()
        content = f["short_message"]
        assert isinstance(content, bytes)
        try:
            schedule = parse_smpp_time(str(f["schedule_delivery_time"]), now)
        except SmppTimeError:
            return pdu.response(S.ESME_RINVSCHED)
        try:
            expires = parse_smpp_time(str(f["validity_period"]), now)
        except SmppTimeError:
            return pdu.response(S.ESME_RINVEXPIRY)
        rd = int(f["registered_delivery"])  # type: ignore[arg-type]
        key = self.ingress.tag_key

        def op(s: Store) -> Message:
            old = s.get_message(mid)
            if old is None or old.account != account:
                raise UnknownMessage(mid)
            if old.esm_class & ESM_UDHI:  # the new content is the same part: its own UDH
                check_one_part(content, old.data_coding)
            tag = binding_tag(key, mid, old.destination, content, old.data_coding,
                              old.esm_class)
            return s.replace(mid, account, now, content=content, tag=tag,
                             registered_delivery=rd, not_before=schedule, expires_at=expires)

        try:
            await self.committer.run(op)
        except Refused as e:
            return pdu.response(smpp_status(e.reason))
        except (UnknownMessage, NotPending, ValueError):
            return pdu.response(S.ESME_RREPLACEFAIL)
        return pdu.response()
