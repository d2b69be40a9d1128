"""``heqis check lookahead``: does anything at or before day T depend on bars after T?

After freqtrade's lookahead-analysis. For several cut days T per symbol, every bar after T is
replaced by a different future (prices on a random path, volume and turnover rescaled); the
features are recomputed with the same function and the generators re-run. Any feature value or
signal on a day ≤ T that moved is a leak: honest code cannot know the future it was not shown.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from heqis.backtest.signals import predict
from heqis.data.schema import BAR_COLUMNS, DERIVED_COLUMNS
from heqis.errors import HeqisError
from heqis.features.frames import add_features
from heqis.formats.run import RunFolder

PRICE_COLUMNS = ("open", "high", "low", "close", "open_raw", "high_raw", "low_raw", "close_raw", "pre_close_raw")
FEATURE_TOL = 1e-9
SIGNAL_TOL = 1e-6


@dataclass
class Leak:
    symbol: str
    cut: str            # day T
    kind: str           # feature | signal
    what: str           # column, or generator/mode
    first_date: str     # earliest day ≤ T that changed
    max_diff: float


@dataclass
class LookaheadReport:
    run_dir: str
    symbols: list[str]
    cuts: int
    features_checked: int
    signals_checked: int
    leaks: list[Leak] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def load_feature_function(spec: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``package.module:function`` → the function (a user's own feature code)."""
    if ":" not in spec:
        raise HeqisError(f"--features '{spec}' is not module:function", hint="e.g. mypkg.features:add_features")
    module_name, func_name = spec.split(":", 1)
    try:
        fn = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise HeqisError(f"--features {spec}: cannot import ({exc})") from None
    if not callable(fn):
        raise HeqisError(f"--features {spec}: not a function")
    return fn


def perturb_after(bars: pd.DataFrame, cut: int, rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``bars`` whose rows after ``cut`` follow another random future."""
    out = bars.copy()
    future = np.arange(len(out)) > cut
    k = int(future.sum())
    if not k:
        return out
    path = np.exp(np.cumsum(rng.normal(0.0, 0.03, k)))
    for col in PRICE_COLUMNS:
        out.loc[future, col] = out.loc[future, col].to_numpy() * path
    out.loc[future, "vol"] = out.loc[future, "vol"].to_numpy() * rng.uniform(0.3, 3.0, k)
    out.loc[future, "turnover"] = out.loc[future, "turnover"].to_numpy() * rng.uniform(0.3, 3.0, k)
    return out


def _first_change(a: np.ndarray, b: np.ndarray, tol: float) -> tuple[int, float] | None:
    nan_moved = np.isnan(a) != np.isnan(b)
    both = ~np.isnan(a) & ~np.isnan(b)
    diff = np.zeros(len(a))
    diff[both] = np.abs(a[both] - b[both])
    moved = nan_moved | (diff > tol * np.maximum(1.0, np.abs(np.nan_to_num(a))))
    if not moved.any():
        return None
    return int(np.flatnonzero(moved)[0]), float(np.nanmax(np.where(nan_moved, np.inf, diff)))


def check_lookahead(run_dir: Path, data_dir: Path | None = None, points: int = 8, symbols: list[str] | None = None,
                    feature_fn: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
                    seed: int = 0) -> LookaheadReport:
    from heqis.backtest.run import open_run_models

    feature_fn = feature_fn or add_features
    run = RunFolder.open(run_dir)
    manifest = run.manifest
    store, models = open_run_models(run, data_dir)
    uni = store.read_universe()
    kinds = dict(zip(uni["ts_code"], uni["kind"], strict=True))
    if symbols is None:
        symbols = [s for s in manifest["symbols"] if kinds.get(s) != "index"][:3]
    rng = np.random.default_rng(seed)
    report = LookaheadReport(str(run_dir), symbols, 0, 0, 0)
    for code in symbols:
        bars = store.read_bars(code).loc[:, list(BAR_COLUMNS)]
        base = feature_fn(bars.copy())
        columns = [c for c in base.columns if c not in BAR_COLUMNS or c in DERIVED_COLUMNS]
        preds = {gid: predict(m, scaler, base) for gid, (m, scaler) in models.items()}
        first = max(scaler.window for _, scaler in models.values()) + 70
        if len(bars) < first + 2:
            continue
        for cut in np.unique(np.linspace(first, len(bars) - 2, points).astype(int)):
            report.cuts += 1
            day = bars["trade_date"].iloc[cut]
            changed = feature_fn(perturb_after(bars, cut, rng))
            for col in columns:
                report.features_checked += 1
                hit = _first_change(base[col].to_numpy(float)[: cut + 1], changed[col].to_numpy(float)[: cut + 1],
                                    FEATURE_TOL)
                if hit:
                    report.leaks.append(Leak(code, str(day.date()), "feature", col,
                                             str(bars["trade_date"].iloc[hit[0]].date()), hit[1]))
            past = changed.iloc[: cut + 1]
            for gid, (model, scaler) in models.items():
                report.signals_checked += 1   # both modes derive from these outputs
                then = preds[gid]
                mask = then.dates <= np.datetime64(day)
                now = predict(model, scaler, past)
                if len(now.dates) != int(mask.sum()):
                    report.leaks.append(Leak(code, str(day.date()), "signal", gid, str(day.date()), float("inf")))
                    continue
                delta = np.maximum(np.abs(then.reg_return[mask] - now.reg_return),
                                   np.abs(then.cls_logits[mask] - now.cls_logits).max(axis=1, initial=0.0))
                bad = np.flatnonzero(delta > SIGNAL_TOL)
                if len(bad):
                    report.leaks.append(Leak(code, str(day.date()), "signal", gid,
                                             str(pd.Timestamp(now.dates[bad[0]]).date()), float(delta.max())))
    return report
