"""``procsnap replay``: step through a recording in a terminal UI, as ``atop -r`` and ``below
replay`` users do; without a recording, the live host, a snapshot every few seconds.

One key a view (host, processes, one process, sockets, files, events, diff), one key a step in
time (``t`` next snapshot, ``T`` previous, ``b`` a typed time, ``g``/``G`` first/last, ``m``
mark, ``d`` diff between the mark and the moment shown). Every number is a command's own (top's
frame, lsof's and ps's listings, events' and diff's), and each view shows the command line
that prints it, for a post-mortem.
"""
# This package is the command (run) over its parts: source (the recording and what each view
# reads), views (the pages, from the commands' renderings), lines (the widgets that draw only
# what is on screen) and app (the Textual app: keys, prompts, the screen's layout).

from __future__ import annotations

from analyze.errors import UsageError


def run(dirs: list[str] | None, host: str | None = None, interval: float = 5.0, view: str = "processes") -> int:
    """`procsnap replay [DIR...]`: run the UI until q; returns the exit status."""
    import sys

    from analyze.commands.replay.source import LiveSource, Source
    if host and not dirs:
        raise UsageError("--host goes with a recording (without DIR procsnap replay reads the live host)")
    if dirs:
        from analyze.data.files import recording_folders
        recording_folders(dirs)  # not a recording: said before anything else
    # Textual reads keys from stdin and draws on stderr (stdout may go elsewhere)
    if not (sys.__stdin__ and sys.__stdin__.isatty() and sys.__stderr__ and sys.__stderr__.isatty()):
        raise UsageError("procsnap replay needs a terminal (for a listing, use procsnap top, lsof, ps, events)")
    src = Source(dirs, host) if dirs else LiveSource(interval)
    from analyze.commands.replay.app import ReplayApp
    app = ReplayApp(src, view=view)
    app.run()
    return app.return_code or 0
