"""``heqis data --source synthetic``: an A-share-like panel of any size, optionally with a planted signal.

The bundled ``sample`` source builds a dozen hand-written symbols row by row through Tushare's
tables; this one builds thousands, each one vectorised over its whole history and straight into
the store's raw columns (RAW_COLUMNS), so 5,000 symbols × 7 years take seconds per hundred. The
numbers are invented — the manifest says ``source: synthetic``, ``synthetic: true``, every name
starts with ``SYN`` — but the structure is the sample market's (docs/architecture.md, "Data store"):
the real XSHG calendar, one market path shaped like the CSI 300's years (``sample._market_returns``),
raw prices on the 0.01 tick, daily limits from the board rules (``boards.limit_ratio``: main ±10%,
ChiNext ±10% → ±20% on 2020-08-24, STAR ±20%, BSE ±30%, ST ±5%), news days that run into the limit
(a third of them one-price 一字板 days), suspensions (no row; the market's move while suspended is
released on resumption), new listings inside the range (no limit for their first sessions under the
registration system, +44% cap before it), ST periods, a yearly dividend and occasional bonus shares
through ``adj_factor``, turnover against a float. Benchmark: ``000300.SH`` (an index on the market
path, no limits, no factor).

Codes are real-looking numbers chosen so the store's checks and board classification work: per 20
stocks, 10 Shanghai main board (600000+), 4 Shenzhen main board (000001+), 3 ChiNext (300001+),
2 STAR (688001+), 1 BSE (830001+). Symbol ``i`` (0-based) always gets the same code and the same
random streams (``default_rng([seed, 1, i])``), so the first 100 symbols of a 5,000-symbol panel are
the 100 symbols of a 100-symbol panel with the same seed and years.

The planted signal (``--planted-ic X``), exactly
------------------------------------------------
Each stock's daily log return is ``beta * m_t + sigma * e_t`` (plus the released suspension carry),
with ``m_t`` the market's return and ``e_t`` the stock's own unit-variance shock. With ``X = 0`` the
shocks are independent N(0, 1) — pure noise: nothing observable at T predicts T→T+1 beyond chance.
With ``X != 0`` the shocks follow an AR(1) on the session calendar,
``e_t = rho * e_{t-1} + sqrt(1 - rho**2) * z_t`` (``z_t`` iid N(0, 1)), with ``rho = PLANT_GAIN * X``.
So the signal is the *past return structure*: the stock's own return on day T (``ret1`` at T's
close, adjusted close T / adjusted close T-1 - 1, i.e. the feature ``ret1``) predicts its next-day
return (adjusted close T → T+1, the training target). ``PLANT_GAIN`` corrects for what dilutes the
rank correlation (limit days, the beta dispersion times the market move, tick rounding, the
spread of sigmas), so that the mean over days of the cross-sectional Spearman correlation between
``ret1_T`` and the T→T+1 return, over stocks (kind ``stock``, the index excluded), is ``X`` — within
about ±0.01 on 500 stocks × 7 years (``planted_ic`` in tests/test_synthetic_source.py measures it).
The market path itself carries no planted signal; ``X < 0`` plants a reversal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import pandas as pd

from heqis.data.boards import FREE_DAYS, OLD_FIRST_DAY, REGISTRATION_FROM, limit_ratios
from heqis.data.calendar import calendar_frame, xshg_sessions
from heqis.data.schema import RAW_COLUMNS
from heqis.data.sources.sample import JUMP_PROB, ONE_PRICE_PROB, _market_returns
from heqis.data.watchlist import Instrument
from heqis.errors import InvalidValue

SYNTHETIC_END = date(2024, 12, 31)
DEFAULT_YEARS = 7
DEFAULT_SEED = 20240
BENCHMARK = "000300.SH"
MAX_SYMBOLS = 10_000
MAX_PLANTED_IC = 0.5
# rho = PLANT_GAIN * X: measured so that the mean daily Spearman IC of ret1 vs the next-day return is X.
PLANT_GAIN = 1.12
MIN_PRICE = 2.0          # a path that would fall below this is scaled up (returns unchanged)

# (board, exchange suffix, first number, how many codes the range holds), in the order of PATTERN.
BOARD_RANGES = {
    "sh_main": ("main", "SH", 600000, 6000),
    "sz_main": ("main", "SZ", 1, 3000),
    "chinext": ("chinext", "SZ", 300001, 1999),
    "star": ("star", "SH", 688001, 1999),
    "bse": ("bse", "BJ", 830001, 9999),
}
PATTERN = ("sh_main",) * 10 + ("sz_main",) * 4 + ("chinext",) * 3 + ("star",) * 2 + ("bse",)


def stock_code(i: int) -> tuple[str, str]:
    """(ts_code, board) of synthetic stock ``i`` (0-based)."""
    group = PATTERN[i % len(PATTERN)]
    k = (i // len(PATTERN)) * PATTERN.count(group) + PATTERN[: i % len(PATTERN)].count(group)
    board, exch, first, size = BOARD_RANGES[group]
    if k >= size:  # pragma: no cover - MAX_SYMBOLS keeps every range inside its size
        raise ValueError(f"synthetic code range {group} exhausted")
    return f"{first + k:06d}.{exch}", board


def stock_name(i: int) -> str:
    return f"SYN{i + 1:05d}"


def _tick_round(x: np.ndarray, tick: float) -> np.ndarray:
    """``boards.round_price`` on arrays: half up to the tick."""
    return np.round(np.floor(x / tick + 0.5 + 1e-9) * tick, 3)


@dataclass(frozen=True)
class SyntheticPanel:
    """What a synthetic store holds: how many stocks, which years, which seed, which planted IC."""

    symbols: int
    years: int = DEFAULT_YEARS
    planted_ic: float = 0.0
    seed: int = DEFAULT_SEED
    end: date = SYNTHETIC_END

    def __post_init__(self) -> None:
        if not 1 <= self.symbols <= MAX_SYMBOLS:
            raise InvalidValue("--symbols", f"{self.symbols} synthetic stocks", hint=f"use 1..{MAX_SYMBOLS}")
        if not 1 <= self.years <= 18:
            raise InvalidValue("--years", f"{self.years} years", hint="use 1..18 (the offline calendar starts 2006-12)")
        if not abs(self.planted_ic) <= MAX_PLANTED_IC or math.isnan(self.planted_ic):
            raise InvalidValue("--planted-ic", f"{self.planted_ic} is not a daily IC",
                               hint=f"use -{MAX_PLANTED_IC}..{MAX_PLANTED_IC} (0: pure noise)")

    @property
    def start(self) -> date:
        return date(self.end.year - self.years + 1, 1, 1)

    @property
    def rho(self) -> float:
        return max(-0.95, min(0.95, PLANT_GAIN * self.planted_ic))

    def params(self) -> dict:
        """What the manifest records (and a later run must match to resume or reuse the store)."""
        planted = f"AR(1) of each stock's own shock, rho = {self.rho:.4f}: ret1 at T predicts the T->T+1 " \
                  "return" if self.planted_ic else "none (pure noise)"
        return {"symbols": self.symbols, "years": self.years, "planted_ic": self.planted_ic, "seed": self.seed,
                "start": self.start.isoformat(), "end": self.end.isoformat(), "benchmark": BENCHMARK,
                "planted": planted}

    @cached_property
    def sessions(self) -> pd.DatetimeIndex:
        return xshg_sessions(self.start, self.end)

    @cached_property
    def market(self) -> np.ndarray:
        return _market_returns(self.sessions, self.seed)

    def calendar(self) -> pd.DataFrame:
        return calendar_frame(self.start, self.end, self.sessions)

    def instruments(self) -> list[Instrument]:
        """The benchmark index first, then the stocks."""
        stocks = [Instrument(code, "stock", board) for code, board in map(stock_code, range(self.symbols))]
        return [Instrument(BENCHMARK, "index", "main"), *stocks]

    def name(self, inst: Instrument) -> str:
        if inst.ts_code == BENCHMARK:
            return "SYN 合成沪深300"
        return stock_name(self.index_of(inst.ts_code))

    @cached_property
    def _numbers(self) -> dict[str, int]:
        return {code: i for i, (code, _) in enumerate(map(stock_code, range(self.symbols)))}

    def index_of(self, code: str) -> int:
        """The stock's number ``i`` (its random streams) from its code."""
        return self._numbers[code]

    def build(self, inst: Instrument, i: int | None = None) -> tuple[pd.DataFrame, pd.Timestamp]:
        """(raw rows in RAW_COLUMNS, list date) of one instrument; ``i`` is the stock's number."""
        if inst.kind == "index":
            return _index_raw(self.sessions, self.market, self.seed), pd.Timestamp(2005, 4, 8)
        return _stock_raw(self, inst, self.index_of(inst.ts_code) if i is None else i)


def _index_raw(sessions: pd.DatetimeIndex, market: np.ndarray, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 2])
    n = len(sessions)
    noise = rng.standard_normal((n, 4))
    close = np.round(4030.0 * np.exp(np.cumsum(market)), 2)
    pre = np.concatenate(([round(4030.0, 2)], close[:-1]))
    open_ = np.round(pre * np.exp(0.3 * market + 0.002 * noise[:, 0]), 2)
    high = np.round(np.maximum(open_, close) * np.exp(np.abs(noise[:, 1]) * 0.004), 2)
    low = np.round(np.minimum(open_, close) * np.exp(-np.abs(noise[:, 2]) * 0.004), 2)
    lots = np.round(5e7 * np.exp(0.25 * noise[:, 3]) * (1 + 10 * np.abs(market)), 2)
    return pd.DataFrame({
        "trade_date": sessions.to_numpy(), "open_raw": open_, "high_raw": high, "low_raw": low,
        "close_raw": close, "pre_close_raw": pre, "vol": lots,
        "amount": np.round(lots * 100.0 * (open_ + close) / 2.0 / 1000.0 / 1000.0, 3),
        "pct_chg": np.round((close - pre) / pre * 100.0, 4), "adj_factor": 1.0, "up_limit": np.nan,
        "down_limit": np.nan, "turnover": np.nan, "is_st": False,
    }).loc[:, list(RAW_COLUMNS)]


def _ar1(z: np.ndarray, rho: float) -> np.ndarray:
    """Unit-variance AR(1) from iid N(0, 1) innovations (stationary from the first day)."""
    if rho == 0.0:
        return z
    out = np.empty_like(z)
    c = math.sqrt(1.0 - rho * rho)
    prev = 0.0
    zs = z.tolist()
    vals = [0.0] * len(zs)
    for t, zt in enumerate(zs):
        prev = zt if t == 0 else rho * prev + c * zt
        vals[t] = prev
    out[:] = vals
    return out


def _stock_raw(panel: SyntheticPanel, inst: Instrument, i: int) -> tuple[pd.DataFrame, pd.Timestamp]:
    sessions, market = panel.sessions, panel.market
    n = len(sessions)
    rng = np.random.default_rng([panel.seed, 1, i])
    price0 = float(np.round(math.exp(rng.uniform(math.log(6.0), math.log(80.0))), 2))
    beta = float(rng.uniform(0.7, 1.3))
    sigma = float(rng.uniform(0.014, 0.028))
    float_shares = float(rng.uniform(3e8, 5e9))
    base_lots = float(math.exp(rng.uniform(math.log(2e4), math.log(8e5))))
    dividend_yield = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.003, 0.03))
    bonus_years = rng.random(40) < 0.05
    bonus_sizes = rng.choice(np.array([0.2, 0.3, 0.5, 0.8, 1.0]), 40)
    # listing: 12% list inside the range (not in its first or last tenth)
    listed_inside = rng.random() < 0.12 and n >= 50
    first = int(rng.integers(n // 10, n - n // 10)) if listed_inside else 0
    list_date = sessions[first] if listed_inside else \
        pd.Timestamp(panel.start) - pd.Timedelta(days=int(rng.integers(400, 6000)))
    # suspensions: 0-3 episodes
    trading = np.zeros(n, dtype=bool)
    trading[first:] = True
    for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):
        a = int(rng.integers(min(first + 6, n - 1), n))
        trading[a: a + int(rng.choice([1, 1, 1, 2, 3, 5, 10, 20]))] = False
    trading[first] = True
    # ST: 4% of stocks spend 120-360 sessions under ST
    is_st_all = np.zeros(n, dtype=bool)
    if rng.random() < 0.04:
        a = int(rng.integers(first, n))
        is_st_all[a: a + int(rng.integers(120, 360))] = True
    shocks = _ar1(rng.standard_normal(n), panel.rho)
    noise = rng.standard_normal((n, 6))
    uniform = rng.random((n, 2))

    idx = np.flatnonzero(trading)
    k = len(idx)
    days = sessions[idx]
    m = market[idx]
    # the market's move while suspended is released on resumption
    cm = np.cumsum(beta * market * ~trading)
    carry = np.diff(cm[idx], prepend=cm[idx[0]])
    r = beta * m + sigma * shocks[idx] + carry
    st = is_st_all[idx]
    ratio = limit_ratios("stock", inst.board, st, days)
    up_ratio, down_ratio = ratio.copy(), ratio.copy()
    if listed_inside:
        if list_date.date() >= REGISTRATION_FROM[inst.board]:
            up_ratio[: FREE_DAYS[inst.board]] = np.inf
            down_ratio[: FREE_DAYS[inst.board]] = np.inf
        else:
            up_ratio[0], down_ratio[0] = OLD_FIRST_DAY
        r[0] = 0.45 + 0.2 * noise[idx[0], 1]                                  # debut pop
    limited = np.isfinite(up_ratio)
    jump = limited & (uniform[idx, 0] < JUMP_PROB)
    if listed_inside:
        jump[0] = False
    r = np.where(jump, np.where(noise[idx, 1] >= 0, 1.0, -1.0) * (up_ratio + 0.03), r)
    one_price = jump & (uniform[idx, 1] < ONE_PRICE_PROB)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(r, np.log1p(-np.minimum(down_ratio, 0.99)), np.log1p(up_ratio))
    # dividends / bonus shares on the first trading session on or after 10 July (not the debut)
    years = days.year.to_numpy()
    ex = np.zeros(k, dtype=bool)
    for year in np.unique(years):
        cand = np.flatnonzero((years == year) & (days >= pd.Timestamp(int(year), 7, 10)))
        if len(cand) and cand[0] > 0:
            ex[cand[0]] = True
    ex_ratio = np.ones(k)
    bonus = np.where(bonus_years[(years - years[0]) % 40], bonus_sizes[(years - years[0]) % 40], 0.0)
    ex_ratio[ex] = (1.0 - dividend_yield) / (1.0 + bonus[ex])
    ex &= ex_ratio < 1.0
    # the close path: total-return path times the cumulative ex-date ratios, on the tick
    path = np.cumsum(r) + np.log(np.cumprod(ex_ratio))
    path += max(0.0, math.log(MIN_PRICE / price0) - float(path.min()))
    ideal = price0 * np.exp(path)
    pre0 = price0 if listed_inside else float(_tick_round(np.array([ideal[0] / math.exp(r[0])]), 0.01)[0])
    close = _tick_round(ideal, 0.01)
    for _ in range(20):  # rounding can move a close a tick past a limit set by the previous close
        prev = np.concatenate(([pre0], close[:-1]))
        cash = np.round(prev * dividend_yield, 3)
        pre = np.where(ex, _tick_round((prev - cash) / (1.0 + bonus), 0.01), prev)
        with np.errstate(invalid="ignore"):
            up = np.where(np.isfinite(up_ratio), _tick_round(pre * (1 + up_ratio), 0.01), np.inf)
            down = np.where(np.isfinite(down_ratio), _tick_round(pre * (1 - down_ratio), 0.01), 0.0)
        clipped = np.minimum(np.maximum(close, down), up)
        if np.array_equal(clipped, close):
            break
        close = clipped
    adj = np.round(np.cumprod(np.where(ex, prev / pre, 1.0)), 6)
    gap_sigma = 0.25 * max(sigma, 0.004)
    open_ = _tick_round(np.minimum(np.maximum(pre * np.exp(0.3 * r + gap_sigma * noise[idx, 2]), down), up), 0.01)
    wick = 0.4 * max(sigma, 0.006)
    high = _tick_round(np.minimum(np.maximum(open_, close) * np.exp(np.abs(noise[idx, 3]) * wick), up), 0.01)
    low = _tick_round(np.maximum(np.minimum(open_, close) * np.exp(-np.abs(noise[idx, 4]) * wick), down), 0.01)
    flat = one_price & ((close == up) | (close == down))
    open_ = np.where(flat, close, open_)
    high = np.where(flat, close, np.maximum(high, np.maximum(open_, close)))
    low = np.where(flat, close, np.minimum(low, np.minimum(open_, close)))
    move = np.abs(np.log(close / pre))
    lots = np.round(base_lots * np.exp(0.3 * noise[idx, 5]) * (1.0 + 8.0 * move) * np.where(flat, 0.1, 1.0), 2)
    avg = (open_ + high + low + close) / 4.0
    raw = pd.DataFrame({
        "trade_date": days.to_numpy(), "open_raw": open_, "high_raw": high, "low_raw": low, "close_raw": close,
        "pre_close_raw": np.round(pre, 2), "vol": lots, "amount": np.round(lots * 100.0 * avg / 1000.0, 3),
        "pct_chg": np.round((close - pre) / pre * 100.0, 4), "adj_factor": adj,
        "up_limit": np.where(np.isfinite(up), up, np.nan),
        "down_limit": np.where(np.isfinite(down_ratio), down, np.nan),
        "turnover": np.round(lots * 100.0 / float_shares * 100.0, 4), "is_st": st,
    })
    return raw.loc[:, list(RAW_COLUMNS)], pd.Timestamp(list_date).normalize()


def universe_row(panel: SyntheticPanel, inst: Instrument, list_date: pd.Timestamp) -> dict:
    return {"ts_code": inst.ts_code, "name": panel.name(inst), "kind": inst.kind, "board": inst.board,
            "list_date": list_date, "list_status": "L"}


def planted_ic(bars: dict[str, pd.DataFrame], min_stocks: int = 20) -> tuple[float, int]:
    """(mean daily cross-sectional Spearman IC of ret1_T vs the T→T+1 return, days measured) over stored bars."""
    ret = pd.DataFrame({code: b.set_index("trade_date")["close"] for code, b in bars.items()}).sort_index()
    past = ret / ret.shift(1) - 1.0
    nxt = ret.shift(-1) / ret - 1.0
    ok = past.notna() & nxt.notna()
    a = past.where(ok).rank(axis=1)
    b = nxt.where(ok).rank(axis=1)
    count = ok.sum(axis=1)
    a = a.sub(a.mean(axis=1), axis=0)
    b = b.sub(b.mean(axis=1), axis=0)
    ic = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    ic = ic[count >= min_stocks].dropna()
    return float(ic.mean()), len(ic)


__all__ = ["BENCHMARK", "SyntheticPanel", "planted_ic", "stock_code", "universe_row"]
