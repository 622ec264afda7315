"""The widgets replay draws with: a list of text lines of any length that renders only the rows
on screen (:class:`Lines`), and the one-line charts (:func:`spark`, :func:`timeline`).

Textual's DataTable lays out every cell it holds, which takes seconds past a million cells
(80,000 open files × 11 columns); the commands' own listings (top's table, lsof's, ps's) are
text already, so :class:`Lines` keeps their lines and draws the visible ones, each time it is
drawn. Every line passes through :func:`recorder.textsafe.escape` on its way to the screen
and is drawn as a plain segment (never Rich markup): what a recording holds is shown, never
interpreted.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from recorder.textsafe import escape

BARS = "▁▂▃▄▅▆▇█"
CURSOR = Style(reverse=True)
HEAD = Style(bold=True)
PLAIN = Style()  # never None: Textual's NO_COLOR filter reads every segment's style


def spark(values: list, end: int, width: int, top: float | None = None) -> str:
    """The WIDTH values up to index END (included) as a bar chart of one line; an unknown value
    is a space. TOP is the value of a full bar (default: the highest shown)."""
    lo = max(0, end + 1 - width)
    vals = values[lo:end + 1]
    known = [v for v in vals if v is not None]
    full = top if top is not None else (max(known) if known else 0)
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        elif full <= 0:
            out.append(BARS[0])
        else:
            out.append(BARS[max(0, min(len(BARS) - 1, int(v / full * (len(BARS) - 1) + 0.5)))])
    return "".join(out).rjust(width)


def column_of(i: int, n: int, width: int) -> int:
    """The column of the time line that snapshot I of N is drawn in."""
    cols = min(width, n)
    return i * cols // n if n > cols else i


def snapshot_at(x: int, n: int, width: int) -> int | None:
    """The snapshot drawn in column X of the time line (the first of those it stands for)."""
    cols = min(width, n)
    if not 0 <= x < cols:
        return None
    return -(-x * n // cols) if n > cols else x


def timeline(n: int, at: int, width: int, marks: dict, mark: int | None = None) -> str:
    """The recording's N snapshots in WIDTH columns: ``━`` time, ``!`` an interval with kernel
    reports or killed processes, ``m`` the marked moment, ``▼`` the one shown."""
    if n <= 0 or width <= 0:
        return ""
    cols = min(width, n)

    def col(i):
        return column_of(i, n, width)
    cells = ["━"] * cols
    for i in marks:
        if 0 <= i < n:
            cells[col(i)] = "!"
    if mark is not None and 0 <= mark < n:
        cells[col(mark)] = "m"
    cells[col(at)] = "▼"
    return "".join(cells)


class Timeline(Static):
    """The time line; a click on it goes to the snapshot under the pointer."""

    class Picked(Message):
        def __init__(self, x: int) -> None:
            super().__init__()
            self.x = x

    def on_click(self, event) -> None:
        self.post_message(self.Picked(event.x))


class Lines(ScrollView, can_focus=True):
    """HEAD lines fixed at the top and BODY lines under them, scrolled; a cursor row in the body."""

    BINDINGS = [
        Binding("up", "cursor(-1)", show=False), Binding("down", "cursor(1)", show=False),
        Binding("pageup", "page(-1)", show=False), Binding("pagedown", "page(1)", show=False),
        Binding("home", "edge(0)", show=False), Binding("end", "edge(1)", show=False),
        Binding("left", "pan(-8)", show=False), Binding("right", "pan(8)", show=False),
    ]

    class Chosen(Message):
        """Enter on a body row."""

        def __init__(self, row: int) -> None:
            super().__init__()
            self.row = row

    class Resized(Message):
        """The widget's width changed (a view cut to it is drawn again)."""

        def __init__(self, width: int) -> None:
            super().__init__()
            self.width = width

    def on_resize(self, event) -> None:
        self.post_message(self.Resized(event.size.width))

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.head: list[str] = []
        self.body: list[str] = []
        self.cursor = 0

    def show(self, head: list[str], body: list[str], keep: bool = False) -> None:
        """New lines; KEEP: the cursor and scroll stay where they are (a step in time)."""
        self.head, self.body = head, body
        if not keep:
            self.cursor = 0
            self.scroll_to(0, 0, animate=False)
        self.cursor = max(0, min(self.cursor, len(body) - 1))
        width = max((len(x) for x in head), default=0)
        # the widest of a long listing: its lines are alike, so a sample tells
        sample = body if len(body) <= 5000 else body[:2000] + body[-2000:]
        width = max([width] + [len(x) for x in sample])
        self.virtual_size = Size(width + 1, len(head) + len(body))
        self.refresh()

    @property
    def page(self) -> int:
        return max(1, self.size.height - len(self.head))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y < len(self.head):
            text, style = self.head[y], HEAD
        else:
            i = y - len(self.head) + scroll_y
            if i >= len(self.body):
                return Strip.blank(width, PLAIN)
            text, style = self.body[i], (CURSOR if i == self.cursor and self.has_focus else PLAIN)
        strip = Strip([Segment(escape(text), style)])  # its width in cells (wide characters take two)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    # ---- moving
    def move_to(self, row: int) -> None:
        if not self.body:
            return
        self.cursor = max(0, min(row, len(self.body) - 1))
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + self.page:
            self.scroll_to(y=self.cursor - self.page + 1, animate=False)
        self.refresh()

    def action_cursor(self, d: int) -> None:
        self.move_to(self.cursor + d)

    def action_page(self, d: int) -> None:
        self.move_to(self.cursor + d * self.page)

    def action_edge(self, end: int) -> None:
        self.move_to(len(self.body) - 1 if end else 0)

    def action_pan(self, d: int) -> None:
        self.scroll_to(x=max(0, self.scroll_offset.x + d), animate=False)

    def key_enter(self) -> None:
        if self.body:
            self.post_message(self.Chosen(self.cursor))

    def find(self, text: str, start: int) -> int | None:
        """The first body row from START on (wrapping) whose text holds TEXT (case-insensitive)."""
        t = text.lower()
        n = len(self.body)
        for k in range(n):
            i = (start + k) % n
            if t in self.body[i].lower():
                return i
        return None
