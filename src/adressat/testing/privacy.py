"""Search outputs for message text (DESIGN.md I6): logs, and any other text a test collects.

A test sends messages whose texts are unique and random, keeps them as ``{label: text}``, and
asks :func:`find_leaks` whether any output holds one of them in any form it could take on its
way: as characters, JSON- or repr-escaped, or as the hex, the repr or the base64 of its bytes
in each encoding the message could travel in (UTF-8, UTF-16 either way round, Latin-1, GSM
septets and GSM packed septets). A text is looked for whole and in pieces
(:data:`PIECE_CHARS` characters, :data:`PIECE_OCTETS` octets as hex, back to back), so any
leaked run of twice a piece, a part of a long message or a prefix, is found too.

Outputs are ``(name, text)`` pairs: :func:`file_output` for a log file; a test adds whatever
else it can read (a ``/metrics`` scrape, an HTTP error body) the same way.

A leak is reported by the text's label, the form and the output's name and line, never with
the text itself (a failing test's message lands in CI logs).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from adressat.sms import EncodingError, encode_text, pack_septets
from adressat.sms.encodings import Alphabet

__all__ = ["Leak", "PIECE_CHARS", "PIECE_OCTETS", "file_output", "find_leaks", "forms_of"]

PIECE_CHARS = 12
PIECE_OCTETS = 8
_GRAM = 6  # no needle but a whole short text is shorter


@dataclass(frozen=True)
class Leak:
    label: str  # which text (the caller's label: never the text)
    form: str  # in which form: "text", "utf-16-be hex", ...
    output: str  # where: the output's name
    line: int  # 1-based line of the output

    def __str__(self) -> str:
        return f"{self.label} as {self.form} in {self.output}:{self.line}"


def _pieces(seq: str, size: int) -> list[str]:
    if len(seq) <= size:
        return [seq]
    return [seq[i : i + size] for i in range(0, len(seq) - size + 1, size)]


def _encodings(text: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {"utf-8": text.encode("utf-8")}
    for name, codec in (("utf-16-be", "utf-16-be"), ("utf-16-le", "utf-16-le"),
                        ("latin-1", "latin-1")):
        # a text with characters outside that codec has no such form to look for
        with contextlib.suppress(UnicodeEncodeError):
            out[name] = text.encode(codec)
    try:
        septets = encode_text(text, Alphabet.GSM7)
    except EncodingError:
        return out
    out["gsm septets"] = septets
    out["gsm packed"] = pack_septets(septets)
    return out


def forms_of(text: str) -> dict[str, tuple[list[str], bool]]:
    """form name -> (needles, compare case-insensitively). Needles shorter than 6 characters
    are dropped (they would match by chance), except the whole text."""
    forms: dict[str, tuple[list[str], bool]] = {}
    chars = _pieces(text, PIECE_CHARS)
    forms["text"] = ([text, *chars], False)
    escaped = [json.dumps(p, ensure_ascii=True)[1:-1] for p in [text, *chars]]
    if escaped[0] != text:
        forms["json-escaped"] = (escaped, False)
    reprs = [repr(p)[1:-1] for p in [text, *chars]]
    if reprs[0] != text:
        forms["repr"] = (reprs, False)
    for name, data in _encodings(text).items():
        pieces = [data[i : i + PIECE_OCTETS]
                  for i in range(0, max(1, len(data) - PIECE_OCTETS + 1), PIECE_OCTETS)]
        forms[f"{name} hex"] = ([data.hex(), *(p.hex() for p in pieces)], True)
        as_repr = [repr(data)[2:-1], *(repr(p)[2:-1] for p in pieces)]
        if as_repr[0] != text:
            forms[f"{name} repr"] = (as_repr, False)
        forms[f"{name} base64"] = ([base64.b64encode(data).decode()], False)
    return {
        name: ([n for i, n in enumerate(needles) if i == 0 or len(n) >= 6], fold)
        for name, (needles, fold) in forms.items()
    }


def file_output(path: Path) -> tuple[str, str]:
    """A file as an output to search (its bytes decoded leniently: a leak of raw bytes shows
    as replacement characters around ASCII, and is found by its ASCII pieces)."""
    return path.name, path.read_bytes().decode("utf-8", errors="replace")


def _grams(hay: str) -> set[str]:
    return {hay[i : i + _GRAM] for i in range(len(hay) - _GRAM + 1)}


def find_leaks(texts: Mapping[str, str], outputs: Iterable[tuple[str, str]]) -> list[Leak]:
    """Every (text, form, output) where some form of a text occurs in an output, at its first
    occurrence. ``texts`` maps a label to a text; ``outputs`` are ``(name, content)``."""
    prepared = {label: forms_of(text) for label, text in texts.items()}
    leaks: list[Leak] = []
    for name, content in outputs:
        folded = content.lower()
        # a needle can only be there if its first _GRAM characters are: a set lookup first,
        # the search only then (thousands of needles against a log of megabytes)
        grams = {False: _grams(content), True: _grams(folded)}
        for label, forms in prepared.items():
            for form, (needles, fold) in forms.items():
                hay, seen = (folded, grams[True]) if fold else (content, grams[False])
                for needle in needles:
                    n = needle.lower() if fold else needle
                    if len(n) >= _GRAM and n[:_GRAM] not in seen:
                        continue
                    at = hay.find(n)
                    if at >= 0:
                        leaks.append(Leak(label, form, name, content.count("\n", 0, at) + 1))
                        break
    return leaks
