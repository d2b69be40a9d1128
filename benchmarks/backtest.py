"""The same moving-average-cross signals through HEQIS, vectorbt and backtrader.

For 1, 100 and 1,000 symbol-years of synthetic daily bars (242 sessions a year), every engine
fills at the next open, long-only, all-in. Prints seconds per engine, ratios against ours, and
checks that all three make the same number of trades. Compile / import warm-up is excluded.
Goal: at least as fast as vectorbt and 50× faster than backtrader.

    python benchmarks/backtest.py [--sizes 1,100,1000] [--json] [--skip-backtrader-above N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import pandas as pd

from heqis.backtest.engine import run_panel
from heqis.backtest.rules import MarketRules

YEAR = 242
RULES = MarketRules(initial_cash=1_000_000.0, slippage_bps=0.0, use_limits=False, commission_min=0.0)


def market(symbol_years: int, seed: int = 3407) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Open and close panels [days, symbols] and MA(10/30)-cross signals; 1 symbol-year each column."""
    rng = np.random.default_rng(seed)
    n = YEAR + 30                       # a year of signals after the slow MA's warm-up
    close = 50 * np.exp(np.cumsum(0.0003 + 0.02 * rng.standard_normal((n, symbol_years)), axis=0))
    open_ = close * np.exp(0.005 * rng.standard_normal((n, symbol_years)))
    idx = pd.bdate_range("2021-01-04", periods=n)
    c = pd.DataFrame(close, index=idx)
    fast, slow = c.rolling(10).mean(), c.rolling(30).mean()
    signals = np.where(fast > slow, 1, np.where(fast < slow, -1, 0))
    return pd.DataFrame(open_, index=idx), c, signals


def run_heqis(open_: pd.DataFrame, close: pd.DataFrame, signals: np.ndarray) -> int:
    _, trades, _ = run_panel(open_.to_numpy(), close.to_numpy(), signals, open_.index.to_numpy(dtype="datetime64[ns]"),
                             RULES)
    return len(trades)


def run_vectorbt(open_: pd.DataFrame, close: pd.DataFrame, signals: np.ndarray) -> int:
    import vectorbt as vbt

    # decided at the close of T, filled at the open of T+1: shift the signals one day, trade at the open
    entries = pd.DataFrame(signals == 1, index=open_.index).shift(1, fill_value=False)
    exits = pd.DataFrame(signals == -1, index=open_.index).shift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(close, entries, exits, price=open_, init_cash=RULES.initial_cash,
                                    fees=RULES.commission_rate + RULES.transfer_fee_rate, size=np.inf,
                                    size_granularity=RULES.lot, freq="1D")
    return int(pf.trades.count().sum())


def run_backtrader(open_: pd.DataFrame, close: pd.DataFrame, signals: np.ndarray) -> int:
    import backtrader as bt

    class Follow(bt.Strategy):
        params = (("signals", None),)

        def __init__(self):
            self.pending = 0
            self.count = 0

        def next_open(self):
            price = self.data.open[0]
            if self.pending == 1 and not self.position:
                lots = np.floor(self.broker.getcash() / (price * RULES.lot * (1 + RULES.commission_rate +
                                                                               RULES.transfer_fee_rate)))
                if lots > 0:
                    self.buy(size=lots * RULES.lot)
                    self.count += 1
            elif self.pending == -1 and self.position:
                self.close()
            self.pending = 0 if self.pending else self.pending

        def next(self):
            s = self.p.signals[len(self) - 1]
            if s > 0:
                self.pending = 1 if not self.position else 0
            elif s < 0:
                self.pending = -1 if self.position else 0

    trades = 0
    for j in range(open_.shape[1]):
        df = pd.DataFrame({"open": open_[j], "high": np.maximum(open_[j], close[j]), "low": np.minimum(open_[j],
                           close[j]), "close": close[j], "volume": 1e6})
        cerebro = bt.Cerebro(cheat_on_open=True, stdstats=False)
        cerebro.broker.setcash(RULES.initial_cash)
        cerebro.broker.setcommission(commission=RULES.commission_rate + RULES.transfer_fee_rate)
        cerebro.adddata(bt.feeds.PandasData(dataname=df))
        cerebro.addstrategy(Follow, signals=signals[:, j])
        trades += cerebro.run()[0].count
    return trades


def timed(fn, *args) -> tuple[float, int]:
    t0 = time.perf_counter()
    trades = fn(*args)
    return time.perf_counter() - t0, trades


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,100,1000")
    ap.add_argument("--skip-backtrader-above", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for warm in (market(1), market(2)):   # imports and numba compilation (per shape), not timed
        for fn in (run_heqis, run_vectorbt, run_backtrader):
            fn(*warm)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        data = market(size)
        t_h, n_h = timed(run_heqis, *data)
        t_v, n_v = timed(run_vectorbt, *data)
        t_b, n_b = timed(run_backtrader, *data) if size <= args.skip_backtrader_above else (float("nan"), None)
        rows.append({"symbol_years": size, "heqis_s": t_h, "vectorbt_s": t_v, "backtrader_s": t_b,
                     "vectorbt_over_heqis": t_v / t_h, "backtrader_over_heqis": t_b / t_h,
                     "trades": {"heqis": n_h, "vectorbt": n_v, "backtrader": n_b},
                     "same_trade_count": n_h == n_v and (n_b is None or n_h == n_b)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("MA(10/30) cross, next-open fills, long-only all-in; seconds (ratio = peer / heqis)")
        print(f"{'symbol-years':>12}{'heqis':>9}{'vectorbt':>10}{'backtrader':>12}{'vbt/heqis':>11}"
              f"{'bt/heqis':>10}{'trades':>9}  same?")
        for r in rows:
            print(f"{r['symbol_years']:>12}{r['heqis_s']:>9.3f}{r['vectorbt_s']:>10.3f}{r['backtrader_s']:>12.3f}"
                  f"{r['vectorbt_over_heqis']:>10.1f}×{r['backtrader_over_heqis']:>9.1f}×"
                  f"{r['trades']['heqis']:>9}  {'yes' if r['same_trade_count'] else 'NO: ' + str(r['trades'])}")
    return 0 if all(r["same_trade_count"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
