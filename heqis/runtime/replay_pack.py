"""A replay pack: the bars a gateway replays, as one ``.npz`` readable with numpy alone.

The research machine writes it from the data store (pandas/pyarrow); edge hosts, which have
neither, replay from it. Per symbol: bar times (ns, int64) and WINDOW_COLUMNS rows (float32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heqis.errors import HeqisError
from heqis.runtime.bars import WINDOW_COLUMNS

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]


def store_arrays(data_dir: Path, symbols: list[str] | None = None, tradable_only: bool = True) -> Arrays:
    """(times ns, [n, 6]) per symbol from the parquet store (research machines)."""
    from heqis.data.store import DataStore

    store = DataStore(data_dir)
    uni = store.read_universe()
    kinds = dict(zip(uni["ts_code"], uni["kind"], strict=True))
    out: Arrays = {}
    for sym in symbols or store.symbols():
        if tradable_only and symbols is None and kinds.get(sym) == "index":
            continue
        bars = store.read_bars(sym)
        out[sym] = (bars["trade_date"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
                    bars.loc[:, list(WINDOW_COLUMNS)].to_numpy(dtype=np.float32))
    return out


def write_pack(arrays: Arrays, path: Path) -> Path:
    payload: dict[str, np.ndarray] = {"symbols": np.array(sorted(arrays))}
    for sym, (times, values) in arrays.items():
        payload[f"{sym}/times"] = times
        payload[f"{sym}/values"] = values
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.savez_compressed(fh, **payload)
    return path


def load_pack(path: Path) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {str(s): (z[f"{s}/times"], z[f"{s}/values"]) for s in z["symbols"]}
    except (OSError, KeyError, ValueError) as exc:
        raise HeqisError(f"{path}: not a replay pack ({exc})", hint="write one with heqis up, or use --data-dir") \
            from None
