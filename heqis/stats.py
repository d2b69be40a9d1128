"""Out-of-sample skill on a panel: Diebold–Mariano against a zero forecast, direction accuracy, IC
(``heqis evaluate``; ``heqis backtest --score balanced_acc``).

All of it works on *pooled panel samples* — one row per (symbol, target day) — and aggregates per
day first where the samples of one day are not independent (docs/architecture.md, "Evaluation"):

* **Diebold–Mariano** (1995) on a panel: ``d_t`` = the day's cross-sectional mean of
  ``e²_model − e²_zero``; ``DM = mean(d) / sqrt(LRV / T)`` with the Newey–West (Bartlett) long-run
  variance at lag ``⌊T^(1/3)⌋``, two-sided p from the standard normal. Negative: the model's squared
  errors are smaller than predicting a zero return.
* **IC** per day with at least ``MIN_IC_SYMBOLS`` symbols: Pearson (IC) and Spearman (rank IC)
  correlation between forecast and realised return across symbols; reported as the mean, the ICIR
  (mean / std) and ``t = ICIR · sqrt(days)``.
* **Direction**: accuracy, balanced accuracy (mean recall over the classes that occur) and the share
  of each predicted class (a head that always says "up" shows 100% there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

MIN_IC_SYMBOLS = 5
CLASSES = ("down", "flat", "up")


def newey_west_lag(t: int) -> int:
    """⌊T^(1/3)⌋ in integers (the float cube root of 125 is 4.999…)."""
    lag = round(t ** (1.0 / 3.0))
    while lag ** 3 > t:
        lag -= 1
    while (lag + 1) ** 3 <= t:
        lag += 1
    return lag


def newey_west_variance(d: np.ndarray, lag: int | None = None) -> float:
    """Long-run variance of ``d`` (Bartlett weights ``1 − k/(lag+1)``, autocovariances divided by T)."""
    d = np.asarray(d, dtype=np.float64)
    t = len(d)
    if lag is None:
        lag = newey_west_lag(t)
    u = d - d.mean()
    lrv = float(u @ u) / t
    for k in range(1, min(lag, t - 1) + 1):
        lrv += 2.0 * (1.0 - k / (lag + 1.0)) * float(u[k:] @ u[:-k]) / t
    return lrv


def normal_two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def diebold_mariano(d: np.ndarray) -> tuple[float | None, float | None]:
    """(DM statistic, two-sided p) of a loss-difference series; (None, None) when it is undefined
    (fewer than 3 days, or ``d`` constant: the two forecasts lose the same every day)."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) < 3:
        return None, None
    lrv = newey_west_variance(d)
    if not lrv > 1e-300:
        return None, None
    stat = float(d.mean() / math.sqrt(lrv / len(d)))
    return stat, normal_two_sided_p(stat)


def daily_means(values: np.ndarray, day_codes: np.ndarray, days: int) -> np.ndarray:
    """Mean of ``values`` per day (``day_codes`` in 0..days-1, every day present)."""
    return np.bincount(day_codes, weights=values, minlength=days) / np.bincount(day_codes, minlength=days)


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else None


@dataclass(frozen=True)
class IcSummary:
    mean: float | None
    icir: float | None
    t: float | None
    days: int


def _summary(values: list[float]) -> IcSummary:
    if len(values) < 2:
        return IcSummary(float(np.mean(values)) if values else None, None, None, len(values))
    arr = np.asarray(values)
    sd = float(arr.std(ddof=1))
    icir = float(arr.mean() / sd) if sd > 0 else None
    return IcSummary(float(arr.mean()), icir, icir * math.sqrt(len(arr)) if icir is not None else None, len(arr))


def daily_ic(pred: np.ndarray, real: np.ndarray, day_codes: np.ndarray,
             min_symbols: int = MIN_IC_SYMBOLS) -> tuple[IcSummary, IcSummary]:
    """(IC, rank IC) over the days with at least ``min_symbols`` samples; a day whose forecasts (or
    returns) are all equal has no correlation and is left out."""
    order = np.argsort(day_codes, kind="stable")
    codes, pred, real = day_codes[order], pred[order], real[order]
    cuts = np.flatnonzero(np.diff(codes)) + 1
    ics, rank_ics = [], []
    for lo, hi in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [len(codes)])), strict=True):
        if hi - lo < min_symbols:
            continue
        p, r = pred[lo:hi], real[lo:hi]
        ic = _corr(p, r)
        if ic is None:
            continue
        ics.append(ic)
        rank_ic = _corr(rankdata(p), rankdata(r))     # Spearman: Pearson of average ranks
        if rank_ic is not None:
            rank_ics.append(rank_ic)
    return _summary(ics), _summary(rank_ics)


def direction_scores(pred_cls: np.ndarray, true_cls: np.ndarray) -> tuple[float, float, dict[str, float]]:
    """(accuracy, balanced accuracy, share of each predicted class)."""
    acc = float(np.mean(pred_cls == true_cls)) if len(true_cls) else float("nan")
    recalls = [float(np.mean(pred_cls[true_cls == c] == c)) for c in range(len(CLASSES)) if np.any(true_cls == c)]
    share = np.bincount(pred_cls, minlength=len(CLASSES)) / max(1, len(pred_cls))
    return acc, float(np.mean(recalls)) if recalls else float("nan"), dict(zip(CLASSES, map(float, share),
                                                                              strict=True))
