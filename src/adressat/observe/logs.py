"""Log lines: one line per event, JSON for machines or ``key=value`` text for a terminal.

The standard library's ``logging`` is the well-kept library here: handlers, levels and
``extra=`` fields are all it takes; what it lacks is a formatter that writes those fields, and
one that can never write message text (DESIGN.md I6). Both are here, and
:func:`setup_logging` is used by both processes of a node.

Every line has ``time`` (ISO 8601 UTC, milliseconds), ``level``, ``logger``, ``process``
(``smpp`` or ``delivery``), ``pid``, ``event`` (the log call's message: a short stable name)
and then every ``extra=`` field of the call (session, account, message_id, route,
serving_node, status, reason, error_type, ...).

What keeps message text out (besides the call sites, which pass only ids, codes and digests;
``tests/qa/test_log_calls.py`` checks them):

* ``%``-arguments of our own calls are never interpolated: the event is the call's message as
  written.
* A logger outside ``adressat`` (asyncio, warnings) is not ours: its message can hold the
  repr of a PDU or a callback's arguments. Only its first line is kept, with every quoted
  literal (``'...'``, ``b"..."``) replaced by ``<str>`` and everything after an unbalanced
  quote cut.
* An exception is written as its type, its chain of causes (types) and its frames
  (``adressat/app/node.py:170:_gauge_loop``), never its message: an exception's message can
  carry data (a codec error quoting the bytes it choked on, a ``KeyError`` of a number).
  Codes that are safe and useful are kept as ``error_code``: an ``OSError``'s errno name,
  SQLite's error name, an SMPP command_status.
* Field values: bytes are written as ``<N octets>``, never their content; objects other than
  numbers, strings, enums and lists or dicts of them as ``<TypeName>``; strings cut at
  :data:`VALUE_CHARS_MAX` (``...`` marks the cut). The text format quotes a value with
  spaces, quotes, ``=`` or control characters JSON-style, so a line never breaks.
"""

from __future__ import annotations

import enum
import errno
import json
import logging
import re
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator
from typing import Any, TextIO

__all__ = [
    "FORMATS",
    "known",
    "LEVELS",
    "JsonFormatter",
    "TextFormatter",
    "event_fields",
    "setup_logging",
]

FORMATS = ("text", "json")
LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

VALUE_CHARS_MAX = 256  # one string value (peer-supplied ones included: a system_id, a reason)
ITEMS_MAX = 50  # items of one list or dict value (an alarm's message ids)
FRAMES_MAX = 30  # frames of one traceback, innermost kept
CHAIN_MAX = 5  # causes of one exception
FOREIGN_EVENT_CHARS_MAX = 160

#: LogRecord's own attributes: everything else on a record came from ``extra=``
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "taskName"}
)
#: keys every line has; an ``extra=`` field of one of these names is written as ``extra_<key>``
_FIXED = ("time", "level", "logger", "process", "pid", "event")

# a Python string or bytes literal as repr() writes it
_LITERAL = re.compile(r"""[rRbBuU]{0,2}(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")""")
_FRAME_LINE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_BARE = re.compile(r"[A-Za-z0-9_.:/@+\-<>\[\],]*")


def known(kind: type[enum.IntEnum], value: int | None) -> enum.IntEnum | int | None:
    """``kind(value)`` if it is one of its members (a log line then says its name), else the
    value: ``known(CommandStatus, 0x45)`` is ``ESME_RSUBMITFAIL``."""
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        return value


def _iso_utc(created: float, msecs: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(msecs):03d}Z"


def _safe(value: Any, depth: int = 0) -> Any:
    """A JSON-able rendering of one field value that cannot carry message text or bytes."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, str):
        return value if len(value) <= VALUE_CHARS_MAX else value[:VALUE_CHARS_MAX] + "..."
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} octets>"
    if depth < 2 and isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        out = [_safe(v, depth + 1) for v in items[:ITEMS_MAX]]
        if len(items) > ITEMS_MAX:
            out.append(f"<{len(items) - ITEMS_MAX} more>")
        return out
    if depth < 2 and isinstance(value, dict):
        return {
            str(_safe(k, depth + 1)): _safe(v, depth + 1)
            for k, v in list(value.items())[:ITEMS_MAX]
        }
    return f"<{type(value).__name__}>"


def _type_name(exc_type: type[BaseException]) -> str:
    module = exc_type.__module__
    return exc_type.__qualname__ if module == "builtins" else f"{module}.{exc_type.__qualname__}"


def _short_path(filename: str) -> str:
    i = filename.rfind("/adressat/")
    if i >= 0:
        return filename[i + 1 :]
    parts = filename.replace("\\", "/").rsplit("/", 2)
    return "/".join(parts[-2:])


def _frames(tb: types.TracebackType | None) -> list[str]:
    frames = [
        f"{_short_path(f.filename)}:{f.lineno}:{f.name}" for f in traceback.extract_tb(tb)
    ]
    return frames[-FRAMES_MAX:]


def _error_code(exc: BaseException) -> str | None:
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    name = getattr(exc, "sqlite_errorname", None)
    if isinstance(name, str):
        return name
    status = getattr(exc, "command_status", None)
    if isinstance(status, enum.Enum):
        return status.name
    return None


def _exception_fields(exc: BaseException) -> dict[str, Any]:
    """Type, causes and frames of an exception: never its message (it can carry data)."""
    out: dict[str, Any] = {"error_type": _type_name(type(exc))}
    code = _error_code(exc)
    if code is not None:
        out["error_code"] = code
    chain: list[str] = []
    seen = {id(exc)}
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    while cause is not None and len(chain) < CHAIN_MAX and id(cause) not in seen:
        seen.add(id(cause))
        code = _error_code(cause)
        chain.append(_type_name(type(cause)) + (f"({code})" if code else ""))
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    if chain:
        out["error_causes"] = chain
    out["traceback"] = _frames(exc.__traceback__)
    return out


def _foreign_arg(arg: object) -> object:
    """An argument of a foreign logger's message: numbers as they are, anything else by its
    type (a str, a PDU, an exception can each carry text)."""
    if isinstance(arg, int | float) and not isinstance(arg, enum.Enum):
        return arg
    if isinstance(arg, str):
        return "<str>"
    if isinstance(arg, bytes | bytearray | memoryview):
        return f"<{len(arg)} octets>"
    return f"<{type(arg).__name__}>"


def _foreign_message(record: logging.LogRecord) -> str:
    msg = record.msg if isinstance(record.msg, str) else f"<{type(record.msg).__name__}>"
    args = record.args
    if not args:
        return msg
    try:
        if isinstance(args, dict):
            return msg % {k: _foreign_arg(v) for k, v in args.items()}
        return msg % tuple(_foreign_arg(a) for a in args)
    except (TypeError, ValueError, KeyError):  # e.g. %d of a "<str>": the template alone
        return msg


def _foreign_event(msg: object) -> str:
    """A foreign logger's message, made safe: its first line, every quoted literal replaced
    by ``<str>``, cut at a quote left unbalanced."""
    text = msg if isinstance(msg, str) else f"<{type(msg).__name__}>"
    line = _LITERAL.sub("<str>", text.split("\n", 1)[0])
    quote = min((i for i in (line.find("'"), line.find('"')) if i >= 0), default=-1)
    if quote >= 0:
        line = line[:quote] + "..."
    if len(line) > FOREIGN_EVENT_CHARS_MAX:
        line = line[:FOREIGN_EVENT_CHARS_MAX] + "..."
    return line


def event_fields(record: logging.LogRecord, process: str) -> dict[str, Any]:
    """The fields of one line, in order: the fixed ones, then the call's ``extra=`` fields,
    then the exception's. Values are already safe (:func:`_safe`)."""
    ours = record.name == "adressat" or record.name.startswith("adressat.")
    if ours:
        event = record.msg if isinstance(record.msg, str) else f"<{type(record.msg).__name__}>"
    else:
        event = _foreign_event(_foreign_message(record))
    fields: dict[str, Any] = {
        "time": _iso_utc(record.created, record.msecs),
        "level": record.levelname,
        "logger": record.name,
        "process": process,
        "pid": record.process,
        "event": event,
    }
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRS or key.startswith("_"):
            continue
        fields[f"extra_{key}" if key in _FIXED else key] = _safe(value)
    exc_info = record.exc_info
    if exc_info and exc_info[1] is not None:
        for key, value in _exception_fields(exc_info[1]).items():
            fields.setdefault(key, value)  # an explicit error_type= of the call wins
    if record.stack_info:
        fields["stack"] = [
            f"{_short_path(f)}:{n}:{fn}" for f, n, fn in _FRAME_LINE.findall(record.stack_info)
        ][-FRAMES_MAX:]
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line (ASCII only: nothing in it can break the line)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(event_fields(record, self.process), ensure_ascii=True,
                          separators=(",", ":"))


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        if value and _BARE.fullmatch(value):
            return value
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        joined = ",".join(str(v) for v in value)
        if _BARE.fullmatch(joined):
            return joined
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``2026-12-03T10:00:00.123Z WARNING adressat.smpp protocol violation session=12 ...``
    (the process is written where it is not the SMPP process: ``adressat.delivery.worker
    [delivery]``)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        f = event_fields(record, self.process)
        head = f"{f['time']} {f['level']} {f['logger']}"
        if self.process != "smpp":
            head += f"[{self.process}]"
        event = json.dumps(f["event"], ensure_ascii=True)[1:-1]  # one line, whatever it held
        rest = " ".join(
            f"{k}={_text_value(v)}" for k, v in f.items() if k not in _FIXED
        )
        return f"{head} {event} {rest}" if rest else f"{head} {event}"


def _formatter(fmt: str, process: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(process)
    if fmt == "text":
        return TextFormatter(process)
    raise ValueError(f"log format must be one of {FORMATS}")


_uncaught = logging.getLogger("adressat.uncaught")


def _excepthook(exc_type: type[BaseException], exc: BaseException,
                tb: types.TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _uncaught.critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    _uncaught.critical(
        "uncaught exception in a thread",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        extra={"thread_name": args.thread.name if args.thread else ""},
    )


def setup_logging(fmt: str, level: str, process_name: str,
                  stream: TextIO | None = None) -> logging.Handler:
    """Both processes: every record (ours and the libraries') to ``stream`` (stderr) in
    ``fmt`` ("text" or "json") from ``level`` ("debug" .. "error") up; Python warnings and
    uncaught exceptions (main thread and threads) through the same formatter, so nothing
    reaches the output with an exception's message in it. Returns the handler."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {tuple(LEVELS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_formatter(fmt, process_name))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    logging.captureWarnings(True)
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    return handler


def iter_json_lines(lines: Iterator[str] | list[str],
                    keep: Callable[[dict[str, Any]], bool] | None = None,
                    ) -> Iterator[dict[str, Any]]:
    """The JSON log records among ``lines`` (other lines skipped), for tools and tests."""
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and (keep is None or keep(rec)):
            yield rec

