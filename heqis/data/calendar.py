"""The XSHG trading calendar, offline, from ``exchange-calendars`` (it ends 2026-12-31).

Live Tushare data uses Tushare's own ``trade_cal``; this serves the sample set and fills gaps.
"""

from __future__ import annotations

import warnings
from datetime import date

import pandas as pd

from heqis.errors import HeqisError


def xshg_sessions(start: date, end: date) -> pd.DatetimeIndex:
    """Open sessions of the Shanghai Stock Exchange in [start, end] (datetime64[ns], naive)."""
    import exchange_calendars as xcals  # heavy import, only when needed

    try:
        with warnings.catch_warnings():  # exchange-calendars trips a pandas 3 deprecation warning
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            cal = xcals.get_calendar("XSHG", start=pd.Timestamp(start), end=pd.Timestamp(end))
    except (ValueError, xcals.errors.CalendarError) as exc:  # type: ignore[attr-defined]
        raise HeqisError(f"XSHG calendar has no sessions for {start}..{end}: {exc}",
                         hint="the offline calendar covers up to 2026-12-31") from None
    return pd.DatetimeIndex(cal.sessions).astype("datetime64[ns]")


def calendar_frame(start: date, end: date, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """Every calendar day in [start, end] with ``is_open`` (the stored calendar.parquet schema)."""
    days = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D").astype("datetime64[ns]")
    return pd.DataFrame({"trade_date": days, "is_open": days.isin(sessions)})
