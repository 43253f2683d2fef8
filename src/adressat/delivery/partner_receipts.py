"""Receipts from partner operators, over our connectors (issue 11).

A partner's deliver_sm with a receipt (esm_class 0x04, SMPP 3.4 §5.2.12) names the partner's
message id (the ``receipted_message_id`` TLV, else the text's ``id:``) and the outcome (the
``message_state`` TLV, else ``stat:``). :meth:`PartnerReceipts.on_deliver` applies it in one
store transaction (``Store.apply_partner_receipt``) and only then answers the partner
ESME_ROK: a receipt the store did not take is answered ESME_RX_T_APPN (temporary: the
partner sends it again) and never lost by us. A receipt that comes before its mapping is
committed (a partner that answers at once, even before its submit_sm_resp) is held in the
store, not dropped, and applied when the mapping commits; any session of the connector will
do, since the lookup is by connector. A deliver_sm that is not a receipt (a mobile-originated
message) is refused ESME_RX_R_APPN: a connector is for our traffic out, partners submit to
us over a partner bind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from adressat.core.integrity import Alarm
from adressat.core.interconnect import (
    PARTNER_ID_LENGTH_MAX,
    ReceiptSpelling,
    id_candidates,
    receipt_final_state,
)
from adressat.core.model import Message, PartnerReceipt
from adressat.observe.metrics import PARTNER_RECEIPTS, TurnCounts
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.constants import EsmClass
from adressat.smpp.views import DeliverSm
from adressat.sms.receipt import ReceiptError, parse_receipt
from adressat.store.base import StoreError, StoreUnavailable
from adressat.store.commit import GroupCommitter
from adressat.store.forwards import ReceiptResult

__all__ = ["PartnerReceipts", "ReadReceipt", "read_receipt", "ESME_RX_T_APPN", "ESME_RX_R_APPN"]

log = logging.getLogger("adressat.interconnect")

ESME_RX_T_APPN = 0x64  # SMPP 3.4 §5.1.3: ESME receiver temporary app error
ESME_RX_R_APPN = 0x65  # ... reject the message, permanent
#: esm_class message types that carry an outcome: a delivery receipt, an intermediate
#: notification (SMPP 3.4 §5.2.12)
_RECEIPT_TYPES = frozenset({EsmClass.TYPE_DELIVERY_RECEIPT,
                            EsmClass.TYPE_INTERMEDIATE_NOTIFICATION})


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    partner_id: str
    message_state: int | None
    stat: str | None
    err: str


def read_receipt(pdu: DeliverSm) -> ReadReceipt | None:
    """What a deliver_sm says as a receipt; None when it is not one we can read."""
    if (pdu.esm_class & EsmClass.TYPE_MASK) not in _RECEIPT_TYPES:
        return None
    parsed = None
    state = pdu.message_state
    # the text only when the TLVs do not say it all (its err: matters only for a failure)
    if pdu.short_message and (not pdu.receipted_message_id or state is None or state != 2):
        try:
            parsed = parse_receipt(pdu.short_message)
        except ReceiptError:
            parsed = None
    raw = pdu.receipted_message_id or (parsed.id if parsed is not None else None)
    if not raw or len(raw) > PARTNER_ID_LENGTH_MAX:
        return None
    return ReadReceipt(
        raw,
        state,
        None if parsed is None or parsed.stat is None else parsed.stat.value,
        "" if parsed is None or parsed.err is None else parsed.err,
    )


class PartnerReceipts:
    """Applies partners' receipts (one per deliver_sm) and says what became final."""

    def __init__(
        self,
        committer: GroupCommitter,
        *,
        clock: Callable[[], float],
        on_final: Callable[[Message], None],
        on_alarm: Callable[[Alarm], None],
    ) -> None:
        self.committer = committer
        self.clock = clock
        self.on_final = on_final
        self.on_alarm = on_alarm
        self.counts: dict[tuple[str, str], int] = {}  # (connector, outcome) -> receipts
        self._metric = TurnCounts(PARTNER_RECEIPTS)  # one inc per label set and loop turn
        #: per ``auto`` connector, what its receipts showed of its partner's spelling (in
        #: memory: after a restart it is learned again from the next receipts)
        self.spellings: dict[str, ReceiptSpelling] = {}
        self._pending: list[tuple[PartnerReceipt, asyncio.Future[ReceiptResult]]] = []

    def _apply(self, receipt: PartnerReceipt) -> asyncio.Future[ReceiptResult]:
        """Apply with the others received in this loop turn: ONE committer operation
        (``Store.apply_partner_receipts``), each receipt's own result after the commit."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[ReceiptResult] = loop.create_future()
        self._pending.append((receipt, fut))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        receipts = [r for r, _ in pending]
        now = self.clock()

        def hand_out(batch: asyncio.Future[list[ReceiptResult]]) -> None:
            for i, (_, fut) in enumerate(pending):
                if fut.done():
                    continue
                if batch.cancelled():
                    fut.cancel()
                elif (error := batch.exception()) is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(batch.result()[i])

        try:
            batch = self.committer.enqueue(lambda s: s.apply_partner_receipts(receipts, now))
        except Exception as e:  # noqa: BLE001 - a full or closed queue: each is told
            for _, fut in pending:
                if not fut.done():
                    fut.set_exception(e if isinstance(e, StoreError)
                                      else StoreUnavailable("commit_queue", type(e).__name__))
            return
        batch.add_done_callback(hand_out)

    @staticmethod
    def _learn(connector: str, spelling: ReceiptSpelling, raw: str, matched: str) -> None:
        learned, mixed = spelling.learned, spelling.mixed
        spelling.saw(raw, matched)
        if spelling.learned is not None and learned is None:
            log.info("connector receipt spelling learned", extra={
                "connector": connector, "spelling": spelling.learned})
        elif spelling.mixed and not mixed:
            log.warning("connector receipts in more than one spelling: a receipt that reads as"
                        " several messages is applied to none; set the connector's"
                        " --receipt-ids if its partner's spelling is known", extra={
                            "connector": connector, "spellings": dict(spelling.counts)})

    def _count(self, connector: str, outcome: str) -> None:
        key = (connector, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        self._metric.add(connector, outcome)

    async def on_deliver(self, connector: str, pdu: DeliverSm, session: int, *,
                         receipt_ids: str = "auto") -> int:
        """The command_status to answer the partner's deliver_sm with, once it is durable.
        ``receipt_ids``: the connector's, how its partner spells ids in receipts."""
        read = read_receipt(pdu)
        if read is None:
            self._count(connector, "not_a_receipt")
            log.warning("deliver_sm from a partner refused: not a receipt we can read",
                        extra={"connector": connector, "session": session})
            return ESME_RX_R_APPN
        now = self.clock()
        try:
            candidates = id_candidates(read.partner_id, receipt_ids)
        except ValueError:
            self._count(connector, "not_a_receipt")
            log.warning("partner receipt refused: its id does not read as the connector's"
                        " receipt ids say", extra={"connector": connector, "session": session,
                                                   "receipt_ids": receipt_ids})
            return ESME_RX_R_APPN
        spelling = None
        if receipt_ids == "auto":
            spelling = self.spellings.setdefault(connector, ReceiptSpelling())
        receipt = PartnerReceipt(
            connector, candidates, receipt_final_state(read.message_state, read.stat), now,
            read.err, session,
            preferred=None if spelling is None else spelling.preferred(read.partner_id),
        )
        try:
            result = await self._apply(receipt)
        except StoreError as e:
            self._count(connector, "not_written")
            log.error("partner receipt not written; the partner will send it again",
                      extra={"connector": connector, "partner_id": candidates[0],
                             "error_type": type(e).__name__})
            return ESME_RX_T_APPN
        self._count(connector, result.outcome)
        if spelling is not None and result.partner_id is not None and not result.resolved:
            self._learn(connector, spelling, read.partner_id, result.partner_id)
        if result.alarm is not None:
            self.on_alarm(result.alarm)
        if result.outcome == "final" and result.message is not None:
            self.on_final(result.message)
        log.debug("partner receipt", extra={
            "connector": connector, "partner_id": candidates[0], "outcome": result.outcome,
            "message_id": None if result.message is None else result.message.id,
            "session": session})
        return int(S.ESME_ROK)
