"""Signals: from a training run (batched inference of every generator, two modes) or from a file.

``heqis backtest RUN`` predicts only the windows whose decision date it simulates (``needed_inputs``),
with each look-back's windows built once per symbol, through ``Inference``: ONNX Runtime over an
in-memory export of each generator on CPU (measured faster than eager torch there), torch on CUDA
when a GPU is present, eager torch when ONNX is not installed.

A signal is decided at a session's close: 1 = buy / stay long, -1 = sell / stay flat, 0 = keep.
Modes turn one generator's outputs into signals: ``cls`` maps argmax over [down, flat, up] to
[-1, 0, 1]; ``reg`` compares the predicted next-day return with ±threshold.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from heqis.actions import MODES, to_signals
from heqis.data.store import DataStore
from heqis.errors import HeqisError
from heqis.features.transform import Scaler, scaled_windows
from heqis.features.windows import inference_windows, research_inputs, valid_ends

__all__ = ["MODES", "Inference", "Predictions", "align", "needed_inputs", "predict", "predict_needed",
           "read_signal_file", "sorted_isin", "to_signals"]
INFERENCE_BACKENDS = ("auto", "onnxruntime", "torch")
OPSET = 17           # the artifact export's opset (heqis.export.onnx_export)
ORT_BATCH = 256      # ONNX Runtime on 2 CPU threads: the transformer is fastest near 256 (benchmarks/backtest_run.py)


@dataclass
class Predictions:
    """One generator's outputs for one symbol, per decision date."""

    dates: np.ndarray          # datetime64[ns]
    reg_return: np.ndarray     # predicted next-day return
    cls_logits: np.ndarray     # [N, 3]

    def signals(self, mode: str, threshold: float) -> pd.Series:
        return pd.Series(self.signals_array(mode, threshold), index=self.dates)

    def signals_array(self, mode: str, threshold: float) -> np.ndarray:
        return to_signals(self.reg_return, self.cls_logits, mode, threshold)


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


def sorted_isin(values: np.ndarray, sorted_ref: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_ref)`` for a sorted ``sorted_ref``, by binary search (``np.isin``
    sorts both sides on every call: most of a symbol's bookkeeping in a backtest)."""
    if not len(sorted_ref):
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_ref, values), len(sorted_ref) - 1)
    return sorted_ref[pos] == values


def _needed_ends(bars: pd.DataFrame, values: np.ndarray, window: int,
                 dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of ``values`` that end a complete window on one of ``dates``, their dates)."""
    all_dates = bars["trade_date"].to_numpy(dtype="datetime64[ns]")
    if len(values) < window:
        return np.zeros(0, np.int64), all_dates[:0]
    ends = valid_ends(values, window, with_target=False)
    ends = ends[sorted_isin(all_dates[ends], dates)]
    return ends, all_dates[ends]


def _export_bytes(model: torch.nn.Module, window: int, n_features: int) -> bytes:
    """The generator as ONNX in memory, exported the way ``heqis export`` does (TorchScript exporter,
    opset 17, dynamic batch). The raw generator, not ``ExportModule``: the backtest undoes the target
    scaling in float64 with the scaler, exactly as the torch path does."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-level shape arithmetic
        torch.onnx.export(model.eval(), (torch.zeros(2, window, n_features),), buf, dynamo=False,
                          opset_version=OPSET, input_names=["input"], output_names=["output_reg", "output_cls"],
                          do_constant_folding=True, dynamic_axes={"input": {0: "batch"}, "output_reg": {0: "batch"},
                                                                  "output_cls": {0: "batch"}})
    return buf.getvalue()


class Inference:
    """Batched forward passes of a run's generators: ``run(gid, x_scaled) -> (reg, logits)`` float64.

    ``backend``: ``onnxruntime`` (in-memory export, CPU), ``torch`` (no-grad, CUDA when present) or
    ``auto`` = torch on a GPU, else ONNX Runtime when onnx and onnxruntime import, else torch.
    """

    def __init__(self, models: dict[str, tuple[Any, Scaler]], backend: str = "auto") -> None:
        if backend not in INFERENCE_BACKENDS:
            raise HeqisError(f"unknown inference backend '{backend}'",
                             hint=f"use one of: {', '.join(INFERENCE_BACKENDS)}")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if backend == "auto":
            backend = "torch" if self.device.type == "cuda" or not _ort_available() else "onnxruntime"
        self.backend = backend
        self.models = {gid: m.to(self.device) if backend == "torch" else m for gid, (m, _) in models.items()}
        self.sessions: dict[str, Any] = {}
        if backend == "onnxruntime":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            opts.intra_op_num_threads = torch.get_num_threads()
            for gid, (model, scaler) in models.items():
                self.sessions[gid] = ort.InferenceSession(
                    _export_bytes(model, scaler.window, len(scaler.inputs)), sess_options=opts,
                    providers=["CPUExecutionProvider"])

    def run(self, gid: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for scaled windows ``x`` [N, W, F] float32: (scaled regression [N], logits [N, 3])."""
        if not len(x):
            return np.zeros(0), np.zeros((0, 3))
        regs, logits = [], []
        if self.backend == "onnxruntime":
            session = self.sessions[gid]
            for start in range(0, len(x), ORT_BATCH):
                reg, cls = session.run(["output_reg", "output_cls"], {"input": x[start:start + ORT_BATCH]})
                regs.append(reg[:, 0].astype(np.float64))
                logits.append(cls.astype(np.float64))
        else:
            with torch.no_grad():
                xs = torch.from_numpy(x)
                for start in range(0, len(x), 4096):
                    reg, cls = self.models[gid](xs[start:start + 4096].to(self.device))
                    regs.append(reg.squeeze(1).double().cpu().numpy())
                    logits.append(cls.double().cpu().numpy())
        return np.concatenate(regs), np.concatenate(logits)


def _ort_available() -> bool:
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class NeededWindows:
    """One symbol's scaled windows on the decision dates a backtest uses, per distinct scaler."""

    scaled: dict[tuple[int, bytes, bytes], np.ndarray]   # scaler key → [N, W, F] float32
    dates: dict[int, np.ndarray]                         # window length → decision dates [N]


def _scaler_key(scaler: Scaler) -> tuple[int, bytes, bytes]:
    return scaler.window, scaler.x_scale.tobytes(), scaler.x_min.tobytes()


def needed_inputs(scalers: dict[str, Scaler], bars: pd.DataFrame,
                  dates: Iterable[np.datetime64] | np.ndarray, values: np.ndarray | None = None) -> NeededWindows:
    """``research_inputs`` once (or the caller's ``values`` of it), the windows once per look-back
    length, the scaled windows once per distinct scaler — for the decision ``dates`` only."""
    wanted = np.unique(np.asarray(dates, dtype="datetime64[ns]"))
    if values is None:
        values = research_inputs(bars, next(iter(scalers.values())).inputs)
    ends: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    scaled: dict[tuple[int, bytes, bytes], np.ndarray] = {}
    for scaler in scalers.values():
        if scaler.window not in ends:
            ends[scaler.window] = _needed_ends(bars, values, scaler.window, wanted)
        key = _scaler_key(scaler)
        if key not in scaled:   # = scaler.transform of inference_windows on these ends, bit for bit, in one pass
            scaled[key] = scaled_windows(values, ends[scaler.window][0], scaler, round32=True)
    return NeededWindows(scaled, {w: when for w, (_, when) in ends.items()})


def predict_many(inference: Inference, scalers: dict[str, Scaler],
                 needed: list[NeededWindows]) -> list[dict[str, Predictions]]:
    """Every generator's predictions for several symbols, one inference call per generator over all
    of them: a small model's cost is mostly per call (a GRU steps through the window one bar at a
    time whatever the batch), so one symbol's few hundred windows per call waste most of it."""
    out: list[dict[str, Predictions]] = [{} for _ in needed]
    for gid, scaler in scalers.items():
        key = _scaler_key(scaler)
        parts = [n.scaled[key] for n in needed]
        reg, logits = inference.run(gid, np.concatenate(parts) if len(parts) > 1 else parts[0])
        reg = scaler.inverse_y(reg)
        start = 0
        for i, (n, part) in enumerate(zip(needed, parts, strict=True)):
            stop = start + len(part)
            out[i][gid] = Predictions(n.dates[scaler.window], reg[start:stop], logits[start:stop])
            start = stop
    return out


def predict_needed(inference: Inference, scalers: dict[str, Scaler], bars: pd.DataFrame,
                   dates: Iterable[np.datetime64] | np.ndarray) -> dict[str, Predictions]:
    """Every generator's predictions for one symbol on the decision ``dates`` only."""
    return predict_many(inference, scalers, [needed_inputs(scalers, bars, dates)])[0]


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
