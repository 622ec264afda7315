"""The terminal UI of procsnap replay (Textual): a bar naming the moment, the time line, the
view's lines, the note line, the equivalent command line, the keys.

Keys go to the app; what they change is :class:`analyze.commands.replay.views.State` and the
moment shown (an index into the time line); every change redraws the view from the source.
What goes wrong while reading (a damaged file, a moment without the table a view needs) is one
line in the note line, never a traceback on the screen.
"""

from __future__ import annotations

import functools

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Input, Static

from analyze.commands.replay import views as V
from analyze.commands.replay.lines import Lines, Timeline, snapshot_at, timeline
from analyze.commands.replay.source import Source, shown
from analyze.errors import ProcsnapError
from recorder.textsafe import escape


def one_line(e: BaseException) -> str:
    """An exception as the one line the note shows."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text if isinstance(e, ProcsnapError) else f"{type(e).__name__}: {text}"


class ReplayApp(App):
    TITLE = "procsnap replay"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #bar { height: 1; background: $primary-background; text-style: bold; }
    #timeline { height: 1; }
    Lines { height: 1fr; }
    #note { height: 1; color: $warning; }
    #cmd { height: 1; color: $text-muted; }
    #ask { dock: bottom; display: none; height: 3; }
    """
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", show=False, priority=True),  # as any terminal program, not Textual's copy
        Binding("t", "step(1)", "next"),
        Binding("T", "step(-1)", "prev"),
        Binding("b", "ask('time')", "to time"),
        Binding("g", "edge(0)", "first"),
        Binding("G", "edge(1)", "last"),
        Binding("h", "view('host')", "host"),
        Binding("p", "view('processes')", "procs"),
        Binding("s", "view('sockets')", "sockets"),
        Binding("o", "view('files')", "files"),
        Binding("e", "view('events')", "events"),
        Binding("m", "mark", "mark"),
        Binding("d", "diff", "diff"),
        Binding("f", "ask('filter')", "filter"),
        Binding("slash", "ask('search')", "search"),
        Binding("question_mark", "view('help')", "help"),
        Binding("n", "next_match", show=False),
        Binding("V", "tree", show=False),
        Binding("R", "reverse", show=False),
        Binding("l", "listeners", show=False),
        Binding("escape", "back", show=False),
        *[Binding(k, f"sort('{v}')", show=False) for k, v in V.SORTS.items()],
    ]

    def __init__(self, src: Source, view: str = "processes") -> None:
        super().__init__()
        self.src = src
        self.i = len(src) - 1
        self.st = V.State(view=view)
        self.page: V.Page | None = None
        self.asking: str | None = None
        self.search = ""
        self.history: list[V.State] = []
        self.drawn_width = 0  # the width the view was last drawn for
        self.said = ""  # what the note line says

    def compose(self) -> ComposeResult:
        yield Static(id="bar")
        yield Timeline(id="timeline")
        yield Lines(id="lines")
        yield Static(id="note")
        yield Static(id="cmd")
        yield Input(id="ask")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Lines).focus()
        self.redraw()
        if self.src.live:
            self.set_interval(self.src.interval, self.tick)
        else:
            self.run_worker(self.verify, thread=True, group="verify")

    def verify(self) -> None:
        """In a thread: every page's checksum; damaged files are then left out and named."""
        try:
            bad = self.src.verify_pages()
        except Exception as e:  # noqa: BLE001 - one line on screen
            self.call_from_thread(self.say, one_line(e))
            return
        if bad:
            self.call_from_thread(self.damaged)

    def damaged(self) -> None:
        try:
            self.src.reopen()
        except Exception as e:  # noqa: BLE001
            self.say(one_line(e))
            return
        self.i = min(self.i, len(self.src) - 1)
        self.redraw(keep=True)

    def on_lines_resized(self, msg: Lines.Resized) -> None:
        """top's table is cut to the width, and the time line drawn in it: both again."""
        if self.page is not None and msg.width != self.drawn_width:
            said = self.said
            self.redraw(keep=True)
            if not self.said:  # what the note line said stays (a damaged file named at opening)
                self.say(said)

    # ---- drawing
    @property
    def width(self) -> int:
        self.drawn_width = self.query_one(Lines).size.width
        return self.drawn_width or self.size.width or 80

    def build(self) -> V.Page:
        st, src, i = self.st, self.src, self.i
        if st.view == "host":
            return V.host(src, i, self.width)
        if st.view == "process" and st.pid is not None:
            return V.process(src, i, st.pid, self.width)
        if st.view == "sockets":
            return V.sockets(src, i, st)
        if st.view == "files":
            return V.files(src, i)
        if st.view == "events":
            return V.events(src, i)
        if st.view == "diff" and st.mark is not None:
            return V.diff(src, st.mark, i)
        if st.view == "help":
            return V.help_page(src, i)
        return V.processes(src, i, st, self.width)

    def redraw(self, keep: bool = False) -> None:
        """The view at the moment shown; KEEP: the cursor stays (a step in time, a new sort)."""
        note = ""
        try:
            page = self.build()
            note = page.note
        except Exception as e:  # noqa: BLE001 - one line on screen, the session goes on
            page = V.Page(self.st.view, command=self.page.command if self.page else "")
            note = one_line(e)
        lines = self.query_one(Lines)
        before = self.page.keys[lines.cursor] if keep and self.page and lines.cursor < len(self.page.keys) else None
        self.page = page
        lines.show(page.head, page.body, keep=keep)
        if before is not None and before in page.keys:  # the cursor follows its process through time
            lines.move_to(page.keys.index(before))
        self.draw_bar()
        self.query_one("#cmd", Static).update(Text("$ " + escape(page.command), no_wrap=True, overflow="ellipsis"))
        self.say("; ".join(self.src.take_notes() + ([note] if note else [])))
        if self.st.view in ("processes", "host", "process"):
            # the frames t and T will want, read while the screen is read (once it is drawn)
            at = self.i
            self.call_after_refresh(self.run_worker, functools.partial(self.src.prefetch, at, lambda: self.i != at),
                                    thread=True, group="prefetch")

    def draw_bar(self) -> None:
        src, st = self.src, self.st
        n = len(src)
        view = self.page.title if self.page else st.view
        parts = [f"{'live ' if src.live else ''}{src.host}", shown(src.times[self.i]), f"{self.i + 1}/{n}", view]
        if st.view == "processes":
            parts.append(f"sort {'' if st.descending else '-'}{st.sort}" + (" tree" if st.tree else "")
                         + (f" filter {st.filter}" if st.filter else ""))
        if st.mark is not None:
            parts.append(f"mark {shown(src.times[st.mark])}")
        self.query_one("#bar", Static).update(Text(escape("  ".join(parts)), no_wrap=True, overflow="ellipsis"))
        self.query_one("#timeline", Static).update(
            Text(timeline(n, self.i, self.size.width or 80, src.history.marks, st.mark), no_wrap=True))

    def say(self, text: str) -> None:
        self.said = text
        self.query_one("#note", Static).update(Text(escape(text), no_wrap=True, overflow="ellipsis"))

    # ---- time
    def go(self, i: int) -> None:
        n = len(self.src)
        if not 0 <= i < n:
            self.say("no later snapshot" if i >= n else "no earlier snapshot")
            return
        self.i = i
        self.redraw(keep=True)

    def action_step(self, d: int) -> None:
        self.go(self.i + d)

    def action_edge(self, end: int) -> None:
        self.go(len(self.src) - 1 if end else 0)

    def action_mark(self) -> None:
        self.st.mark = self.i
        self.draw_bar()
        self.say(f"marked {shown(self.src.times[self.i])}: d shows what changed between it and the moment shown")

    def action_diff(self) -> None:
        if self.st.mark is None:
            self.say("m marks a moment first; d then compares it with the moment shown")
            return
        if self.st.mark == self.i:
            self.say("the mark is the moment shown: step to another moment (t, T, b) to compare")
            return
        self.say("comparing…")
        self.call_after_refresh(self.action_view, "diff")

    def tick(self) -> None:
        """Live: one more snapshot, taken in a thread (a busy host's takes most of a second)."""
        self.run_worker(self.take, thread=True, group="live", exclusive=True)

    def take(self) -> None:
        try:
            snap = self.src.take()
        except Exception as e:  # noqa: BLE001 - one line on screen
            self.call_from_thread(self.say, one_line(e))
            return
        self.call_from_thread(self.grown, snap)

    def grown(self, snap) -> None:
        """The newest is shown when it was."""
        newest = self.i == len(self.src) - 1
        try:
            self.src.grow(snap)
        except Exception as e:  # noqa: BLE001
            self.say(one_line(e))
            return
        self.i = len(self.src) - 1 if newest else min(self.i, len(self.src) - 1)
        self.redraw(keep=True)

    # ---- views
    def action_view(self, view: str) -> None:
        if view != self.st.view:
            self.history.append(V.State(**vars(self.st)))
        self.st.view = view
        self.redraw()

    def action_back(self) -> None:
        if self.asking:
            self.close_ask()
            return
        if self.history:
            mark = self.st.mark
            self.st = self.history.pop()
            self.st.mark = mark
            self.redraw()

    def on_timeline_picked(self, msg: Timeline.Picked) -> None:
        i = snapshot_at(msg.x, len(self.src), self.size.width or 80)
        if i is not None:
            self.go(i)

    def on_lines_chosen(self, msg: Lines.Chosen) -> None:
        keys = self.page.keys if self.page else []
        pid = keys[msg.row] if msg.row < len(keys) else None
        if pid is None:
            return
        self.history.append(V.State(**vars(self.st)))
        self.st.view, self.st.pid = "process", pid
        self.redraw()

    def action_sort(self, key: str) -> None:
        if self.st.view != "processes":
            return
        self.st.sort, self.st.descending = key, True
        self.redraw(keep=True)

    def action_reverse(self) -> None:
        self.st.descending = not self.st.descending
        self.redraw(keep=True)

    def action_tree(self) -> None:
        self.st.tree = not self.st.tree
        self.redraw(keep=True)

    def action_listeners(self) -> None:
        if self.st.view == "sockets":
            self.st.listeners = not self.st.listeners
            self.redraw()

    # ---- typed values
    def action_ask(self, what: str) -> None:
        ask = self.query_one("#ask", Input)
        ask.placeholder = {"time": "time: 03:14, -10m, +1h, 2026-12-04T03:14Z, start, end (Enter; Esc cancels)",
                           "filter": "filter: text, user:NAME, cgroup:TEXT, name:TEXT (empty: none)",
                           "search": "search: text (n: next match)"}[what]
        ask.value = self.st.filter if what == "filter" else ""
        self.asking = what
        ask.display = True
        ask.focus()

    def close_ask(self) -> None:
        ask = self.query_one("#ask", Input)
        ask.display = False
        self.asking = None
        self.query_one(Lines).focus()

    def on_input_submitted(self, msg: Input.Submitted) -> None:
        what, value = self.asking, msg.value.strip()
        self.close_ask()
        if what == "time" and value:
            try:
                self.go(self.src.index_at(value))
            except Exception as e:  # noqa: BLE001 - a bad time is one line
                self.say(one_line(e))
        elif what == "filter":
            if self.st.view != "processes":
                self.action_view("processes")
            self.st.filter = value
            self.redraw()
        elif what == "search" and value:
            self.search = value
            self.action_next_match(first=True)

    def action_next_match(self, first: bool = False) -> None:
        if not self.search:
            self.say("/ searches first")
            return
        lines = self.query_one(Lines)
        row = lines.find(self.search, lines.cursor if first else lines.cursor + 1)
        if row is None:
            self.say(f"not found: {self.search}")
        else:
            lines.move_to(row)
            self.say("")
