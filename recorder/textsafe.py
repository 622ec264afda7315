"""The one rule for printing a text that a recording, a process or a shared folder supplies:
escaped so that it cannot act on a terminal or display other than it is. The rule and its
reasons are written out in :mod:`analyze.output`, which prints through it; it lives here
because the recorder's own messages name files in folders others may control, and the
recorder does not import the analyzer."""

from __future__ import annotations

import re

_CTRL = {i: f"\\x{i:02x}" for i in range(32)}
_CTRL.update({9: "\\t", 10: "\\n", 13: "\\r", 127: "\\x7f"})
# Unicode categories escaped above ASCII: controls (C1), format characters, line and paragraph
# separators, surrogates.
_UNSAFE = ("Cc", "Cf", "Zl", "Zp", "Cs")
# ASCII controls and DEL but the newline: what escape_lines() looks for in ASCII text.
_ASCII_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f]")


def _escape_char(ch: str) -> str:
    o = ord(ch)
    if o < 0x80:
        return _CTRL.get(o, ch)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8, as surrogateescape decodes it
        return f"\\x{o - 0xDC00:02x}"
    import unicodedata
    if unicodedata.category(ch) in _UNSAFE:
        return f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}"
    return ch


def escape(s: str) -> str:
    """s with every character a terminal would act on, or that displays text other than it
    is, escaped (the module's rule); a newline too: one value is one line."""
    if s.isprintable():  # no control, format, separator or surrogate character: nothing to do
        return s
    return "".join(map(_escape_char, s))


def escape_lines(s: str) -> str:
    """escape(), but a newline stays a newline: for a text of many lines already made."""
    if s.isascii() and not _ASCII_UNSAFE.search(s):
        return s
    return "\n".join(map(escape, s.split("\n")))
