"""The one grammar for durations and sizes, in every option and file procsnap reads.

Durations: a number of seconds (``90``, ``1.5``) or numbers with units run together:
``30s``, ``5m``, ``2h``, ``1d``, ``1w``, ``1h30m``, ``1.5h`` (case and surrounding blanks
ignored). Sizes: bytes (``800000``) or a number with K, M, G or T, each a power of 1024,
optionally followed by ``B`` or ``iB`` (``500M``, ``2G``, ``2GiB``, ``1.5k``).

The recorder's options, its ``incident`` file and the analyzer's durations all parse here;
errors are :class:`UnitError` (a ValueError) with the one-line message to show.
"""

from __future__ import annotations

import re

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*")


class UnitError(ValueError):
    """A duration or size that does not parse; its text is the message to show."""


def parse_duration(text: str, what: str = "duration", positive: bool = False) -> float:
    """Seconds in TEXT (see the module's grammar). POSITIVE: 0 or less is an error too."""
    t = text.strip().lower()
    try:
        v = float(t)
    except ValueError:
        pos = 0
        v = 0.0
        for m in _DURATION_PART.finditer(t):
            if m.start() != pos:
                break
            v += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if pos != len(t) or not t:
            raise UnitError(f"bad {what} {text!r}: use seconds or a duration like 30s, 5m, 2h, 1h30m") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise UnitError(f"bad {what} {text!r}")
    if positive and v <= 0:
        raise UnitError(f"bad {what} {text!r}: must be more than 0 seconds")
    return v


def parse_size(text: str, what: str = "size") -> int:
    """Bytes in TEXT (see the module's grammar); more than 0."""
    m = _SIZE.fullmatch(text.lower())
    if not m or float(m.group(1)) <= 0:
        raise UnitError(f"bad {what} {text!r}: use bytes or a size like 500M, 2G")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
