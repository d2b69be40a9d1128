"""The operator console (Textual): the live fleet, and the research views of a training run.

Live: a worker thread polls the gateway's telemetry (SUB) and hands batches to the UI at most
4 times a second; widgets redraw only when the state's version moved. Keys: ``?`` help, ``q``
quit, ``/`` choose symbol, ``p`` pause / resume the gateway, ``r`` reset a brain (confirmed),
all through the gateway's control socket from a worker thread. Works in 80×24, in tmux, over SSH.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Label, OptionList, RichLog, Sparkline, Static
from textual_plotext import PlotextPlot

from heqis_console.feed import ControlClient, TelemetryFeed
from heqis_console.state import Candle, ConsoleState

HELP = """[b]HEQIS console[/b] — keys

  ?   this help              /   choose the K-line symbol
  p   pause / resume the gateway's dispatch
  r   reset a brain (asks which one, then confirms)
  q   quit

Telemetry comes from the gateway's PUB socket; commands go to its control socket.
Research only: nothing here places orders."""


def _day(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d")


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


def candle_plot(widget: PlotextPlot, candles: list[Candle], title: str, marks: list[tuple[str, float, int]]) -> None:
    """Draw candles and buy (▲) / sell (▼) marks on a PlotextPlot."""
    plt = widget.plt
    plt.clear_data()
    plt.clear_figure()
    plt.title(title)
    if not candles:
        plt.title(f"{title} — no data yet")
        widget.refresh()
        return
    plt.date_form("Y-m-d")
    dates = [_day(c.bar_time) for c in candles]
    plt.candlestick(dates, {"Open": [c.open for c in candles], "Close": [c.close for c in candles],
                            "High": [c.high for c in candles], "Low": [c.low for c in candles]})
    buys = [(d, y) for d, y, a in marks if a > 0]
    sells = [(d, y) for d, y, a in marks if a < 0]
    if buys:
        plt.scatter([d for d, _ in buys], [y for _, y in buys], marker="▲", color="green", label="buy")
    if sells:
        plt.scatter([d for d, _ in sells], [y for _, y in sells], marker="▼", color="red", label="sell")
    widget.refresh()


class LiveConsole(App[None]):
    """The fleet, live."""

    TITLE = "HEQIS console"
    CSS = """
    #grid { grid-size: 2 3; grid-columns: 2fr 1fr; grid-rows: 2fr 3fr 1fr; }
    DataTable { height: 100%; }
    #stats { padding: 0 1; }
    #kline { height: 100%; }
    #alerts { height: 100%; }
    #latency { height: 100%; }
    #help, #choice { width: 64; height: auto; border: round $accent; padding: 1 2; background: $panel; }
    HelpScreen, ChoiceScreen { align: center middle; }
    """
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
        self.drawn = -1
        self.last_stale: bool | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="grid"):
            yield DataTable(id="fleet", cursor_type="none", zebra_stripes=True)
            yield Static(id="stats")
            yield PlotextPlot(id="kline")
            yield DataTable(id="signals", cursor_type="none")
            yield Sparkline([], id="latency")
            yield RichLog(id="alerts", max_lines=200, wrap=False, markup=True)
        yield Footer()

    FLEET_COLUMNS = ("node", "role", "pid", "status", "hb", "sent", "done")
    SIGNAL_COLUMNS = ("day", "symbol", "act", "ret", "p↑", "gen")

    def on_mount(self) -> None:
        self.set_interval(0.25, self.redraw)
        if self.telemetry_address:
            self.follow()
        self.redraw()

    # -- data ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="feed")
    def follow(self) -> None:
        """Poll the telemetry socket off the UI thread; hand over batches at most 4 times a second."""
        from textual.worker import get_current_worker

        feed = TelemetryFeed(self.telemetry_address, self.keys)  # type: ignore[arg-type]
        worker = get_current_worker()
        try:
            while not worker.is_cancelled:
                batch = feed.poll(250)
                if batch:
                    self.call_from_thread(self.ingest, batch)
                time.sleep(0.2)
        finally:
            feed.close()

    def ingest(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        for topic, doc in batch:
            self.state.ingest(topic, doc)

    # -- drawing --------------------------------------------------------------------------------
    def redraw(self) -> None:
        stale = self.state.stale()
        if self.state.version == self.drawn and stale == self.last_stale:
            return
        self.drawn, self.last_stale = self.state.version, stale
        self._fleet(stale)
        self._stats(stale)
        self._signals()
        self._kline()
        self._latency()
        self._alerts()

    def _fleet(self, stale: bool) -> None:
        table = self.query_one("#fleet", DataTable)
        table.clear(columns=True)             # columns re-fit their content on every redraw
        table.add_columns(*self.FLEET_COLUMNS)
        if not self.state.nodes:
            table.add_row("no data", "", "", "", "", "", "")
            return
        for n in self.state.nodes:
            age = n.get("heartbeat_age_s")
            late = age is not None and age > 2.0
            status = Text("up", style="green") if n.get("alive") else Text("DEAD", style="bold red")
            c = n.get("counters", {})
            table.add_row(n["name"], n.get("role", ""), str(n.get("pid") or "—"), status,
                          Text(f"{age:.1f}s" if age is not None else "—", style="yellow" if late else ""),
                          str(c.get("sent", "—")), str(c.get("answered", c.get("signals", "—"))))

    def _stats(self, stale: bool) -> None:
        t = self.state.telemetry
        if not t:
            self.query_one("#stats", Static).update(Text(f"no data\nwaiting for\n{self.state.source}", style="dim"))
            return
        lat = t.get("latency", {})
        gw = (t.get("nodes") or [{}])[0].get("counters", {})

        def ms(v: Any) -> str:
            return f"{v / 1000:.2f}ms" if isinstance(v, (int, float)) else "—"

        parts = lat.get("parts_p50_us", {})
        lines = [
            f"p50 {ms(lat.get('p50_us'))} p99 {ms(lat.get('p99_us'))}",
            f"max {ms(lat.get('max_us'))}",
            "q/pre/inf " + "/".join(f"{parts.get(k, 0):.0f}" for k in ("queue_us", "pre_us", "inf_us")) + "µs",
            f"queue {t.get('queue_depth', 0)} in flight {gw.get('in_flight', 0)}",
            f"{lat.get('throughput_per_s', 0):.1f}/s drops {t.get('drops', 0)}",
            f"cpu {t.get('cpu_percent', 0):.0f}% mem {t.get('memory_mb', 0):.0f}MB",
        ]
        text = Text("\n".join(lines))
        if self.state.paused:
            text.append("\nPAUSED", style="bold yellow")
        if stale:
            text.append("\nno fresh data", style="bold red")
        self.query_one("#stats", Static).update(text)

    def _signals(self) -> None:
        table = self.query_one("#signals", DataTable)
        table.clear(columns=True)
        table.add_columns(*self.SIGNAL_COLUMNS)
        if not self.state.signals:
            table.add_row("no data", "", "", "", "", "")
            return
        for s in list(self.state.signals)[:40]:
            act = s.get("action", 0)
            style = "green" if act > 0 else "red" if act < 0 else "dim"
            word = {1: "BUY", -1: "SELL"}.get(act, "keep")
            table.add_row(_day(s["bar_time"])[5:], s["symbol"][:6], Text(word, style=style),
                          Text(f"{s.get('reg', 0) * 100:+.2f}%", style=style), f"{s.get('p_up', 0):.2f}",
                          s.get("model", ""))

    def _kline(self) -> None:
        sym = self.state.symbol
        candles = list(self.state.candles.get(sym, [])) if sym else []
        marks = [(_day(c.bar_time), c.low * 0.995 if (c.action or 0) > 0 else c.high * 1.005, c.action or 0)
                 for c in candles if c.action]
        candle_plot(self.query_one("#kline", PlotextPlot), candles[-60:], f"{sym or 'K-line'} (/ to change)",
                    marks[-60:])

    def _latency(self) -> None:
        self.query_one("#latency", Sparkline).data = list(self.state.latency_p50)[-80:] or [0]

    def _alerts(self) -> None:
        log = self.query_one("#alerts", RichLog)
        log.clear()
        if not self.state.alerts:
            log.write("[dim]no alerts[/]")
        for a in list(self.state.alerts)[-20:]:
            when = datetime.fromtimestamp(a.get("time", 0)).strftime("%H:%M:%S")
            color = "red" if a.get("kind") in ("brain_dead", "reset_failed", "source_error") else "yellow"
            log.write(f"[{color}]{when} {a.get('text', '')}[/]")

    # -- actions --------------------------------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_symbol(self) -> None:
        def chosen(sym: str | None) -> None:
            if sym:
                self.state.symbol = sym
                self.state.version += 1
                self.redraw()

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
        reply = self.control.request(request)
        if reply is None:
            self.call_from_thread(self.notify, f"{request['cmd']}: the gateway did not answer", severity="error")
            return
        if "paused" in reply:
            self.state.paused = bool(reply["paused"])
            self.state.version += 1
        text = f"{request['cmd']}: ok" if reply.get("ok") else f"{request['cmd']}: {reply.get('error')}"
        self.call_from_thread(self.notify, text, severity="information" if reply.get("ok") else "error")


class ResearchConsole(App[None]):
    """A training run: curves per generator, the backtest table, and the K-line with its trades."""

    TITLE = "HEQIS console · research"
    CSS = """
    #curves, #bt-kline { height: 1fr; }
    #backtest { height: 1fr; }
    """
    BINDINGS = [Binding("q", "quit", "quit"), Binding("slash", "symbol", "symbol"),
                Binding("question_mark", "help", "help")]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        from heqis_console.research import load_run_views

        self.views = load_run_views(Path(run_dir))
        self.symbol = self.views.symbols[0] if self.views.symbols else None

    def compose(self) -> ComposeResult:
        from textual.widgets import TabbedContent, TabPane

        yield Header()
        with TabbedContent():
            with TabPane("training", id="tab-training"):
                yield PlotextPlot(id="curves")
            with TabPane("backtest", id="tab-backtest"):
                yield DataTable(id="backtest", cursor_type="row")
            with TabPane("K-line", id="tab-kline"):
                yield PlotextPlot(id="bt-kline")
        yield Footer()

    def on_mount(self) -> None:
        plt = self.query_one("#curves", PlotextPlot).plt
        plt.title(f"validation loss per generator · {self.views.run_name}")
        for gid, (epochs, losses) in self.views.curves.items():
            plt.plot(epochs, losses, label=gid, marker="braille")
        plt.xlabel("epoch")
        table = self.query_one("#backtest", DataTable)
        if self.views.backtest:
            cols = ["symbol", "generator", "mode", "total_return", "buy_hold_return", "sharpe", "max_drawdown",
                    "trades", "select_sharpe"]
            table.add_columns(*cols)
            for row in self.views.backtest:
                table.add_row(*[f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols])
        else:
            table.add_columns("no backtest yet")
            table.add_row(f"run: heqis backtest {self.views.run_name}")
        self._kline()

    def _kline(self) -> None:
        candles, marks = self.views.kline(self.symbol) if self.symbol else ([], [])
        candle_plot(self.query_one("#bt-kline", PlotextPlot), candles, f"{self.symbol or 'K-line'} · backtest "
                    "trades (test segment; / to change)", marks)

    def action_symbol(self) -> None:
        def chosen(sym: str | None) -> None:
            if sym:
                self.symbol = sym
                self._kline()

        self.push_screen(ChoiceScreen("K-line symbol", self.views.symbols), chosen)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())


def run_console(telemetry: str | None, control: str | None, keys: Any = None, run_dir: Path | None = None) -> None:
    app: App[None] = ResearchConsole(run_dir) if run_dir else LiveConsole(telemetry, control, keys)
    app.run()
