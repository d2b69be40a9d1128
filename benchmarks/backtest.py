"""HEQIS's panel kernel against vectorbt (and backtrader at small sizes) on the same MA-cross signals.

Synthetic daily bars, one symbol-year per column (242 sessions after a 30-session warm-up), from
2023-01-03 so that the 2023-08-28 stamp-duty cut falls inside. Two tables:

1. Like for like: only rules both engines model. Decided at a close, filled at the next open,
   long-only, all-in, 100-share lots, 5 bps slippage, commission + transfer fee on both sides and
   stamp duty on sells (vectorbt: a per-session fee array that carries the stamp duty on the
   sessions where an exit fills), no price limits, no suspensions, no minimum commission. Daily
   equity of the two engines is asserted equal (max relative difference printed) and the trade
   counts too. backtrader (trade counts only) at sizes up to ``--backtrader-up-to``.
2. HEQIS's full A-share path on the same signals and prices: price limits (±10% of the previous
   close; opens at the limit in 5% of sessions), 2% of sessions suspended, ex-dates, the ¥5
   minimum commission, T+1; vectorbt's like-for-like time beside it, since it cannot model these.

Every timing is the best of ``--repeat`` runs with the engines interleaved; cost per symbol-year
is printed at each size. vectorbt runs on one thread; HEQIS on one thread, and on numba's N
threads in a separate column. Compilation and imports are warmed up first and not timed.

    python benchmarks/backtest.py [--sizes 1,10,100,1000,10000] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numba
import numpy as np
import pandas as pd

from heqis.backtest.engine import run_panel
from heqis.backtest.rules import MarketRules

YEAR = 242
START = "2023-01-03"
LIKE = MarketRules(initial_cash=1_000_000.0, use_limits=False, commission_min=0.0)   # 5 bps slippage kept
FULL = MarketRules(initial_cash=1_000_000.0)                                        # every A-share rule
TOLERANCE = 1e-9            # max relative difference of daily equity, HEQIS vs vectorbt


def market(symbol_years: int, seed: int = 3407) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Open and close panels [days, symbols] and MA(10/30)-cross signals; 1 symbol-year each column."""
    rng = np.random.default_rng(seed)
    n = YEAR + 30                       # a year of signals after the slow MA's warm-up
    close = np.round(50 * np.exp(np.cumsum(0.0003 + 0.02 * rng.standard_normal((n, symbol_years)), axis=0)), 2)
    open_ = np.round(close * np.exp(0.005 * rng.standard_normal((n, symbol_years))), 2)
    idx = pd.bdate_range(START, periods=n)
    c = pd.DataFrame(close, index=idx)
    fast, slow = c.rolling(10).mean(), c.rolling(30).mean()
    signals = np.where(fast > slow, 1, np.where(fast < slow, -1, 0))
    return pd.DataFrame(open_, index=idx), c, signals


def a_share(open_: pd.DataFrame, close: pd.DataFrame, seed: int = 7) -> dict[str, np.ndarray]:
    """Limits, suspensions and ex-dates laid over the like-for-like prices (inputs of table 2), in
    column-major order like ``DataFrame.to_numpy()``'s (C-order panels cost run_panel a transposing copy)."""
    rng = np.random.default_rng(seed)
    o, c = open_.to_numpy(), close.to_numpy()
    pre = np.vstack([c[:1], c[:-1]])
    up, down = np.round(pre * 1.1, 2), np.round(pre * 0.9, 2)
    pick = rng.random(o.shape)
    o = np.where(pick < 0.025, up, np.where(pick > 0.975, down, np.clip(o, down, up)))
    traded = rng.random(o.shape) > 0.02
    adj = np.cumprod(np.where(rng.random(o.shape) < 0.004, 1.02, 1.0), axis=0)
    arrays = {"open_": np.where(traded, o, np.nan), "close": np.where(traded, c, np.nan), "up": up, "down": down,
              "traded": traded, "adj": adj}
    return {k: np.asfortranarray(v) for k, v in arrays.items()}   # each symbol contiguous, as the kernel reads


def dates_of(frame: pd.DataFrame) -> np.ndarray:
    return frame.index.to_numpy(dtype="datetime64[ns]")


def run_heqis(open_: pd.DataFrame, close: pd.DataFrame, signals: np.ndarray, threads: int = 1):
    equity, trades, _ = run_panel(open_.to_numpy(), close.to_numpy(), signals, dates_of(open_), LIKE, threads=threads)
    return equity, len(trades)


def run_heqis_full(inputs: dict[str, np.ndarray], dates: np.ndarray, signals: np.ndarray, threads: int = 1):
    equity, trades, counters = run_panel(inputs["open_"], inputs["close"], signals, dates, FULL, inputs["up"],
                                         inputs["down"], inputs["traded"], inputs["adj"], threads=threads)
    return equity, len(trades), counters.sum(axis=0)


def run_vectorbt(open_: pd.DataFrame, close: pd.DataFrame, signals: np.ndarray):
    import vectorbt as vbt

    # decided at the close of T, filled at the open of T+1: shift the signals one day, trade at the open
    entries = pd.DataFrame(signals == 1, index=open_.index).shift(1, fill_value=False)
    exits = pd.DataFrame(signals == -1, index=open_.index).shift(1, fill_value=False)
    # one order per session at most, so a fee array can carry the stamp duty on the sessions of exits
    stamp = LIKE.stamp_duty_array(dates_of(open_))[:, None]
    fees = LIKE.commission_rate + LIKE.transfer_fee_rate + np.where(exits.to_numpy(), stamp, 0.0)
    pf = vbt.Portfolio.from_signals(close, entries, exits, price=open_, init_cash=LIKE.initial_cash, fees=fees,
                                    slippage=LIKE.slippage_bps / 1e4, size=np.inf, size_granularity=LIKE.lot,
                                    freq="1D")
    return pf.value().to_numpy(), int(pf.trades.count().sum())


def run_backtrader(open_: pd.DataFrame, close: pd.DataFrame, signals: np.ndarray) -> int:
    """Trade count only: backtrader's commission scheme cannot date the stamp duty here."""
    import backtrader as bt

    class Follow(bt.Strategy):
        params = (("signals", None),)

        def __init__(self):
            self.pending = 0
            self.count = 0

        def next_open(self):
            price = self.data.open[0] * (1 + LIKE.slippage_bps / 1e4)
            if self.pending == 1 and not self.position:
                lots = np.floor(self.broker.getcash() / (price * LIKE.lot * (1 + LIKE.commission_rate +
                                                                              LIKE.transfer_fee_rate)))
                if lots > 0:
                    self.buy(size=lots * LIKE.lot)
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
        cerebro.broker.setcash(LIKE.initial_cash)
        cerebro.broker.setcommission(commission=LIKE.commission_rate + LIKE.transfer_fee_rate)
        cerebro.adddata(bt.feeds.PandasData(dataname=df))
        cerebro.addstrategy(Follow, signals=signals[:, j])
        trades += cerebro.run()[0].count
    return trades


def best_of(repeat: int, jobs: dict[str, tuple]) -> tuple[dict[str, float], dict[str, object]]:
    """Best wall time of each job over ``repeat`` rounds, the jobs interleaved within each round."""
    best = dict.fromkeys(jobs, float("inf"))
    out: dict[str, object] = {}
    for _ in range(repeat):
        for name, (fn, args) in jobs.items():
            t0 = time.perf_counter()
            out[name] = fn(*args)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, out


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


def measure(size: int, repeat: int, threads: int, backtrader_up_to: int) -> dict:
    o, c, s = market(size)
    full = a_share(o, c)
    dates = dates_of(o)
    jobs = {"vectorbt": (run_vectorbt, (o, c, s)), "heqis": (run_heqis, (o, c, s, 1)),
            "heqis_threads": (run_heqis, (o, c, s, threads)), "heqis_full": (run_heqis_full, (full, dates, s, 1)),
            "heqis_full_threads": (run_heqis_full, (full, dates, s, threads))}
    best, out = best_of(repeat if size < 10_000 else max(2, repeat // 2), jobs)
    (eq_v, n_v), (eq_h, n_h), (eq_ht, _) = out["vectorbt"], out["heqis"], out["heqis_threads"]
    diff = max_rel_diff(eq_h, eq_v)
    assert diff <= TOLERANCE, f"{size} symbol-years: equity differs from vectorbt by {diff:.3g}"
    assert n_h == n_v, f"{size} symbol-years: {n_h} trades, vectorbt {n_v}"
    assert np.array_equal(eq_h, eq_ht) and np.array_equal(out["heqis_full"][0], out["heqis_full_threads"][0])
    n_b = None
    if size <= backtrader_up_to:
        t0 = time.perf_counter()
        n_b = run_backtrader(o, c, s)
        best["backtrader"] = time.perf_counter() - t0
        assert n_b == n_h, f"{size} symbol-years: {n_h} trades, backtrader {n_b}"
    _, n_full, counters = out["heqis_full"]
    return {"symbol_years": size, "seconds": best, "us_per_symbol_year": {k: v / size * 1e6 for k, v in best.items()},
            "vectorbt_over_heqis": best["vectorbt"] / best["heqis"],
            "vectorbt_over_heqis_threads": best["vectorbt"] / best["heqis_threads"],
            "vectorbt_over_heqis_full": best["vectorbt"] / best["heqis_full"],
            "max_rel_equity_diff": diff, "trades": {"heqis": n_h, "vectorbt": n_v, "backtrader": n_b},
            "full_trades": n_full, "full_counters": dict(zip(("buy_blocked_limit", "sell_blocked_limit",
                                                              "blocked_suspended", "unaffordable"),
                                                             (int(x) for x in counters), strict=True))}


def print_tables(rows: list[dict], threads: int, repeat: int) -> None:
    """Seconds (best run), µs per symbol-year, and vectorbt's time over ours."""
    def cell(seconds: float, size: int) -> str:
        return f"{seconds:>10.4f}{seconds / size * 1e6:>10.2f}"

    head = (f"{'sym-years':>9}{'vectorbt s':>11}{'µs/sy':>10}{'heqis 1t':>10}{'µs/sy':>10}{'ratio':>8}"
            f"{f'heqis {threads}t':>10}{'µs/sy':>10}{'ratio':>8}")
    print(f"(1) like for like: MA(10/30) cross, next-open fills, lots of 100, 5 bps slippage, commission + transfer "
          f"fee both sides, stamp duty on sells, no limits. Best of {repeat} runs (fewer at 10,000), engines "
          f"interleaved; vectorbt on 1 thread, heqis on 1 and on {threads} threads; ratio = vectorbt s / heqis s")
    print(head + f"{'bt s':>8}{'trades':>9}{'max rel Δequity':>17}")
    for r in rows:
        s, n = r["seconds"], r["symbol_years"]
        bt = f"{s['backtrader']:>8.2f}" if "backtrader" in s else f"{'-':>8}"
        print(f"{n:>9} {cell(s['vectorbt'], n)}{cell(s['heqis'], n)}{r['vectorbt_over_heqis']:>7.1f}×"
              f"{cell(s['heqis_threads'], n)}{r['vectorbt_over_heqis_threads']:>7.1f}×{bt}{r['trades']['heqis']:>9}"
              f"{r['max_rel_equity_diff']:>17.1e}")
    print()
    print("(2) HEQIS's full A-share path on the same signals: ±10% limits (5% of opens at a limit), 2% of sessions "
          "suspended, ex-dates, ¥5 minimum commission, T+1; vectorbt's like-for-like time beside it")
    print(head + f"{'trades':>9}  waits: limit-up buy / limit-down sell / suspended / unaffordable")
    for r in rows:
        s, n, w = r["seconds"], r["symbol_years"], r["full_counters"]
        print(f"{n:>9} {cell(s['vectorbt'], n)}{cell(s['heqis_full'], n)}{r['vectorbt_over_heqis_full']:>7.1f}×"
              f"{cell(s['heqis_full_threads'], n)}{s['vectorbt'] / s['heqis_full_threads']:>7.1f}×"
              f"{r['full_trades']:>9}  {w['buy_blocked_limit']} / {w['sell_blocked_limit']} / "
              f"{w['blocked_suspended']} / {w['unaffordable']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,10,100,1000,10000")
    ap.add_argument("--repeat", type=int, default=5, help="runs per engine and size (best counts); half at 10,000")
    ap.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    ap.add_argument("--backtrader-up-to", type=int, default=10, help="largest size backtrader runs at (once)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for warm in (market(1), market(2)):   # imports and compilation, not timed
        run_vectorbt(*warm)
        for threads in (1, args.threads):
            run_heqis(*warm, threads)
            run_heqis_full(a_share(warm[0], warm[1]), dates_of(warm[0]), warm[2], threads)
    run_backtrader(*market(1))
    rows = [measure(int(size), args.repeat, args.threads, args.backtrader_up_to) for size in args.sizes.split(",")]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_tables(rows, args.threads, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
