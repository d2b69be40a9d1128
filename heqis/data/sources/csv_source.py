"""Any OHLCV CSV into the store: ``date, open, high, low, close, volume[, amount]``.

Column names are matched case-insensitively with common aliases (``Date``/``trade_date``,
``Volume``/``vol``). A file is one symbol, named by ``--symbol`` or the file name; a directory
is read file by file. Volume is taken in shares and stored in lots (÷100) and amount in CNY
stored in thousand CNY (÷1000), Tushare's units, unless the flags say the file already uses those.
Prices are taken as raw; an ``adj_factor`` column, or an ``adj_close`` column (factor = adj_close /
close), adjusts them as Tushare's factor does (forward, to the latest bar), else the factor is 1.
``split_jumps`` lists the days whose adjusted return exceeds ±40%: an unadjusted split looks like a
crash to the models and the backtest. Limits, turnover and ST are unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from heqis.errors import HeqisError

ALIASES = {
    "trade_date": ("trade_date", "date", "datetime", "time", "day", "日期"),
    "open": ("open", "开盘", "开盘价"),
    "high": ("high", "最高", "最高价"),
    "low": ("low", "最低", "最低价"),
    "close": ("close", "收盘", "收盘价"),
    "vol": ("vol", "volume", "成交量"),
    "amount": ("amount", "turnover_value", "value", "成交额"),
    "adj_close": ("adj_close", "adj close", "adjclose", "adjusted_close", "adjusted close", "复权收盘价"),
    "adj_factor": ("adj_factor", "adjfactor", "复权因子"),
}
SPLIT_JUMP = 0.40      # |adjusted return| above this on one day: a split or consolidation nobody adjusted
REQUIRED = ("trade_date", "open", "high", "low", "close", "vol")


@dataclass
class CsvSymbol:
    """One CSV file read into Tushare's ``daily`` layout (with ``_row`` = line number in the file)."""

    ts_code: str
    path: Path
    daily: pd.DataFrame


def _rename(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    lower = {str(c).strip().lower(): c for c in frame.columns}
    mapping = {}
    for target, names in ALIASES.items():
        for name in names:
            if name in lower:
                mapping[lower[name]] = target
                break
    missing = [t for t in REQUIRED if t not in mapping.values()]
    if missing:
        raise HeqisError(f"{path}: row 1 (header) lacks column(s) {', '.join(missing)}; "
                         f"found {', '.join(map(str, frame.columns))}",
                         hint="needed: date, open, high, low, close, volume[, amount]")
    return frame.rename(columns=mapping)[[c for c in ALIASES if c in mapping.values()]]


def _numbers(text: pd.Series) -> pd.Series:
    """Numbers from text, thousands separators dropped, anything else unreadable → NaN (a cleaning reason).

    Plain decimals (the common case) are parsed by Arrow in one call (correctly rounded, as pandas is);
    a column with anything else takes ``pd.to_numeric(errors="coerce")``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(text.array, pd.arrays.ArrowStringArray):
        arrow = pa.array(text.array)                   # pandas' own Arrow storage, no copy
        arrow = arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow
        if pc.all(pc.match_substring_regex(arrow, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")).as_py() is not False:
            integral = pc.all(pc.match_substring_regex(arrow, r"^[+-]?\d+$")).as_py() is not False
            values = pc.cast(arrow, pa.int64() if integral else pa.float64())
            return pd.Series(values.to_numpy(zero_copy_only=False), index=text.index) if values.null_count == 0 \
                else pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    return pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")


# pandas' default missing-value tokens (what ``pd.read_csv`` turns into NaN), for Arrow's reader to do the same
NA_TOKENS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
             "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def _arrow_text_frame(path: Path) -> pd.DataFrame | None:
    """``pd.read_csv(path, dtype=str, skipinitialspace=True, encoding="utf-8-sig")`` for a plain file, read by
    Arrow's CSV parser in a tenth of the time; None when the file is anything but plain — not UTF-8, a
    space after a delimiter, a repeated column name, a row with another number of fields, empty — so
    pandas reads it (as it always did, with its own error for a broken file)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if b", " in head or not head.strip():
        return None
    try:
        names = pcsv.read_csv(pa.py_buffer(head.split(b"\n", 1)[0] + b"\n"),
                              read_options=pcsv.ReadOptions(use_threads=False)).column_names
        if len(set(names)) != len(names):
            return None
        table = pcsv.read_csv(pa.py_buffer(head), read_options=pcsv.ReadOptions(use_threads=False),
                              convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                                  strings_can_be_null=True,
                                                                  null_values=list(NA_TOKENS)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow", na_value=np.nan)}.get)


def read_csv_symbol(path: Path, ts_code: str, volume_unit: str = "shares",
                    amount_unit: str = "yuan") -> CsvSymbol:
    """Read one CSV; raises a HeqisError naming the file (and row) when it cannot be used."""
    try:
        frame = _arrow_text_frame(path)
        if frame is None:
            frame = pd.read_csv(path, dtype=str, skipinitialspace=True, encoding="utf-8-sig")
    except FileNotFoundError:
        raise HeqisError(f"{path}: file not found", hint="check --path") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise HeqisError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})",
                         hint="save it as UTF-8 comma-separated text") from None
    except pd.errors.EmptyDataError:
        raise HeqisError(f"{path}: the file is empty", hint="it needs a header row and data rows") from None
    frame = _rename(frame, path)
    if frame.empty:
        raise HeqisError(f"{path}: header only, no data rows", hint="add rows of date, open, high, low, close, volume")
    frame.insert(0, "_row", range(2, len(frame) + 2))
    for c in ("open", "high", "low", "close", "vol", "amount", "adj_close", "adj_factor"):
        if c in frame:
            frame[c] = _numbers(frame[c])
    if "adj_close" in frame:
        if "adj_factor" not in frame:           # a back-adjusted close (Yahoo style): its ratio is the factor
            frame["adj_factor"] = frame["adj_close"] / frame["close"]
        frame = frame.drop(columns=["adj_close"])
    if volume_unit == "shares":
        frame["vol"] = frame["vol"] / 100.0
    if "amount" in frame and amount_unit == "yuan":
        frame["amount"] = frame["amount"] / 1000.0
    frame["ts_code"] = ts_code
    return CsvSymbol(ts_code, path, frame)


def csv_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv")
        if not files:
            raise HeqisError(f"{path}: no .csv files in this directory", hint="pass a CSV file or a folder of them")
        return files
    if not path.exists():
        raise HeqisError(f"{path}: file not found", hint="check --path")
    return [path]


def split_jumps(daily: pd.DataFrame, limit: float = SPLIT_JUMP) -> list[tuple[str, float]]:
    """(date, adjusted return) of every day whose close moved more than ``limit`` against the day
    before, after the file's own adjustment (cleaned rows: sorted, valid prices)."""
    close = daily["close"].to_numpy(dtype=np.float64)
    factor = daily["adj_factor"].to_numpy(dtype=np.float64) if "adj_factor" in daily else np.ones(len(close))
    factor = pd.Series(factor).ffill().bfill().fillna(1.0).to_numpy()
    if len(close) < 2:
        return []
    ret = close[1:] * factor[1:] / (close[:-1] * factor[:-1]) - 1.0
    days = pd.DatetimeIndex(daily["trade_date"]).strftime("%Y-%m-%d")[1:]
    return [(days[i], float(ret[i])) for i in np.flatnonzero(np.abs(ret) > limit)]
