"""HEQIS indicators (numba) vs TA-Lib (C) and pandas on the same 1,000,000 bars.

Prints, per indicator, the best-of-N time of each implementation and the ratio ours / TA-Lib
(goal: within 2×) and pandas / ours. Both are measured in the same run on the same arrays, so the
ratios hold across machines even where the seconds do not. numba's one-off compile time is
reported on its own line and excluded from the ratios (it is cached on disk after the first run).

    python benchmarks/indicators.py [--bars N] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import talib

from heqis.features import indicators as ind


def best_of(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def price_path(n: int, seed: int = 3407) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(0.0002 + 0.015 * rng.standard_normal(n)))
    spread = np.abs(rng.standard_normal(n)) * 0.01 * close
    return close + spread, close - spread, close


def pandas_kdj(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    hh = high.rolling(9).max()
    ll = low.rolling(9).min()
    rsv = ((close - ll) / (hh - ll) * 100).fillna(50)
    return rsv.ewm(alpha=1 / 3, adjust=False).mean()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    high, low, close = price_path(args.bars)
    s_close, s_high, s_low = pd.Series(close), pd.Series(high), pd.Series(low)

    t0 = time.perf_counter()
    ind.sma(close[:100], 5), ind.ema(close[:100], 5), ind.macd(close[:100]), ind.rsi(close[:100])
    ind.kdj(high[:100], low[:100], close[:100])
    compile_s = time.perf_counter() - t0

    cases: list[tuple[str, Callable, Callable | None, Callable]] = [
        ("MA20", lambda: ind.sma(close, 20), lambda: talib.SMA(close, 20), lambda: s_close.rolling(20).mean()),
        ("EMA20", lambda: ind.ema(close, 20), lambda: talib.EMA(close, 20),
         lambda: s_close.ewm(span=20, adjust=False).mean()),
        ("MACD(12,26,9)", lambda: ind.macd(close), lambda: talib.MACD(close, 12, 26, 9),
         lambda: (s_close.ewm(span=12, adjust=False).mean() - s_close.ewm(span=26, adjust=False).mean())
         .ewm(span=9, adjust=False).mean()),
        ("RSI14", lambda: ind.rsi(close, 14), lambda: talib.RSI(close, 14),
         lambda: s_close.diff().clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()),
        ("KDJ(9,3,3)", lambda: ind.kdj(high, low, close), None, lambda: pandas_kdj(s_high, s_low, s_close)),
    ]
    rows = []
    for name, ours, ref, pandas_fn in cases:
        t_ours = best_of(ours, args.repeat)
        t_ref = best_of(ref, args.repeat) if ref else None
        t_pd = best_of(pandas_fn, args.repeat)
        rows.append({"indicator": name, "heqis_ms": t_ours * 1e3, "talib_ms": t_ref * 1e3 if t_ref else None,
                     "pandas_ms": t_pd * 1e3, "heqis_over_talib": t_ours / t_ref if t_ref else None,
                     "pandas_over_heqis": t_pd / t_ours})
    with_ref = [r["heqis_over_talib"] for r in rows if r["heqis_over_talib"] is not None]
    summary = {"bars": args.bars, "repeat": args.repeat, "numba_compile_s": compile_s, "rows": rows,
               "worst_heqis_over_talib": max(with_ref), "goal": "heqis/talib <= 2.0"}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"indicators on {args.bars:,} bars, best of {args.repeat} (numba compile once: {compile_s:.2f} s)")
        print(f"{'indicator':<15}{'heqis ms':>10}{'TA-Lib ms':>11}{'pandas ms':>11}{'heqis/TA-Lib':>14}"
              f"{'pandas/heqis':>14}")
        for r in rows:
            ratio = f"{r['heqis_over_talib']:.2f}×" if r["heqis_over_talib"] is not None else "—"
            talib_ms = f"{r['talib_ms']:.1f}" if r["talib_ms"] is not None else "n/a"
            print(f"{r['indicator']:<15}{r['heqis_ms']:>10.1f}{talib_ms:>11}{r['pandas_ms']:>11.1f}{ratio:>14}"
                  f"{r['pandas_over_heqis']:>13.1f}×")
        verdict = "within" if summary["worst_heqis_over_talib"] <= 2.0 else "OUTSIDE"
        print(f"worst heqis/TA-Lib: {summary['worst_heqis_over_talib']:.2f}× ({verdict} the 2× goal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
