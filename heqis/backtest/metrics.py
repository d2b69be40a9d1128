"""Performance metrics of one backtest, as plain numbers (docs/architecture.md, "Backtest")."""

from __future__ import annotations

import math

import numpy as np

from heqis.backtest.engine import SymbolRun

METRIC_NAMES = ("total_return", "annual_return", "sharpe", "max_drawdown", "calmar", "win_rate",
                "profit_loss_ratio", "trades", "exposure", "worst_trade", "buy_hold_return", "excess_return",
                "buy_blocked_limit", "sell_blocked_limit", "blocked_suspended", "unaffordable")


def max_drawdown(equity: np.ndarray) -> float:
    """Largest peak-to-trough fall, as a negative fraction (0 when equity never falls)."""
    if not len(equity):
        return 0.0
    peak = np.maximum.accumulate(equity)
    return float(np.min(equity / peak - 1.0))


def _nanmin(values: np.ndarray) -> float:
    """The smallest non-NaN value, NaN when there is none (as pandas' ``min``)."""
    known = values[~np.isnan(values)]
    return float(known.min()) if len(known) else math.nan


def compute_metrics(run: SymbolRun, initial_cash: float, periods_per_year: int,
                    buy_hold: SymbolRun | None = None) -> dict[str, float]:
    eq = run.equity
    n = len(eq)
    total = float(eq[-1] / initial_cash - 1.0) if n else 0.0
    years = n / periods_per_year
    annual = float((1.0 + total) ** (1.0 / years) - 1.0) if n and total > -1 else -1.0
    rets = np.diff(np.concatenate(([initial_cash], eq))) / np.concatenate(([initial_cash], eq[:-1]))
    sd = float(np.std(rets, ddof=1)) if n > 1 else 0.0
    sharpe = float(np.mean(rets) / sd * math.sqrt(periods_per_year)) if sd > 0 else 0.0
    mdd = max_drawdown(np.concatenate(([initial_cash], eq)))
    calmar = annual / abs(mdd) if mdd < 0 else 0.0
    cols = run.trade_columns   # numpy columns: a DataFrame per candidate cost more than its simulation
    pnl = np.asarray(cols["pnl"], dtype=float)
    closed = pnl[np.asarray(cols["closed"], dtype=bool)]
    wins, losses = closed[closed > 0], closed[closed <= 0]
    pl_ratio = float(wins.mean() / abs(losses.mean())) if len(wins) and len(losses) and losses.mean() < 0 else \
        (math.inf if len(wins) and not len(losses) else 0.0)
    bh = float(buy_hold.equity[-1] / initial_cash - 1.0) if buy_hold is not None and len(buy_hold.equity) else 0.0
    out = {
        "total_return": total, "annual_return": annual, "sharpe": sharpe, "max_drawdown": mdd, "calmar": calmar,
        "win_rate": float(len(wins) / len(closed)) if len(closed) else 0.0,
        "profit_loss_ratio": pl_ratio,
        "trades": len(pnl),
        "exposure": float(np.mean(run.shares > 0)) if n else 0.0,
        "worst_trade": _nanmin(np.asarray(cols["return"], dtype=float)) if len(pnl) else 0.0,
        "buy_hold_return": bh, "excess_return": total - bh,
    }
    out.update({k: run.counters[k] for k in ("buy_blocked_limit", "sell_blocked_limit", "blocked_suspended",
                                             "unaffordable")})
    return out
