"""The pure packages (protocol, text, core) import no I/O, clock or randomness (STYLE.md #1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "adressat"
PURE = ("smpp", "sms", "core")
FORBIDDEN = {"asyncio", "socket", "time", "random", "select", "selectors", "ssl", "sqlite3",
             "threading", "subprocess", "os"}
# Pure code may import only pure siblings inside the project.
ALLOWED_INTERNAL = {"adressat.smpp", "adressat.sms", "adressat.core"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _files() -> list[Path]:
    return [p for pkg in PURE for p in sorted((SRC / pkg).rglob("*.py"))]


def test_pure_packages_exist() -> None:
    assert len(_files()) >= len(PURE)


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(SRC)))
def test_pure_module_imports(path: Path) -> None:
    bad = []
    for name in _imports(path):
        top = name.split(".")[0]
        if top in FORBIDDEN:
            bad.append(name)
        if top == "adressat" and not any(
            name == ok or name.startswith(ok + ".") for ok in ALLOWED_INTERNAL
        ):
            bad.append(name)
    assert not bad, f"{path.name} imports {bad}"


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    p = tmp_path / "m.py"
    p.write_text("import asyncio\nfrom time import monotonic\nfrom adressat.store import x\n")
    assert _imports(p) == ["asyncio", "time", "adressat.store"]


# The rooms (DESIGN.md layout): only app/ wires pieces together, so no other room imports it
# (api/ may read the Settings dataclass, nothing else of app/); the ways in (ingress/) import
# no socket code of their own beyond the HTTP framework, and transports make no ingress or
# routing decisions.
ROOM_RULES: dict[str, tuple[str, ...]] = {
    "ingress": ("adressat.app", "adressat.transport.smpp_client", "adressat.netsim"),
    "transport": ("adressat.app", "adressat.ingress", "adressat.routing", "adressat.store"),
    "store": ("adressat.app", "adressat.ingress", "adressat.delivery", "adressat.transport"),
    "delivery": ("adressat.app", "adressat.ingress"),
}
ALLOWED_APP_IMPORTS = {"adressat.app.settings"}


def _room_files() -> list[tuple[str, Path]]:
    return [(room, p) for room in ROOM_RULES for p in sorted((SRC / room).rglob("*.py"))]


@pytest.mark.parametrize("room,path", _room_files(),
                         ids=lambda v: v if isinstance(v, str) else str(v.relative_to(SRC)))
def test_rooms_import_only_what_the_layout_allows(room: str, path: Path) -> None:
    bad = [n for n in _imports(path)
           if any(n == f or n.startswith(f + ".") for f in ROOM_RULES[room])
           and n not in ALLOWED_APP_IMPORTS]
    assert not bad, f"{room}/{path.name} imports {bad}"
