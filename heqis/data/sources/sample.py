"""The bundled sample market: synthetic, deterministic, A-share-like, in Tushare's own tables.

It exists so that every step runs offline. The numbers are invented (labelled ``synthetic`` in the
manifest and wherever they are shown) but the structure is real: the XSHG calendar, raw prices on
the exchange's tick, daily limits from the board rules (ChiNext ±10% → ±20% on 2020-08-24, ST ±5%),
limit-up/limit-down days including one-price (一字板) days, suspensions (no ``daily`` row),
dividends and bonus shares through ``adj_factor``, new listings (no limit for five sessions under
the registration system, a +44% first-day cap before it),
an ST period in ``namechange``, turnover in ``daily_basic``; units as Tushare's (vol in lots,
amount in thousand CNY). The tables are answered through ``TableApi`` so the sample data goes down
exactly the code path live Tushare data does.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from heqis.data.boards import classify, limit_band, price_tick, round_price
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


def _ymd(day: pd.Timestamp) -> str:
    return day.strftime("%Y%m%d")


def _ex_dates(sessions: pd.DatetimeIndex) -> dict[int, pd.Timestamp]:
    """One ex-dividend session per year: the first session on or after 10 July."""
    out: dict[int, pd.Timestamp] = {}
    for year in sorted(set(sessions.year)):
        after = sessions[sessions >= pd.Timestamp(year, 7, 10)]
        if len(after) and after[0].year == year:
            out[year] = after[0]
    return out


def _suspended(sessions: pd.DatetimeIndex, spec: SampleSpec) -> set[pd.Timestamp]:
    days: set[pd.Timestamp] = set()
    for first, count in spec.suspensions:
        idx = int(sessions.searchsorted(pd.Timestamp(first)))
        days.update(sessions[idx: idx + count])
    return days


def _is_st(spec: SampleSpec, day: pd.Timestamp) -> bool:
    return spec.st is not None and spec.st[0] <= day.date() <= spec.st[1]


def _instrument_tables(inst: Instrument, spec: SampleSpec, sessions: pd.DatetimeIndex,
                       market: np.ndarray, seed: int) -> dict[str, list[dict]]:
    """Rows of daily / adj / stk_limit / daily_basic for one instrument (Tushare columns)."""
    rng = _code_rng(inst.ts_code, seed)
    tick = price_tick(inst.kind)
    ndp = 3 if inst.kind == "fund" else 2
    ex_dates = _ex_dates(sessions)
    ex_lookup = {d: y for y, d in ex_dates.items()}
    suspended = _suspended(sessions, spec)
    listed_in_range = spec.list_date is not None and pd.Timestamp(spec.list_date) > sessions[0]
    daily: list[dict] = []
    adj_rows: list[dict] = []
    limit_rows: list[dict] = []
    basic_rows: list[dict] = []
    price = spec.price0
    adj = 1.0
    carry = 0.0       # market move accumulated while suspended, released on resumption
    prev_r = 0.0
    listed_sessions = 0
    noises = rng.standard_normal((len(sessions), 6))
    noises[:, 0] -= noises[:, 0].mean()  # the symbol's drift is beta × market + alpha, not luck
    uniforms = rng.random((len(sessions), 3))
    for t, day in enumerate(sessions):
        if spec.list_date is not None and day < pd.Timestamp(spec.list_date):
            continue
        noise = noises[t]
        uniform = uniforms[t]
        pre = price
        if day in ex_lookup and inst.kind != "index" and listed_sessions > 0:
            year = ex_lookup[day]
            cash = round(price * spec.dividend_yield, 3)
            bonus = spec.bonus.get(year, 0.0)
            if cash > 0 or bonus > 0:
                pre = round_price((price - cash) / (1.0 + bonus), tick)
                adj = adj * price / pre
        ymd = _ymd(day)
        if inst.kind != "index":
            adj_rows.append({"ts_code": inst.ts_code, "trade_date": ymd, "adj_factor": round(adj, 6)})
        band = limit_band(inst.kind, inst.board, _is_st(spec, day), day.date(),
                          listed_sessions if listed_in_range else None, spec.list_date)
        up = round_price(pre * (1 + band[0]), tick) if band is not None else np.inf
        down = round_price(pre * (1 - band[1]), tick) if band is not None else 0.0
        if band is not None:
            limit_rows.append({"ts_code": inst.ts_code, "trade_date": ymd, "pre_close": pre,
                               "up_limit": up, "down_limit": down})
        if day in suspended:
            carry += spec.beta * market[t]
            continue

        sigma = spec.sigma
        r = spec.beta * market[t] + spec.alpha / 242 + sigma * noise[0] + 0.04 * prev_r + carry
        carry = 0.0
        one_price = False
        if listed_in_range and listed_sessions == 0:
            r = 0.45 + 0.2 * noise[1]                      # debut pop (capped at +44% before registration)
        elif band is not None and inst.kind == "stock" and uniform[0] < JUMP_PROB:
            r = float(np.sign(noise[1]) or 1.0) * (band[0] + 0.03)    # news day into the limit
            one_price = uniform[1] < ONE_PRICE_PROB
        close = min(max(pre * np.exp(r), down), up)
        close = round_price(close, tick)
        gap_sigma = 0.25 * max(sigma, 0.004)
        open_ = min(max(pre * np.exp(0.3 * r + gap_sigma * noise[2]), down), up)
        open_ = round_price(open_, tick)
        wick = 0.4 * max(sigma, 0.006)
        high = round_price(min(max(open_, close) * np.exp(abs(noise[3]) * wick), up), tick)
        low = round_price(max(min(open_, close) * np.exp(-abs(noise[4]) * wick), down), tick)
        if one_price and close in (up, down):
            open_ = high = low = close
        high, low = max(high, open_, close), min(low, open_, close)
        move = abs(np.log(close / pre))
        lots = spec.base_lots * np.exp(0.3 * noise[5]) * (1.0 + 8.0 * move) * (0.1 if one_price else 1.0)
        lots = round(float(lots), 2)
        avg = (open_ + high + low + close) / 4.0
        daily.append({
            "ts_code": inst.ts_code, "trade_date": ymd, "open": open_, "high": high, "low": low,
            "close": close, "pre_close": round(pre, ndp), "change": round(close - pre, 4),
            "pct_chg": round((close - pre) / pre * 100.0, 4), "vol": lots,
            "amount": round(lots * 100.0 * avg / 1000.0, 3),
        })
        if inst.kind == "stock":
            basic_rows.append({"ts_code": inst.ts_code, "trade_date": ymd, "close": close,
                               "turnover_rate": round(lots * 100.0 / spec.float_shares * 100.0, 4)})
        prev_r = float(np.log(close / pre))
        price = close
        listed_sessions += 1
    return {"daily": daily, "adj": adj_rows, "limit": limit_rows, "basic": basic_rows}


def _index_tables(inst: Instrument, spec: SampleSpec, sessions: pd.DatetimeIndex,
                  market: np.ndarray, seed: int) -> list[dict]:
    rng = _code_rng(inst.ts_code, seed)
    level = spec.price0
    rows = []
    for t, day in enumerate(sessions):
        noise = rng.standard_normal(4)
        pre = level
        close = round(pre * np.exp(market[t]), 2)
        open_ = round(pre * np.exp(0.3 * market[t] + 0.002 * noise[0]), 2)
        high = round(max(open_, close) * np.exp(abs(noise[1]) * 0.004), 2)
        low = round(min(open_, close) * np.exp(-abs(noise[2]) * 0.004), 2)
        lots = round(float(spec.base_lots * np.exp(0.25 * noise[3]) * (1 + 10 * abs(market[t]))), 2)
        rows.append({
            "ts_code": inst.ts_code, "trade_date": _ymd(day), "open": open_, "high": high, "low": low,
            "close": close, "pre_close": round(pre, 2), "change": round(close - pre, 4),
            "pct_chg": round((close - pre) / pre * 100.0, 4), "vol": lots,
            "amount": round(lots * 100.0 * (open_ + close) / 2.0 / 1000.0 / 1000.0, 3),
        })
        level = close
    return rows


def generate_tables(instruments: list[Instrument], start: date = SAMPLE_START, end: date = SAMPLE_END,
                    seed: int = SAMPLE_SEED) -> dict[str, pd.DataFrame]:
    """The synthetic market as Tushare Pro tables (api name → DataFrame with Tushare's columns)."""
    sessions = xshg_sessions(start, end)
    market = _market_returns(sessions, seed)
    acc: dict[str, list[dict]] = {k: [] for k in (
        "daily", "index_daily", "fund_daily", "adj_factor", "fund_adj", "stk_limit", "daily_basic",
        "namechange", "stock_basic", "index_basic", "fund_basic")}
    first = _ymd(sessions[0])
    for inst in instruments:
        spec = spec_for(inst.ts_code, seed)
        list_ymd = spec.list_date.strftime("%Y%m%d") if spec.list_date else "20010827"
        if inst.kind == "index":
            acc["index_daily"] += _index_tables(inst, spec, sessions, market, seed)
            acc["index_basic"].append({"ts_code": inst.ts_code, "name": spec.name, "market": "CSI",
                                       "publisher": "中证公司", "category": "规模指数",
                                       "base_date": "20041231", "list_date": "20050408"})
            continue
        rows = _instrument_tables(inst, spec, sessions, market, seed)
        if inst.kind == "fund":
            acc["fund_daily"] += rows["daily"]
            acc["fund_adj"] += rows["adj"]
            acc["fund_basic"].append({"ts_code": inst.ts_code, "name": spec.name, "market": "E",
                                      "list_date": list_ymd, "status": "L"})
        else:
            acc["daily"] += rows["daily"]
            acc["adj_factor"] += rows["adj"]
            acc["daily_basic"] += rows["basic"]
            acc["stock_basic"].append({
                "ts_code": inst.ts_code, "symbol": inst.ts_code[:6], "name": spec.name,
                "market": MARKET_NAMES[inst.board], "list_date": list_ymd, "list_status": "L",
                "delist_date": None})
            acc["namechange"] += _namechanges(inst.ts_code, spec, list_ymd if spec.list_date else first)
        acc["stk_limit"] += rows["limit"]
    tables = {name: pd.DataFrame(rows) for name, rows in acc.items()}
    days = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D")
    open_days = days.isin(sessions)
    pretrade = pd.Series(np.where(open_days, days, pd.NaT), index=days).shift(1).ffill()
    tables["trade_cal"] = pd.DataFrame({
        "exchange": "SSE", "cal_date": days.strftime("%Y%m%d"),
        "is_open": np.where(open_days, "1", "0"),
        "pretrade_date": [d.strftime("%Y%m%d") if pd.notna(d) else None for d in pretrade],
    })
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


def sample_api(instruments: list[Instrument], seed: int = SAMPLE_SEED) -> TableApi:
    """A Tushare-compatible API answering from the synthetic tables."""
    return TableApi(generate_tables(instruments, seed=seed))
