"""The operator console (Textual): the live fleet, and the research views of a training run.

Live: a worker thread polls the gateway's telemetry (SUB) and hands batches to the UI at most
4 times a second; widgets redraw only when the state's version or their size moved. On connect a
second worker asks the gateway's control socket for what it already holds — its stored signals
and the chosen symbol's recent bars — so the console is not empty after a replay ended; with only
a telemetry address, the control address is learned from the first snapshot's ``endpoints``.
Keys: ``?`` help, ``q`` quit, ``/`` choose symbol (its bars are asked for), ``p`` pause / resume
the gateway, ``r`` reset a brain (confirmed), all through the control socket from worker threads.

Layout rule (80×24, 100×30, 160×48 and anything between): a narrow terminal gets fewer columns,
never cut ones — tables drop whole columns by priority (heqis_console.layout), alerts wrap under
their time stamp, charts have a caption and draw nothing but "no data" while there is none.
Tables never scroll, so no scrollbar is ever drawn over their cells. The gateway's watchdog sits
under the signals (heqis_console.watchdog): one summary line on short terminals, counts by reason
and the last flags on taller ones, "watchdog: not reported" for a gateway without one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Label, OptionList, Sparkline, Static
from textual.worker import Worker, get_current_worker
from textual_plotext import PlotextPlot

from heqis_console.feed import ControlClient, TelemetryFeed
from heqis_console.layout import Column, fit_columns, fit_entries, fit_parts, pack_parts
from heqis_console.state import GOOD_ALERTS, MAX_CANDLES, MAX_SIGNALS, PROBLEM_ALERTS, Candle, ConsoleState, day
from heqis_console.watchdog import SUSPECT, panel_lines

HELP = """[b]HEQIS console[/b] — keys

  ?   this help              /   choose the K-line symbol
  p   pause / resume the gateway's dispatch
  r   reset a brain (asks which one, then confirms)
  q   quit

Under the signals: the gateway's watchdog (flagged and
held bars, by reason, the last flags). ⚠ after an action:
the watchdog flagged that bar (warn: sent on, marked).

Telemetry comes from the gateway's PUB socket; commands go to its control socket.
Research only: nothing here places orders."""

# one colour per generator, as RGB: plotext then writes true colour, which Textual shows as is, so
# the caption's legend matches the curves (named ANSI colours are remapped differently by each)
SERIES_COLORS = ((56, 189, 248), (244, 114, 182), (250, 204, 21), (74, 222, 128), (248, 113, 113),
                 (167, 139, 250))
RETRY_S = 1.0                 # between two tries of a control request the gateway did not answer
Y_AXIS_CELLS = 10             # what plotext's y-axis labels and frame take of a plot's width

# the breakpoints' classes size the right-hand column (stats, signals, latency) and the bottom row
BREAKPOINTS_CSS = """
Screen.-narrow .right { width: 34; }
Screen.-normal .right { width: 40; }
Screen.-wide .right { width: 64; }
Screen.-short #bottom { height: 5; }
Screen.-tall #bottom { height: 6; }
Screen.-taller #bottom { height: 9; }
"""
# how many lines the watchdog panel (under the signals) may take at each vertical breakpoint: a
# one-line summary on short terminals, the counts by reason and the last flags on taller ones
WATCHDOG_LINES = (("-taller", 12), ("-tall", 6))


class SizeChanged(Message):
    """Posted by a widget whose content is fitted to its size, when it is laid out at a new size."""


class _Sized:
    """Mixin: a widget whose content the app fits to its size says when that size changes.

    (Resize events do not bubble; this message does, so one handler on the app redraws.)"""

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(SizeChanged())  # type: ignore[attr-defined]


class FitTable(_Sized, DataTable):  # type: ignore[type-arg]
    """A table that never scrolls, so no scrollbar is drawn over its cells: filled with what fits."""

    DEFAULT_CSS = "FitTable { overflow: hidden hidden; scrollbar-size: 0 0; }"


class Chart(_Sized, PlotextPlot):
    """A plot whose content depends on its width (how many candles fit)."""


class Panel(_Sized, Static):
    """A text panel laid out line by line for its size (the alerts)."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        yield Static(HELP, id="help")


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of ``options`` (Enter), or Escape."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, options: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.options = options

    def compose(self) -> ComposeResult:
        with Vertical(id="choice"):
            yield Label(self.title_text)
            yield OptionList(*self.options) if self.options else Label("(nothing to choose yet)")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.options[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


Cell = str | Text


def fill_table(table: DataTable, columns: Sequence[Column], rows: list[dict[str, Cell]],  # type: ignore[type-arg]
               empty: str = "no data", fit_height: bool = True) -> list[Column]:
    """Fill ``table`` with the rows that fit its height and the whole columns that fit its width.

    Optional columns (priority > 0) with nothing in them are left out. Column widths are set to
    their content, so DataTable never cuts a cell; returns the columns shown. A table whose height
    follows its rows (``height: auto``) passes ``fit_height=False``: its height is not a limit."""
    height = table.size.height
    if height and fit_height:
        rows = rows[: max(height - 1, 0)]            # one line is the header
    plain = [{k: v.plain if isinstance(v, Text) else v for k, v in r.items()} for r in rows]
    if not rows:
        plain = [{columns[0].key: empty}]
    present = [c for c in columns if c.priority == 0 or any(p.get(c.key) for p in plain)]
    fitted = fit_columns(present, plain, table.size.width, table.cell_padding)
    table.clear(columns=True)
    for col, width in fitted:
        table.add_column(Text(col.label, justify="right" if col.right else "left"), width=width, key=col.key)
    if not rows:
        table.add_row(*[empty if i == 0 else "" for i in range(len(fitted))])
    for r in rows:
        cells = []
        for col, _ in fitted:
            v = r.get(col.key, "")
            if col.right:
                v = v.copy() if isinstance(v, Text) else Text(v)
                v.justify = "right"
            cells.append(v)
        table.add_row(*cells)
    return [c for c, _ in fitted]


def candle_plot(widget: PlotextPlot, candles: list[Candle], marks: list[tuple[str, float, int]]) -> None:
    """Draw candles and buy (▲) / sell (▼) marks (the caption, outside the plot, says what they are)."""
    plt = widget.plt
    plt.clear_data()
    plt.clear_figure()
    if candles:
        plt.date_form("Y-m-d")
        dates = [day(c.bar_time) for c in candles]
        plt.candlestick(dates, {"Open": [c.open for c in candles], "Close": [c.close for c in candles],
                                "High": [c.high for c in candles], "Low": [c.low for c in candles]})
        buys = [(d, y) for d, y, a in marks if a > 0]
        sells = [(d, y) for d, y, a in marks if a < 0]
        if buys:
            plt.scatter([d for d, _ in buys], [y for _, y in buys], marker="▲", color="green")
        if sells:
            plt.scatter([d for d, _ in sells], [y for _, y in sells], marker="▼", color="red")
    widget.refresh()


def _show(widget: Any, shown: bool) -> None:
    if widget.display != shown:
        widget.display = shown


FLEET_COLUMNS = (
    Column("node", "node"), Column("role", "role", 5), Column("pid", "pid", 6, right=True),
    Column("status", "status"), Column("hb", "hb", 1, right=True), Column("sent", "sent", 3, right=True),
    Column("done", "done", 2, right=True), Column("why", "why silent", 4),
)
SIGNAL_COLUMNS = (
    Column("day", "day"), Column("symbol", "symbol"), Column("act", "act"), Column("ret", "ret", right=True),
    Column("p_down", "p↓", 5, right=True), Column("p_up", "p↑", 1, right=True), Column("model", "gen", 2),
    Column("lat", "lat", 3, right=True), Column("brain", "brain", 4), Column("artifacts", "set", 6),
)


class LiveConsole(App[None]):
    """The fleet, live."""

    TITLE = "HEQIS console"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-normal"), (140, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (28, "-tall"), (40, "-taller")]
    CSS = """
    #body { height: 1fr; }
    #top { height: auto; max-height: 45%; }
    #middle { height: 1fr; }
    #bottom { height: 5; }
    #fleet { width: 1fr; height: auto; max-height: 100%; }
    #stats { padding: 0 1; height: auto; }
    #kline-box, #alerts { width: 1fr; height: 100%; }
    #kline-box { padding-right: 1; }
    #kline-caption, #latency-caption { height: 1; padding: 0 1; text-style: bold; }
    #kline { height: 1fr; }
    #kline-none, #latency-none { color: $text-muted; padding: 0 1; }
    #signals-box { height: 100%; }
    #signals { height: 1fr; }
    #watchdog { height: auto; padding: 0 1; }
    #alerts { padding: 0 1; }
    #latency { height: 1fr; margin: 0 1; }
    .right { width: 34; }
    #help, #choice { width: 64; height: auto; border: round $accent; padding: 1 2; background: $panel; }
    HelpScreen, ChoiceScreen { align: center middle; }
    """ + BREAKPOINTS_CSS
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("slash", "symbol", "symbol"),
        Binding("p", "pause", "pause"),
        Binding("r", "reset", "reset brain"),
    ]

    def __init__(self, telemetry: str | None, control: str | None = None, keys: Any = None,
                 state: ConsoleState | None = None) -> None:
        super().__init__()
        self.telemetry_address = telemetry
        self.control = ControlClient(control, keys)
        self.keys = keys
        self.state = state or ConsoleState(source=telemetry or "recorded")
        self.drawn: tuple[Any, ...] | None = None
        self.sub_title = self.state.source
        self.fleet = FitTable(id="fleet", cursor_type="none", zebra_stripes=True)
        self.stats = Static(id="stats", classes="right")
        self.kline = Chart(id="kline")
        self.signal_table = FitTable(id="signals", cursor_type="none")
        self.signals_box = Vertical(id="signals-box", classes="right")
        self.watchdog = Panel(Text("watchdog: not reported", style="dim"), id="watchdog")
        self.alerts = Panel(id="alerts")
        self.latency = Sparkline([], id="latency")
        self.kline_box = Vertical(id="kline-box")
        self.kline_caption = Static(id="kline-caption")
        self.kline_none = Static("no data yet", id="kline-none")
        self.latency_box = Vertical(id="latency-box", classes="right")
        self.latency_caption = Static(id="latency-caption")
        self.latency_none = Static("no data", id="latency-none")
        # what redraw refits when it moves; redraw reaches widgets only through these references, so
        # a timer that fires while the app shuts down (its screen emptied) finds nothing to query
        self.sized: tuple[Any, ...] = (self.fleet, self.kline, self.signal_table, self.alerts, self.latency,
                                       self.watchdog)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="body"):
            with Horizontal(id="top"):
                yield self.fleet
                yield self.stats
            with Horizontal(id="middle"):
                with self.kline_box:
                    yield self.kline_caption
                    yield self.kline
                    yield self.kline_none
                with self.signals_box:
                    yield self.signal_table
                    yield self.watchdog
            with Horizontal(id="bottom"):
                yield self.alerts
                with self.latency_box:
                    yield self.latency_caption
                    yield self.latency
                    yield self.latency_none
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(0.25, self.redraw)
        if self.telemetry_address:
            self.follow()
        if self.control.address:
            self.fetch_stored()
        self.redraw()

    # -- data ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="feed")
    def follow(self) -> None:
        """Poll the telemetry socket off the UI thread; hand over batches at most 4 times a second."""
        feed = TelemetryFeed(self.telemetry_address, self.keys)  # type: ignore[arg-type]
        worker = get_current_worker()
        try:
            while not worker.is_cancelled:
                batch = feed.poll(250)
                if batch and not worker.is_cancelled:
                    self.call_from_thread(self.ingest, batch)
                time.sleep(0.2)
        finally:
            feed.close()

    def ingest(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        """Apply a batch of PUB documents (UI thread); the first snapshot may teach the control address."""
        for topic, doc in batch:
            self.state.ingest(topic, doc)
            if topic == "telemetry" and self.control.learn(self.telemetry_address, doc.get("endpoints")):
                self.fetch_stored()

    def _ask(self, worker: Worker[Any], request: dict[str, Any]) -> dict[str, Any] | None:
        """``request`` on the control socket, tried again until answered; None once cancelled.

        A gateway may come up after the console (or be restarting): retrying is what makes the
        console fill up by itself then, without a key press."""
        while not worker.is_cancelled:
            reply = self.control.request(request, timeout_s=2.0)
            if reply is not None:
                return reply
            deadline = time.monotonic() + RETRY_S
            while time.monotonic() < deadline and not worker.is_cancelled:
                time.sleep(0.05)
        return None

    @work(thread=True, exclusive=True, group="stored")
    def fetch_stored(self) -> None:
        """On connect: the gateway's stored signals (its SQLite store), then the chosen symbol's bars."""
        worker = get_current_worker()
        reply = self._ask(worker, {"cmd": "signals", "limit": MAX_SIGNALS})
        if reply is None or worker.is_cancelled:
            return
        symbol = self.call_from_thread(self._take_signals, reply)
        self._bars(worker, symbol)

    @work(thread=True, exclusive=True, group="bars")
    def fetch_bars(self, symbol: str) -> None:
        """The recent bars of ``symbol`` (asked when the operator picks it with ``/``)."""
        self._bars(get_current_worker(), symbol)

    def _bars(self, worker: Worker[Any], symbol: str | None) -> None:
        """Ask for ``symbol``'s bars; with no symbol yet, learn which ones the gateway serves first."""
        reply = self._ask(worker, {"cmd": "bars", "symbol": symbol, "limit": MAX_CANDLES})
        if reply is None or worker.is_cancelled or not reply.get("ok"):
            return
        if symbol is None:
            served = [s for s in reply.get("symbols") or [] if isinstance(s, str)]
            self.call_from_thread(self._take_bars, {**reply, "bars": []})
            if not served:
                return
            symbol = served[0]
            reply = self._ask(worker, {"cmd": "bars", "symbol": symbol, "limit": MAX_CANDLES})
            if reply is None or worker.is_cancelled or not reply.get("ok"):
                return
        self.call_from_thread(self._take_bars, reply)
        # that symbol's own stored decisions: the latest signals of all symbols may not reach back to
        # the oldest bars drawn, and their ▲ / ▼ marks come from these
        marks = self._ask(worker, {"cmd": "signals", "symbol": symbol, "limit": MAX_CANDLES})
        if marks is not None and not worker.is_cancelled:
            self.call_from_thread(self._take_signals, marks)

    def _take_signals(self, reply: dict[str, Any]) -> str | None:
        """(UI thread) merge the stored signals; the symbol whose bars to ask for next."""
        if reply.get("ok") and isinstance(reply.get("signals"), list):
            self.state.merge_signals(reply["signals"])
        return self.state.symbol

    def _take_bars(self, reply: dict[str, Any]) -> None:
        """(UI thread) merge a ``bars`` reply into the candles of its symbol."""
        symbol = reply.get("symbol")
        bars = [b for b in reply.get("bars") or [] if isinstance(b, list) and len(b) == 5]
        self.state.merge_bars(symbol if isinstance(symbol, str) else "", bars if symbol else [],
                              reply.get("symbols") or [])

    # -- drawing --------------------------------------------------------------------------------
    def on_size_changed(self, _: SizeChanged) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Redraw when the state, its staleness or a widget's size moved (what fits depends on it)."""
        if not self.fleet.is_attached:      # shutting down: the widgets are gone
            return
        stale = self.state.stale()
        key = (self.state.version, stale, tuple(w.size for w in self.sized))
        if key == self.drawn:
            return
        self.drawn = key
        self._fleet()
        self._stats(stale)
        self._watchdog()
        self._signals()
        self._kline()
        self._latency()
        self._alerts()

    def _fleet(self) -> None:
        rows: list[dict[str, Cell]] = []
        for n in self.state.nodes:
            age = n.get("heartbeat_age_s")
            late = age is not None and age > 2.0
            if n.get("silent"):
                status = Text("SILENT", style="bold red")
            elif n.get("alive"):
                status = Text("up", style="green")
            else:
                status = Text("DEAD", style="bold red")
            c = n.get("counters", {})
            rows.append({"node": str(n.get("name", "?")), "role": str(n.get("role", "")),
                         "pid": str(n.get("pid") or "—"), "status": status,
                         "hb": Text(f"{age:.1f}s" if age is not None else "—", style="yellow" if late else ""),
                         "sent": str(c.get("sent", "—")), "done": str(c.get("answered", c.get("signals", "—"))),
                         "why": str(n.get("silent") or "")})
        fill_table(self.fleet, FLEET_COLUMNS, rows, fit_height=False)

    def _stats(self, stale: bool) -> None:
        t = self.state.telemetry
        if not t:
            self.stats.update(Text(f"no data\nwaiting for\n{self.state.source}", style="dim"))
            return
        lat = t.get("latency", {})
        gw = (t.get("nodes") or [{}])[0].get("counters", {})

        def ms(v: Any) -> str:
            return f"{v / 1000:.2f}" if isinstance(v, (int, float)) else "—"

        parts = lat.get("parts_p50_us", {})
        lines = [
            f"latency p50 {ms(lat.get('p50_us'))} · p99 {ms(lat.get('p99_us'))} ms",
            f"max {ms(lat.get('max_us'))} ms · {lat.get('throughput_per_s', 0):.1f}/s",
            "queue/pre/inf " + "/".join(f"{parts.get(k, 0):.0f}" for k in ("queue_us", "pre_us", "inf_us")) + " µs",
            f"queue {t.get('queue_depth', 0)} · in flight {gw.get('in_flight', 0)} · drops {t.get('drops', 0)}",
            f"cpu {t.get('cpu_percent', 0):.0f}% · mem {t.get('memory_mb', 0):.0f} MB",
        ]
        text = Text("\n".join(lines))
        if self.state.finished:
            text.append(f"\n{self.state.finished}", style="bold cyan")
        if self.state.paused:
            text.append("\nPAUSED", style="bold yellow")
        if stale:
            text.append("\nno fresh data", style="bold red")
        self.stats.update(text)

    def _signals(self) -> None:
        rows: list[dict[str, Cell]] = []
        for s in list(self.state.signals)[:60]:
            act = s.get("action", 0)
            style = "green" if act > 0 else "red" if act < 0 else "dim"
            lat = s.get("latency_us")
            word = Text({1: "BUY", -1: "SELL"}.get(act, "keep"), style=style)
            if s.get("suspect"):                # the watchdog flagged its bar (policy warn): sent on, marked
                word.append(SUSPECT, style="bold yellow")
            rows.append({"day": day(s["bar_time"])[5:], "symbol": str(s.get("symbol", "")), "act": word,
                         "ret": Text(f"{(s.get('reg') or 0) * 100:+.2f}%", style=style),
                         "p_down": f"{s.get('p_down') or 0:.2f}", "p_up": f"{s.get('p_up') or 0:.2f}",
                         "model": str(s.get("model", "")),
                         "lat": f"{lat / 1000:.2f}ms" if isinstance(lat, (int, float)) else "",
                         "brain": str(s.get("brain") or ""), "artifacts": str(s.get("artifacts") or "")})
        fill_table(self.signal_table, SIGNAL_COLUMNS, rows)

    def _watchdog(self) -> None:
        """The gateway's watchdog under the signals: a summary line, or more on taller terminals."""
        width = self.watchdog.size.width or max(self.signals_box.size.width - 2, 1)
        lines = next((n for cls, n in WATCHDOG_LINES if self.screen.has_class(cls)), 1)
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (line, style) in enumerate(panel_lines(self.state.watchdog, width, lines)):
            text.append(("\n" if i else "") + line, style=style)
        self.watchdog.update(text)

    def _kline(self) -> None:
        sym = self.state.symbol
        candles = list(self.state.candles.get(sym, [])) if sym else []
        caption = self.kline_caption
        text_width = max(caption.size.width, 1)
        _show(self.kline, bool(candles))
        _show(self.kline_none, not candles)
        if not candles:
            caption.update(fit_parts([f"{sym or 'K-line'}: no bars yet", "/ symbol"], text_width))
            return
        width = self.kline.size.width or self.kline_box.size.width
        shown = candles[-max(width - Y_AXIS_CELLS, 5):]
        marks = [(day(c.bar_time), c.low * 0.995 if c.action > 0 else c.high * 1.005, c.action)
                 for c in shown if c.action]
        count = f"last {len(shown)} bars" if len(shown) < len(candles) else f"{len(shown)} bars"
        caption.update(fit_parts([sym, count, "▲ buy ▼ sell", "/ symbol"], text_width))
        candle_plot(self.kline, shown, marks)

    def _latency(self) -> None:
        data = self.state.latency_window()
        width = self.latency_caption.size.width
        label = "latency p50 (last 60 s)"
        if data:
            label = fit_parts([label, f"{min(data) / 1000:.2f}–{max(data) / 1000:.2f} ms"], max(width, 1), " ")
        self.latency_caption.update(label)
        drawn = len(data) >= 2                  # one sample is a flat bar, not a trend: say so instead
        _show(self.latency, drawn)
        _show(self.latency_none, not drawn)
        if drawn:
            self.latency.data = data
        else:
            self.latency_none.update(
                "no data" if not data else f"one sample so far ({data[0] / 1000:.2f} ms)")

    def _alerts(self) -> None:
        width, height = self.alerts.size             # inside its padding
        if width <= 0 or height <= 0:
            return
        alerts = list(self.state.alerts)[::-1]      # newest first: what matters now is on top
        if not alerts:
            self.alerts.update(Text(fit_parts(["alerts", "none"], width), style="dim"))
            return
        entries = [(datetime.fromtimestamp(a.get("time", 0)).strftime("%H:%M:%S"), str(a.get("text", "")))
                   for a in alerts]
        wrapped, hidden = fit_entries(entries, width, height - 1)
        title = ["alerts", "newest first"] + ([f"{hidden} older not shown"] if hidden else [])
        text = Text(fit_parts(title, width), style="bold", no_wrap=True)
        for a, lines in zip(alerts, wrapped, strict=False):
            kind = a.get("kind")
            color = "red" if kind in PROBLEM_ALERTS else "green" if kind in GOOD_ALERTS else "yellow"
            for line in lines:
                text.append("\n" + line, style=color)
        self.alerts.update(text)

    # -- actions --------------------------------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_symbol(self) -> None:
        def chosen(sym: str | None) -> None:
            if sym:
                self.state.symbol = sym
                self.state.version += 1
                self.redraw()
                if self.control.address:
                    self.fetch_bars(sym)

        self.push_screen(ChoiceScreen("K-line symbol", self.state.symbols), chosen)

    def action_pause(self) -> None:
        self.command({"cmd": "resume" if self.state.paused else "pause"})

    def action_reset(self) -> None:
        def which(name: str | None) -> None:
            if name:
                self.push_screen(ChoiceScreen(f"Reset {name}? (the gateway runs its reset action)",
                                              [f"yes, reset {name}", "no"]),
                                 lambda answer: answer and answer.startswith("yes") and
                                 self.command({"cmd": "reset", "brain": name}))

        self.push_screen(ChoiceScreen("Reset which brain?", self.state.brains), which)

    @work(thread=True, group="control")
    def command(self, request: dict[str, Any]) -> None:
        if not self.control.address:
            self.call_from_thread(self.notify, f"{request['cmd']}: the control address is not known yet "
                                  "(it comes with the first telemetry)", severity="error")
            return
        reply = self.control.request(request)
        if reply is None:
            self.call_from_thread(self.notify, f"{request['cmd']}: the gateway did not answer", severity="error")
            return
        if "paused" in reply:
            self.call_from_thread(self._paused, bool(reply["paused"]))
        text = f"{request['cmd']}: ok" if reply.get("ok") else f"{request['cmd']}: {reply.get('error')}"
        self.call_from_thread(self.notify, text, severity="information" if reply.get("ok") else "error")

    def _paused(self, paused: bool) -> None:
        self.state.paused = paused
        self.state.version += 1


class ResearchConsole(App[None]):
    """A training run: curves per generator, the backtest table, and the K-line with its trades."""

    TITLE = "HEQIS console · research"
    CSS = """
    #curves, #bt-kline { height: 1fr; }
    #curves-caption { height: auto; padding: 0 1; }
    #backtest { height: auto; max-height: 100%; }
    #bt-caption, #bt-note { height: auto; padding: 0 1; }
    #bt-caption { text-style: bold; }
    #bt-note, #bt-none { color: $text-muted; padding: 0 1; }
    """
    BINDINGS = [Binding("q", "quit", "quit"), Binding("slash", "symbol", "symbol"),
                Binding("question_mark", "help", "help")]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        from heqis_console.research import load_run_views

        self.views = load_run_views(Path(run_dir))
        self.symbol = self.views.symbols[0] if self.views.symbols else None
        self.sub_title = self.views.run_name
        self.drawn: dict[str, Any] = {}        # what each view was last drawn for (size, symbol)

    def compose(self) -> ComposeResult:
        from textual.widgets import TabbedContent, TabPane

        yield Header()
        with TabbedContent():
            with TabPane("training", id="tab-training"):
                yield Static(id="curves-caption")
                yield Chart(id="curves")
            with TabPane("backtest", id="tab-backtest"):
                yield FitTable(id="backtest", cursor_type="none", zebra_stripes=True)
                yield Static(id="bt-note")
            with TabPane("K-line", id="tab-kline"):
                yield Static(id="bt-caption")
                yield Chart(id="bt-kline")
                yield Static("no bars for this symbol in the test segment", id="bt-none")
        yield Footer()

    def on_mount(self) -> None:
        self._curves()
        seg = self.views.segment
        self.query_one("#bt-note", Static).update(
            (f"test segment {seg[0]:%Y-%m-%d} → {seg[1]:%Y-%m-%d} · " if seg else "") +
            "research only, not investment advice")
        self.redraw()

    def on_size_changed(self, _: SizeChanged) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Refit the backtest table and the K-line to their current size (each only when it moved)."""
        self._draw("backtest", self.query_one("#backtest", FitTable).size, self._backtest)
        self._draw("kline", (self.query_one("#bt-kline", Chart).size, self.symbol), self._kline)

    def _draw(self, view: str, key: Any, draw: Callable[[], None]) -> None:
        if self.drawn.get(view) != key:
            self.drawn[view] = key
            draw()

    def _curves(self) -> None:
        """Validation loss per generator; the legend is the caption (in the series' colours), so no
        legend box is drawn over the curves."""
        plot = self.query_one("#curves", Chart)
        caption = Text("validation loss per generator", style="bold")
        _show(plot, bool(self.views.curves))
        if not self.views.curves:
            caption.append(" · no epochs recorded yet", style="dim")
        for i, (gid, (epochs, losses)) in enumerate(self.views.curves.items()):
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            plot.plt.plot(epochs, losses, marker="braille", color=color)
            caption.append("  ")
            caption.append(f"━ {gid}", style="rgb({},{},{})".format(*color))
        plot.plt.xlabel("epoch")
        self.query_one("#curves-caption", Static).update(caption)

    def _backtest(self) -> None:
        from heqis_console.research import backtest_table

        table = self.query_one("#backtest", FitTable)
        columns, cells = backtest_table(self.views.backtest)
        if not columns:
            fill_table(table, [Column("none", "no backtest yet")], [],
                       empty=f"run: heqis backtest {self.views.run_name}")
            return
        fill_table(table, columns, [dict(c) for c in cells], fit_height=False)

    def _kline(self) -> None:
        plot = self.query_one("#bt-kline", Chart)
        width = plot.size.width or self.size.width
        view = self.views.kline(self.symbol, max(width - Y_AXIS_CELLS, 10)) if self.symbol else None
        caption = self.query_one("#bt-caption", Static)
        has = bool(view and view.candles)
        _show(plot, has)
        _show(self.query_one("#bt-none"), not has)
        if view is None:
            caption.update("no symbol in this run")
            return
        caption.update("\n".join(pack_parts(view.caption_parts(), max(caption.size.width or width - 2, 1), 2)))
        candle_plot(plot, view.candles, view.marks)

    def action_symbol(self) -> None:
        def chosen(sym: str | None) -> None:
            if sym:
                self.symbol = sym
                self.redraw()

        self.push_screen(ChoiceScreen("K-line symbol", self.views.symbols), chosen)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())


def run_console(telemetry: str | None, control: str | None, keys: Any = None, run_dir: Path | None = None) -> None:
    app: App[None] = ResearchConsole(run_dir) if run_dir else LiveConsole(telemetry, control, keys)
    app.run()
