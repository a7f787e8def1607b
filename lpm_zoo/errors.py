"""The one exception type that means "the user's input was wrong": the CLI prints it in one line, exit 2.

`clip` shortens a user's value for an error message, so a hostile input cannot flood the terminal;
`printable` escapes what a file says before it reaches the terminal.
"""

from __future__ import annotations

import reprlib


class LpmError(Exception):
    """A user-facing error; its message says what was wrong and what to do."""


class _Repr(reprlib.Repr):
    """reprlib's bounded repr, safe for integers too long to print (Python refuses > 4300 digits)."""

    def repr_int(self, x: int, level: int) -> str:  # noqa: D102
        if x.bit_length() > 600:  # ~180 digits: never converted to decimal, which is slow and may be refused
            return f"<{x.bit_length()}-bit integer>"
        return super().repr_int(x, level)


_REPR = _Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 400
_REPR.maxlevel = 4
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 16


def clip(value: object, limit: int = 200) -> str:
    """`value` as repr() writes it, cut to `limit` characters with "…(N chars)" when longer (a str: its length)."""
    if isinstance(value, (str, bytes)):
        text = repr(value[:limit])
        if len(value) <= limit and len(text) <= limit:
            return text
        return f"{text[:limit]}…({len(value)} chars)"
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a hostile object's __repr__ must not turn an error message into a crash
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


def printable(text: object, limit: int | None = None) -> str:
    """`text` safe for a terminal: each non-printable character (control, bidi, NUL) as an escape, cut to `limit`.

    Every string read from a file (a zoo entry's meta.json, a store, a directory's name) goes through this
    before it is printed, so no escape sequence or direction override reaches the terminal.
    """
    s = str(text)
    if limit is not None and len(s) > limit:
        s = f"{s[:limit]}…"
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else _escape(c) for c in s)


def _escape(c: str) -> str:
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"
