"""The receipt sender: outbox rows -> deliver_sm to the submitting account only (I4).

A receipt leaves only towards the account that submitted the message (the outbox row's
account was copied from the message row by the store), over whichever of that account's RX or
TRX sessions is bound; it stays in the outbox while none is, and is marked sent only after a
deliver_sm_resp with ESME_ROK. Unanswered or refused receipts are sent again after
``resend_s``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from adressat.core.model import Receipt, State
from adressat.observe.logs import known
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.constants import MessageState, TlvTag
from adressat.smpp.pdus import Pdu
from adressat.sms.receipt import DeliveryReceipt, ReceiptStat, build_receipt
from adressat.store.commit import GroupCommitter

log = logging.getLogger("adressat.receipts")

STAT: dict[State, tuple[ReceiptStat, MessageState]] = {
    State.DELIVERED: (ReceiptStat.DELIVRD, MessageState.DELIVERED),
    State.EXPIRED: (ReceiptStat.EXPIRED, MessageState.EXPIRED),
    State.UNDELIVERABLE: (ReceiptStat.UNDELIV, MessageState.UNDELIVERABLE),
    State.QUARANTINED: (ReceiptStat.UNDELIV, MessageState.UNDELIVERABLE),
    State.REJECTED: (ReceiptStat.REJECTD, MessageState.REJECTED),
    State.CANCELLED: (ReceiptStat.DELETED, MessageState.DELETED),
    # a partner never said (issue 11): not guessed, said as it is
    State.UNKNOWN: (ReceiptStat.UNKNOWN, MessageState.UNKNOWN),
}


class ReceiverSession(Protocol):
    account: str | None
    interface_version: int  # from the bind: below 0x34 (SMPP 3.3) no TLVs are sent

    async def request(self, pdu: Pdu) -> Pdu: ...


def receipt_pdu(r: Receipt) -> Pdu:
    """deliver_sm carrying a receipt: addresses swapped, esm_class 0x04, no original text."""
    stat, mstate = STAT[r.state]
    text = build_receipt(
        DeliveryReceipt(
            id=r.message_id,
            sub=1,
            dlvrd=1 if r.state is State.DELIVERED else 0,
            submit_date=datetime.fromtimestamp(r.submitted_at, tz=UTC),
            done_date=datetime.fromtimestamp(r.final_at, tz=UTC),
            stat=stat,
            err=f"{r.error or 0:03d}",
        )
    )
    # the checked template of Pdu.make, filled in per receipt (one receipt per message)
    fields = dict(_DELIVER_SM_TEMPLATE.fields)
    fields["source_addr"] = r.destination
    fields["dest_addr_ton"] = r.source_ton
    fields["dest_addr_npi"] = r.source_npi
    fields["destination_addr"] = r.source_addr
    fields["short_message"] = text.encode("ascii")
    tlvs: tuple[tuple[int, int | str | bytes], ...] = (
        (TlvTag.RECEIPTED_MESSAGE_ID, r.message_id),
        (TlvTag.MESSAGE_STATE, int(mstate)),
    )
    if r.user_message_reference is not None:  # the submitter's own reference, back to it
        tlvs += ((TlvTag.USER_MESSAGE_REFERENCE, r.user_message_reference),)
    return Pdu(C.DELIVER_SM, 0, 0, fields, tlvs)


_DELIVER_SM_TEMPLATE = Pdu.make(
    C.DELIVER_SM, 0, source_addr_ton=1, source_addr_npi=1, esm_class=0x04
)


#: the in-flight map is pruned of entries past resend_s once it holds more than this
IN_FLIGHT_PRUNE_AT = 1000


class ReceiptSender:
    def __init__(
        self,
        committer: GroupCommitter,
        *,
        resend_s: float,
        batch_max: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.committer = committer
        self.resend_s = resend_s
        self.batch_max = batch_max
        self.clock = clock
        self.receivers: dict[str, list[ReceiverSession]] = {}
        self._in_flight: dict[int, float] = {}  # receipt_id -> sent at
        self._dirty: set[str] = set()
        self._rounds: dict[str, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._rr = 0
        self.sent = 0
        self.failed = 0

    # -- sessions -------------------------------------------------------------------------------
    def add_receiver(self, account: str, session: ReceiverSession) -> None:
        self.receivers.setdefault(account, []).append(session)
        self.wake(account)

    def remove_receiver(self, account: str, session: ReceiverSession) -> None:
        lst = self.receivers.get(account, [])
        if session in lst:
            lst.remove(session)
        if not lst:
            self.receivers.pop(account, None)

    def wake(self, account: str) -> None:
        self._dirty.add(account)
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # -- loop -----------------------------------------------------------------------------------
    async def run(self) -> None:
        last_sweep = 0.0
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._wake.clear()
            now = self.clock()
            if now - last_sweep >= min(self.resend_s, 5.0):  # resends and missed wake-ups
                self._dirty.update(self.receivers)
                last_sweep = now
            # one round per account at a time, accounts side by side: an ESME that does not
            # answer its deliver_sm must not hold up every other account's receipts
            self._dirty.intersection_update(self.receivers)
            for account in [a for a in self._dirty if a not in self._rounds]:
                self._dirty.discard(account)
                self._rounds[account] = asyncio.ensure_future(self._round(account))
        for task in list(self._rounds.values()):
            task.cancel()

    async def _round(self, account: str) -> None:
        try:
            await self._send_account(account)
        except Exception:  # noqa: BLE001 - keep sending the others
            log.exception("receipt round failed", extra={"account": account})
        finally:
            self._rounds.pop(account, None)
            self._wake.set()  # an account marked while its round ran goes again

    async def _send_account(self, account: str) -> None:
        now = self.clock()
        in_flight = self._in_flight
        if len(in_flight) > IN_FLIGHT_PRUNE_AT:
            # an entry older than resend_s decides nothing (that receipt may go again), and
            # one whose receipt is gone (retention, a refusal never retried) would stay
            # forever: bounded by the receipts sent within resend_s
            for rid in [i for i, at in in_flight.items() if now - at >= self.resend_s]:
                del in_flight[rid]
        # a read: no write lock, no transaction; rows whose mark is not durable yet are still
        # in ``in_flight`` (popped only after the mark's commit), so they are not sent twice
        rows = await self.committer.read(
            lambda s: s.pending_receipts(account, self.batch_max + len(in_flight))
        )
        todo = [r for r in rows if now - in_flight.get(r.receipt_id, -1e18) >= self.resend_s]
        todo = todo[: self.batch_max]
        if not todo:
            return
        results = await asyncio.gather(*(self._send_one(r) for r in todo))
        done = [r.receipt_id for r, ok in zip(todo, results, strict=True) if ok]
        if done:
            # marked in one statement, not awaited: until the mark is durable these stay in
            # ``in_flight`` (not sent again before resend_s)
            t = self.clock()
            marked = self.committer.enqueue(lambda s: s.mark_receipts_sent(done, t))
            marked.add_done_callback(functools.partial(self._marked, done))
        if len(rows) >= self.batch_max:
            self.wake(account)

    def _marked(self, done: list[int], f: asyncio.Future[int]) -> None:
        if f.cancelled() or f.exception() is not None:
            log.error("marking receipts sent failed; they are sent again after resend_s",
                      extra={"receipts": len(done), "error_type": type(
                          asyncio.CancelledError() if f.cancelled() else f.exception()).__name__})
            return
        for i in done:
            self._in_flight.pop(i, None)
        self.sent += len(done)

    async def _send_one(self, r: Receipt) -> bool:
        sessions = self.receivers.get(r.account)
        if not sessions:
            return False
        self._rr += 1
        session = sessions[self._rr % len(sessions)]
        assert session.account == r.account  # I4: only the submitting account's sessions
        self._in_flight[r.receipt_id] = self.clock()
        try:
            pdu = receipt_pdu(r)
            if session.interface_version < 0x34:  # SMPP 3.4 2.2.1: no TLVs to a 3.3 ESME
                pdu = pdu._replace(tlvs=())
            resp = await session.request(pdu)
        except (TimeoutError, ConnectionError):
            self.failed += 1
            self._in_flight.pop(r.receipt_id, None)  # eligible again on the next round
            self.wake(r.account)
            return False
        if resp.command_status != S.ESME_ROK:
            self.failed += 1
            log.debug("receipt refused", extra={"message_id": r.message_id, "account": r.account,
                                                "session": session.conn_id,
                                                "status": known(S, resp.command_status)})
            return False
        if log.isEnabledFor(logging.DEBUG):  # not even the extra dict when the level is off
            log.debug("receipt sent", extra={"message_id": r.message_id, "account": r.account,
                                             "session": session.conn_id,
                                            "state": r.state.value})
        return True
