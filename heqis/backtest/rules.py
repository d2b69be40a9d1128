"""``MarketRules``: every number the A-share execution rules use, in one object (docs/architecture.md, "Backtest").

Decide on day T's close, fill at T+1's open (or the next day the stock trades), on raw prices:
no buy into a limit-up open, no sell into a limit-down open (the order waits, and every waiting
day is counted), nothing on a suspended day, T+1, 100-share lots, commission with a ¥5 minimum,
stamp duty on sells (0.1% before 2023-08-28, 0.05% from then), transfer fee, slippage in bps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from heqis.errors import HeqisError, InvalidValue

STAMP_DUTY_HALVED = date(2023, 8, 28)
MARKETS = ("cn", "us", "none")
_STAMP_CUT = np.datetime64(STAMP_DUTY_HALVED, "ns")


@dataclass(frozen=True)
class MarketRules:
    initial_cash: float = 1_000_000.0
    lot: int = 100                          # shares per board lot (buys only; a whole position may be sold)
    commission_rate: float = 0.00025        # 0.025%, both sides
    commission_min: float = 5.0             # ¥5 minimum per order
    stamp_duty_before: float = 0.001        # sells before STAMP_DUTY_HALVED
    stamp_duty_after: float = 0.0005        # sells from STAMP_DUTY_HALVED
    transfer_fee_rate: float = 0.00001      # 0.001%, both sides
    slippage_bps: float = 5.0               # against the trader: buys higher, sells lower
    position_fraction: float = 1.0          # 1.0 = all-in; else the fraction of cash put into each entry
    use_limits: bool = True                 # price limits from stk_limit, else from the board rules
    limit_tolerance: float = 1e-6
    periods_per_year: int = 242             # A-share sessions per year, for annualising
    regression_threshold: float = 0.001     # reg mode: buy above +thr, sell below -thr (a return)

    def __post_init__(self) -> None:
        checks = [
            (self.initial_cash > 0, "initial_cash must be positive"),
            (self.lot >= 1, "lot must be at least 1"),
            (0 < self.position_fraction <= 1, "position_fraction must be in (0, 1]"),
            (min(self.commission_rate, self.commission_min, self.stamp_duty_before, self.stamp_duty_after,
                 self.transfer_fee_rate, self.slippage_bps, self.regression_threshold) >= 0,
             "fees, slippage and threshold cannot be negative"),
            (self.periods_per_year > 0, "periods_per_year must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise HeqisError(f"market rules: {message}")

    def stamp_duty(self, day: date | pd.Timestamp) -> float:
        d = day.date() if isinstance(day, pd.Timestamp) else day
        return self.stamp_duty_before if d < STAMP_DUTY_HALVED else self.stamp_duty_after

    def stamp_duty_array(self, dates: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(dates, "datetime64[ns]") < _STAMP_CUT, self.stamp_duty_before,
                        self.stamp_duty_after)

    def commission(self, value: float) -> float:
        return max(self.commission_rate * value, self.commission_min)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_market(cls, market: str) -> MarketRules:
        """The defaults of a store's market: ``cn`` the A-share rules above; ``us`` and ``none`` (a CSV
        of anything else) no price limits, no stamp duty or transfer fee, no minimum commission,
        1-share lots and 252 sessions a year (``--rules`` still overrides any of it)."""
        if market == "cn":
            return cls()
        if market in ("us", "none"):
            return cls(lot=1, commission_min=0.0, stamp_duty_before=0.0, stamp_duty_after=0.0, transfer_fee_rate=0.0,
                       use_limits=False, periods_per_year=252)
        raise HeqisError(f"unknown market '{market}'", hint=f"one of: {', '.join(MARKETS)}")

    def with_overrides(self, text: list[str] | None) -> MarketRules:
        """Apply ``KEY=VALUE`` overrides (comma-separated or repeated), e.g. ``slippage_bps=0,lot=200``."""
        if not text:
            return self
        known = {f.name: f.type for f in fields(self)}
        values: dict[str, Any] = {}
        for chunk in ",".join(text).split(","):
            if not chunk.strip():
                continue
            if "=" not in chunk:
                raise InvalidValue("--rules", f"'{chunk}' is not KEY=VALUE", hint=f"keys: {', '.join(known)}")
            key, raw = (p.strip() for p in chunk.split("=", 1))
            if key not in known:
                raise InvalidValue("--rules", f"unknown rule '{key}'", hint=f"keys: {', '.join(known)}")
            current = getattr(self, key)
            try:
                if isinstance(current, bool):
                    if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(raw)
                    values[key] = raw.lower() in ("true", "1", "yes")
                else:
                    values[key] = type(current)(float(raw)) if isinstance(current, int) else float(raw)
            except ValueError:
                raise InvalidValue("--rules", f"{key}={raw!r} is not a {type(current).__name__}") from None
        return MarketRules(**{**self.to_dict(), **values})
