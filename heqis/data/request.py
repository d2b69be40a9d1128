"""What ``heqis data`` is asked and what it answers, and the store-wide merges its runners share
(``heqis.data.pipeline`` for the API sources, ``heqis.data.bulk`` for CSV folders and the synthetic panel)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from heqis.data.build import SymbolSummary
from heqis.data.cleaning import CleaningReport
from heqis.data.schema import UNIVERSE_COLUMNS
from heqis.data.store import DataStore
from heqis.errors import HeqisError

CSV_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class DataRequest:
    """What the user asked ``heqis data`` for."""

    source: str = "sample"
    data_dir: Path = Path("heqis-data")
    watchlist: Path | None = None
    bundled_watchlist: bool = False   # ignore ./标的参考.txt and use the bundled list (the demo)
    start: date | None = None
    end: date | None = None
    features: bool = True
    replace: bool = False
    csv_path: Path | None = None
    csv_symbol: str | None = None
    volume_unit: str = "shares"
    market: str | None = None          # csv: cn | us | none (None: cn for Tushare-style codes, else none)
    amount_unit: str = "yuan"
    symbols: int = 100                # --source synthetic: how many stocks (plus the benchmark index)
    years: int = 7                    # --source synthetic: years up to ``end`` (default 2024-12-31)
    planted_ic: float = 0.0           # --source synthetic: the planted daily IC (0: pure noise)
    seed: int | None = None           # --source synthetic: None = the default seed
    workers: int | None = None        # csv / synthetic / sample: processes (None: the cores); tushare: 1
    cluster: str | None = None        # csv / synthetic / sample: a Dask scheduler address, or "local"


@dataclass
class DataResult:
    """What ``heqis data`` did; rendered as a table or ``--json``."""

    data_dir: str
    source: str
    synthetic: bool
    watchlist: str
    start: str | None
    end: str | None
    content_hash: str
    api_calls: int
    retries: int
    seconds: float
    symbols: list[SymbolSummary]
    cleaning: CleaningReport
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["cleaning"] = self.cleaning.to_dict()
        return out


def _merge_calendar(store: DataStore, new: pd.DataFrame) -> pd.DataFrame:
    try:
        old = store.read_calendar()
    except HeqisError:
        old = None
    cal = new if old is None else pd.concat([old, new], ignore_index=True)
    cal = cal.groupby("trade_date", as_index=False)["is_open"].max()
    return cal.sort_values("trade_date").reset_index(drop=True)


def _merge_universe(store: DataStore, new: pd.DataFrame) -> pd.DataFrame:
    old = store.read_universe()
    uni = pd.concat([old, new], ignore_index=True) if len(old) else new
    return uni.drop_duplicates("ts_code", keep="last").loc[:, list(UNIVERSE_COLUMNS)]
