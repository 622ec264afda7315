"""`procsnap snapshot`: one snapshot added to a recording.

Run from :mod:`analyze.entry` without the command framework (typer, rich and click cost a
snapshot of a small host more than its collection), so it parses its own few options; its
--help comes from :mod:`analyze.cli`, which also calls :func:`take`.
"""

from __future__ import annotations

import sys

from analyze.errors import ProcsnapError, UsageError

# option -> (destination, takes a value)
OPTIONS = {"-o": ("output", True), "--output": ("output", True), "-q": ("quiet", False),
           "--quiet": ("quiet", False), "--host": ("host", True), "--no-redact": ("no_redact", False),
           "--tables": ("tables", True), "--allow-shared-folder": ("allow_shared", False)}


def parse_args(args: list[str]) -> dict:
    """The options as typer would read them (``--output=DIR``, ``-oDIR`` and ``-qo DIR`` too)."""
    o: dict = {"output": None, "quiet": False, "host": None, "no_redact": False, "tables": None, "allow_shared": False}
    i = 0

    def take(name: str, inline: str | None) -> None:
        """Set NAME's destination: True for a flag, else its value (inline, or the next word)."""
        nonlocal i
        if name not in OPTIONS:
            raise UsageError(f"snapshot: no such option: {name}")
        dest, takes = OPTIONS[name]
        if not takes:
            if inline is not None and name.startswith("--"):
                raise UsageError(f"snapshot: option {name} does not take a value")
            o[dest] = True
            return
        if not inline:
            if i >= len(args):
                raise UsageError(f"snapshot: option {name} requires an argument")
            inline = args[i]
            i += 1
        o[dest] = inline

    while i < len(args):
        a = args[i]
        i += 1
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            take(name, value if eq else None)
        elif a.startswith("-") and len(a) > 1:
            for j in range(1, len(a)):  # short flags, possibly bundled; -o takes the rest or the next word
                flag = "-" + a[j]
                if OPTIONS.get(flag, (None, False))[1]:
                    take(flag, a[j + 1:])
                    break
                take(flag, None)
        else:
            raise UsageError(f"snapshot: unexpected argument {a!r} (the folder goes with -o)")
    if o["output"] is None:
        raise UsageError("snapshot: missing option -o/--output (the recording folder)")
    return o


def parse_tables(text: str | None) -> tuple[str, ...] | None:
    """--tables: names of collected tables, comma-separated; what they need comes along (threads
    and descriptors are read in the process pass, sockets are resolved against descriptors)."""
    if text is None:
        return None
    from recorder.collect.collector import needed_tables
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise UsageError("snapshot: --tables needs at least one table name")
    try:
        return needed_tables(names)
    except ValueError as e:
        from recorder.schema import COLLECTED
        raise UsageError(f"snapshot: --tables: {e} (tables: {', '.join(COLLECTED)})") from None


def take(output: str, quiet: bool = False, host: str | None = None, redact: bool = True,
         tables: str | None = None, allow_shared: bool = False) -> None:
    from recorder.collect.collector import COLLECTED, Collector
    from recorder.store.folder import Store, StoreError
    wanted = parse_tables(tables)
    collector = Collector(host=host, redact=redact, tables=wanted or COLLECTED)
    try:
        store = Store(output, allow_shared=allow_shared)
    except StoreError as e:
        raise ProcsnapError(str(e)) from None
    with store:
        snap = collector.snapshot()
        try:
            n = store.write(snap)
        except StoreError as e:  # a full disk, or a folder changed under it: nothing of the snapshot is left
            raise ProcsnapError(f"snapshot not written: {e}") from None
    if not quiet and sys.stderr.isatty():
        print(f"procsnap: wrote snapshot {snap.ts:%Y-%m-%d %H:%M:%S} UTC ({n / 1e3:.0f} KB) to {output}",
              file=sys.stderr)


def run(args: list[str], help_text=None) -> int:
    # One snapshot, then exit: no cycle collection at all (the collector turns it off for its
    # pass; this spares the imports and the writing too).
    import gc
    gc.disable()
    o = parse_args(args)
    take(o["output"], o["quiet"], o["host"], not o["no_redact"], o["tables"], o["allow_shared"])
    return 0
