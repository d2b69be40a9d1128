"""The execution engine: one long-only position per symbol, day by day, compiled with numba.

Arrays are laid out per *session* of the exchange calendar (not per bar), so a suspended day is a
session with ``traded = False``: nothing fills, equity is marked at the last close, and a waiting
order counts the day. Signals (docs/architecture.md, "Backtest"): 1 = buy / stay long, -1 = sell /
stay flat, 0 = keep (a pending order keeps waiting). All prices are raw; the adjustment factor only scales
the share count on ex-dates, so dividends and bonus shares neither lose nor invent value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from heqis.backtest.rules import MarketRules
from heqis.data.boards import limit_band, price_tick, round_price

# counter slots returned by the kernel
BUY_BLOCKED_LIMIT, SELL_BLOCKED_LIMIT, BLOCKED_SUSPENDED, UNAFFORDABLE = range(4)
COUNTER_NAMES = ("buy_blocked_limit", "sell_blocked_limit", "blocked_suspended", "unaffordable")


@njit(cache=True)
def _fees(value: float, rate: float, minimum: float, transfer: float) -> float:
    return max(value * rate, minimum) + value * transfer


@njit(cache=True)
def simulate(open_, close, up, down, traded, adj, signal, stamp, initial_cash, lot, comm_rate, comm_min,
             transfer_rate, slip, fraction, tol):
    """Run one symbol. Returns (equity, shares, cash, trades[k, 8], counters[4]).

    T+1 holds by construction: orders are decided at a close and filled at a later open, so a
    position bought on a morning can at the earliest be sold the next morning.

    trades columns: entry session, exit session (-1 while open), shares at exit (or now), entry price,
    exit price, entry cost incl. fees, exit proceeds net of fees, buy fees.
    """
    n = open_.shape[0]
    equity = np.empty(n)
    held = np.empty(n)
    cash_out = np.empty(n)
    trades = np.full((n + 1, 8), np.nan)
    counters = np.zeros(4, dtype=np.int64)
    cash = initial_cash
    shares = 0.0
    pending = 0
    last_close = np.nan
    last_adj = np.nan
    k = -1              # index of the current (or last) trade
    for t in range(n):
        if traded[t]:
            if shares > 0.0 and last_adj == last_adj and adj[t] != last_adj:
                shares *= adj[t] / last_adj          # ex-date: dividends / bonus shares into the share count
            last_adj = adj[t]
            if pending == 1 and shares == 0.0:
                if open_[t] >= up[t] - tol:
                    counters[BUY_BLOCKED_LIMIT] += 1
                else:
                    price = open_[t] * (1.0 + slip)
                    budget = cash * fraction
                    lots = np.floor(budget / (price * lot * (1.0 + comm_rate + transfer_rate)))
                    while lots > 0 and lots * lot * price + _fees(lots * lot * price, comm_rate, comm_min,
                                                                  transfer_rate) > budget:
                        lots -= 1
                    if lots <= 0:
                        counters[UNAFFORDABLE] += 1
                        pending = 0
                    else:
                        value = lots * lot * price
                        fee = _fees(value, comm_rate, comm_min, transfer_rate)
                        cash -= value + fee
                        shares = lots * lot
                        k += 1
                        trades[k, 0] = t
                        trades[k, 1] = -1
                        trades[k, 3] = price
                        trades[k, 5] = value + fee
                        trades[k, 7] = fee
                        pending = 0
            elif pending == -1 and shares > 0.0:
                if open_[t] <= down[t] + tol:
                    counters[SELL_BLOCKED_LIMIT] += 1
                else:
                    price = open_[t] * (1.0 - slip)
                    value = shares * price
                    fee = max(value * comm_rate, comm_min) + value * stamp[t] + value * transfer_rate
                    cash += value - fee
                    trades[k, 1] = t
                    trades[k, 2] = shares
                    trades[k, 4] = price
                    trades[k, 6] = value - fee
                    shares = 0.0
                    pending = 0
            last_close = close[t]
        elif pending != 0:
            counters[BLOCKED_SUSPENDED] += 1
        equity[t] = cash + (shares * last_close if shares > 0.0 else 0.0)
        held[t] = shares
        cash_out[t] = cash
        s = signal[t]
        if s > 0:
            pending = 1 if shares == 0.0 else 0
        elif s < 0:
            pending = -1 if shares > 0.0 else 0
    if k >= 0 and trades[k, 1] == -1:
        trades[k, 2] = shares
    return equity, held, cash_out, trades[: k + 1], counters


@njit(cache=True)
def simulate_panel(open_, close, up, down, traded, adj, signal, stamp, initial_cash, lot, comm_rate, comm_min,
                   transfer_rate, slip, fraction, tol):
    """``simulate`` over the columns of [sessions, symbols] arrays in one compiled call.

    Returns (equity [n, m], trades [k, 9] with the column index in the last field, counters [m, 4]).
    """
    n, m = open_.shape
    equity = np.empty((n, m))
    counters = np.zeros((m, 4), dtype=np.int64)
    chunks = []
    total = 0
    for j in range(m):
        eq, _, _, tr, cnt = simulate(open_[:, j], close[:, j], up[:, j], down[:, j], traded[:, j], adj[:, j],
                                     signal[:, j], stamp, initial_cash, lot, comm_rate, comm_min, transfer_rate,
                                     slip, fraction, tol)
        equity[:, j] = eq
        counters[j] = cnt
        chunks.append(tr)
        total += tr.shape[0]
    trades = np.empty((total, 9))
    row = 0
    for j in range(m):
        tr = chunks[j]
        for i in range(tr.shape[0]):
            trades[row, :8] = tr[i]
            trades[row, 8] = j
            row += 1
    return equity, trades, counters


def run_panel(open_: np.ndarray, close: np.ndarray, signals: np.ndarray, dates: np.ndarray, rules: MarketRules,
              up: np.ndarray | None = None, down: np.ndarray | None = None, traded: np.ndarray | None = None,
              adj: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Many symbols on a shared calendar in one compiled call (screens, benchmarks, large universes).

    Missing limits mean none; missing ``traded`` means every session traded; missing ``adj`` means 1.
    Returns (equity [n, m], raw trades [k, 9] as in ``simulate`` plus the column, counters [m, 4]).
    """
    shape = open_.shape
    f64 = np.float64
    return simulate_panel(
        np.ascontiguousarray(open_, f64), np.ascontiguousarray(close, f64),
        np.full(shape, np.inf) if up is None else np.ascontiguousarray(up, f64),
        np.zeros(shape) if down is None else np.ascontiguousarray(down, f64),
        np.ones(shape, dtype=np.bool_) if traded is None else np.ascontiguousarray(traded, np.bool_),
        np.ones(shape) if adj is None else np.ascontiguousarray(adj, f64),
        np.ascontiguousarray(signals, np.int64), rules.stamp_duty_array(dates), float(rules.initial_cash),
        float(rules.lot), rules.commission_rate, rules.commission_min, rules.transfer_fee_rate,
        rules.slippage_bps / 1e4, rules.position_fraction, rules.limit_tolerance)


@dataclass
class SymbolInputs:
    """One symbol's arrays over a range of sessions, ready for the kernel."""

    symbol: str
    dates: np.ndarray          # datetime64[ns] sessions
    open: np.ndarray
    close: np.ndarray
    up: np.ndarray             # +inf when there is no upper limit
    down: np.ndarray           # 0 when there is no lower limit
    traded: np.ndarray         # bool
    adj: np.ndarray


def symbol_inputs(bars: pd.DataFrame, sessions: pd.DatetimeIndex, symbol: str, kind: str, board: str,
                  list_date: pd.Timestamp | None, rules: MarketRules, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None) -> SymbolInputs:
    """Lay a symbol's bars onto the sessions in [start, end] ∩ [first bar, last bar]."""
    first, last = bars["trade_date"].iloc[0], bars["trade_date"].iloc[-1]
    lo = max(first, start) if start is not None else first
    hi = min(last, end) if end is not None else last
    days = sessions[(sessions >= lo) & (sessions <= hi)]
    b = bars.set_index("trade_date").reindex(days)
    traded = b["close_raw"].notna().to_numpy()
    up = b["up_limit"].to_numpy(dtype=np.float64)
    down = b["down_limit"].to_numpy(dtype=np.float64)
    if rules.use_limits:
        missing = traded & ~(np.isfinite(up) & np.isfinite(down))
        if missing.any():
            up, down = up.copy(), down.copy()
            listed = bars["trade_date"].searchsorted(days)  # sessions traded before each day
            tick = price_tick(kind)
            pre = b["pre_close_raw"].to_numpy()
            st = b["is_st"].fillna(False).to_numpy(dtype=bool)
            for i in np.flatnonzero(missing):
                band = limit_band(kind, board, bool(st[i]), days[i].date(), int(listed[i]),
                                  list_date.date() if list_date is not None and pd.notna(list_date) else None)
                up[i] = round_price(pre[i] * (1 + band[0]), tick) if band else np.inf
                down[i] = round_price(pre[i] * (1 - band[1]), tick) if band else 0.0
    else:
        up = np.full(len(days), np.inf)
        down = np.zeros(len(days))
    up = np.where(np.isfinite(up), up, np.inf)
    down = np.where(np.isfinite(down), down, 0.0)
    return SymbolInputs(symbol, days.to_numpy(dtype="datetime64[ns]"), b["open_raw"].to_numpy(dtype=np.float64),
                        b["close_raw"].to_numpy(dtype=np.float64), up, down, traded,
                        b["adj_factor"].ffill().bfill().to_numpy(dtype=np.float64))


@dataclass
class SymbolRun:
    """A symbol's backtest: daily equity and position, trades, and how often orders had to wait."""

    symbol: str
    dates: np.ndarray
    equity: np.ndarray
    shares: np.ndarray
    trades: pd.DataFrame
    counters: dict[str, int]


def run_symbol(inputs: SymbolInputs, signal: np.ndarray, rules: MarketRules) -> SymbolRun:
    """Backtest ``signal`` (one value per session of ``inputs``) under ``rules``."""
    if len(signal) != len(inputs.dates):
        raise ValueError("one signal per session is needed")
    equity, shares, _, raw, counters = simulate(
        inputs.open, inputs.close, inputs.up, inputs.down, inputs.traded, inputs.adj,
        np.asarray(signal, dtype=np.int64), rules.stamp_duty_array(inputs.dates), float(rules.initial_cash),
        float(rules.lot), rules.commission_rate, rules.commission_min, rules.transfer_fee_rate,
        rules.slippage_bps / 1e4, rules.position_fraction, rules.limit_tolerance)
    trades = trades_frame(inputs, raw, equity, shares)
    return SymbolRun(inputs.symbol, inputs.dates, equity, shares, trades,
                     dict(zip(COUNTER_NAMES, (int(c) for c in counters), strict=True)))


def trades_frame(inputs: SymbolInputs, raw: np.ndarray, equity: np.ndarray, shares: np.ndarray) -> pd.DataFrame:
    rows = []
    last_close = pd.Series(inputs.close).ffill().to_numpy()
    for r in raw:
        entry, exit_ = int(r[0]), int(r[1])
        closed = exit_ >= 0
        value_now = r[6] if closed else r[2] * last_close[-1]
        pnl = value_now - r[5]
        rows.append({
            "symbol": inputs.symbol, "entry_date": inputs.dates[entry], "entry_price": r[3],
            "exit_date": inputs.dates[exit_] if closed else np.datetime64("NaT"), "exit_price": r[4] if closed else
            np.nan, "shares": r[2], "cost": r[5], "proceeds": r[6] if closed else np.nan, "buy_fees": r[7],
            "pnl": pnl, "return": pnl / r[5], "closed": closed,
            "holding_sessions": (exit_ if closed else len(inputs.dates) - 1) - entry,
        })
    columns = ["symbol", "entry_date", "entry_price", "exit_date", "exit_price", "shares", "cost", "proceeds",
               "buy_fees", "pnl", "return", "closed", "holding_sessions"]
    return pd.DataFrame(rows, columns=columns)


def run_symbols(inputs: list[SymbolInputs], signals: list[np.ndarray], rules: MarketRules) -> list[SymbolRun]:
    """``run_symbol`` for many (symbol, range, signal) cases at once: the entry point ``heqis
    backtest`` uses for every simulation, one result per case in the order given."""
    if len(inputs) != len(signals):
        raise ValueError("one signal array per case is needed")
    return [run_symbol(inp, sig, rules) for inp, sig in zip(inputs, signals, strict=True)]
