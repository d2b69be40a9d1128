"""Synthetic bars with a known, learnable structure, in the stored schema (for training tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from heqis.data.assemble import forward_adjust
from heqis.data.schema import RAW_COLUMNS


def bars_from_closes(close: np.ndarray, start: str = "2015-01-05", seed: int = 0) -> pd.DataFrame:
    """Stored bars around a close path: small wicks, positive volume, no limits."""
    rng = np.random.default_rng(seed)
    n = len(close)
    dates = pd.bdate_range(start, periods=n)
    prev = np.concatenate(([close[0]], close[:-1]))
    open_ = prev * (1 + rng.normal(0, 0.001, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    raw = pd.DataFrame({
        "trade_date": dates, "open_raw": open_, "high_raw": high, "low_raw": low, "close_raw": close,
        "pre_close_raw": prev, "vol": rng.uniform(1e4, 2e4, n), "amount": rng.uniform(1e4, 2e4, n),
        "pct_chg": (close / prev - 1) * 100, "adj_factor": 1.0, "up_limit": np.nan, "down_limit": np.nan,
        "turnover": rng.uniform(0.5, 1.5, n), "is_st": False,
    }).loc[:, list(RAW_COLUMNS)]
    return forward_adjust(raw)


def regime_sine(n: int, phase: float, seed: int, noise: float = 0.002) -> np.ndarray:
    """A noisy sine whose period switches between two regimes every 250 bars."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    period = np.where((t // 250) % 2 == 0, 20.0, 32.0)
    angle = np.cumsum(2 * np.pi / period) + phase
    return 100 * np.exp(0.06 * np.sin(angle) + rng.normal(0, noise, n))


def sine_market(symbols: int = 3, n: int = 1200) -> tuple[dict[str, pd.DataFrame], pd.DatetimeIndex]:
    bars = {f"SIN{i}": bars_from_closes(regime_sine(n, phase=i * 1.3, seed=i), seed=i) for i in range(symbols)}
    sessions = pd.DatetimeIndex(bars["SIN0"]["trade_date"])
    return bars, sessions
