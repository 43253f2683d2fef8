"""Every log call in src/adressat names its event with a constant and passes its data as
``extra=`` fields, none of which is message text (STYLE.md #12, DESIGN.md I6).

A log call here is ``log.<level>(...)`` or ``alarm_log.<level>(...)``. Its event is a string
constant (the formatter never interpolates ``%``-arguments, so there must be none); ``extra=``
is a dict display whose keys are constants, and nothing in it reads a field that holds text.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "adressat"
LOGGERS = {"log", "alarm_log"}
LEVELS = {"debug", "info", "warning", "error", "critical", "exception", "log"}
#: names that hold message text (or a password) anywhere in adressat
TEXT_NAMES = {"content", "short_message", "message_payload", "text", "password", "ud",
              "payload", "body", "parts"}


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in LEVELS
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id in LOGGERS
    ]


def _reads_text(node: ast.AST) -> str | None:
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id in TEXT_NAMES:
            return n.id
        if isinstance(n, ast.Attribute) and n.attr in TEXT_NAMES:
            return n.attr
        if (isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant)
                and n.slice.value in TEXT_NAMES):
            return str(n.slice.value)
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr in {"tlv", "get"} and n.args
                and isinstance(n.args[0], ast.Constant) and n.args[0].value in TEXT_NAMES):
            return str(n.args[0].value)
    return None


def problems(source: str) -> list[str]:
    out = []
    for call in _calls(ast.parse(source)):
        where = f"line {call.lineno}"
        args = call.args[1:] if call.func.attr == "log" else call.args  # type: ignore[attr-defined]
        if not args or not isinstance(args[0], ast.Constant) or not isinstance(args[0].value, str):
            out.append(f"{where}: the event is not a string constant")
        elif len(args) > 1:
            out.append(f"{where}: %-arguments (pass them in extra=)")
        for kw in call.keywords:
            if kw.arg is None:
                out.append(f"{where}: **kwargs")
            elif kw.arg == "extra":
                if not isinstance(kw.value, ast.Dict):
                    out.append(f"{where}: extra= is not a dict display")
                    continue
                for k, v in zip(kw.value.keys, kw.value.values, strict=True):
                    if not isinstance(k, ast.Constant) or not isinstance(k.value, str):
                        out.append(f"{where}: a key of extra= is not a string constant")
                        continue
                    if k.value in TEXT_NAMES:
                        out.append(f"{where}: field {k.value!r}")
                    name = _reads_text(v)
                    if name is not None:
                        out.append(f"{where}: field {k.value!r} reads {name!r}")
    return out


def _files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_there_are_log_calls_to_check() -> None:
    assert sum(len(_calls(ast.parse(p.read_text()))) for p in _files()) > 50


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(SRC)))
def test_log_calls(path: Path) -> None:
    assert problems(path.read_text()) == []


def test_the_checker_catches_each_kind() -> None:
    bad = """
log.info("accepted %s", msg.id)
log.info(f"accepted {msg.id}")
log.info("accepted", extra={"text": x})
log.info("accepted", extra={"n": len(msg.content)})
log.info("accepted", extra={"t": pdu.fields["short_message"]})
log.info("accepted", extra={"t": pdu.tlv("message_payload")})
log.info("accepted", extra=fields)
log.log(10, "final", extra={"message_id": m.id})
log.log(10, name)
alarm_log.error("alarm", **more)
"""
    found = problems(bad)
    assert [p.split(":")[0] for p in found] == [
        "line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8", "line 10",
        "line 11",
    ], found
