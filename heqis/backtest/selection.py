"""The selection gate of ``heqis backtest``: a generator × mode is chosen only for excess it has
(docs/architecture.md, "Backtest").

Per symbol the backtest picks the best of eight candidates (four generators × two modes) on about a
year of the select segment. The best of eight noisy strategies always looks better than holding: on a
pure-noise panel the strategies chosen that way showed an alpha over buy-and-hold with t = 1–3.4 on
select and none on test. One symbol's year is too short to tell (a planted signal a model recovers at
IC 0.3 gives a per-symbol alpha t below 1), so the question is asked where it has power, over the
whole panel: for each candidate, the equal-weight portfolio of its runs on all the run's symbols
against the same symbols' equal-weight buy-and-hold, on select. Its daily alpha (the intercept of the
portfolio's daily return regressed on buy-and-hold's: what it earns beyond its market exposure — a
long-or-flat strategy is out of the market much of the time) is tested with a Newey–West t,
one-sided. A candidate may be chosen only when its p is under ``level`` / the number of candidates
(Bonferroni); a symbol none of whose candidates passed holds (``HOLD``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from heqis.stats import newey_west_variance

GATE_LEVEL = 0.01                     # family-wise, over the candidates
HOLD = ("buy_hold", "hold")           # (generator, mode) of a symbol that holds


def equal_weight_line(lines: list[tuple[np.ndarray, np.ndarray]]) -> pd.Series:
    """(dates, equity) per symbol → the equal-weight portfolio, as ``run.portfolio_line``: each
    symbol normalised to 1 on its first day, a symbol's last value carried after its last day, the
    mean over the symbols that have started. In numpy on one [days, symbols] matrix (the pandas
    concat of one Series per symbol cost a tenth of a second per candidate at 300 symbols)."""
    lines = [(np.asarray(d, "datetime64[ns]"), np.asarray(e, np.float64)) for d, e in lines if len(e)]
    if not lines:
        return pd.Series(dtype=np.float64, index=pd.DatetimeIndex([]))
    days = np.unique(np.concatenate([d for d, _ in lines]))
    value = np.full((len(days), len(lines)), np.nan)
    seen = np.full((len(days), len(lines)), -1, dtype=np.int64)
    for j, (d, e) in enumerate(lines):
        at = np.searchsorted(days, d)
        value[at, j] = e / e[0]
        seen[at, j] = at
    last = np.maximum.accumulate(seen, axis=0)               # forward fill: the row of the last value so far
    filled = np.where(last >= 0, value[np.maximum(last, 0), np.arange(len(lines))], np.nan)
    with np.errstate(invalid="ignore"):
        count = np.sum(~np.isnan(filled), axis=1)
        mean = np.where(count > 0, np.nansum(filled, axis=1) / np.maximum(count, 1), np.nan)
    return pd.Series(mean, index=pd.DatetimeIndex(days))


def alpha_over(strategy: pd.Series, hold: pd.Series) -> dict[str, float]:
    """The daily alpha of ``strategy`` over ``hold`` (two equity lines on the same days): total
    returns, excess, beta, the intercept with its Newey–West t and one-sided p (H1: alpha > 0)."""
    s, h = strategy.pct_change().dropna().to_numpy(), hold.pct_change().dropna().to_numpy()
    out = {"return": float(strategy.iloc[-1] / strategy.iloc[0] - 1.0),
           "buy_hold": float(hold.iloc[-1] / hold.iloc[0] - 1.0), "days": len(s)}
    out["excess"] = out["return"] - out["buy_hold"]
    var_h = float(np.var(h, ddof=1)) if len(h) > 1 else 0.0
    beta = float(np.cov(s, h, ddof=1)[0, 1] / var_h) if var_h > 0 else 0.0
    resid = s - beta * h                                    # its mean is the OLS intercept
    lrv = newey_west_variance(resid) if len(resid) > 2 else 0.0
    # a residual that is only rounding (the strategy is a multiple of holding) has no alpha to test
    t = float(resid.mean() / math.sqrt(lrv / len(resid))) if lrv > 1e-20 else 0.0
    return {**out, "beta": beta, "alpha_per_day": float(resid.mean()) if len(resid) else 0.0, "alpha_t": t,
            "alpha_p": 0.5 * math.erfc(t / math.sqrt(2.0))}


@dataclass
class Gate:
    """The gate's verdict: per candidate ("G1/cls") its select alpha and whether it may be chosen."""

    level: float | None                # None: no gate (every candidate may be chosen)
    candidates: dict[str, dict[str, Any]]

    def passes(self, gid: str, mode: str) -> bool:
        return self.level is None or bool(self.candidates.get(f"{gid}/{mode}", {}).get("passed"))

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "candidates": self.candidates,
                "passed": sorted(k for k, v in self.candidates.items() if v["passed"])}

    def describe(self) -> str:
        """One line for ``heqis backtest`` (``selection.summary`` in its JSON and summary.json)."""
        if self.level is None:
            return "no selection gate (--no-gate): each symbol takes its best candidate on select"
        passed = [k for k, v in self.candidates.items() if v["passed"]]
        best = min(self.candidates.items(), key=lambda kv: kv[1]["alpha_p"], default=None)
        tail = f"best {best[0]}: alpha t {best[1]['alpha_t']:+.2f}, p {best[1]['alpha_p']:.2g}" if best else ""
        cut = f"p < {self.level:g}/{len(self.candidates)}"
        if passed:
            return f"selection gate: {', '.join(passed)} beat buy-and-hold on select over all symbols ({cut}; {tail})"
        return (f"selection gate: no generator × mode beats buy-and-hold on select over all symbols ({cut}; "
                f"{tail}): every symbol holds")


def panel_gate(select: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]],
               holds: list[tuple[np.ndarray, np.ndarray]], level: float | None) -> Gate:
    """``Gate`` over the candidates' select runs (per candidate, each symbol's (dates, equity)) against
    the same symbols' buy-and-hold."""
    if level is None:
        return Gate(None, {})
    hold = equal_weight_line(holds)
    cut = level / max(1, len(select))
    verdicts = {}
    for (gid, mode), lines in select.items():
        a = alpha_over(equal_weight_line(lines).reindex(hold.index).ffill(), hold)
        verdicts[f"{gid}/{mode}"] = {"alpha_t": a["alpha_t"], "alpha_p": a["alpha_p"], "excess": a["excess"],
                                     "beta": a["beta"], "passed": bool(a["alpha_p"] < cut)}
    return Gate(level, verdicts)
