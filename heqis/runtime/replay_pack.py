"""A replay pack: the bars a gateway replays (and seeds live sources with), as one ``.npz`` numpy reads.

The research machine writes it from the data store (pandas/pyarrow); edge hosts, which have
neither, replay from it. Per symbol: bar times (ns, int64) and HISTORY_COLUMNS rows (float32) — the
store's bar schema, so replayed and live requests are built by the same ``request_window``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heqis.errors import HeqisError
from heqis.fileio import atomic_write
from heqis.runtime.bars import HISTORY_COLUMNS

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]
PACK_FORMAT = 2


def store_arrays(data_dir: Path, symbols: list[str] | None = None, tradable_only: bool = True) -> Arrays:
    """(times ns, [n, HISTORY_COLUMNS]) per symbol from the parquet store (research machines)."""
    from heqis.data.store import DataStore

    store = DataStore(data_dir)
    store.require_current()
    uni = store.read_universe()
    kinds = dict(zip(uni["ts_code"], uni["kind"], strict=True))
    out: Arrays = {}
    for sym in symbols or store.symbols():
        if tradable_only and symbols is None and kinds.get(sym) == "index":
            continue
        bars = store.read_bars(sym)
        rows = bars.loc[:, list(HISTORY_COLUMNS)].astype(np.float64).to_numpy(dtype=np.float32)
        out[sym] = (bars["trade_date"].to_numpy(dtype="datetime64[ns]").astype(np.int64), rows)
    return out


def write_pack(arrays: Arrays, path: Path) -> Path:
    payload: dict[str, np.ndarray] = {"symbols": np.array(sorted(arrays)), "format": np.array(PACK_FORMAT),
                                      "columns": np.array(HISTORY_COLUMNS)}
    for sym, (times, values) in arrays.items():
        payload[f"{sym}/times"] = times
        payload[f"{sym}/values"] = values
    atomic_write(Path(path), lambda fh: np.savez_compressed(fh, **payload))
    return Path(path)


def load_pack(path: Path) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z or int(z["format"]) != PACK_FORMAT or tuple(z["columns"]) != HISTORY_COLUMNS:
                raise HeqisError(f"{path}: a replay pack of another heqis version",
                                 hint="write it again: heqis up (or use --data-dir)")
            return {str(s): (z[f"{s}/times"], z[f"{s}/values"]) for s in z["symbols"]}
    except (OSError, KeyError, ValueError) as exc:
        raise HeqisError(f"{path}: not a replay pack ({exc})", hint="write one with heqis up, or use --data-dir") \
            from None
