"""What a ts_code is (stock, index or fund; which board) and its daily price-limit ratio.

Used by the sample generator to write realistic ``stk_limit`` rows, and by the backtest when
``stk_limit`` is missing. Dates of rule changes are constants here, in one place.
"""

from __future__ import annotations

import re
from datetime import date

from heqis.errors import HeqisError

TS_CODE = re.compile(r"^(\d{6})\.(SH|SZ|BJ|CSI|CIC|SI|MI)$")

CHINEXT_20PCT_FROM = date(2020, 8, 24)   # ChiNext registration reform: ±10% → ±20%
# Main-board risk-warning (ST/*ST) stocks: ±5% → ±10% (SSE/SZSE rule revision announced 2025-06-27,
# effective 2025-07-07). The backtest step re-checks this date against the exchanges' notices.
MAIN_ST_10PCT_FROM = date(2025, 7, 7)
NEW_LISTING_FREE_DAYS = 5                # no price limit on the first five sessions (registration boards)


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


def price_tick(kind: str) -> float:
    """Minimum price step: 0.01 CNY for stocks, 0.001 for exchange funds."""
    return 0.001 if kind == "fund" else 0.01


def round_price(x: float, tick: float) -> float:
    """Round half up to the tick, as the exchanges do for limit prices."""
    steps = x / tick
    return round(int(steps + 0.5 + 1e-9) * tick, 3)
