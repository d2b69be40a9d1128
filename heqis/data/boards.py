"""What a ts_code is (stock, index or fund; which board) and its daily price-limit ratio.

Used by the sample generator to write realistic ``stk_limit`` rows, and by the backtest when
``stk_limit`` is missing. Dates of rule changes are constants here, in one place.
"""

from __future__ import annotations

import re
from datetime import date

import numpy as np

from heqis.errors import HeqisError

TS_CODE = re.compile(r"^(\d{6})\.(SH|SZ|BJ|CSI|CIC|SI|MI)$")
# Tushare's daily-bar and adjustment-factor tables for each kind of instrument (indices have no factor)
DAILY_API = {"stock": "daily", "index": "index_daily", "fund": "fund_daily"}
ADJ_API = {"stock": "adj_factor", "fund": "fund_adj"}

CHINEXT_20PCT_FROM = date(2020, 8, 24)   # ChiNext registration reform: ±10% → ±20%
# Main-board risk-warning (ST/*ST) stocks: ±5% → ±10% (SSE/SZSE rule revision announced 2025-06-27,
# effective 2025-07-07). The backtest step re-checks this date against the exchanges' notices.
MAIN_ST_10PCT_FROM = date(2025, 7, 7)
# New listings under the registration system trade without a limit on their first sessions
# (5 on STAR / ChiNext / main board, 1 on the BSE); before it, the first day was capped at +44% / -36%.
REGISTRATION_FROM = {"star": date(2019, 7, 22), "chinext": date(2020, 8, 24), "main": date(2023, 4, 10),
                     "bse": date(2021, 11, 15)}
FREE_DAYS = {"star": 5, "chinext": 5, "main": 5, "bse": 1}
OLD_FIRST_DAY = (0.44, 0.36)


def check_code(code: str) -> str:
    """Normalise a ts_code ('600519.sh' → '600519.SH') or raise a HeqisError naming it."""
    norm = code.strip().upper()
    if not TS_CODE.match(norm):
        raise HeqisError(f"'{code}' is not a ts_code", hint="write codes like 600519.SH, 000001.SZ, 430047.BJ")
    return norm


def classify(code: str) -> tuple[str, str]:
    """(kind, board) of a ts_code from its number and exchange suffix."""
    num, exch = code.split(".")
    if exch in ("CSI", "CIC", "SI", "MI"):
        return "index", "main"
    if exch == "SH":
        if num.startswith("000") or num.startswith("880"):
            return "index", "main"
        if num.startswith("5"):
            return "fund", "main"
        if num.startswith(("688", "689")):
            return "stock", "star"
        return "stock", "main"
    if exch == "SZ":
        if num.startswith("399"):
            return "index", "main"
        if num.startswith(("15", "16", "18")):
            return "fund", "main"
        if num.startswith(("300", "301")):
            return "stock", "chinext"
        return "stock", "main"
    # BJ
    if num.startswith("899"):
        return "index", "main"
    return "stock", "bse"


def limit_ratio(kind: str, board: str, is_st: bool, day: date) -> float | None:
    """The daily limit as a fraction of pre_close, or None when the instrument has none (indices)."""
    if kind == "index":
        return None
    if kind == "fund":
        return 0.10
    if board == "bse":
        return 0.30
    if board == "star":
        return 0.20
    if board == "chinext":
        if day < CHINEXT_20PCT_FROM:
            return 0.05 if is_st else 0.10
        return 0.20
    if is_st:
        return 0.10 if day >= MAIN_ST_10PCT_FROM else 0.05
    return 0.10


def limit_ratios(kind: str, board: str, is_st: np.ndarray, days: np.ndarray) -> np.ndarray:
    """``limit_ratio`` of every day of ``days`` (datetime64; NaN: no limit), asked once per rule regime (ST or
    not, before or after each rule change) rather than once per day."""
    d = np.asarray(days, dtype="datetime64[D]")
    chinext20 = d >= np.datetime64(CHINEXT_20PCT_FROM)
    st10 = d >= np.datetime64(MAIN_ST_10PCT_FROM)
    out = np.full(len(d), np.nan)
    for st in (False, True):
        for a in (False, True):
            for b in (False, True):
                sel = (is_st == st) & (chinext20 == a) & (st10 == b)
                if sel.any():
                    ratio = limit_ratio(kind, board, st, d[np.flatnonzero(sel)[0]].item())
                    out[sel] = np.nan if ratio is None else ratio
    return out


def limit_band(kind: str, board: str, is_st: bool, day: date, listed_sessions: int | None = None,
               list_date: date | None = None) -> tuple[float, float] | None:
    """(up, down) limit ratios for ``day``, or None when it trades without a limit.

    ``listed_sessions`` counts the sessions the stock has traded before ``day`` (0 on its debut);
    pass it with ``list_date`` to apply the new-listing rules.
    """
    if kind == "stock" and listed_sessions is not None and list_date is not None:
        if list_date >= REGISTRATION_FROM[board]:
            if listed_sessions < FREE_DAYS[board]:
                return None
        elif listed_sessions == 0:
            return OLD_FIRST_DAY
    ratio = limit_ratio(kind, board, is_st, day)
    return None if ratio is None else (ratio, ratio)


def price_tick(kind: str) -> float:
    """Minimum price step: 0.01 CNY for stocks, 0.001 for exchange funds."""
    return 0.001 if kind == "fund" else 0.01


def round_price(x: float, tick: float) -> float:
    """Round half up to the tick, as the exchanges do for limit prices."""
    steps = x / tick
    return round(int(steps + 0.5 + 1e-9) * tick, 3)
