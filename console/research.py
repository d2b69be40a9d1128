"""Data of the research views: training curves, backtest rows, K-lines with trades (pandas side).

The K-line shows the *whole* test segment — the one the backtest reports on — with every trade
of it, so what the table says can be checked on the chart. When the segment has more bars than
the plot has columns, bars are aggregated (weekly, then coarser) and the caption says so. The
backtest table formats its numbers the way ``heqis backtest`` prints them (heqis.cli.render).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heqis_console.layout import Column
from heqis_console.state import Candle

# (name, pandas period) from finest to coarsest: the first whose candle count fits is used
PERIODS: tuple[tuple[str, str | None], ...] = (("daily", None), ("weekly", "W"), ("monthly", "M"),
                                                ("quarterly", "Q"), ("yearly", "Y"))


@dataclass
class KLine:
    """Candles of one symbol's test segment and its trades' buy (▲) / sell (▼) marks."""

    symbol: str
    candles: list[Candle]
    marks: list[tuple[str, float, int]]      # (YYYY-MM-DD of the candle, y, +1 buy / -1 sell)
    period: str                              # "daily", "weekly", …: what one candle is
    bars: int                                # daily bars in the segment
    first: str = ""
    last: str = ""
    trades: int = 0                          # trades of the segment (all of them are marked)

    def caption_parts(self) -> list[str]:
        """What the chart's caption says, most important first (a narrow caption keeps the head)."""
        if not self.candles:
            return [f"{self.symbol} · no bars in the test segment"]
        what = f"{self.symbol} · test {self.first} → {self.last}"
        size = (f"{self.period} candles ({self.bars} bars)" if self.period != "daily" else f"{self.bars} daily bars")
        return [what, size, f"{self.trades} trades ▲ buy ▼ sell", "/ symbol"]


@dataclass
class RunViews:
    run_name: str
    curves: dict[str, tuple[list[int], list[float]]]
    backtest: list[dict[str, Any]]
    symbols: list[str]
    data_dir: Path | None
    trades: Any = None
    segment: tuple[Any, Any] | None = None
    _bars: dict[str, Any] = field(default_factory=dict)

    def kline(self, symbol: str, width: int = 80) -> KLine:
        """The test segment of ``symbol`` in at most ``width`` candles, with all its trades marked."""
        import pandas as pd

        from heqis.data.store import DataStore

        if self.data_dir is None:
            return KLine(symbol, [], [], "daily", 0)
        if symbol not in self._bars:
            self._bars[symbol] = DataStore(self.data_dir).read_bars(symbol)
        bars = self._bars[symbol]
        if self.segment:
            bars = bars[(bars["trade_date"] >= self.segment[0]) & (bars["trade_date"] <= self.segment[1])]
        bars = bars.reset_index(drop=True)
        if not len(bars):
            return KLine(symbol, [], [], "daily", 0)
        name, rule = next(((n, r) for n, r in PERIODS if _count(bars, r) <= max(width, 1)), PERIODS[-1])
        groups = _periods(bars, rule)
        agg = bars.groupby(groups, sort=True).agg(
            trade_date=("trade_date", "first"), open=("open_raw", "first"), high=("high_raw", "max"),
            low=("low_raw", "min"), close=("close_raw", "last"))
        candles = [Candle(int(pd.Timestamp(r.trade_date).value), float(r.open), float(r.high), float(r.low),
                          float(r.close)) for r in agg.itertuples()]
        # each trade date → the candle (period) it falls in; marks sit just outside that candle's range
        where = {pd.Timestamp(d): g for d, g in zip(bars["trade_date"], groups, strict=True)}
        label = {g: pd.Timestamp(r.trade_date).strftime("%Y-%m-%d") for g, r in zip(agg.index, agg.itertuples(),
                                                                                      strict=True)}
        low, high = agg["low"].to_dict(), agg["high"].to_dict()
        marks: list[tuple[str, float, int]] = []
        count = 0
        if self.trades is not None:
            t = self.trades[(self.trades["symbol"] == symbol) & (self.trades["segment"] == "test")]
            for r in t.itertuples():
                g = where.get(pd.Timestamp(r.entry_date))
                if g is None:
                    continue
                count += 1
                marks.append((label[g], float(low[g]) * 0.99, 1))
                if r.closed and (g := where.get(pd.Timestamp(r.exit_date))) is not None:
                    marks.append((label[g], float(high[g]) * 1.01, -1))
        return KLine(symbol, candles, marks, name, len(bars), bars["trade_date"].iloc[0].strftime("%Y-%m-%d"),
                     bars["trade_date"].iloc[-1].strftime("%Y-%m-%d"), count)


def _periods(bars: Any, rule: str | None) -> Any:
    """The period each bar belongs to (its own index when daily)."""
    return bars.index.to_series() if rule is None else bars["trade_date"].dt.to_period(rule)


def _count(bars: Any, rule: str | None) -> int:
    return len(bars) if rule is None else int(_periods(bars, rule).nunique())


# -- the backtest table ------------------------------------------------------------------------------
def _pct(signed: bool) -> Callable[[Any], str]:
    return lambda v: f"{v:+.1%}" if signed else f"{v:.1%}"


BACKTEST_COLUMNS: tuple[tuple[Column, Callable[[Any], str]], ...] = (
    (Column("symbol", "symbol"), str),
    (Column("generator", "gen"), str),
    (Column("mode", "mode", 3), str),
    (Column("total_return", "return", right=True), _pct(True)),
    (Column("buy_hold_return", "B&H", 1, right=True), _pct(True)),
    (Column("sharpe", "sharpe", right=True), lambda v: f"{v:.2f}"),
    (Column("max_drawdown", "maxDD", 1, right=True), _pct(False)),
    (Column("trades", "trades", 2, right=True), lambda v: str(int(v))),
    (Column("win_rate", "win", 4, right=True), lambda v: f"{v:.0%}"),
)


def backtest_table(rows: list[dict[str, Any]]) -> tuple[list[Column], list[dict[str, str]]]:
    """best_metrics.csv rows as table columns and text cells, formatted like ``heqis backtest``:
    returns as signed percentages (+25.4%), drawdown as a percentage, sharpe with 2 decimals."""
    if not rows:
        return [], []
    present = [(c, f) for c, f in BACKTEST_COLUMNS if c.key in rows[0]]
    select = next((k for k in rows[0] if k.startswith("select_")), None)
    if select:
        present.append((Column(select, "sel." + select[len("select_"):][:6], 2, right=True), lambda v: f"{v:.2f}"))
    blocked = ("buy_blocked_limit", "sell_blocked_limit", "blocked_suspended")
    if all(k in rows[0] for k in blocked):          # order-days spent waiting, as the CLI sums them
        present.append((Column("blocked", "blocked", 5, right=True), lambda v: str(int(v))))
        rows = [{**r, "blocked": sum(r[k] for k in blocked)} for r in rows]
    cells = [{c.key: _cell(f, r.get(c.key)) for c, f in present} for r in rows]
    return [c for c, _ in present], cells


def _cell(fmt: Callable[[Any], str], value: Any) -> str:
    try:
        return "—" if value is None or value != value else fmt(value)   # NaN != NaN
    except (TypeError, ValueError):
        return str(value)


def load_run_views(run_dir: Path) -> RunViews:
    import pandas as pd

    from heqis.formats.run import RunFolder

    manifest = RunFolder.open(run_dir).manifest
    curves: dict[str, tuple[list[int], list[float]]] = {}
    with (run_dir / "metrics.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["phase"] in ("pretrain", "adversarial", "supervised") and row["val_loss"]:
                e, losses = curves.setdefault(row["generator"], ([], []))
                e.append(int(row["epoch"]))
                losses.append(float(row["val_loss"]))
    best = run_dir / "backtest" / "best_metrics.csv"
    backtest = pd.read_csv(best).to_dict("records") if best.exists() else []
    trades_path = run_dir / "backtest" / "trades.parquet"
    trades = pd.read_parquet(trades_path) if trades_path.exists() else None
    data_dir = Path(manifest["data"]["dir"])
    symbols = [r["symbol"] for r in backtest] or list(manifest["symbols"])
    test = manifest["segments"].get("test")
    return RunViews(run_dir.name, curves, backtest, symbols, data_dir if data_dir.exists() else None, trades,
                    (pd.Timestamp(test[0]), pd.Timestamp(test[1])) if test else None)
