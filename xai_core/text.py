"""Text that is safe to print on a terminal (imports nothing from the package).

Strings read from files (bundle metadata, run names, corpus track names, error messages quoting
them) can carry terminal escape sequences: ``ESC [ 2 J`` clears the screen, OSC sequences set the
window title or write links, a carriage return overprints a line. :func:`printable` shows such
characters as visible escapes instead of sending them to the terminal.
"""

from __future__ import annotations

import re
import unicodedata

# bidirectional overrides and isolates: they reorder what is displayed ("Trojan source")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _escape(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def printable(text: object, *, keep: str = "\n\t") -> str:
    """``str(text)`` with control characters (C0, DEL, C1: ESC, CR, CSI, ...), bidirectional overrides
    and unpaired surrogates shown as ``\\xNN`` / ``\\uNNNN``; the characters in ``keep`` (newline and
    tab by default) stay as they are. Ordinary text, accents and other scripts are untouched."""
    s = str(text)
    out = []
    for ch in s:
        if ch in keep:
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs") or ch in _BIDI:
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


_WS = re.compile(r"\s*[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]\s*")


def one_line(text: object, *, limit: int = 2000) -> str:
    """:func:`printable` text on one line: line breaks (with the blanks around them) become ``" | "``,
    tabs a space, and a text longer than ``limit`` characters is cut with ``"..."``."""
    s = _WS.sub(" | ", str(text).strip()).replace("\t", " ")
    s = printable(s, keep="")
    if len(s) > limit:
        s = s[:limit - 3] + "..."
    return s
