"""The log formatters (observe/logs.py): every field, one line, JSON parseable, and nothing of
an exception's message or of bytes (I6)."""

from __future__ import annotations

import enum
import io
import json
import logging
import re
import sqlite3
import sys
import threading
import warnings
from collections.abc import Iterator

import pytest

from adressat.observe.logs import (
    JsonFormatter,
    TextFormatter,
    event_fields,
    iter_json_lines,
    setup_logging,
)
from adressat.smpp.constants import CommandStatus
from adressat.smpp.errors import SmppError

SECRET = "Hemligt-7Qx9 ÅÄÖ привет"
SECRET_BYTES = SECRET.encode("utf-16-be")
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ "
)


def record(name: str = "adressat.smpp", msg: object = "protocol violation",
           level: int = logging.WARNING, args: tuple[object, ...] = (),
           exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    rec = logging.LogRecord(name, level, __file__, 10, msg, args, exc_info)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:  # noqa: BLE001 - a test exception with its traceback
        return e


def both(rec: logging.LogRecord) -> tuple[str, dict[str, object]]:
    text = TextFormatter("smpp").format(rec)
    line = JsonFormatter("smpp").format(rec)
    assert "\n" not in text and "\r" not in text
    assert "\n" not in line
    return text, json.loads(line)


def assert_no_secret(*outputs: str) -> None:
    for out in outputs:
        for needle in (SECRET, SECRET[:6], SECRET_BYTES.hex(), json.dumps(SECRET)[1:-1],
                       repr(SECRET.encode())[2:-1]):
            assert needle not in out, (needle, out)


def test_every_field_in_both_formats() -> None:
    rec = record(session=12, account="demo", message_id="0123abcd", route="netsim",
                 serving_node="msc-2", status=CommandStatus.ESME_RINVCMDLEN,
                 reason="body shorter than its fields")
    text, obj = both(rec)
    assert list(obj)[:6] == ["time", "level", "logger", "process", "pid", "event"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(obj["time"]))
    assert obj["level"] == "WARNING"
    assert obj["logger"] == "adressat.smpp"
    assert obj["process"] == "smpp"
    assert obj["event"] == "protocol violation"
    assert obj["session"] == 12
    assert obj["account"] == "demo"
    assert obj["message_id"] == "0123abcd"
    assert obj["route"] == "netsim"
    assert obj["serving_node"] == "msc-2"
    assert obj["status"] == "ESME_RINVCMDLEN"
    assert obj["reason"] == "body shorter than its fields"
    assert TEXT_LINE.match(text), text
    assert " WARNING adressat.smpp protocol violation session=12 account=demo" in text
    assert "message_id=0123abcd route=netsim serving_node=msc-2 status=ESME_RINVCMDLEN" in text
    assert 'reason="body shorter than its fields"' in text


def test_time_is_utc_with_milliseconds() -> None:
    rec = record()
    rec.created, rec.msecs = 1796292000.123456, 123.456  # 2026-12-03T10:00:00.123Z
    _, obj = both(rec)
    assert obj["time"] == "2026-12-03T10:00:00.123Z"


def test_process_name_is_on_every_line() -> None:
    rec = record()
    assert json.loads(JsonFormatter("delivery").format(rec))["process"] == "delivery"
    assert " adressat.smpp[delivery] protocol violation" in TextFormatter("delivery").format(rec)


def test_a_value_cannot_break_the_line() -> None:
    text, obj = both(record(reason="two\nlines\r\x00 and \"quotes\" a=b", peer="1.2.3.4:5"))
    assert obj["reason"] == "two\nlines\r\x00 and \"quotes\" a=b"
    assert 'reason="two\\nlines\\r\\u0000 and \\"quotes\\" a=b"' in text
    assert "peer=1.2.3.4:5" in text
    text, obj = both(record(msg="an event\nwith a second line"))
    assert obj["event"] == "an event\nwith a second line"
    assert "an event\\nwith a second line" in text


def test_bytes_and_objects_are_never_written() -> None:
    class Holder:
        def __repr__(self) -> str:
            return SECRET

        __str__ = __repr__

    text, obj = both(record(content=SECRET.encode(), payload=bytearray(SECRET_BYTES),
                            obj=Holder(), nested=[SECRET.encode(), {"k": Holder()}]))
    assert obj["content"] == f"<{len(SECRET.encode())} octets>"
    assert obj["payload"] == f"<{len(SECRET_BYTES)} octets>"
    assert obj["obj"] == "<Holder>"
    assert obj["nested"] == [f"<{len(SECRET.encode())} octets>", {"k": "<Holder>"}]
    assert_no_secret(text, json.dumps(obj))


def test_long_values_and_lists_are_bounded() -> None:
    text, obj = both(record(reason="x" * 10_000, message_ids=[f"{i:032x}" for i in range(500)]))
    assert len(str(obj["reason"])) < 300
    ids = obj["message_ids"]
    assert isinstance(ids, list) and len(ids) == 51 and ids[-1] == "<450 more>"
    assert len(text) < 5000


def test_percent_arguments_of_our_calls_are_not_interpolated() -> None:
    text, obj = both(record(msg="integrity alarm %s", args=(SECRET,)))
    assert obj["event"] == "integrity alarm %s"
    assert_no_secret(text, json.dumps(obj))


def test_enums_by_name_and_numbers_as_numbers() -> None:
    class Kind(enum.Enum):
        STRAY_ACK = "stray_ack"

    _, obj = both(record(kind=Kind.STRAY_ACK, error=31, at=1.5, on=True, seq=None))
    assert obj["kind"] == "STRAY_ACK"
    assert (obj["error"], obj["at"], obj["on"], obj["seq"]) == (31, 1.5, True, None)


def test_a_field_named_like_a_fixed_key_does_not_overwrite_it() -> None:
    _, obj = both(record(event="mine", logger="x", time=3))
    assert obj["event"] == "protocol violation" and obj["logger"] == "adressat.smpp"
    assert (obj["extra_event"], obj["extra_logger"], obj["extra_time"]) == ("mine", "x", 3)


def test_exception_type_causes_and_frames_without_the_message() -> None:
    inner = raised(sqlite3.OperationalError(f"near {SECRET!r}: syntax error"))
    try:
        try:
            raise inner
        except sqlite3.Error as e:
            raise UnicodeDecodeError("utf-8", SECRET.encode(), 3, 4, SECRET) from e
    except UnicodeDecodeError as e:
        exc: BaseException = e
    text, obj = both(record(msg="queue gauge refresh failed", level=logging.ERROR, exc=exc))
    assert obj["error_type"] == "UnicodeDecodeError"
    assert obj["error_causes"] == ["sqlite3.OperationalError"]
    tb = obj["traceback"]
    assert isinstance(tb, list) and tb
    assert all(re.fullmatch(r"\S+\.py:\d+:\S+", f) for f in tb), tb
    assert any("test_logs.py" in f and "test_exception_type" in f for f in tb)
    assert_no_secret(text, json.dumps(obj))
    assert "Traceback" not in text and "syntax error" not in text


def test_safe_error_codes_are_kept() -> None:
    os_error = raised(FileNotFoundError(2, f"no such file {SECRET}"))
    _, obj = both(record(exc=os_error))
    assert (obj["error_type"], obj["error_code"]) == ("FileNotFoundError", "ENOENT")
    smpp = raised(SmppError(CommandStatus.ESME_RINVMSGLEN, f"bad {SECRET}"))
    text, obj = both(record(exc=smpp))
    assert obj["error_type"] == "adressat.smpp.errors.SmppError"
    assert obj["error_code"] == "ESME_RINVMSGLEN"
    assert_no_secret(text, json.dumps(obj))
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.Error) as info:
        conn.execute(f"SELECT '{SECRET}' FROM nowhere")
    text, obj = both(record(exc=raised(info.value)))
    assert obj["error_code"] == "SQLITE_ERROR"
    assert_no_secret(text, json.dumps(obj))


def test_an_explicit_error_type_wins() -> None:
    _, obj = both(record(exc=raised(ValueError(SECRET)), error_type="ValueError"))
    assert obj["error_type"] == "ValueError"


def test_stack_info_as_frames() -> None:
    rec = record()
    rec.stack_info = f'Stack (most recent call last):\n  File "/x/adressat/a.py", line 3, in f\n' \
                     f"    g({SECRET!r})\n"
    text, obj = both(rec)
    assert obj["stack"] == ["adressat/a.py:3:f"]
    assert_no_secret(text, json.dumps(obj))


@pytest.mark.parametrize("message", [
    f"Exception in callback _answer_task(<Task>, pdu=Pdu(short_message=b'{SECRET}'))"
    "\nhandle: <Handle>",
    f"Task exception was never retrieved\nfuture: <Task exception=ValueError({SECRET!r})>",
    f"text with an unbalanced quote: '{SECRET} and more",
    f'double "{SECRET}" quotes and r"{SECRET}" raw',
])
def test_foreign_logger_message_is_scrubbed(message: str) -> None:
    text, obj = both(record(name="asyncio", msg=message, level=logging.ERROR))
    assert_no_secret(text, json.dumps(obj))
    assert str(obj["event"]).split()[0] in message


def test_foreign_logger_arguments_are_scrubbed() -> None:
    text, obj = both(record(name="asyncio", msg="poll %s took %.3f ms", args=(SECRET, 1.5)))
    assert obj["event"] == "poll <str> took 1.500 ms"
    assert_no_secret(text)


# --- setup_logging ----------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


@pytest.mark.usefixtures("restore_logging")
def test_setup_logging_json_at_a_level() -> None:
    out = io.StringIO()
    setup_logging("json", "info", "delivery", stream=out)
    log = logging.getLogger("adressat.delivery.worker")
    log.debug("final", extra={"message_id": "m1"})
    log.info("deliveries remembered", extra={"count": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library says so", UserWarning, stacklevel=1)
    sys.excepthook(*_exc_info(KeyError(SECRET)))
    recs = list(iter_json_lines(out.getvalue().splitlines()))
    assert len(recs) == len(out.getvalue().splitlines()) == 3
    assert [r["event"] for r in recs][0] == "deliveries remembered"
    assert recs[0]["count"] == 3 and recs[0]["process"] == "delivery"
    assert recs[1]["logger"] == "py.warnings" and "a library says so" in recs[1]["event"]
    assert recs[2]["event"] == "uncaught exception" and recs[2]["error_type"] == "KeyError"
    assert_no_secret(out.getvalue())


@pytest.mark.usefixtures("restore_logging")
def test_setup_logging_thread_exceptions() -> None:
    out = io.StringIO()
    setup_logging("text", "debug", "smpp", stream=out)

    def boom() -> None:
        raise ValueError(SECRET)

    t = threading.Thread(target=boom, name="checkpoint")
    t.start()
    t.join(5)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and TEXT_LINE.match(lines[0])
    assert "uncaught exception in a thread" in lines[0] and "thread_name=checkpoint" in lines[0]
    assert "error_type=ValueError" in lines[0]
    assert_no_secret(out.getvalue())


def test_setup_logging_refuses_unknown_names() -> None:
    with pytest.raises(ValueError):
        setup_logging("xml", "info", "smpp", stream=io.StringIO())
    with pytest.raises(ValueError):
        setup_logging("json", "verbose", "smpp", stream=io.StringIO())


def test_event_fields_of_a_record_without_extras() -> None:
    fields = event_fields(record(name="adressat.node", msg="stopped", level=logging.INFO), "smpp")
    assert list(fields) == ["time", "level", "logger", "process", "pid", "event"]


def _exc_info(exc: BaseException) -> tuple[type[BaseException], BaseException, object]:
    e = raised(exc)
    return type(e), e, e.__traceback__
