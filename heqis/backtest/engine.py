"""The execution engine: one long-only position per symbol, day by day, compiled with numba.

Arrays are laid out per *session* of the exchange calendar (not per bar), so a suspended day is a
session with ``traded = False``: nothing fills, equity is marked at the last close, and a waiting
order counts the day. Signals (docs/architecture.md, "Backtest"): 1 = buy / stay long, -1 = sell /
stay flat, 0 = keep (a pending order keeps waiting). All prices are raw; the adjustment factor only scales
the share count on ex-dates, so dividends and bonus shares neither lose nor invent value.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from numba import njit, prange

from heqis.backtest.rules import MarketRules
from heqis.data.boards import limit_band, price_tick, round_price

# counter slots returned by the kernel
BUY_BLOCKED_LIMIT, SELL_BLOCKED_LIMIT, BLOCKED_SUSPENDED, UNAFFORDABLE = range(4)
COUNTER_NAMES = ("buy_blocked_limit", "sell_blocked_limit", "blocked_suspended", "unaffordable")


@njit(cache=True)
def _fees(value: float, rate: float, minimum: float, transfer: float) -> float:
    return max(value * rate, minimum) + value * transfer


@njit(cache=True)
def _run_case(open_, close, up, down, traded, adj, signal, stamp, base, stride, sbase, n, limits, all_traded,
              adj_one, initial_cash, lot, comm_rate, comm_min, transfer_rate, slip, fraction, tol, equity, held,
              cash_out, obase, ostride, paths, trades, tbase, rows, counters, c):
    """One case: sessions ``base + t * stride`` (t < n) of the input arrays, stamp duty at ``sbase + t``.

    Writes equity (with ``paths`` >= 1 shares, = 2 cash too) at ``obase + t * ostride``, trades from
    row ``tbase`` (``rows`` of them are its), counters in row ``c``; returns the number of trades.
    ``limits`` / ``all_traded`` / ``adj_one`` False stand for up = +inf and down = 0 / every session
    traded / adj = 1, so that callers need not build full-size default arrays. The arithmetic, in
    its order, is the one-symbol kernel's as it always was (tests/test_backtest_panel.py keeps a copy).
    """
    cash = initial_cash
    shares = 0.0
    pending = 0
    last_close = np.nan
    last_adj = np.nan
    k = -1              # index of the current (or last) trade
    for t in range(n):
        i = base + t * stride
        if all_traded or traded[i]:
            a = 1.0 if adj_one else adj[i]
            if shares > 0.0 and last_adj == last_adj and a != last_adj:
                shares *= a / last_adj              # ex-date: dividends / bonus shares into the share count
            last_adj = a
            o = open_[i]
            if pending == 1 and shares == 0.0:
                if o >= (up[i] if limits else np.inf) - tol:
                    counters[c, BUY_BLOCKED_LIMIT] += 1
                else:
                    price = o * (1.0 + slip)
                    budget = cash * fraction
                    lots = np.floor(budget / (price * lot * (1.0 + comm_rate + transfer_rate)))
                    while lots > 0 and lots * lot * price + _fees(lots * lot * price, comm_rate, comm_min,
                                                                  transfer_rate) > budget:
                        lots -= 1
                    if lots <= 0:
                        counters[c, UNAFFORDABLE] += 1
                        pending = 0
                    else:
                        value = lots * lot * price
                        fee = _fees(value, comm_rate, comm_min, transfer_rate)
                        cash -= value + fee
                        shares = lots * lot
                        k += 1
                        if k >= rows:
                            raise RuntimeError("trade buffer too small")   # _trade_rows is a proven bound
                        r = tbase + k
                        trades[r, 0] = t
                        trades[r, 1] = -1
                        trades[r, 2] = np.nan
                        trades[r, 3] = price
                        trades[r, 4] = np.nan
                        trades[r, 5] = value + fee
                        trades[r, 6] = np.nan
                        trades[r, 7] = fee
                        pending = 0
            elif pending == -1 and shares > 0.0:
                if o <= (down[i] if limits else 0.0) + tol:
                    counters[c, SELL_BLOCKED_LIMIT] += 1
                else:
                    price = o * (1.0 - slip)
                    value = shares * price
                    fee = max(value * comm_rate, comm_min) + value * stamp[sbase + t] + value * transfer_rate
                    cash += value - fee
                    r = tbase + k
                    trades[r, 1] = t
                    trades[r, 2] = shares
                    trades[r, 4] = price
                    trades[r, 6] = value - fee
                    shares = 0.0
                    pending = 0
            last_close = close[i]
        elif pending != 0:
            counters[c, BLOCKED_SUSPENDED] += 1
        j = obase + t * ostride
        equity[j] = cash + (shares * last_close if shares > 0.0 else 0.0)
        if paths > 0:
            held[j] = shares
            if paths > 1:
                cash_out[j] = cash
        s = signal[i]
        if s > 0:
            pending = 1 if shares == 0.0 else 0
        elif s < 0:
            pending = -1 if shares > 0.0 else 0
    if k >= 0 and trades[tbase + k, 1] == -1:
        trades[tbase + k, 2] = shares
    return k + 1


@njit(cache=True)
def _trade_rows(signal, base, stride, n):
    """Rows a case can need: the runs of buy signals among its non-zero signals. A trade's buy
    fills on a buy signal given while flat; the next buy needs a sell first, which needs a sell
    signal after that buy, so two trades never start from the same run of buy signals."""
    runs = 0
    last = 0
    for t in range(n):
        s = signal[base + t * stride]
        if s > 0:
            if last <= 0:
                runs += 1
            last = 1
        elif s < 0:
            last = -1
    return runs


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
    rows = _trade_rows(signal, 0, 1, n)
    trades = np.empty((rows, 8))
    counters = np.zeros((1, 4), dtype=np.int64)
    k = _run_case(open_, close, up, down, traded, adj, signal, stamp, 0, 1, 0, n, True, False, False, initial_cash,
                  lot, comm_rate, comm_min, transfer_rate, slip, fraction, tol, equity, held, cash_out, 0, 1, 2,
                  trades, 0, rows, counters, 0)
    return equity, held, cash_out, trades[:k], counters[0]


@njit(cache=True)
def _cases(open_, close, up, down, traded, adj, signal, stamp, bases, stride, sbases, lengths, limits, all_traded,
           adj_one, initial_cash, lot, comm_rate, comm_min, transfer_rate, slip, fraction, tol, equity, held,
           cash_out, obases, ostride, paths):
    """Every case of a batch in one call, one after the other (``_cases_threads`` is the same over
    threads). Returns (trades [rows, 8], first row of each case [m + 1], trades per case, counters [m, 4])."""
    m = bases.shape[0]
    first = np.zeros(m + 1, dtype=np.int64)
    for c in range(m):
        first[c + 1] = first[c] + _trade_rows(signal, bases[c], stride, lengths[c])
    trades = np.empty((first[m], 8))
    counts = np.empty(m, dtype=np.int64)
    counters = np.zeros((m, 4), dtype=np.int64)
    for c in range(m):
        counts[c] = _run_case(open_, close, up, down, traded, adj, signal, stamp, bases[c], stride, sbases[c],
                              lengths[c], limits, all_traded, adj_one, initial_cash, lot, comm_rate, comm_min,
                              transfer_rate, slip, fraction, tol, equity, held, cash_out, obases[c], ostride, paths,
                              trades, first[c], first[c + 1] - first[c], counters, c)
    return trades, first, counts, counters


@njit(cache=True, parallel=True)
def _cases_threads(open_, close, up, down, traded, adj, signal, stamp, bases, stride, sbases, lengths, limits,
                   all_traded, adj_one, initial_cash, lot, comm_rate, comm_min, transfer_rate, slip, fraction, tol,
                   equity, held, cash_out, obases, ostride, paths):
    """``_cases`` with the cases spread over numba's threads (cases share no state)."""
    m = bases.shape[0]
    rows = np.empty(m, dtype=np.int64)
    for c in prange(m):
        rows[c] = _trade_rows(signal, bases[c], stride, lengths[c])
    first = np.zeros(m + 1, dtype=np.int64)
    first[1:] = np.cumsum(rows)
    trades = np.empty((first[m], 8))
    counts = np.empty(m, dtype=np.int64)
    counters = np.zeros((m, 4), dtype=np.int64)
    for c in prange(m):
        counts[c] = _run_case(open_, close, up, down, traded, adj, signal, stamp, bases[c], stride, sbases[c],
                              lengths[c], limits, all_traded, adj_one, initial_cash, lot, comm_rate, comm_min,
                              transfer_rate, slip, fraction, tol, equity, held, cash_out, obases[c], ostride, paths,
                              trades, first[c], first[c + 1] - first[c], counters, c)
    return trades, first, counts, counters


@njit(cache=True)
def _gather(trades, first, counts):
    """The trades of every case, case after case, with the case's index in a ninth column."""
    out = np.empty((counts.sum(), 9))
    row = 0
    for c in range(counts.shape[0]):
        for i in range(counts[c]):
            out[row, :8] = trades[first[c] + i]
            out[row, 8] = c
            row += 1
    return out


def _rule_scalars(rules: MarketRules) -> tuple[float, ...]:
    return (float(rules.initial_cash), float(rules.lot), rules.commission_rate, rules.commission_min,
            rules.transfer_fee_rate, rules.slippage_bps / 1e4, rules.position_fraction, rules.limit_tolerance)


_PLACEHOLDER_F = np.empty(1)
_PLACEHOLDER_B = np.empty(1, dtype=np.bool_)


def _kernel(threads: int):
    """The serial kernel, or the threaded one on ``threads`` threads. Unless the user chose a threading
    layer, threads come from numba's own work queue: OpenMP's spinning barriers cost ~0.1 s a call
    on a machine whose cores are all busy (measured on a shared 2-core box)."""
    if threads > 1:
        if "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER = "workqueue"      # read once, at the first threaded call
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        return _cases_threads
    return _cases


def run_panel(open_: np.ndarray, close: np.ndarray, signals: np.ndarray, dates: np.ndarray, rules: MarketRules,
              up: np.ndarray | None = None, down: np.ndarray | None = None, traded: np.ndarray | None = None,
              adj: np.ndarray | None = None, threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Many symbols on a shared calendar in one compiled call (screens, benchmarks, large universes).

    Missing limits mean none; missing ``traded`` means every session traded; missing ``adj`` means 1
    (flags to the kernel, no arrays are made for them). Arrays are [sessions, symbols]; each symbol is
    read as one contiguous column of a column-major copy (C-order columns are strided: a cache miss
    per read at thousands of symbols). ``threads`` > 1 spreads the symbols over numba's threads.
    Returns (equity [n, m], raw trades [k, 9] as in ``simulate`` plus the column, counters [m, 4]).
    """
    n, m = open_.shape
    f64 = np.float64
    limits = up is not None or down is not None
    col = np.asfortranarray
    up_ = col(up, f64).ravel(order="F") if up is not None else (np.full(n * m, np.inf) if limits else _PLACEHOLDER_F)
    down_ = (col(down, f64).ravel(order="F") if down is not None else
             (np.zeros(n * m) if limits else _PLACEHOLDER_F))
    traded_ = col(traded, np.bool_).ravel(order="F") if traded is not None else _PLACEHOLDER_B
    adj_ = col(adj, f64).ravel(order="F") if adj is not None else _PLACEHOLDER_F
    equity = np.empty((n, m), order="F")
    bases = np.arange(m, dtype=np.int64) * n
    trades, first, counts, counters = _kernel(threads)(
        col(open_, f64).ravel(order="F"), col(close, f64).ravel(order="F"), up_, down_, traded_, adj_,
        col(signals, np.int64).ravel(order="F"), rules.stamp_duty_array(dates), bases, 1,
        np.zeros(m, dtype=np.int64), np.full(m, n, dtype=np.int64), limits, traded is None, adj is None,
        *_rule_scalars(rules), equity.ravel(order="F"), _PLACEHOLDER_F, _PLACEHOLDER_F, bases, 1, 0)
    return equity, _gather(trades, first, counts), counters


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


def _ns(day: pd.Timestamp) -> np.datetime64:
    return np.datetime64(pd.Timestamp(day).as_unit("ns").value, "ns")


def symbol_inputs(bars: pd.DataFrame, sessions: pd.DatetimeIndex, symbol: str, kind: str, board: str,
                  list_date: pd.Timestamp | None, rules: MarketRules, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None) -> SymbolInputs:
    """Lay a symbol's bars onto the sessions in [start, end] ∩ [first bar, last bar].

    A session without a bar is a suspension (NaN prices, ``traded`` False). Done with sorted-array
    look-ups rather than a pandas reindex: ``heqis backtest`` calls this for every symbol × segment,
    and a reindex of the whole frame cost ~10 ms a call.
    """
    first, last = bars["trade_date"].iloc[0], bars["trade_date"].iloc[-1]
    lo = max(first, start) if start is not None else first
    hi = min(last, end) if end is not None else last
    sess = np.asarray(sessions, "datetime64[ns]")
    days = sess[(sess >= _ns(lo)) & (sess <= _ns(hi))]
    dates = bars["trade_date"].to_numpy("datetime64[ns]")
    at = np.searchsorted(dates, days)              # also: sessions traded before each day
    pos = np.minimum(at, len(dates) - 1)
    hit = dates[pos] == days

    def column(name: str) -> np.ndarray:
        out = np.full(len(days), np.nan)
        out[hit] = bars[name].to_numpy(dtype=np.float64, na_value=np.nan)[pos[hit]]
        return out

    close = column("close_raw")
    traded = ~np.isnan(close)
    if rules.use_limits:
        up, down = column("up_limit"), column("down_limit")
        missing = traded & ~(np.isfinite(up) & np.isfinite(down))
        if missing.any():
            tick = price_tick(kind)
            pre = column("pre_close_raw")
            st = np.zeros(len(days), dtype=bool)
            st[hit] = bars["is_st"].fillna(False).to_numpy(dtype=bool)[pos[hit]]
            listing = list_date.date() if list_date is not None and pd.notna(list_date) else None
            for i in np.flatnonzero(missing & np.isfinite(pre)):   # no previous close (a series' first
                # bar): no limit can be derived, the order is not blocked (up inf, down 0 below)
                band = limit_band(kind, board, bool(st[i]), pd.Timestamp(days[i]).date(), int(at[i]), listing)
                up[i] = round_price(pre[i] * (1 + band[0]), tick) if band else np.inf
                down[i] = round_price(pre[i] * (1 - band[1]), tick) if band else 0.0
    else:
        up = np.full(len(days), np.inf)
        down = np.zeros(len(days))
    up = np.where(np.isfinite(up), up, np.inf)
    down = np.where(np.isfinite(down), down, 0.0)
    adj = column("adj_factor")
    known = np.flatnonzero(~np.isnan(adj))
    if len(known):                                  # forward fill, then back fill the head
        last_known = np.maximum.accumulate(np.where(np.isnan(adj), -1, np.arange(len(adj))))
        adj = np.where(last_known >= 0, adj[np.maximum(last_known, 0)], adj[known[0]])
    return SymbolInputs(symbol, days, column("open_raw"), close, up, down, traded, adj)


@dataclass
class SymbolRun:
    """A symbol's backtest: daily equity and position, trades, and how often orders had to wait.

    The trades are kept as columns (``TRADE_COLUMNS`` but ``symbol``, one row per trade) and become a
    DataFrame only when asked for: a run scores every candidate but writes out one, and a DataFrame
    per candidate cost more than its simulation."""

    symbol: str
    dates: np.ndarray
    equity: np.ndarray
    shares: np.ndarray
    trade_columns: dict[str, np.ndarray]
    counters: dict[str, int]

    @functools.cached_property
    def trades(self) -> pd.DataFrame:
        return _frame(self.symbol, self.trade_columns, 0, len(self.trade_columns["pnl"]))


def run_symbol(inputs: SymbolInputs, signal: np.ndarray, rules: MarketRules) -> SymbolRun:
    """Backtest ``signal`` (one value per session of ``inputs``) under ``rules``."""
    if len(signal) != len(inputs.dates):
        raise ValueError("one signal per session is needed")
    equity, shares, _, raw, counters = simulate(
        inputs.open, inputs.close, inputs.up, inputs.down, inputs.traded, inputs.adj,
        np.asarray(signal, dtype=np.int64), rules.stamp_duty_array(inputs.dates), float(rules.initial_cash),
        float(rules.lot), rules.commission_rate, rules.commission_min, rules.transfer_fee_rate,
        rules.slippage_bps / 1e4, rules.position_fraction, rules.limit_tolerance)
    return SymbolRun(inputs.symbol, inputs.dates, equity, shares, trade_columns(inputs, raw),
                     dict(zip(COUNTER_NAMES, (int(c) for c in counters), strict=True)))


TRADE_COLUMNS = ("symbol", "entry_date", "entry_price", "exit_date", "exit_price", "shares", "cost", "proceeds",
                 "buy_fees", "pnl", "return", "closed", "holding_sessions")


def _trade_columns(raw: np.ndarray, dates: np.ndarray, first: np.ndarray, last: np.ndarray,
                   last_close: np.ndarray) -> dict[str, np.ndarray]:
    """``SymbolRun.trade_columns`` for many trades at once. ``raw`` rows hold session indices relative
    to their case; ``first`` / ``last`` are each row's case's first and last index into ``dates``,
    ``last_close`` its last known close (what an open trade is marked at)."""
    entry = raw[:, 0].astype(np.int64)
    exit_ = raw[:, 1].astype(np.int64)
    closed = exit_ >= 0
    value_now = np.where(closed, raw[:, 6], raw[:, 2] * last_close)
    pnl = value_now - raw[:, 5]
    return {
        "entry_date": dates[first + entry], "entry_price": raw[:, 3],
        "exit_date": np.where(closed, dates[np.where(closed, first + exit_, first)], np.datetime64("NaT", "ns")),
        "exit_price": np.where(closed, raw[:, 4], np.nan), "shares": raw[:, 2], "cost": raw[:, 5],
        "proceeds": np.where(closed, raw[:, 6], np.nan), "buy_fees": raw[:, 7], "pnl": pnl, "return": pnl / raw[:, 5],
        "closed": closed, "holding_sessions": np.where(closed, exit_, last - first) - entry,
    }


def _frame(symbol: str, columns: dict[str, np.ndarray], lo: int, hi: int) -> pd.DataFrame:
    if hi == lo:
        return pd.DataFrame([], columns=list(TRADE_COLUMNS))
    return pd.DataFrame({"symbol": [symbol] * (hi - lo), **{k: v[lo:hi] for k, v in columns.items()}})


def _last_close(close: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each case's last non-NaN close in [start, end) of ``close`` (NaN when it has none)."""
    if not len(close):
        return np.full(len(starts), np.nan)
    seen = np.maximum.accumulate(np.where(np.isnan(close), -1, np.arange(len(close))))
    at = seen[np.maximum(ends - 1, 0)]
    return np.where((at >= starts) & (ends > starts), close[np.maximum(at, 0)], np.nan)


def trade_columns(inputs: SymbolInputs, raw: np.ndarray) -> dict[str, np.ndarray]:
    """``SymbolRun.trade_columns`` of one simulation; an open trade is marked at the last known close."""
    n = len(inputs.dates)
    lc = _last_close(np.asarray(inputs.close, np.float64), np.array([0]), np.array([n]))[0]
    k = len(raw)
    return _trade_columns(np.asarray(raw, np.float64).reshape(k, 8), inputs.dates, np.zeros(k, np.int64),
                          np.full(k, n - 1, np.int64), np.full(k, lc))


def run_symbols(inputs: list[SymbolInputs], signals: list[np.ndarray], rules: MarketRules,
                threads: int = 1) -> list[SymbolRun]:
    """``run_symbol`` for many (symbol, range, signal) cases at once: the entry point ``heqis
    backtest`` uses for every simulation, one result per case in the order given, equal to
    ``run_symbol``'s case by case. One compiled call over all cases laid end to end (ragged: a
    case's sessions are contiguous, no padding to a common calendar); ``threads`` > 1 spreads the
    cases over numba's threads. Equity and shares are views into one array per batch.
    """
    if len(inputs) != len(signals):
        raise ValueError("one signal array per case is needed")
    m = len(inputs)
    if not m:
        return []
    lengths = np.fromiter((len(i.dates) for i in inputs), dtype=np.int64, count=m)
    for inp, sig, n in zip(inputs, signals, lengths, strict=True):
        if len(sig) != n:
            raise ValueError(f"{inp.symbol}: one signal per session is needed")
    bases = np.zeros(m, dtype=np.int64)
    np.cumsum(lengths[:-1], out=bases[1:])

    def cat(name: str, dtype: type) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(i, name), dtype) for i in inputs])

    dates = np.concatenate([np.asarray(i.dates, "datetime64[ns]") for i in inputs])
    close = cat("close", np.float64)
    total = int(lengths.sum())
    equity, held = np.empty(total), np.empty(total)
    trades, first, counts, counters = _kernel(threads)(
        cat("open", np.float64), close, cat("up", np.float64), cat("down", np.float64), cat("traded", np.bool_),
        cat("adj", np.float64), np.concatenate([np.asarray(s, np.int64) for s in signals]),
        rules.stamp_duty_array(dates), bases, 1, bases, lengths, True, False, False, *_rule_scalars(rules), equity,
        held, _PLACEHOLDER_F, bases, 1, 1)
    raw = _gather(trades, first, counts)
    case = raw[:, 8].astype(np.int64)
    ends = bases + lengths
    cols = _trade_columns(raw, dates, bases[case], ends[case] - 1, _last_close(close, bases, ends)[case])
    row = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts, out=row[1:])
    out = []
    for c, inp in enumerate(inputs):
        lo, hi = bases[c], bases[c] + lengths[c]
        out.append(SymbolRun(inp.symbol, inp.dates, equity[lo:hi], held[lo:hi],
                             {k: v[row[c]:row[c + 1]] for k, v in cols.items()},
                             dict(zip(COUNTER_NAMES, (int(x) for x in counters[c]), strict=True))))
    return out
