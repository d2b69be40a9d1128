"""Data of the research views: training curves, backtest rows, K-lines with trades (pandas side)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heqis_console.state import Candle


@dataclass
class RunViews:
    run_name: str
    curves: dict[str, tuple[list[int], list[float]]]
    backtest: list[dict[str, Any]]
    symbols: list[str]
    data_dir: Path | None
    trades: Any = None
    segment: tuple[str, str] | None = None
    _bars: dict[str, Any] = field(default_factory=dict)

    def kline(self, symbol: str, last: int = 80) -> tuple[list[Candle], list[tuple[str, float, int]]]:
        """The last ``last`` bars of the test segment, and the trades' buy (▲) and sell (▼) marks."""
        import pandas as pd

        from heqis.data.store import DataStore

        if self.data_dir is None:
            return [], []
        if symbol not in self._bars:
            self._bars[symbol] = DataStore(self.data_dir).read_bars(symbol)
        bars = self._bars[symbol]
        if self.segment:
            bars = bars[(bars["trade_date"] >= self.segment[0]) & (bars["trade_date"] <= self.segment[1])]
        bars = bars.tail(last)
        candles = [Candle(int(pd.Timestamp(r.trade_date).value), r.open_raw, r.high_raw, r.low_raw, r.close_raw)
                   for r in bars.itertuples()]
        marks: list[tuple[str, float, int]] = []
        if self.trades is not None and len(bars):
            t = self.trades[(self.trades["symbol"] == symbol) & (self.trades["segment"] == "test")]
            lo, hi = bars["trade_date"].iloc[0], bars["trade_date"].iloc[-1]
            for r in t.itertuples():
                if lo <= r.entry_date <= hi:
                    marks.append((r.entry_date.strftime("%Y-%m-%d"), r.entry_price * 0.99, 1))
                if r.closed and lo <= r.exit_date <= hi:
                    marks.append((r.exit_date.strftime("%Y-%m-%d"), r.exit_price * 1.01, -1))
        return candles, marks


def load_run_views(run_dir: Path) -> RunViews:
    import pandas as pd

    from heqis.formats.run import RunFolder

    manifest = RunFolder.open(run_dir).manifest
    curves: dict[str, tuple[list[int], list[float]]] = {}
    with (run_dir / "metrics.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["phase"] in ("pretrain", "adversarial") and row["val_loss"]:
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
