"""Text from untrusted sources made safe to store and print: the one place control characters go.

Failure messages quote what a participant container wrote (file names, the last stderr line) and
image metadata. Raw, a newline or an ANSI/OSC escape in them would forge lines in `harness validate`
output (a `PASS` that overwrites its own `FAIL`), recolour a terminal, or set its title, and
results.json would carry them to every reader. `printable` turns every control character (C0 incl.
newline and ESC, DEL, C1), format character (bidi overrides, zero-width) and line/paragraph
separator into a visible escape like `\\x1b`, so the text stays one honest line.
"""

from __future__ import annotations

import unicodedata

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with every control, format and separator character written as a visible escape."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)
