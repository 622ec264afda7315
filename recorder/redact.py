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

The rules are four tables: secret *names* (options, variables, query and JSON
keys: :func:`secret_name`), *programs* whose own options carry a credential
(:data:`PROGRAMS`), *patterns* found anywhere in an argument (:data:`PATTERNS`:
URLs with a password, credential headers, vendor tokens, private keys), and
the words that say a value is not a secret. tests/data/redaction.jsonl is the
corpus of forms they must catch and must leave alone; docs/redaction.md is
generated from it.

It runs for every process on every snapshot, so a command line is first
checked with one regular expression for anything that could start a secret
(built from the tables); most command lines have none and cost one ``search``,
and each distinct command line is redacted once (a memo by its bytes).
"""

from __future__ import annotations

import os
import re

REDACTED = b"<redacted>"

# --------------------------------------------------------------------------
# Table 1: names that mark their value as a secret.

# A name is split into lower-case words at '-', '_', '.', '[', ']'; a word
# matches when it *ends* with one of these (PGPASSWORD, dbpass, oauth, MYSQL_PWD).
_SECRET_ENDINGS = (b"password", b"passwd", b"passphrase", b"pass", b"pwd", b"pw", b"secret", b"secrets", b"token",
                   b"tokens", b"apikey", b"accesskey", b"secretkey", b"privatekey", b"credential", b"credentials",
                   b"cookie", b"auth", b"authorization", b"signature")
_SECRET_WORD = re.compile(b"(?:" + b"|".join(_SECRET_ENDINGS) + b")$")
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
# Query parameters that are secrets whatever the rule above says (Azure SAS signatures).
_SECRET_QUERY_NAMES = {b"sig"}

_WORD_SPLIT = re.compile(rb"[-_.\[\]]+")


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


# --------------------------------------------------------------------------
# Table 2: programs whose own options take a credential.
#
# A program is named by argv[0]'s basename or by a word of a shell string. An
# option's value is either the whole value (SECRET) or what follows a separator
# in USER<sep>PASSWORD (curl -u user:pass, smbclient -U user%pass). ATTACHED
# options take their value only glued to them (-pSECRET): mysql reads a lone
# -p as "prompt", the next word being the database.


def _whole(v: bytes) -> tuple[int, int] | None:
    if v.lower() in _PLAIN_VALUES:
        return None
    return 0, len(v)


def _after(sep: bytes):
    def span(v: bytes) -> tuple[int, int] | None:
        i = v.find(sep)
        return (i + 1, len(v)) if 0 <= i < len(v) - 1 else None
    return span


SECRET, USERPASS = _whole, _after(b":")
BOTH, ATTACHED = "both", "attached"

_MYSQL = (b"mysql", b"mariadb", b"mysqldump", b"mysqladmin", b"mysqlimport", b"mysqlshow", b"mysqlcheck",
          b"mysqlslap", b"mysqlbinlog", b"mysqlpump", b"mariadb-dump", b"mariadb-admin", b"mariadb-import",
          b"mariadb-show", b"mariadb-check", b"mariadb-slap", b"mariadb-binlog")
_LDAP = (b"ldapsearch", b"ldapadd", b"ldapmodify", b"ldapdelete", b"ldapmodrdn", b"ldapwhoami", b"ldappasswd",
         b"ldapcompare", b"ldapexop")
_MONGO = (b"mongo", b"mongosh", b"mongodump", b"mongorestore", b"mongoexport", b"mongoimport", b"mongostat",
          b"mongotop", b"mongofiles")
_CURL = {b"-u": (USERPASS, BOTH), b"--user": (USERPASS, BOTH), b"-U": (USERPASS, BOTH),
         b"--proxy-user": (USERPASS, BOTH)}

# program -> {option: (value rule, where the value may be)}
PROGRAMS: dict[bytes, dict[bytes, tuple]] = {
    **{p: {b"-p": (SECRET, ATTACHED)} for p in _MYSQL},
    **{p: {b"-w": (SECRET, BOTH)} for p in _LDAP},
    **{p: {b"-p": (SECRET, BOTH)} for p in _MONGO},
    b"curl": _CURL,
    b"sshpass": {b"-p": (SECRET, BOTH)},
    b"redis-cli": {b"-a": (SECRET, BOTH)},
    b"smbclient": {b"-U": (_after(b"%"), BOTH), b"--user": (_after(b"%"), BOTH)},
    b"openssl": {b"-k": (SECRET, BOTH)},
    b"zip": {b"-P": (SECRET, BOTH)},
    b"unzip": {b"-P": (SECRET, BOTH)},
    **{p: {b"-p": (SECRET, ATTACHED)} for p in (b"7z", b"7za", b"7zz")},
    b"ipmitool": {b"-P": (SECRET, BOTH)},
    b"sqlcmd": {b"-P": (SECRET, BOTH)},
    b"lftp": {b"-u": (_after(b","), BOTH)},
    # `docker login -p`: -p is a port for `docker run`, so only after the subcommand.
    **{p + b" login": {b"-p": (SECRET, BOTH)} for p in (b"docker", b"podman", b"buildah", b"skopeo", b"nerdctl")},
}
# program -> its subcommand whose options are a program of their own above
_SUBCOMMANDS = {p: b"login" for p in (b"docker", b"podman", b"buildah", b"skopeo", b"nerdctl")}

# --------------------------------------------------------------------------
# Table 3: patterns found anywhere in an argument. Each is (what it is, lower-case
# literals one of which every match holds (the quick check), the pattern); the
# group 'v' is what is redacted.

# A header name at the start of a word, after a non-letter or glued to curl's -H.
_HDR = rb"(?i)(?:(?<![A-Za-z0-9])|(?<=-H))"
PATTERNS: list[tuple[str, tuple[bytes, ...], re.Pattern]] = [
    # scheme://user:password@host: the password runs to the last '@' before the host, so it may
    # hold '/', '@', ':' or quotes; digits then '/' after the ':' are a port, not a password.
    ("URL password", (b"://",), re.compile(
        rb"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#:@]*(?:@[^\s/?#:@]*)*?:(?!\d*(?:[/?#]|$))(?P<v>\S+?)@[^\s/?#@]*(?=[\s/?#]|$)")),
    # HTTP headers that carry credentials; a leading scheme word is kept.
    ("Authorization header", (b"authorization:",), re.compile(
        _HDR + rb"(?:proxy-)?authorization:[ \t]*(?:(?:bearer|basic|token|digest|negotiate)[ \t]+)?(?P<v>[^'\"\r\n]+)")),
    ("credential header", (b"key:", b"token:", b"cookie:"), re.compile(
        _HDR + rb"(?:x-api-key|api-key|x-auth-token|x-vault-token|private-token|x-access-token|job-token|"
        rb"(?:set-)?cookie):[ \t]*(?P<v>[^'\"\r\n]+)")),
    ("bearer token", (b"bearer",), re.compile(rb"(?i)\bbearer[ \t]+(?P<v>[A-Za-z0-9._~+/=-]+)")),
    ("AWS access key id", (b"akia", b"asia"), re.compile(rb"\b(?P<v>(?:AKIA|ASIA)[A-Z0-9]{16})\b")),
    ("JSON Web Token", (b"eyj",), re.compile(rb"\b(?P<v>eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)")),
    ("GitHub token", (b"gh",), re.compile(rb"\b(?P<v>gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")),
    ("Slack token", (b"xox",), re.compile(rb"\b(?P<v>xox[abposre]-[A-Za-z0-9-]{10,})")),
    ("Slack or Discord webhook URL", (b"hooks.slack", b"/webhooks/"), re.compile(
        rb"(?i)(?:hooks\.slack\.com/(?:services|workflows|triggers)/|discord(?:app)?\.com/api/webhooks/)"
        rb"(?P<v>[A-Za-z0-9_/-]+)")),
    # Newer GitLab tokens carry a version and a checksum after dots: glpat-PAYLOAD.01.SUFFIX.
    ("GitLab token", (b"gl",), re.compile(rb"\b(?P<v>gl(?:pat|dt|rt|ptt|cbt|ft|soat|agent|oas)-"
                                          rb"(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*?\.01\.[A-Za-z0-9_-]+|[A-Za-z0-9_-]{20,}))")),
    ("Stripe secret key", (b"k_live_", b"k_test_"), re.compile(rb"\b(?P<v>[sr]k_(?:live|test)_[A-Za-z0-9]{16,})")),
    ("Vault token", (b"hvs.", b"hvb.", b"hvr."), re.compile(rb"\b(?P<v>hv[sbr]\.[A-Za-z0-9_-]{20,})")),
    ("Google API key", (b"aiza",), re.compile(rb"\b(?P<v>AIza[A-Za-z0-9_-]{35})")),
    ("npm token", (b"npm_",), re.compile(rb"\b(?P<v>npm_[A-Za-z0-9]{36})")),
    ("PyPI token", (b"pypi-",), re.compile(rb"\b(?P<v>pypi-AgE[A-Za-z0-9_-]{50,})")),
    # openssl -pass pass:SECRET, -passin pass:SECRET.
    ("openssl passphrase", (b"pass:",), re.compile(rb"(?<![\w-])pass:(?P<v>\S+)")),
    # A private key pasted into an argument: from its BEGIN line to its END line (or the end).
    ("private key", (b"-----begin",), re.compile(
        rb"(?P<v>-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        rb"(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*))", re.S)),
]

# "name": "value" pairs (JSON passed as an argument): the value when the name is a secret's.
_JSON_PAIR = re.compile(rb'"(?P<k>[A-Za-z_][A-Za-z0-9_.-]*)"\s*:\s*"(?P<v>(?:[^"\\]|\\.)*)"')

# NAME=VALUE at the start of a word, after ',', '&', ';', '?', '#' (lists, query strings) or
# after another '=' (--env=NAME=VALUE, --from-literal=NAME=VALUE).
_KEYED = re.compile(rb"(?:^|(?<=[,&;?#=]))(?P<k>-{0,2}[A-Za-z_][A-Za-z0-9_.\[\]-]*)=")
_LIST_SEPARATORS = b",&;?#"
# A whole argument NAME=VALUE or --name=VALUE (or --opt=NAME=VALUE): the program gets all of the
# rest as the value, spaces, tabs and newlines included.
_ARG_ASSIGN = re.compile(rb"^(?P<k>-{0,2}[A-Za-z_][A-Za-z0-9_.\[\]-]*)=(?:(?P<k2>[A-Za-z_][A-Za-z0-9_.\[\]-]*)=)?",
                         re.S)

# The quick check: every rule's match holds one of these (lower case).
# Programs are found by these stems: every name in PROGRAMS holds one (`docker login`: login).
_PROGRAM_STEMS = (b"mysql", b"mariadb", b"ldap", b"mongo", b"curl", b"sshpass", b"redis-cli", b"smbclient",
                  b"openssl", b"zip", b"7z", b"ipmitool", b"sqlcmd", b"lftp", b"login")
_CANDIDATES = sorted({*_SECRET_ENDINGS, b"key", *_SECRET_QUERY_NAMES, *(lit for _, lits, _ in PATTERNS for lit in lits),
                      *_PROGRAM_STEMS})
# A shorter literal inside a longer one makes the longer redundant.
_CANDIDATES = [c for c in _CANDIDATES if not any(o != c and o in c for o in _CANDIDATES)]


def _trie(words) -> re.Pattern:
    """One pattern matching any of words, written as a trie: at each position of the text one
    branch by its byte, rather than one attempt per word (three times faster with fifty words)."""
    tree: dict = {}
    for w in words:
        node = tree
        for ch in w:
            node = node.setdefault(ch, {})
        node[None] = {}

    def emit(node: dict) -> bytes:
        alts = [re.escape(bytes([ch])) + emit(node[ch]) for ch in sorted(k for k in node if k is not None)]
        if not alts:
            return b""
        body = alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"
        return b"(?:" + body + b")?" if None in node else body

    return re.compile(emit(tree))


_CANDIDATE = _trie(_CANDIDATES)

# --------------------------------------------------------------------------
# The walk over the words of a command line.

_WORD = re.compile(rb"\S+")
_QUOTES = b"'\""
_FLAG = re.compile(rb"^--?(?P<k>[A-Za-z][A-Za-z0-9_.-]*)$")
# --name:VALUE, the colon form some programs take for --name=VALUE (only after two dashes:
# curl's -HAuthorization: is a header, left to the header patterns).
_COLON_OPT = re.compile(rb"^--(?P<k>[A-Za-z][A-Za-z0-9_.-]*):")
# openssl's passphrase sources: pass:X is caught as a pattern, the others name where it is.
_PASS_SOURCES = (b"pass:", b"env:", b"file:", b"fd:", b"stdin")
_SEPARATORS = {b";", b"|", b"||", b"&&", b"&"}


def _span_unquoted(word: bytes, start: int, end: int) -> tuple[int, int]:
    """The span of a word without the quotes around it (and a shell's ';', '&', '|', ')' after
    a closing quote: `X='v';`)."""
    e = end
    while e > start and word[e - 1] in b";&|)":
        e -= 1
    if e < end and e > start and word[e - 1] in _QUOTES:
        end = e
    while start < end and word[start] in _QUOTES:
        start += 1
    while end > start and word[end - 1] in _QUOTES:
        end -= 1
    return start, end


def _secret_value(v: bytes) -> tuple[int, int] | None:
    """The span of a value given after an option with a secret's name."""
    if v.startswith(b"-") or v.lower() in _PLAIN_VALUES or v.startswith(_PASS_SOURCES):
        return None
    return 0, len(v)


def _keyed(core: bytes, spans: list, off: int) -> None:
    """Spans of the secret values of NAME=VALUE pairs in one word."""
    ms = list(_KEYED.finditer(core))
    skip_to = 0
    for i, m in enumerate(ms):
        if m.start() < skip_to:
            continue
        k = m.group("k")
        name = k.lstrip(b"-")
        query = m.start() and core[m.start() - 1] in b"?&#"
        if not (secret_name(name) or (query and name.lower() in _SECRET_QUERY_NAMES)):
            continue
        end = len(core)
        for n in ms[i + 1:]:  # the value runs to the next pair of a list, not into a nested one
            if core[n.start() - 1] in _LIST_SEPARATORS:
                end = n.start() - 1
                break
        vs, ve = _span_unquoted(core, m.end(), end)
        if ve > vs and core[vs:ve].lower() not in _PLAIN_VALUES:
            spans.append((off + vs, off + ve))
        skip_to = end


class _Words:
    """Walks the words of a command line, carrying what the previous word asked for."""

    def __init__(self, client: bytes):
        self.client = client
        self.pending = None  # the value rule the next word is for

    def option(self, core: bytes, spans: list, off: int) -> bool:
        """A program's own option (table 2); True when the word was one."""
        opts = PROGRAMS.get(self.client)
        if opts is None or not core.startswith(b"-"):
            return False
        spec = opts.get(core)
        if spec is not None:
            if spec[1] == BOTH:
                self.pending = spec[0]
            return True
        if core.startswith(b"--"):
            i = core.find(b"=")
            spec = opts.get(core[:i]) if i > 0 else None
            start = i + 1
        else:
            spec = opts.get(core[:2])
            start = 2
        if spec is None:
            return False
        span = spec[0](core[start:])
        if span is not None:
            spans.append((off + start + span[0], off + start + span[1]))
        return True

    def word(self, w: bytes, spans: list, off: int) -> None:
        s, e = _span_unquoted(w, 0, len(w))
        core = w[s:e]
        off += s
        pending, self.pending = self.pending, None
        if not core:
            return
        if pending is not None and not core.startswith(b"-"):
            span = pending(core)
            if span is not None:
                spans.append((off + span[0], off + span[1]))
            return
        if core in _SEPARATORS:
            self.client = b""
            return
        base = os.path.basename(core)
        if base in PROGRAMS or base in _SUBCOMMANDS:
            self.client = base
            return
        if core == _SUBCOMMANDS.get(self.client):
            self.client += b" " + core
            return
        if self.option(core, spans, off):
            return
        m = _COLON_OPT.match(core)
        if m and secret_name(m.group("k")):
            span = _secret_value(core[m.end():])
            if span is not None:
                spans.append((off + m.end() + span[0], off + m.end() + span[1]))
            return
        if b"=" in core:
            _keyed(core, spans, off)
            return
        m = _FLAG.match(core)
        if m and secret_name(m.group("k")):
            self.pending = _secret_value

    def argument(self, arg: bytes, spans: list, first: bool) -> None:
        """One whole argument of argv."""
        if self.pending is not None:  # the value of the previous argument's option: all of it
            pending, self.pending = self.pending, None
            if not arg.startswith(b"-"):
                span = pending(arg)
                if span is not None:
                    spans.append(span)
                return
        m = _COLON_OPT.match(arg)
        if m and secret_name(m.group("k")) and arg[m.end():].strip().lower() not in _PLAIN_VALUES:
            spans.append((m.end(), len(arg)))  # --name:VALUE, all the rest as with --name=VALUE
            return
        m = _ARG_ASSIGN.match(arg)
        if m and arg.startswith(b"-"):
            # --name=VALUE or --opt=NAME=VALUE: the program gets all the rest as the value.
            k = m.group("k").lstrip(b"-")
            if secret_name(k):
                start = m.end("k") + 1
            elif m.group("k2") and secret_name(m.group("k2")):
                start = m.end()
            else:
                start = None
            if start is not None and arg[start:].strip().lower() not in _PLAIN_VALUES:
                spans.append((start, len(arg)))
                return
        if first:
            # argv[0] names the program (or was rewritten, like `exec -a` or setproctitle):
            # its words are read too, starting from no program.
            self.client = b""
        for wm in _WORD.finditer(arg):
            self.word(wm.group(), spans, wm.start())
        if first and not self.client:
            self.client = os.path.basename(arg)
        if self.pending is not None and arg[-1:].isspace():
            self.pending = None  # `--token= ` inside one argument: an empty value


def _apply(arg: bytes, spans: list[tuple[int, int]]) -> bytes:
    """The argument with each span (merged where they overlap) replaced by <redacted>."""
    out = []
    pos = 0
    for s, e in sorted(spans):
        if s <= pos and out:  # overlaps or touches the previous one: one <redacted> for both
            pos = max(pos, e)
            continue
        out.append(arg[pos:s])
        out.append(REDACTED)
        pos = e
    out.append(arg[pos:])
    return b"".join(out)


def redact_argv(argv: list[bytes], low: bytes | None = None) -> list[bytes]:
    """argv with the values of credentials replaced by ``<redacted>`` (low: the lowered command
    line, when the caller has it)."""
    if low is None:
        low = b"\0".join(argv).lower()
    patterns = [rx for _, lits, rx in PATTERNS if any(lit in low for lit in lits)]  # once, not per argument
    words = _Words(os.path.basename(argv[0]) if argv else b"")
    out = []
    for i, arg in enumerate(argv):
        spans: list[tuple[int, int]] = []
        for rx in patterns:
            for m in rx.finditer(arg):
                if m.end("v") > m.start("v"):
                    spans.append(m.span("v"))
        if b'"' in arg:
            for m in _JSON_PAIR.finditer(arg):
                if m.end("v") > m.start("v") and secret_name(m.group("k")) and m.group("v").lower() not in _PLAIN_VALUES:
                    spans.append(m.span("v"))
        words.argument(arg, spans, i == 0)
        out.append(_apply(arg, spans) if spans else arg)
    return out


# Command lines already redacted (None: nothing to redact), by their bytes. A host's command
# lines hardly change from one snapshot to the next and many processes share one (workers of a
# pool), so each distinct one is read once; the memo is emptied when it holds _MEMO_BYTES.
_MEMO: dict[bytes, bytes | None] = {}
_MEMO_BYTES = 2 << 20
_memo_size = 0


def redact_cmdline(raw: bytes) -> bytes:
    """The bytes of /proc/PID/cmdline with credentials redacted; raw itself when there are none."""
    global _memo_size
    if not raw:
        return raw
    red = _MEMO.get(raw, raw)
    if red is raw:  # not seen (a value in the memo is None or other bytes, never this object)
        red = _redact(raw)
        if _memo_size > _MEMO_BYTES:
            _MEMO.clear()
            _memo_size = 0
        _MEMO[raw] = red
        _memo_size += len(raw) + (len(red) if red is not None else 0)
    return raw if red is None else red


def _redact(raw: bytes) -> bytes | None:
    low = raw.lower()
    if _CANDIDATE.search(low) is None:
        return None
    trailing = raw.endswith(b"\0")
    argv = (raw[:-1] if trailing else raw).split(b"\0")
    red = redact_argv(argv, low)
    if red == argv:
        return None
    return b"\0".join(red) + (b"\0" if trailing else b"")


def redact_text(raw: bytes) -> bytes:
    """Free text (a kernel log message) with credentials redacted: read as one shell-like string
    of words that no program name comes before; raw itself when there are none."""
    if not raw:
        return raw
    low = raw.lower()
    if _CANDIDATE.search(low) is None:
        return raw
    return redact_argv([b"", raw], b"\0" + low)[1]
