"""Signals: from a training run (batched inference of every generator, two modes) or from a file.

A signal is decided at a session's close: 1 = buy / stay long, -1 = sell / stay flat, 0 = keep.
Modes turn one generator's outputs into signals: ``cls`` maps argmax over [down, flat, up] to
[-1, 0, 1]; ``reg`` compares the predicted next-day return with ±threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from heqis.actions import MODES, to_signals
from heqis.data.store import DataStore
from heqis.errors import HeqisError
from heqis.features.transform import Scaler
from heqis.features.windows import inference_windows

__all__ = ["MODES", "Predictions", "align", "predict", "read_signal_file", "to_signals"]


@dataclass
class Predictions:
    """One generator's outputs for one symbol, per decision date."""

    dates: np.ndarray          # datetime64[ns]
    reg_return: np.ndarray     # predicted next-day return
    cls_logits: np.ndarray     # [N, 3]

    def signals(self, mode: str, threshold: float) -> pd.Series:
        return pd.Series(to_signals(self.reg_return, self.cls_logits, mode, threshold), index=self.dates)


@torch.no_grad()
def predict(model: torch.nn.Module, scaler: Scaler, bars: pd.DataFrame, batch: int = 4096) -> Predictions:
    """Batched inference over every complete window of ``bars`` (the same code path as training)."""
    x, dates = inference_windows(bars, scaler.window, scaler.inputs)
    if not len(dates):
        return Predictions(dates, np.zeros(0), np.zeros((0, 3)))
    xs = torch.from_numpy(scaler.transform(x))
    regs, logits = [], []
    for start in range(0, len(xs), batch):
        reg, cls = model(xs[start:start + batch])
        regs.append(reg.squeeze(1).double().numpy())
        logits.append(cls.double().numpy())
    return Predictions(dates, scaler.inverse_y(np.concatenate(regs)), np.concatenate(logits))


SIGNAL_COLUMNS = {"symbol": ("symbol", "ts_code", "code"), "trade_date": ("trade_date", "date", "datetime"),
                  "signal": ("signal", "sig", "position")}


def read_signal_file(path: Path, store: DataStore) -> dict[str, pd.Series]:
    """Signals per symbol from CSV or parquet (``symbol, trade_date, signal``), checked row by row."""
    if not path.exists():
        raise HeqisError(f"{path}: signal file not found", hint="check --signals")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else \
            pd.read_csv(path, dtype=str, skipinitialspace=True, encoding="utf-8-sig")
    except Exception as exc:  # parser errors of either format
        raise HeqisError(f"{path}: cannot read signals ({str(exc).splitlines()[0][:120]})",
                         hint="CSV or parquet with columns symbol, trade_date, signal") from None
    lower = {str(c).strip().lower(): c for c in frame.columns}
    rename = {}
    for target, names in SIGNAL_COLUMNS.items():
        found = next((lower[n] for n in names if n in lower), None)
        if found is None:
            raise HeqisError(f"{path}: no '{target}' column (found {', '.join(map(str, frame.columns))})",
                             hint="columns: symbol, trade_date, signal")
        rename[found] = target
    frame = frame.rename(columns=rename)[list(SIGNAL_COLUMNS)]
    if frame.empty:
        raise HeqisError(f"{path}: no signal rows")
    row = pd.Series(np.arange(2, len(frame) + 2), index=frame.index)  # line numbers as a user sees them
    frame["symbol"] = frame["symbol"].astype(str).str.strip().str.upper()
    dates = pd.to_datetime(frame["trade_date"].astype(str), format="mixed", errors="coerce")
    if dates.isna().any():
        i = dates.index[dates.isna()][0]
        raise HeqisError(f"{path}: row {row[i]}: '{frame.loc[i, 'trade_date']}' is not a date")
    frame["trade_date"] = dates.dt.normalize().astype("datetime64[ns]")
    values = pd.to_numeric(frame["signal"], errors="coerce")
    bad = ~values.isin([-1, 0, 1])
    if bad.any():
        i = values.index[bad][0]
        raise HeqisError(f"{path}: row {row[i]}: signal '{frame.loc[i, 'signal']}' is not -1, 0 or 1",
                         hint="1 = buy / stay long, -1 = sell / stay flat, 0 = keep")
    frame["signal"] = values.astype(np.int64)
    dup = frame.duplicated(["symbol", "trade_date"], keep="first")
    if dup.any():
        i = frame.index[dup][0]
        raise HeqisError(f"{path}: row {row[i]}: duplicate signal for {frame.loc[i, 'symbol']} on "
                         f"{frame.loc[i, 'trade_date'].date()}", hint="one row per symbol and day")
    known = set(store.symbols())
    unknown = sorted(set(frame["symbol"]) - known)
    if unknown:
        i = frame.index[frame["symbol"] == unknown[0]][0]
        raise HeqisError(f"{path}: row {row[i]}: symbol {unknown[0]} is not in the data store {store.root}",
                         hint=f"stored: {', '.join(sorted(known))}")
    out = {}
    for code, group in frame.groupby("symbol", sort=True):
        bars = store.read_bars(str(code))
        first, last = bars["trade_date"].iloc[0], bars["trade_date"].iloc[-1]
        outside = (group["trade_date"] < first) | (group["trade_date"] > last)
        if outside.any():
            i = group.index[outside][0]
            raise HeqisError(f"{path}: row {row[i]}: {code} has no data on {group.loc[i, 'trade_date'].date()} "
                             f"(stored {first.date()}..{last.date()})", hint="drop signals outside the data range")
        out[str(code)] = pd.Series(group["signal"].to_numpy(), index=pd.DatetimeIndex(group["trade_date"]))
    return out


def align(signals: pd.Series, dates: np.ndarray) -> np.ndarray:
    """One signal per session of ``dates``; a missing date is 0 (keep)."""
    return signals.reindex(pd.DatetimeIndex(dates)).fillna(0).to_numpy(dtype=np.int64)
