"""Which processes a user or command selection names: lsof's ``-u`` and ``-c`` (shared by ``lsof``
and ``diff``; a row here is anything with ``uid``, ``user``, ``command`` and ``command_bytes``) and
ps's ``-C``."""

from __future__ import annotations

import os
import re

from analyze.errors import UsageError


def cmd_matcher(t: str):
    """A -c item's value (without ^) as lsof reads it: /REGEX/[ix] compiled, else the prefix in bytes."""
    m = re.fullmatch(r"/(.*)/([bix]*)", t, re.S)
    if m and len(t) > 2:
        flags = re.I if "i" in m.group(2) else 0
        try:
            return re.compile(m.group(1), flags)
        except re.error as e:
            raise UsageError(f"-c: bad regular expression {t!r}: {e}") from None
    return os.fsencode(t)


def user_matches(r, u: str) -> bool:
    """Whether R's owner is U: a uid when U is all digits, else a login name."""
    if u.isdigit():
        return r.uid == int(u)
    return r.user == u


def cmd_matches(r, m) -> bool:
    """Whether R's command matches a -c item: a prefix (bytes) or a /regular expression/."""
    if isinstance(m, bytes):
        return r.command_bytes.startswith(m)
    return m.search(r.command) is not None


def comm_matches(comm: str, want: str) -> bool:
    """Whether a process named COMM is what ps's -C WANT asks for: the whole name, except that a
    15-character name (the kernel's limit) matches a longer request."""
    if len(comm) == 15 and len(want) >= 15:
        return comm == want[:15]
    return comm == want[:63]
