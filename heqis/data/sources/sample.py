"""The bundled sample market: synthetic, deterministic, A-share-like, in Tushare's own tables.

It exists so that every step runs offline. The numbers are invented (labelled ``synthetic`` in the
manifest and wherever they are shown) but the structure is real: the XSHG calendar, raw prices on
the exchange's tick, daily limits from the board rules (ChiNext ±10% → ±20% on 2020-08-24, ST ±5%),
limit-up/limit-down days including one-price (一字板) days, suspensions (no ``daily`` row),
dividends and bonus shares through ``adj_factor``, new listings (no limit for five sessions under
the registration system, a +44% first-day cap before it),
an ST period in ``namechange``, turnover in ``daily_basic``; units as Tushare's (vol in lots,
amount in thousand CNY). The tables go down the code path live Tushare data does — cleaning,
assembly, adjustment — handed over whole per instrument (``SampleApi.pieces``) instead of paged
through queries; ``SampleApi.query`` answers Tushare queries too (``TableApi``'s filters, caps and
order), and ``generate_tables`` gives every instrument's tables at once to the Tushare-format test
server.

Each instrument is one pass over its sessions in a compiled kernel (``_stock_path``: the state —
price, adjustment factor, the market's move while suspended, yesterday's return — carries from day
to day), then its tables are built column by column; only one instrument's rows are in memory at a
time, so the cost per symbol does not grow with the watchlist. Rounding is Python's ``round``
exactly (``_round``), and the store it gives is byte for byte the one the first, row-by-row
generator gave.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from numba import njit

from heqis.data.assemble import RawPieces
from heqis.data.boards import (
    ADJ_API,
    DAILY_API,
    FREE_DAYS,
    OLD_FIRST_DAY,
    REGISTRATION_FROM,
    classify,
    limit_ratios,
    price_tick,
)
from heqis.data.calendar import xshg_sessions
from heqis.data.sources.tables import TableApi
from heqis.data.watchlist import Instrument

SAMPLE_START = date(2018, 1, 2)
SAMPLE_END = date(2024, 12, 31)
SAMPLE_SEED = 3407
JUMP_PROB = 0.012        # chance of a news day that runs into the limit
ONE_PRICE_PROB = 0.35    # of those, the share that open at the limit and never leave it (一字板)


@dataclass(frozen=True)
class SampleSpec:
    """How one synthetic instrument behaves."""

    name: str
    price0: float
    beta: float = 1.0
    sigma: float = 0.018                      # idiosyncratic daily volatility
    list_date: date | None = None             # None: listed before the sample starts
    st: tuple[date, date] | None = None       # ST period (inclusive)
    dividend_yield: float = 0.015             # paid once a year, early July
    bonus: dict[int, float] = field(default_factory=dict)  # year → bonus shares per share (10转8 = 0.8)
    suspensions: tuple[tuple[date, int], ...] = ()       # (first day, sessions) — no daily row
    alpha: float = 0.0                        # idiosyncratic drift, log return per year
    float_shares: float = 1e9
    base_lots: float = 2e5                    # typical daily volume in lots


KNOWN: dict[str, SampleSpec] = {
    "600519.SH": SampleSpec("贵州茅台", 720.0, beta=0.9, sigma=0.016, dividend_yield=0.012, alpha=0.12,
                            suspensions=((date(2019, 3, 18), 2),), float_shares=1.256e9, base_lots=3e4),
    "000001.SZ": SampleSpec("平安银行", 13.5, beta=1.1, sigma=0.017, dividend_yield=0.025,
                            suspensions=((date(2020, 11, 9), 1),), float_shares=1.94e10, base_lots=9e5),
    "600289.SH": SampleSpec("亿阳信通", 5.2, beta=1.0, sigma=0.028, dividend_yield=0.0,
                            st=(date(2021, 5, 6), date(2022, 6, 30)),
                            suspensions=((date(2021, 9, 1), 12), (date(2023, 2, 6), 3)),
                            float_shares=5.6e8, base_lots=1.5e5),
    "300750.SZ": SampleSpec("宁德时代", 36.0, beta=1.2, sigma=0.028, list_date=date(2018, 6, 11), alpha=0.2,
                            bonus={2022: 0.8}, dividend_yield=0.004,
                            suspensions=((date(2019, 8, 12), 1),), float_shares=2.2e9, base_lots=2e5),
    "688981.SH": SampleSpec("中芯国际", 27.46, beta=1.2, sigma=0.03, list_date=date(2020, 7, 16), alpha=0.05,
                            dividend_yield=0.0, float_shares=1.9e9, base_lots=6e5),
    "000300.SH": SampleSpec("沪深300", 4030.0, beta=1.0, sigma=0.0, dividend_yield=0.0, base_lots=1.2e8),
    "510300.SH": SampleSpec("沪深300ETF", 4.03, beta=1.0, sigma=0.001, dividend_yield=0.02,
                            float_shares=1.5e10, base_lots=6e6),
}

MARKET_NAMES = {"main": "主板", "chinext": "创业板", "star": "科创板", "bse": "北交所"}


def _code_rng(code: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(code.encode())])


def spec_for(code: str, seed: int = SAMPLE_SEED) -> SampleSpec:
    """The spec of a known sample symbol, or a deterministic one derived from the code."""
    if code in KNOWN:
        return KNOWN[code]
    rng = _code_rng(code, seed + 1)
    kind, _ = classify(code)
    if kind == "index":
        return SampleSpec(f"合成指数 {code}", float(rng.uniform(1000, 6000)), sigma=0.0,
                          dividend_yield=0.0, base_lots=5e7)
    if kind == "fund":
        return SampleSpec(f"合成ETF {code}", float(rng.uniform(0.8, 5.0)), sigma=0.002,
                          dividend_yield=0.01, float_shares=5e9, base_lots=2e6)
    start = pd.Timestamp(SAMPLE_START).toordinal()
    susp_day = date.fromordinal(int(rng.integers(start + 200, start + 2200)))
    return SampleSpec(f"合成样本 {code}", float(np.round(rng.uniform(5, 80), 2)),
                      beta=float(rng.uniform(0.7, 1.4)), sigma=float(rng.uniform(0.015, 0.03)),
                      suspensions=((susp_day, int(rng.integers(1, 6))),),
                      float_shares=float(rng.uniform(3e8, 5e9)), base_lots=float(rng.uniform(5e4, 5e5)))


# Yearly log returns the synthetic market follows: the shape of the CSI 300's years 2018-2024
# (-25%, +36%, +27%, -5%, -22%, -11%, +15%); other years drift slightly up.
YEARLY_LOG_RETURN = {2018: -0.29, 2019: 0.31, 2020: 0.24, 2021: -0.05, 2022: -0.25, 2023: -0.12, 2024: 0.14}


def _market_returns(sessions: pd.DatetimeIndex, seed: int) -> np.ndarray:
    """Daily log returns of the whole market: volatility clustering, and each year's noise centred
    on that year's return in YEARLY_LOG_RETURN, so the sample looks like an A-share cycle."""
    rng = np.random.default_rng([seed, 0])
    n = len(sessions)
    h = np.zeros(n)
    for t in range(1, n):
        h[t] = 0.97 * h[t - 1] + 0.25 * rng.standard_normal()
    r = 0.011 * np.exp(0.3 * h) * rng.standard_normal(n)
    years = sessions.year.to_numpy()
    for year in np.unique(years):
        sel = years == year
        r[sel] += YEARLY_LOG_RETURN.get(int(year), 0.05) / sel.sum() - r[sel].mean()
    return r


def _ex_dates(sessions: pd.DatetimeIndex) -> dict[int, pd.Timestamp]:
    """One ex-dividend session per year: the first session on or after 10 July."""
    out: dict[int, pd.Timestamp] = {}
    for year in sorted(set(sessions.year)):
        after = sessions[sessions >= pd.Timestamp(year, 7, 10)]
        if len(after) and after[0].year == year:
            out[year] = after[0]
    return out


def _suspended(sessions: pd.DatetimeIndex, spec: SampleSpec) -> np.ndarray:
    """True on the sessions the instrument does not trade (no ``daily`` row)."""
    days = np.zeros(len(sessions), dtype=bool)
    for first, count in spec.suspensions:
        idx = int(sessions.searchsorted(pd.Timestamp(first)))
        days[idx: idx + count] = True
    return days


@dataclass(frozen=True)
class Market:
    """What every instrument of one sample run shares: the sessions (and their Tushare dates), the
    market's daily log returns, the yearly ex-dividend sessions."""

    sessions: pd.DatetimeIndex
    returns: np.ndarray
    ymd: np.ndarray                  # 'YYYYMMDD' of every session (Tushare's date strings)
    ex_date: np.ndarray              # bool per session

    @classmethod
    def of(cls, start: date, end: date, seed: int) -> Market:
        sessions = xshg_sessions(start, end)
        ex = np.zeros(len(sessions), dtype=bool)
        ex[sessions.searchsorted(list(_ex_dates(sessions).values()))] = True
        return cls(sessions, _market_returns(sessions, seed), sessions.strftime("%Y%m%d").to_numpy(dtype=object), ex)


@njit(cache=True)
def _round(x: float, digits: int) -> float:
    """Python's ``round(x, digits)`` exactly, compiled: the decimal nearest to the double ``x`` (ties to even,
    decided on the exact product x·10^digits, whose rounding error Dekker's two-product recovers), as the
    nearest double. The sample's prices and volumes are decimals with few digits, so ties are common here
    and numpy's ``round`` (round the rounded product) would move some of them by one unit."""
    scale = 10.0 ** digits
    p = x * scale
    split = 134217729.0                     # 2^27 + 1: Veltkamp's split of each factor into 26-bit halves
    c = split * x
    xh = c - (c - x)
    xl = x - xh
    c = split * scale
    sh = c - (c - scale)
    sl = scale - sh
    err = ((xh * sh - p) + xh * sl + xl * sh) + xl * sl
    k = math.floor(p)
    frac = p - k
    if frac > 0.5 or (frac == 0.5 and (err > 0 or (err == 0 and k % 2 == 1))):
        k += 1
    return k / scale


@njit(cache=True)
def _rounded(values: np.ndarray, digits: int) -> np.ndarray:
    out = np.empty_like(values)
    for i in range(values.shape[0]):
        out[i] = _round(values[i], digits)
    return out


@njit(cache=True)
def _tick(x: float, tick: float) -> float:
    """``boards.round_price`` compiled: half up to the tick, float noise removed at 3 decimals."""
    return np.rint(math.floor(x / tick + 0.5 + 1e-9) * tick * 1000.0) / 1000.0


@njit(cache=True)
def _stock_path(market: np.ndarray, noises: np.ndarray, uniforms: np.ndarray, active: np.ndarray,
                suspended: np.ndarray, ex_date: np.ndarray, bonus: np.ndarray, ratio: np.ndarray,
                spec: tuple, tick: float, stock: bool, listed_in_range: bool, free_days: int,
                first_day: tuple) -> tuple:
    """One instrument's sessions in order — the state (price, adjustment factor, the market's move while
    suspended, yesterday's return) carries from day to day: per session its pre-close, factor and
    limits, whether it traded, and its bar (open, high, low, close, lots)."""
    price0, beta, alpha, sigma, dividend_yield, base_lots = spec
    n = market.shape[0]
    up = np.full(n, np.inf)
    down = np.zeros(n)
    pre_close = np.zeros(n)
    factor = np.ones(n)
    banded = np.zeros(n, dtype=np.bool_)
    traded = np.zeros(n, dtype=np.bool_)
    bar = np.zeros((n, 5))
    price, adj, carry, prev_r, listed = price0, 1.0, 0.0, 0.0, 0
    gap_sigma = 0.25 * max(sigma, 0.004)
    wick = 0.4 * max(sigma, 0.006)
    for t in range(n):
        if not active[t]:
            continue
        pre = price
        if ex_date[t] and listed > 0:
            cash = _round(price * dividend_yield, 3)
            if cash > 0 or bonus[t] > 0:
                pre = _tick((price - cash) / (1.0 + bonus[t]), tick)
                adj = adj * price / pre
        factor[t] = adj
        pre_close[t] = pre
        band_up = band_down = ratio[t]
        if listed_in_range and stock:            # new listings: free first sessions, or a capped debut
            if listed < free_days:
                band_up = band_down = np.nan
            elif free_days == 0 and listed == 0:
                band_up, band_down = first_day
        if not np.isnan(band_up):
            banded[t] = True
            up[t] = _tick(pre * (1 + band_up), tick)
            down[t] = _tick(pre * (1 - band_down), tick)
        if suspended[t]:
            carry += beta * market[t]
            continue
        noise = noises[t]
        r = beta * market[t] + alpha / 242 + sigma * noise[0] + 0.04 * prev_r + carry
        carry = 0.0
        one_price = False
        if listed_in_range and listed == 0:
            r = 0.45 + 0.2 * noise[1]                                     # debut pop
        elif banded[t] and stock and uniforms[t, 0] < JUMP_PROB:
            r = (1.0 if noise[1] >= 0 else -1.0) * (band_up + 0.03)      # news day into the limit
            one_price = uniforms[t, 1] < ONE_PRICE_PROB
        close = _tick(min(max(pre * math.exp(r), down[t]), up[t]), tick)
        open_ = _tick(min(max(pre * math.exp(0.3 * r + gap_sigma * noise[2]), down[t]), up[t]), tick)
        high = _tick(min(max(open_, close) * math.exp(abs(noise[3]) * wick), up[t]), tick)
        low = _tick(max(min(open_, close) * math.exp(-abs(noise[4]) * wick), down[t]), tick)
        if one_price and (close == up[t] or close == down[t]):
            open_ = high = low = close
        high, low = max(high, open_, close), min(low, open_, close)
        move = math.log(close / pre)
        lots = base_lots * math.exp(0.3 * noise[5]) * (1.0 + 8.0 * abs(move)) * (0.1 if one_price else 1.0)
        bar[t, 0], bar[t, 1], bar[t, 2], bar[t, 3], bar[t, 4] = open_, high, low, close, lots
        traded[t] = True
        prev_r = move
        price = close
        listed += 1
    return pre_close, factor, banded, up, down, traded, bar


def _stock_tables(inst: Instrument, spec: SampleSpec, market: Market, seed: int) -> dict[str, pd.DataFrame]:
    """The per-instrument tables of a stock or a fund (api name → rows, oldest first)."""
    sessions = market.sessions
    n = len(sessions)
    rng = _code_rng(inst.ts_code, seed)
    noises = rng.standard_normal((n, 6))
    noises[:, 0] -= noises[:, 0].mean()  # the symbol's drift is beta × market + alpha, not luck
    uniforms = rng.random((n, 3))
    days = sessions.to_numpy()
    active = np.ones(n, dtype=bool) if spec.list_date is None else days >= np.datetime64(spec.list_date)
    listed_in_range = spec.list_date is not None and pd.Timestamp(spec.list_date) > sessions[0]
    free_days = FREE_DAYS[inst.board] if inst.kind == "stock" and listed_in_range and \
        spec.list_date >= REGISTRATION_FROM[inst.board] else 0  # type: ignore[operator]
    st = np.zeros(n, dtype=bool) if spec.st is None else \
        (days >= np.datetime64(spec.st[0])) & (days <= np.datetime64(spec.st[1]))
    bonus = np.zeros(n)
    for year, shares in spec.bonus.items():
        bonus[sessions.year == year] = shares
    tick = price_tick(inst.kind)
    pre, adj, banded, up, down, traded, bar = _stock_path(
        market.returns, noises, uniforms, active, _suspended(sessions, spec), market.ex_date, bonus,
        limit_ratios(inst.kind, inst.board, st, sessions),
        (spec.price0, spec.beta, spec.alpha, spec.sigma, spec.dividend_yield, spec.base_lots), tick,
        inst.kind == "stock", listed_in_range, free_days, OLD_FIRST_DAY)
    code, ymd = inst.ts_code, market.ymd
    limited = active & banded
    o, h, lo, c, lots = (bar[traded, j] for j in range(5))
    lots = _rounded(lots, 2)
    p = pre[traded]
    avg = (o + h + lo + c) / 4.0
    tables = {
        DAILY_API[inst.kind]: pd.DataFrame({
            "ts_code": code, "trade_date": ymd[traded], "open": o, "high": h, "low": lo, "close": c,
            "pre_close": _rounded(p, 3 if inst.kind == "fund" else 2), "change": _rounded(c - p, 4),
            "pct_chg": _rounded((c - p) / p * 100.0, 4), "vol": lots,
            "amount": _rounded(lots * 100.0 * avg / 1000.0, 3)}),
        ADJ_API[inst.kind]: pd.DataFrame({"ts_code": code, "trade_date": ymd[active],
                                            "adj_factor": _rounded(adj[active], 6)}),
        "stk_limit": pd.DataFrame({"ts_code": code, "trade_date": ymd[limited], "pre_close": pre[limited],
                                   "up_limit": up[limited], "down_limit": down[limited]}),
    }
    if inst.kind == "stock":
        tables["daily_basic"] = pd.DataFrame({"ts_code": code, "trade_date": ymd[traded], "close": c,
                                              "turnover_rate": _rounded(lots * 100.0 / spec.float_shares * 100.0, 4)})
        list_ymd = spec.list_date.strftime("%Y%m%d") if spec.list_date else ymd[0]
        tables["namechange"] = pd.DataFrame(_namechanges(code, spec, list_ymd))
    return tables


@njit(cache=True)
def _index_path(market: np.ndarray, noise: np.ndarray, level: float) -> np.ndarray:
    """[n, 5] open, high, low, close, pre-close of an index on the market path (each day's rounded close is
    the next day's base)."""
    out = np.empty((market.shape[0], 5))
    for t in range(market.shape[0]):
        pre = level
        close = np.rint(pre * math.exp(market[t]) * 100.0) / 100.0
        open_ = np.rint(pre * math.exp(0.3 * market[t] + 0.002 * noise[t, 0]) * 100.0) / 100.0
        high = np.rint(max(open_, close) * math.exp(abs(noise[t, 1]) * 0.004) * 100.0) / 100.0
        low = np.rint(min(open_, close) * math.exp(-abs(noise[t, 2]) * 0.004) * 100.0) / 100.0
        out[t, 0], out[t, 1], out[t, 2], out[t, 3], out[t, 4] = open_, high, low, close, pre
        level = close
    return out


def _index_tables(inst: Instrument, spec: SampleSpec, market: Market, seed: int) -> dict[str, pd.DataFrame]:
    noise = _code_rng(inst.ts_code, seed).standard_normal((len(market.sessions), 4))
    o, h, lo, c, p = _index_path(market.returns, noise, spec.price0).T
    lots = _rounded(spec.base_lots * np.exp(0.25 * noise[:, 3]) * (1 + 10 * np.abs(market.returns)), 2)
    return {"index_daily": pd.DataFrame({
        "ts_code": inst.ts_code, "trade_date": market.ymd, "open": o, "high": h, "low": lo, "close": c,
        "pre_close": np.round(p, 2), "change": np.round(c - p, 4), "pct_chg": np.round((c - p) / p * 100.0, 4),
        "vol": lots, "amount": np.round(lots * 100.0 * (o + c) / 2.0 / 1000.0 / 1000.0, 3)})}


# The columns of every per-instrument table (an instrument a table does not cover gets its columns, no rows).
PER_INSTRUMENT = {
    **{api: ("ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "change", "pct_chg", "vol",
             "amount") for api in DAILY_API.values()},
    **{api: ("ts_code", "trade_date", "adj_factor") for api in ADJ_API.values()},
    "stk_limit": ("ts_code", "trade_date", "pre_close", "up_limit", "down_limit"),
    "daily_basic": ("ts_code", "trade_date", "close", "turnover_rate"),
    "namechange": ("ts_code", "name", "start_date", "end_date", "ann_date", "change_reason"),
}


def instrument_tables(inst: Instrument, market: Market, seed: int = SAMPLE_SEED) -> dict[str, pd.DataFrame]:
    """The per-instrument Tushare tables of one sample instrument that apply to its kind, oldest first."""
    spec = spec_for(inst.ts_code, seed)
    return _index_tables(inst, spec, market, seed) if inst.kind == "index" else _stock_tables(inst, spec, market, seed)


def basic_tables(instruments: list[Instrument], market: Market, start: date, end: date,
                 seed: int = SAMPLE_SEED) -> dict[str, pd.DataFrame]:
    """The tables that are not per instrument: the trading calendar and the stock / index / fund lists."""
    acc: dict[str, list[dict]] = {"stock_basic": [], "index_basic": [], "fund_basic": []}
    for inst in instruments:
        spec = spec_for(inst.ts_code, seed)
        list_ymd = spec.list_date.strftime("%Y%m%d") if spec.list_date else "20010827"
        if inst.kind == "index":
            acc["index_basic"].append({"ts_code": inst.ts_code, "name": spec.name, "market": "CSI",
                                       "publisher": "中证公司", "category": "规模指数",
                                       "base_date": "20041231", "list_date": "20050408"})
        elif inst.kind == "fund":
            acc["fund_basic"].append({"ts_code": inst.ts_code, "name": spec.name, "market": "E",
                                      "list_date": list_ymd, "status": "L"})
        else:
            acc["stock_basic"].append({
                "ts_code": inst.ts_code, "symbol": inst.ts_code[:6], "name": spec.name,
                "market": MARKET_NAMES[inst.board], "list_date": list_ymd, "list_status": "L",
                "delist_date": None})
    tables = {name: pd.DataFrame(rows) for name, rows in acc.items()}
    days = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D")
    open_days = days.isin(market.sessions)
    pretrade = pd.Series(np.where(open_days, days, pd.NaT), index=days).shift(1).ffill()
    tables["trade_cal"] = pd.DataFrame({
        "exchange": "SSE", "cal_date": days.strftime("%Y%m%d"),
        "is_open": np.where(open_days, "1", "0"),
        "pretrade_date": [d.strftime("%Y%m%d") if pd.notna(d) else None for d in pretrade],
    })
    return tables


def generate_tables(instruments: list[Instrument], start: date = SAMPLE_START, end: date = SAMPLE_END,
                    seed: int = SAMPLE_SEED) -> dict[str, pd.DataFrame]:
    """The synthetic market as Tushare Pro tables (api name → DataFrame with Tushare's columns), every
    instrument at once (what the Tushare-format test server serves)."""
    market = Market.of(start, end, seed)
    parts = [instrument_tables(inst, market, seed) for inst in instruments]
    tables: dict[str, pd.DataFrame] = {}
    for api, cols in PER_INSTRUMENT.items():
        frames = [p[api] for p in parts if api in p and len(p[api])]
        tables[api] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(cols))
    tables.update(basic_tables(instruments, market, start, end, seed))
    return tables


def _namechanges(code: str, spec: SampleSpec, since: str) -> list[dict]:
    if spec.st is None:
        return [{"ts_code": code, "name": spec.name, "start_date": since, "end_date": None,
                 "ann_date": since, "change_reason": "新股上市"}]
    st0, st1 = (d.strftime("%Y%m%d") for d in spec.st)
    before = (pd.Timestamp(spec.st[0]) - pd.Timedelta(days=1)).strftime("%Y%m%d")
    after = (pd.Timestamp(spec.st[1]) + pd.Timedelta(days=1)).strftime("%Y%m%d")
    return [
        {"ts_code": code, "name": spec.name, "start_date": since, "end_date": before,
         "ann_date": since, "change_reason": "新股上市"},
        {"ts_code": code, "name": f"ST{spec.name[-2:]}", "start_date": st0, "end_date": st1,
         "ann_date": st0, "change_reason": "ST"},
        {"ts_code": code, "name": spec.name, "start_date": after, "end_date": None,
         "ann_date": after, "change_reason": "撤销ST"},
    ]


class SampleApi:
    """Answers Tushare queries about the sample market, one instrument at a time.

    An instrument's tables are generated when a query first names it (``ts_code``) and kept until a
    query names another — the fetcher asks for one instrument's tables in a row — so a run over
    thousands of symbols holds one symbol's rows at a time and costs the same per symbol. Every query
    goes through ``TableApi``: Tushare's filters, row caps and newest-first order."""

    def __init__(self, instruments: list[Instrument], seed: int = SAMPLE_SEED, start: date = SAMPLE_START,
                 end: date = SAMPLE_END) -> None:
        self.instruments = {i.ts_code: i for i in instruments}
        self.seed = seed
        self.market = Market.of(start, end, seed)
        self.basic = TableApi(basic_tables(instruments, self.market, start, end, seed))
        self.empty = TableApi({api: pd.DataFrame(columns=list(cols)) for api, cols in PER_INSTRUMENT.items()})
        self.current: tuple[str, TableApi] = ("", self.empty)

    def _tables(self, code: str) -> TableApi:
        if self.current[0] != code:
            self.current = (code, TableApi(instrument_tables(self.instruments[code], self.market, self.seed)))
        return self.current[1]

    def pieces(self, inst: Instrument, start: date, end: date) -> tuple[RawPieces, int]:
        """The tables ``Fetcher.instrument`` would page through, handed over whole (heqis.data.fetch.HeldTables):
        the same rows, oldest first, in [start, end] — without a query or a sort per table."""
        tables = self._tables(inst.ts_code).tables if inst.ts_code in self.instruments else {}
        lo, hi = start.strftime("%Y%m%d"), end.strftime("%Y%m%d")

        def span(api: str) -> pd.DataFrame:
            frame = tables.get(api, self.empty.tables[api])
            days = frame["trade_date"]
            if not len(frame) or (days.iloc[0] >= lo and days.iloc[-1] <= hi):    # oldest first: all inside
                return frame
            keep = ((days >= lo) & (days <= hi)).to_numpy()
            return frame[keep].reset_index(drop=True)

        kind = inst.kind
        pieces = RawPieces(daily=span(DAILY_API[kind]), adj=span(ADJ_API[kind]) if kind in ADJ_API else None,
                           limit=span("stk_limit") if kind != "index" else None,
                           basic=span("daily_basic") if kind == "stock" else None,
                           names=tables.get("namechange", self.empty.tables["namechange"]) if kind == "stock" else None)
        return pieces, sum(p is not None for p in (pieces.adj, pieces.limit, pieces.basic, pieces.names)) + 1

    def query(self, api_name: str, fields: str = "", **params: object) -> pd.DataFrame:
        if api_name not in PER_INSTRUMENT:
            return self.basic.query(api_name, fields, **params)
        code = str(params.get("ts_code") or "")
        if code not in self.instruments:
            return self.empty.query(api_name, fields, **params)
        tables = self._tables(code)
        api = tables if api_name in tables.tables else self.empty
        return api.query(api_name, fields, **params)


def sample_api(instruments: list[Instrument], seed: int = SAMPLE_SEED) -> SampleApi:
    """A Tushare-compatible API answering from the synthetic tables."""
    return SampleApi(instruments, seed)
