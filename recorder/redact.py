"""Redacting credentials out of command lines before they touch disk.

A recording is meant to be shared (attached to a ticket, copied to a laptop),
and command lines are where secrets leak: ``mysql -pS3cret``, ``curl -H
'Authorization: Bearer …'``, ``PGPASSWORD=… psql``, ``https://user:pass@host``.
:func:`redact_cmdline` replaces the *values* of such arguments with
``<redacted>`` and keeps their shape (the option, the variable name, the user
of a URL), so that the recording still says what ran and how.

It works on the raw bytes of ``/proc/PID/cmdline`` (NUL-separated argv, any
encoding), so the text column and the exact bytes column of ``processes`` are
both made from the redacted bytes. Every argument is also read as a shell-like
string of words, so a secret inside ``sh -c 'PASSWORD=x mysql -px …'`` is
caught too.

It runs for every process on every snapshot, so a command line is first
checked with one regular expression for anything that could start a secret;
most command lines have none and cost one ``search``. docs/redaction.md lists
what is caught and what is not; keep the two in step.
"""

from __future__ import annotations

import os
import re

REDACTED = b"<redacted>"

# Anything that could begin a secret below, lower-case. Must be a superset of
# every rule: a command line that holds none of these is returned as it is.
# One search of the lowered bytes (cheaper than a case-insensitive pattern, or
# one `in` per word): a few microseconds a command line on a slow machine.
_CANDIDATES = (
    b"pass", b"pwd", b"pw", b"secret", b"token", b"key", b"auth", b"bearer", b"cred", b"cookie", b"session",
    b"sig", b"://", b"akia", b"asia", b"eyj", b"gh", b"xox", b"-----begin", b"mysql", b"mariadb", b"redis-cli",
    b"curl", b"wget",
)
_CANDIDATE = re.compile(b"|".join(map(re.escape, _CANDIDATES)))


# Words of option and variable names that mark their value as a secret. A
# name is split into lower-case words at '-', '_', '.'; a word matches when it
# *ends* with one of these (PGPASSWORD, dbpass, oauth, MYSQL_PWD, authtoken).
_SECRET_WORD = re.compile(
    rb"(?:password|passwd|passphrase|pass|pwd|pw|secret|secrets|token|tokens|apikey|accesskey|secretkey|"
    rb"privatekey|credential|credentials|cookie|auth|authorization|signature)$"
)
# ... 'key' only after one of these words (api-key, access_key, SECRET_KEY).
_KEY_QUALIFIERS = {b"api", b"access", b"secret", b"private", b"master", b"encryption", b"signing",
                   b"account", b"license", b"shared", b"auth", b"sas", b"session", b"client", b"storage"}
# Words that end in a secret word without being one.
_NOT_SECRET_WORDS = {b"bypass", b"compass", b"surpass", b"trespass", b"overpass", b"underpass"}
# A last word that says the value is not the secret itself but about it.
_ABOUT_WORDS = {b"file", b"files", b"path", b"dir", b"fd", b"env", b"prompt", b"type", b"method", b"url",
                b"uri", b"endpoint", b"cmd", b"command", b"helper", b"length", b"len", b"mode", b"name",
                b"store", b"policy", b"ttl", b"timeout", b"expiry", b"size", b"algorithm", b"format"}
# Values that are switches, not secrets (PasswordAuthentication=no).
_PLAIN_VALUES = {b"", b"yes", b"no", b"true", b"false", b"on", b"off", b"0", b"1", b"none", b"null"}
_NOT_SECRET_NAMES = {b"pwd", b"oldpwd"}  # the shell's working directory variables

_WORD_SPLIT = re.compile(rb"[-_.]+")


def secret_name(name: bytes) -> bool:
    """True when an option or variable with this name (without leading dashes) holds a secret."""
    low = name.lower()
    if low in _NOT_SECRET_NAMES:
        return False
    words = [w for w in _WORD_SPLIT.split(low) if w]
    if not words or words[0] == b"no" or words[-1] in _ABOUT_WORDS:
        return False
    for i, w in enumerate(words):
        if w in _NOT_SECRET_WORDS:
            continue
        if _SECRET_WORD.search(w):
            return True
        if w == b"key" and i and words[i - 1] in _KEY_QUALIFIERS:
            return True
    return False


# Clients whose short options take a password (argv[0] basename, or a word of a
# shell string naming the program). mysql and friends: only attached, -pSECRET
# (a separate word after -p is the database; the client then prompts).
_MYSQL = {b"mysql", b"mariadb", b"mysqldump", b"mysqladmin", b"mysqlimport", b"mysqlshow", b"mysqlcheck",
          b"mysqlslap", b"mysqlbinlog", b"mysqlpump", b"mariadb-dump", b"mariadb-admin", b"mariadb-import",
          b"mariadb-show", b"mariadb-check", b"mariadb-slap", b"mariadb-binlog"}
# client: (short option whose value is a password, whether it may be attached)
_SHORT_PASSWORD = {b"sshpass": b"-p", b"redis-cli": b"-a"}
# curl/wget style -u USER:PASSWORD: the part after the first ':' is redacted.
_USER_COLON_PASS = {b"curl": (b"-u", b"--user", b"--proxy-user", b"-U"), b"wget": ()}

# Patterns found anywhere in an argument.
_INLINE = [
    # scheme://user:password@host (any scheme): the password.
    re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"]*:(?P<v>[^/\s@'\"]+)@"),
    # HTTP headers that carry credentials; a leading scheme word is kept.
    re.compile(rb"(?i)\b(?:proxy-)?authorization:[ \t]*(?:(?:bearer|basic|token|digest|negotiate)[ \t]+)?"
               rb"(?P<v>[^'\"\r\n]+)"),
    re.compile(rb"(?i)\b(?:x-api-key|api-key|x-auth-token|x-vault-token|private-token|x-access-token|"
               rb"(?:set-)?cookie):[ \t]*(?P<v>[^'\"\r\n]+)"),
    re.compile(rb"(?i)\bbearer[ \t]+(?P<v>[A-Za-z0-9._~+/=-]+)"),
    # AWS access key ids.
    re.compile(rb"\b(?P<v>(?:AKIA|ASIA)[A-Z0-9]{16})\b"),
    # JSON Web Tokens.
    re.compile(rb"\b(?P<v>eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)"),
    # GitHub and Slack tokens.
    re.compile(rb"\b(?P<v>gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,})"),
    # openssl -pass pass:SECRET, -passin pass:SECRET.
    re.compile(rb"(?<![\w-])pass:(?P<v>\S+)"),
    # A private key pasted into an argument: from its BEGIN line to its END line (or the end).
    re.compile(rb"(?P<v>-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*))",
               re.S),
]

# One word of an argument read as a shell string: optional quotes around it.
_WORD = re.compile(rb"\S+")
_QUOTES = b"'\""
# --name=value, -name=value, NAME=value (also inside a word like --opt=NAME=value? no: first '=').
_ASSIGN = re.compile(rb"^(?P<k>-{0,2}[A-Za-z_][A-Za-z0-9_.-]*)=(?P<v>.*)$", re.S)
_FLAG = re.compile(rb"^--?(?P<k>[A-Za-z][A-Za-z0-9_.-]*)$")
# openssl's passphrase sources: pass:X is caught inline, the others name where it is.
_PASS_SOURCES = (b"pass:", b"env:", b"file:", b"fd:", b"stdin")
_SEPARATORS = {b";", b"|", b"||", b"&&", b"&"}


def _span_unquoted(word: bytes, start: int, end: int) -> tuple[int, int]:
    """The span of a word without the quotes around it."""
    while start < end and word[start] in _QUOTES:
        start += 1
    while end > start and word[end - 1] in _QUOTES:
        end -= 1
    return start, end


class _Words:
    """Walks the words of a command line, carrying what the previous word asked for."""

    def __init__(self, client: bytes):
        self.client = client
        self.pending: str | None = None  # "secret": the next word is one; "userpass": redact after ':'

    def word(self, w: bytes, spans: list[tuple[int, int]], off: int) -> None:
        s, e = _span_unquoted(w, 0, len(w))
        core = w[s:e]
        pending, self.pending = self.pending, None
        if not core:
            return
        if pending is not None and not core.startswith(b"-"):
            if pending == "userpass":
                i = core.find(b":")
                if i >= 0 and i + 1 < len(core):
                    spans.append((off + s + i + 1, off + e))
            elif core.lower() not in _PLAIN_VALUES and not core.startswith(_PASS_SOURCES):
                spans.append((off + s, off + e))
            return
        if core in _SEPARATORS:
            self.client = b""
            return
        base = os.path.basename(core)
        if base in _MYSQL or base in _SHORT_PASSWORD or base in _USER_COLON_PASS:
            self.client = base
            return
        m = _ASSIGN.match(core)
        if m:
            v = m.group("v")
            if secret_name(m.group("k").lstrip(b"-")) and v.lower() not in _PLAIN_VALUES:
                vs, ve = _span_unquoted(core, m.start("v"), m.end("v"))
                if vs < ve:
                    spans.append((off + s + vs, off + s + ve))
            return
        c = self.client
        if c and core.startswith(b"-") and not core.startswith(b"--"):
            # Short options of well-known clients come first: -pSECRET is mysql's password
            # whatever letters follow.
            if c in _MYSQL and core.startswith(b"-p") and len(core) > 2:
                spans.append((off + s + 2, off + e))
                return
            opt = _SHORT_PASSWORD.get(c)
            if opt is not None and core.startswith(opt):
                if core == opt:
                    self.pending = "secret"
                else:
                    spans.append((off + s + len(opt), off + e))
                return
        if c in _USER_COLON_PASS and core in _USER_COLON_PASS[c]:
            self.pending = "userpass"
            return
        m = _FLAG.match(core)
        if m and secret_name(m.group("k")):
            self.pending = "secret"


def _apply(arg: bytes, spans: list[tuple[int, int]]) -> bytes:
    """The argument with each span (merged where they overlap) replaced by <redacted>."""
    out = []
    pos = 0
    for s, e in sorted(spans):
        if e <= pos:
            continue
        s = max(s, pos)
        out.append(arg[pos:s])
        out.append(REDACTED)
        pos = e
    out.append(arg[pos:])
    return b"".join(out)


# "name": "value" pairs (JSON or similar passed as an argument): the value when the name is a secret's.
_JSON_PAIR = re.compile(rb'"(?P<k>[A-Za-z_][A-Za-z0-9_.-]*)"\s*:\s*"(?P<v>(?:[^"\\]|\\.)*)"')


def redact_argv(argv: list[bytes]) -> list[bytes]:
    """argv with the values of credentials replaced by ``<redacted>``."""
    words = _Words(os.path.basename(argv[0]) if argv else b"")
    out = []
    for i, arg in enumerate(argv):
        spans: list[tuple[int, int]] = []
        for rx in _INLINE:
            for m in rx.finditer(arg):
                spans.append(m.span("v"))
        if b'"' in arg:
            for m in _JSON_PAIR.finditer(arg):
                if m.end("v") > m.start("v") and secret_name(m.group("k")) and m.group("v").lower() not in _PLAIN_VALUES:
                    spans.append(m.span("v"))
        if i == 0:
            # argv[0] names the program (or was rewritten, like `exec -a` or setproctitle):
            # its words are read too, starting from no client.
            words.client = b""
        for m in _WORD.finditer(arg):
            words.word(m.group(), spans, m.start())
        if i == 0 and not words.client:
            words.client = os.path.basename(arg)
        out.append(_apply(arg, spans) if spans else arg)
    return out


def redact_cmdline(raw: bytes) -> bytes:
    """The bytes of /proc/PID/cmdline with credentials redacted; the same object when there are none."""
    if not raw:
        return raw
    if _CANDIDATE.search(raw.lower()) is None:
        return raw
    trailing = raw.endswith(b"\0")
    argv = (raw[:-1] if trailing else raw).split(b"\0")
    red = redact_argv(argv)
    if red == argv:
        return raw
    return b"\0".join(red) + (b"\0" if trailing else b"")
