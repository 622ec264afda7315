"""ps's command line: UNIX, BSD and GNU long options, parsed by hand (they mix three syntaxes)
into :class:`Options`; what is not supported is a usage error."""

from __future__ import annotations

from dataclasses import dataclass, field

from analyze.commands.ps.fields import FIELDS, NOT_RECORDED, O_TRAILER, Field
from analyze.errors import UsageError


FORMATS = ("table", "csv", "json")


@dataclass
class Spec:
    """One -o item: FIELD[:WIDTH][=HEADER]."""

    field: Field
    name: str                   # as given (the csv/json key)
    header: str | None = None   # override
    width: int | None = None    # override


@dataclass
class Options:
    all: bool = False
    simple: set = field(default_factory=set)      # -a -d a x g
    pids: list = field(default_factory=list)
    ppids: list = field(default_factory=list)
    sids: list = field(default_factory=list)
    ttys: list = field(default_factory=list)
    euids: list = field(default_factory=list)     # names or numbers
    ruids: list = field(default_factory=list)
    comms: list = field(default_factory=list)
    my_tty: bool = False                          # BSD T
    negate: bool = False
    running: bool = False
    prefer_bsd: bool = False
    format_flags: set = field(default_factory=set)   # "f" (-f, -F), "u" (BSD u)
    modifiers: set = field(default_factory=set)      # "F", "j", "P"
    threads: set = field(default_factory=set)        # "L", "T"
    user_fmt: list = field(default_factory=list)     # [Spec]
    O_used: bool = False
    sort: list = field(default_factory=list)         # [(Field, descending)]
    sort_given: bool = False
    no_headers: bool = False
    numeric_users: bool = False
    bsd_c: bool = False
    fmt: str = "table"
    recs: list = field(default_factory=list)
    at: str | None = None
    hosts: list = field(default_factory=list)
    help: bool = False
    list_fields: bool = False

    @property
    def has_lists(self) -> bool:
        return bool(self.pids or self.ppids or self.sids or self.ttys or self.euids or self.ruids
                    or self.comms or self.my_tty)


UNSUPPORTED_UNIX = {
    "H": "process trees (-H) are not supported (procsnap query --name process_tree shows the tree)",
    "l": "-l needs WCHAN and F, which are not recorded (-F gives the long listing's other columns)",
    "y": "-y goes with -l, which is not supported (WCHAN and F are not recorded)",
    "c": "-c needs the scheduling class, which is not recorded",
    "M": "security labels (-M) are not recorded",
    "Z": "security labels (-Z) are not recorded",
    "m": "-m (threads after their process) is not supported: use -L",
    "g": "-g is ambiguous (session or group): use -s SID",
    "G": "the real group id (-G) is not recorded",
    "V": "-V: procsnap ps follows procps-ng 4.0",
}
UNSUPPORTED_BSD = {
    "e": "e (environment) is not recorded",
    "f": "f (ASCII-art forest) is not supported (procsnap query --name process_tree shows the tree)",
    "j": "j (BSD job format) needs TPGID, which is not recorded (-j is supported)",
    "l": "l (BSD long format) needs WCHAN and F, which are not recorded",
    "s": "s (signal format): signal masks are not recorded",
    "v": "v (virtual memory format) needs memory details that are not recorded",
    "X": "X (register format) is not recorded",
    "Z": "Z (security labels) is not recorded",
    "S": "S (children's CPU time) is not recorded",
    "m": "m (threads after their process) is not supported: use -L",
    "H": "H (threads as processes) is not supported: use -L",
    "O": "O is not supported: use -O FIELDS, or o FIELDS with --sort",
    "V": "V: procsnap ps follows procps-ng 4.0",
}


def parse_args(argv: list[str]) -> Options:
    """Parse ps's command line (plus --rec/--at/--host/--format csv|json) into Options."""
    o = Options()
    i = 0

    def next_value(opt: str) -> str:
        nonlocal i
        if i + 1 >= len(argv):
            raise UsageError(f"{opt} needs a value")
        i += 1
        return argv[i]

    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and len(a) > 2:
            _long(o, a, next_value)
        elif a.startswith("-") and len(a) > 1:
            letters = a[1:]
            if len(letters) >= 2 and "x" in letters and set(letters) <= set("auxw"):
                _bsd(o, letters, next_value)       # `ps -aux`, tolerated as `ps aux`
            else:
                _unix(o, letters, next_value)
        elif a in FORMATS:
            raise UsageError(f"{a!r} is not a ps option: use --format {a} (ps's -f is its full format)")
        elif a and all(ch.isdigit() or ch == "," for ch in a):
            o.pids.extend(_ints(a, "process ID"))   # `ps 1234` is `ps p 1234`, BSD syntax
            o.prefer_bsd = True
        elif a and a not in ("-", "--"):
            _bsd(o, a, next_value)
        else:
            raise UsageError(f"unknown option {a!r} (procsnap ps --help lists the options)")
        i += 1
    return o


def _unix(o: Options, letters: str, next_value) -> None:
    j = 0
    while j < len(letters):
        c = letters[j]
        rest = letters[j + 1:]
        if c in "puUCstoOq":
            _valued(o, c, rest or next_value(f"-{c}"), unix=True)
            return
        if c in "eA":
            o.all = True
        elif c in "ad":
            o.simple.add("-" + c)
        elif c == "N":
            o.negate = True
        elif c == "f":
            o.format_flags.add("f")
        elif c == "F":
            o.format_flags.add("f")
            o.modifiers.add("F")
        elif c in "jP":
            o.modifiers.add(c)
        elif c in "LT":
            o.threads.add(c)
        elif c == "w":
            pass                                # wide output: the output is never cut
        elif c in UNSUPPORTED_UNIX:
            raise UsageError(UNSUPPORTED_UNIX[c])
        else:
            raise UsageError(f"unknown option -{c} (procsnap ps --help lists the options)")
        j += 1


def _bsd(o: Options, letters: str, next_value) -> None:
    o.prefer_bsd = True
    j = 0
    while j < len(letters):
        c = letters[j]
        rest = letters[j + 1:]
        if c in "pUtokq":
            _valued(o, c, rest or next_value(c), unix=False)
            return
        if c in "axg":
            o.simple.add(c)
        elif c == "u":
            o.format_flags.add("u")
        elif c == "h":
            o.no_headers = True
        elif c == "c":
            o.bsd_c = True
        elif c == "n":
            o.numeric_users = True
        elif c == "r":
            o.running = True
        elif c == "T":
            o.my_tty = True
        elif c == "w":
            pass
        elif c == "L":
            o.list_fields = True
        elif c in UNSUPPORTED_BSD:
            raise UsageError(UNSUPPORTED_BSD[c])
        else:
            raise UsageError(f"unknown option {c} (procsnap ps --help lists the options)")
        j += 1


_LONG_VALUED = {"--pid": "p", "--quick-pid": "p", "--ppid": "ppid", "--sid": "s", "--tty": "t", "--user": "u",
                "--User": "U", "--sort": "k", "--rec": "rec", "--at": "at", "--host": "host",
                "--format": "format", "--cols": None, "--columns": None, "--width": None, "--lines": None,
                "--rows": None}
_LONG_FLAGS = {"--deselect", "--no-headers", "--no-heading", "--headers", "--help"}
_LONG_UNSUPPORTED = {
    "--forest": "--forest is not supported (procsnap query --name process_tree shows the tree)",
    "--context": "security labels are not recorded",
    "--cumulative": "children's CPU time is not recorded",
    "--group": "use -o group and a filter: --group is not supported",
    "--Group": "the real group id is not recorded",
    "--version": "procsnap ps follows procps-ng 4.0",
    "--signames": "signal masks are not recorded",
    "--info": "--info is not supported",
}


def _long(o: Options, a: str, next_value) -> None:
    key, eq, val = a.partition("=")
    if key in _LONG_FLAGS:
        if eq:
            raise UsageError(f"{key} takes no value")
        if key == "--deselect":
            o.negate = True
        elif key in ("--no-headers", "--no-heading"):
            o.no_headers = True
        elif key == "--help":
            o.help = True
        return
    if key in _LONG_UNSUPPORTED:
        raise UsageError(_LONG_UNSUPPORTED[key])
    if key not in _LONG_VALUED:
        raise UsageError(f"unknown option {key} (procsnap ps --help lists the options)")
    val = val if eq else next_value(key)
    what = _LONG_VALUED[key]
    if what is None:
        return                                  # --cols/--lines: the output is never cut
    if what == "rec":
        o.recs.append(val)
    elif what == "at":
        o.at = val
    elif what == "host":
        o.hosts.append(val)
    elif what == "format":
        if val in FORMATS:
            o.fmt = val
        else:
            _valued(o, "o", val, unix=False)    # ps's own --format FIELDS, the same as -o
    elif what == "ppid":
        o.ppids.extend(_ints(val, "process ID"))
    else:
        _valued(o, what, val, unix=True)


def _items(v: str) -> list[str]:
    return [x for x in v.replace(",", " ").split() if x]


def _ints(v: str, what: str) -> list[int]:
    items = _items(v)
    if not items:
        raise UsageError(f"empty {what} list")
    out = []
    for x in items:
        if not x.isdigit():
            raise UsageError(f"{what} list syntax error: {x!r}")
        out.append(int(x))
    return out


def _valued(o: Options, c: str, v: str, unix: bool) -> None:
    if c in "pq":
        o.pids.extend(_ints(v, "process ID"))
    elif c == "s":
        o.sids.extend(_ints(v, "session ID"))
    elif c == "t":
        items = _items(v)
        if not items:
            raise UsageError("empty tty list")
        for x in items:
            x = x[5:] if x.startswith("/dev/") else x
            o.ttys.append(None if x in ("-", "?") else x)
    elif c == "u" or (c == "U" and not unix):
        o.euids.extend(_users(v))
    elif c == "U":
        o.ruids.extend(_users(v))
    elif c == "C":
        items = [x for x in v.split(",") if x]
        if not items:
            raise UsageError("empty command list")
        o.comms.extend(items)
    elif c == "o":
        if o.O_used:
            raise UsageError("-o can not follow -O")
        o.user_fmt.extend(parse_format(v))
    elif c == "O":
        if o.user_fmt or o.format_flags:
            raise UsageError("option -O can not follow other format options")
        o.user_fmt = parse_format("pid") + parse_format(v) + parse_format(O_TRAILER)
        o.O_used = True
    elif c == "k":
        if o.sort_given:
            raise UsageError("multiple sort options")
        o.sort = parse_sort(v)
        o.sort_given = True


def _users(v: str) -> list[str]:
    items = _items(v)
    if not items:
        raise UsageError("empty user list")
    return items


def _field(name: str) -> Field:
    f = FIELDS.get(name)
    if f is None:
        if name in NOT_RECORDED:
            raise UsageError(f"{name}: {NOT_RECORDED[name]} is not recorded by procsnap")
        raise UsageError(f'unknown user-defined format specifier "{name}" (procsnap ps L lists the fields)')
    return f


def parse_format(text: str) -> list[Spec]:
    """An -o list as procps parses it: items split on commas and blanks (one trailing separator
    allowed), each FIELD, FIELD=HEADER or FIELD:WIDTH (also FIELD:WIDTH=HEADER)."""
    seps = " ,\t\n"
    if not text or text[0] in seps:
        raise UsageError(f"improper format list {text!r}")
    body = text[:-1] if text[-1] in seps else text
    items = []
    cur = ""
    for ch in body:
        if ch in seps:
            if not cur:
                raise UsageError(f"improper format list {text!r}")
            items.append(cur)
            cur = ""
        else:
            cur += ch
    if not cur:
        raise UsageError(f"improper format list {text!r}")
    items.append(cur)
    out = []
    for item in items:
        name, eq, header = item.partition("=")
        name, colon, width = name.partition(":")
        w = None
        if colon:
            if not width.isdigit() or width.startswith("0"):
                raise UsageError(f"column widths must be unsigned decimal numbers: {item!r}")
            w = int(width)
        out.append(Spec(_field(name), header if eq and header else name, header if eq else None, w))
    return out


def parse_sort(text: str) -> list[tuple[Field, bool]]:
    """--sort/k: [+|-]FIELD items, split on commas and blanks."""
    seps = " ,\t\n"
    if not text or text[0] in seps or any(a in seps and b in seps for a, b in zip(text, text[1:])):
        raise UsageError(f"improper sort list {text!r}")
    out = []
    for item in text.replace("\t", " ").replace("\n", " ").replace(",", " ").split():
        desc = item.startswith("-")
        name = item[1:] if item[:1] in "+-" else item
        if name not in FIELDS:
            if name in NOT_RECORDED:
                raise UsageError(f"--sort {name}: {NOT_RECORDED[name]} is not recorded by procsnap")
            raise UsageError(f"unknown sort specifier {item!r}")
        out.append((FIELDS[name], desc))
    return out
