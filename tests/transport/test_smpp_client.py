"""SmppConnector against a partner sink of our own on real sockets (127.0.0.1)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time

import pytest
from transport_kit import Deliveries, config, connector, run, sm, until

from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.session import SessionLimits
from adressat.testing.partner import PartnerModes, PartnerSink
from adressat.transport.smpp_client import (
    NotBound,
    SmppConnector,
    SubmitAnswer,
    SubmitUnanswered,
)


def test_bind_trx_submit_and_receipt() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.05), system_id="adressat",
                           password="secret")
        port = await sink.start()
        got = Deliveries()
        c = connector(port, got, system_type="hub")
        await c.start()
        assert await until(lambda: c.bound)
        answer = await c.submit(sm(text=b"hi there"))
        assert isinstance(answer, SubmitAnswer)
        assert answer.status == S.ESME_ROK and answer.message_id == str(0xA000)
        assert await until(lambda: len(got.got) == 1)
        view, session_id = got.got[0]
        assert view.is_receipt and view.receipted_message_id == answer.message_id
        assert session_id == answer.session_id  # trx: one session for both
        rec = sink.submits[0]
        assert (rec.destination, rec.source, rec.content) == ("46731234567", "46701000001",
                                                             b"hi there")
        assert sink.binds[0] == ("adressat", "trx", 0)
        assert await until(lambda: sink.receipts[0].status == S.ESME_ROK)
        st = c.status()
        assert (st.state, st.sessions, st.sent, st.failed, st.receipts) == ("bound", 1, 1, 0, 1)
        await c.stop()
        await sink.stop()

    run(go())


def test_bind_tx_rx_two_sessions_receipt_on_the_receiver() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.0))
        port = await sink.start()
        got = Deliveries()
        c = connector(port, got, bind="tx")
        await c.start()
        assert await until(lambda: c.status().state == "bound")
        assert sorted(b for _, b, _ in sink.binds) == ["rx", "tx"]
        assert c.status().sessions == 2
        answer = await c.submit(sm())
        assert await until(lambda: len(got.got) == 1)
        _, session_id = got.got[0]
        assert session_id != answer.session_id  # the receipt came on the receiver
        tx = [s for s in sink.bound_sessions() if s.bind == "tx"][0]
        assert sink.submits[0].session == tx.conn_id
        await c.stop()
        assert sink.unbinds == 2
        await sink.stop()

    run(go())


def test_window_limit_honoured() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(resp_delay_s=0.15))
        port = await sink.start()
        c = connector(port, window=3)
        await c.start()
        assert await until(lambda: c.bound)
        in_use: list[int] = []

        async def watch() -> None:
            while True:
                in_use.append(c.status().window_in_use)
                await asyncio.sleep(0.01)

        w = asyncio.create_task(watch())
        answers = await asyncio.gather(*(c.submit(sm(f"4673{i:07d}")) for i in range(12)))
        w.cancel()
        assert all(a.status == S.ESME_ROK for a in answers)
        assert sink.outstanding_max == 3  # reached, never exceeded
        assert max(in_use) == 3
        assert len({a.message_id for a in answers}) == 12
        await c.stop()
        await sink.stop()

    run(go())


def test_throughput_honoured() -> None:
    async def go() -> None:
        sink = PartnerSink()
        port = await sink.start()
        c = connector(port, window=50, throughput_per_s=40)
        await c.start()
        assert await until(lambda: c.bound)
        n = 30
        t0 = time.monotonic()
        await asyncio.gather(*(c.submit(sm()) for _ in range(n)))
        elapsed = time.monotonic() - t0
        # 40/s with at most 4 saved up (burst 0.1 s): at least (30 - 4) / 40 = 0.65 s
        assert elapsed >= 0.6, elapsed
        assert elapsed < 3.0, elapsed
        times = [r.received_at for r in sink.submits]
        first_second = sum(1 for t in times if t - times[0] < 0.5)
        assert first_second <= 4 + 0.5 * 40 + 2  # bounded measurement, generous
        await c.stop()
        await sink.stop()

    run(go())


def test_throughput_zero_is_no_limit() -> None:
    async def go() -> None:
        sink = PartnerSink()
        port = await sink.start()
        c = connector(port, window=50)
        await c.start()
        assert await until(lambda: c.bound)
        t0 = time.monotonic()
        await asyncio.gather(*(c.submit(sm()) for _ in range(100)))
        assert time.monotonic() - t0 < 2.0
        await c.stop()
        await sink.stop()

    run(go())


def test_not_bound_while_down_and_detail_names_it() -> None:
    async def go() -> None:
        sink = PartnerSink()
        port = await sink.start()
        await sink.stop()  # nobody listens there now
        c = connector(port)
        with pytest.raises(NotBound):
            await c.submit(sm())  # not started
        await c.start()
        assert await until(lambda: c.status().state == "down")
        st = c.status()
        assert st.detail == "connection refused" and st.sessions == 0
        t0 = time.monotonic()
        with pytest.raises(NotBound):
            await c.submit(sm())
        assert time.monotonic() - t0 < 0.05  # at once
        assert c.status().failed == 0  # nothing was sent
        await c.stop()
        assert c.status().state == "stopped"

    run(go())


def test_reconnect_after_the_sink_is_stopped_and_restarted() -> None:
    async def go() -> None:
        sink = PartnerSink()
        port = await sink.start()
        c = connector(port)
        await c.start()
        assert await until(lambda: c.bound)
        await c.submit(sm())
        await sink.stop()
        assert await until(lambda: not c.bound, 2.0)
        with pytest.raises(NotBound):
            await c.submit(sm())
        await asyncio.sleep(0.5)  # a few failed reconnects (backoff 0.05 .. 0.2 s)
        assert c.status().state == "down"
        t0 = time.monotonic()
        await sink.start()  # same port
        assert await until(lambda: c.bound, 2.0)
        assert time.monotonic() - t0 <= 0.2 + 0.1  # within one backoff at its maximum
        answer = await c.submit(sm())
        assert answer.status == S.ESME_ROK
        assert len(sink.binds) == 2
        await c.stop()
        await sink.stop()

    run(go())


def test_backoff_grows_to_its_maximum_with_jitter_and_is_seeded() -> None:
    def delays(seed: int) -> list[float]:
        c = SmppConnector(config(1), on_deliver=Deliveries(), reconnect_s_min=1.0,
                          reconnect_s_max=60.0, rng=random.Random(seed))
        return [c._backoff_s(n) for n in range(12)]

    d = delays(3)
    assert d == delays(3)  # deterministic for a seed
    assert d != delays(4)  # jitter
    assert all(1.0 <= x <= 60.0 for x in d)
    assert d[0] == 1.0 and 2.0 <= d[3] <= 8.0 and all(30.0 <= x for x in d[7:])


def test_submit_unanswered_when_the_sink_vanishes_mid_window() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(resp_delay_s=0.3, vanish_after=4))
        port = await sink.start()
        c = connector(port, window=6)
        await c.start()
        assert await until(lambda: c.bound)
        results = await asyncio.wait_for(asyncio.gather(
            *(c.submit(sm(f"4673{i:07d}")) for i in range(6)), return_exceptions=True), 3.0)
        assert all(isinstance(r, SubmitUnanswered) for r in results), results
        assert len(sink.submits) == 6  # all were sent; the sink answered none
        assert all(r.status is None or r.status == 0 for r in sink.submits)
        st = c.status()
        assert st.failed == 6 and st.sent == 0 and st.window_in_use == 0
        assert await until(lambda: c.bound, 2.0)  # and it comes back
        assert (await c.submit(sm())).status == S.ESME_ROK
        await c.stop()
        await sink.stop()

    run(go())


def test_submit_unanswered_on_response_timeout() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(resp_delay_s=2.0))
        port = await sink.start()
        c = connector(port, response_timeout_s=0.3)
        await c.start()
        assert await until(lambda: c.bound)
        t0 = time.monotonic()
        with pytest.raises(SubmitUnanswered):
            await c.submit(sm())
        assert 0.25 <= time.monotonic() - t0 < 1.0
        assert c.status().window_in_use == 0
        await c.stop(timeout_s=0.5)
        await sink.stop()

    run(go())


def test_throttled_answers_come_back_as_their_status() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(throttle_every=2, refuse={"4699": S.ESME_RINVDSTADR}))
        port = await sink.start()
        c = connector(port)
        await c.start()
        assert await until(lambda: c.bound)
        statuses = [(await c.submit(sm())).status for _ in range(4)]
        assert statuses == [0, S.ESME_RTHROTTLED, 0, S.ESME_RTHROTTLED]
        refused = await c.submit(sm("46991234567"))
        assert refused.status == S.ESME_RINVDSTADR and refused.message_id == ""
        st = c.status()
        assert (st.sent, st.failed) == (2, 3)
        await c.stop()
        await sink.stop()

    run(go())


def test_enquire_link_keeps_an_idle_session() -> None:
    async def go(enquire_link_s: float) -> int:
        sink = PartnerSink(limits=SessionLimits(idle_timeout_s=0.5, enquire_link_interval_s=0,
                                                bind_timeout_s=5))
        port = await sink.start()
        c = connector(port, enquire_link_s=enquire_link_s)
        await c.start()
        assert await until(lambda: c.bound)
        await asyncio.sleep(1.5)  # three idle timeouts of the sink
        binds = len(sink.binds)
        await c.stop()
        await sink.stop()
        return binds

    assert run(go(0.15)) == 1  # kept by enquire_link: never re-bound
    assert run(go(0.0)) >= 2  # control: without it the sink drops the idle session


def test_clean_unbind_on_stop() -> None:
    async def go() -> None:
        sink = PartnerSink()
        port = await sink.start()
        c = connector(port)
        await c.start()
        assert await until(lambda: c.bound)
        t0 = time.monotonic()
        await c.stop()
        assert time.monotonic() - t0 < 1.0
        assert sink.unbinds == 1
        assert await until(lambda: not sink.connections, 1.0)
        assert c.status().state == "stopped" and not c.bound
        with pytest.raises(NotBound):
            await c.submit(sm())
        await c.start()  # a stopped connector starts again
        assert await until(lambda: c.bound)
        await c.stop()
        assert sink.unbinds == 2
        await sink.stop()

    run(go())


def test_stop_waits_for_submits_in_flight_then_unbinds() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(resp_delay_s=0.2))
        port = await sink.start()
        c = connector(port, window=5)
        await c.start()
        assert await until(lambda: c.bound)
        pending = [asyncio.create_task(c.submit(sm())) for _ in range(3)]
        await until(lambda: sink.outstanding == 3)
        await c.stop(timeout_s=2.0)
        answers = await asyncio.gather(*pending)
        assert [a.status for a in answers] == [0, 0, 0]
        assert sink.unbinds == 1
        await sink.stop()

    run(go())


def test_reconfigure_window_applies_at_once() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(resp_delay_s=0.3))
        port = await sink.start()
        c = connector(port, window=1)
        await c.start()
        assert await until(lambda: c.bound)
        tasks = [asyncio.create_task(c.submit(sm())) for _ in range(6)]
        assert await until(lambda: sink.outstanding == 1)
        await asyncio.sleep(0.05)
        assert sink.outstanding == 1
        c.reconfigure(dataclasses.replace(c.config, window=4))
        assert await until(lambda: sink.outstanding == 4, 0.2)  # before the first answer
        await asyncio.gather(*tasks)
        assert sink.outstanding_max == 4
        assert len(sink.binds) == 1  # no re-bind for a window change
        await c.stop()
        await sink.stop()

    run(go())


def test_reconfigure_port_rebinds_to_the_new_partner() -> None:
    async def go() -> None:
        old, new = PartnerSink(), PartnerSink()
        port_old, port_new = await old.start(), await new.start()
        c = connector(port_old)
        await c.start()
        assert await until(lambda: c.bound)
        c.reconfigure(dataclasses.replace(c.config, port=port_new))
        assert await until(lambda: len(new.binds) == 1 and c.bound, 2.0)
        assert await until(lambda: old.unbinds == 1, 2.0)  # the old one unbound cleanly
        await c.submit(sm())
        assert len(new.submits) == 1 and len(old.submits) == 0
        await c.stop()
        await old.stop()
        await new.stop()

    run(go())


def test_bad_config_is_refused_and_changes_nothing() -> None:
    good = config(2775)
    with pytest.raises(ValueError, match="password"):
        SmppConnector(dataclasses.replace(good, password="much too long"),
                      on_deliver=Deliveries())
    c = SmppConnector(good, on_deliver=Deliveries())
    for bad, field in ((dict(window=0), "window"), (dict(bind="rx"), "bind"),
                       (dict(port=0), "port"), (dict(system_id="x" * 16), "system_id"),
                       (dict(name="other"), "name")):
        with pytest.raises(ValueError, match=field):
            c.reconfigure(dataclasses.replace(good, **bad))  # type: ignore[arg-type]
    assert c.config == good


def test_bind_refused_says_the_status_and_retries() -> None:
    async def go() -> None:
        sink = PartnerSink(password="right")
        port = await sink.start()
        c = connector(port, password="wrong")
        await c.start()
        assert await until(lambda: len(sink.binds) >= 2, 2.0)  # it keeps trying
        st = c.status()
        assert st.state in ("down", "connecting") and st.detail == "ESME_RINVPASWD"
        c.reconfigure(dataclasses.replace(c.config, password="right"))
        assert await until(lambda: c.bound, 2.0)
        assert c.status().detail == ""
        await c.stop()
        await sink.stop()

    run(go())


def test_deliver_sm_is_answered_with_what_on_deliver_returns() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.0), receipt_retry_s=0.05)
        port = await sink.start()
        got = Deliveries(status=S.ESME_RX_T_APPN)
        c = connector(port, got)
        await c.start()
        assert await until(lambda: c.bound)
        await c.submit(sm())
        assert await until(lambda: len(got.got) == 3, 3.0)  # the partner tried 3 times
        assert [r.status for r in sink.receipts] == [S.ESME_RX_T_APPN]
        got.status = S.ESME_ROK
        await c.stop()
        await sink.stop()

    run(go())


def test_on_deliver_raising_answers_a_temporary_error() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.0), receipt_attempts_max=1)
        port = await sink.start()

        async def broken(view: object, session_id: int) -> int:
            raise RuntimeError("store down")

        c = connector(port, broken)
        await c.start()
        assert await until(lambda: c.bound)
        await c.submit(sm())
        assert await until(lambda: bool(sink.receipts) and sink.receipts[0].status is not None)
        assert sink.receipts[0].status == S.ESME_RX_T_APPN
        assert c.bound  # the session goes on
        await c.stop()
        await sink.stop()

    run(go())


def test_logs_name_the_connector_and_never_the_text(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.0))
        port = await sink.start()
        c = connector(port)
        await c.start()
        assert await until(lambda: c.bound)
        await c.submit(sm(text=b"top secret words"))
        await sink.stop()
        assert await until(lambda: c.status().detail == "connection refused", 2.0)
        await c.stop()

    with caplog.at_level(logging.INFO, logger="adressat.smpp.client"):
        run(go())
    records = [r for r in caplog.records if r.name == "adressat.smpp.client"]
    events = {r.getMessage() for r in records}
    assert {"connector bound", "connector session closed", "connector reconnect",
            "connector connect failed"} <= events
    assert all(getattr(r, "connector", None) == "partner1" for r in records)
    for r in records:
        assert "secret" not in str(vars(r))


def test_receipt_before_the_response_reaches_on_deliver_first() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(receipt_before_resp=True))
        port = await sink.start()
        order: list[str] = []

        async def on_deliver(view: object, session_id: int) -> int:
            order.append("receipt")
            return 0

        c = connector(port, on_deliver)
        await c.start()
        assert await until(lambda: c.bound)
        answer = await c.submit(sm())
        order.append("answer")
        assert order == ["receipt", "answer"]
        assert answer.status == 0 and c.status().receipts == 1
        await c.stop()
        await sink.stop()

    run(go())


def test_a_submit_that_cannot_be_encoded_is_a_local_error_and_sends_nothing() -> None:
    async def go() -> None:
        sink = PartnerSink()
        port = await sink.start()
        c = connector(port, window=1)
        await c.start()
        assert await until(lambda: c.bound)
        with pytest.raises(ValueError):
            await c.submit(sm(dest="4" * 30))  # destination_addr longer than 20
        assert c.status().window_in_use == 0 and c.status().failed == 0
        assert (await c.submit(sm())).status == 0  # the slot was given back
        assert len(sink.submits) == 1
        await c.stop()
        await sink.stop()

    run(go())
