"""The batch entry points (``run_symbols``, ``run_panel``) against the one-symbol path, to the cent.

``run_symbols`` runs every case of ``heqis backtest`` in one compiled call; its results must be
``run_symbol``'s case by case, exactly (not approximately): equity, shares, every trade field and
the counters. ``simulate`` itself is checked against a plain-Python copy of the kernel as it was
before the batch kernel existed, and a run's trades (``trade_columns`` as ``SymbolRun.trades``)
against their former per-trade loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from heqis.backtest.engine import (
    COUNTER_NAMES,
    SymbolInputs,
    SymbolRun,
    run_panel,
    run_symbol,
    run_symbols,
    simulate,
    symbol_inputs,
    trade_columns,
)
from heqis.backtest.rules import MarketRules

RULES = MarketRules(initial_cash=100_000.0)          # limits, lots, ¥5 minimum, slippage: the full path


def reference_simulate(open_, close, up, down, traded, adj, signal, stamp, initial_cash, lot, comm_rate, comm_min,
                       transfer_rate, slip, fraction, tol):
    """The one-symbol kernel as it was, in plain Python (same IEEE arithmetic, same order)."""
    def fees(value, rate, minimum, transfer):
        return max(value * rate, minimum) + value * transfer

    n = open_.shape[0]
    equity, held, cash_out = np.empty(n), np.empty(n), np.empty(n)
    trades = np.full((n + 1, 8), np.nan)
    counters = np.zeros(4, dtype=np.int64)
    cash, shares, pending, last_close, last_adj, k = initial_cash, 0.0, 0, np.nan, np.nan, -1
    for t in range(n):
        if traded[t]:
            if shares > 0.0 and last_adj == last_adj and adj[t] != last_adj:
                shares *= adj[t] / last_adj
            last_adj = adj[t]
            if pending == 1 and shares == 0.0:
                if open_[t] >= up[t] - tol:
                    counters[0] += 1
                else:
                    price = open_[t] * (1.0 + slip)
                    budget = cash * fraction
                    lots = np.floor(budget / (price * lot * (1.0 + comm_rate + transfer_rate)))
                    while lots > 0 and lots * lot * price + fees(lots * lot * price, comm_rate, comm_min,
                                                                 transfer_rate) > budget:
                        lots -= 1
                    if lots <= 0:
                        counters[3] += 1
                        pending = 0
                    else:
                        value = lots * lot * price
                        fee = fees(value, comm_rate, comm_min, transfer_rate)
                        cash -= value + fee
                        shares = lots * lot
                        k += 1
                        trades[k, [0, 1, 3, 5, 7]] = t, -1, price, value + fee, fee
                        pending = 0
            elif pending == -1 and shares > 0.0:
                if open_[t] <= down[t] + tol:
                    counters[1] += 1
                else:
                    price = open_[t] * (1.0 - slip)
                    value = shares * price
                    fee = max(value * comm_rate, comm_min) + value * stamp[t] + value * transfer_rate
                    cash += value - fee
                    trades[k, [1, 2, 4, 6]] = t, shares, price, value - fee
                    shares = 0.0
                    pending = 0
            last_close = close[t]
        elif pending != 0:
            counters[2] += 1
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


def reference_trades_frame(inputs: SymbolInputs, raw: np.ndarray) -> pd.DataFrame:
    """A run's trades as they were built: one dict per trade."""
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


def random_case(rng: np.random.Generator, n: int, start: str = "2023-06-01", symbol: str = "RND") -> SymbolInputs:
    """A symbol with limit-up / limit-down opens, suspensions, ex-dates and prices that make lots and
    the ¥5 minimum bite; its calendar crosses the 2023-08-28 stamp-duty cut."""
    close = np.round(30 * np.exp(np.cumsum(0.03 * rng.standard_normal(n))), 2)
    pre = np.concatenate(([close[0]], close[:-1]))
    up, down = np.round(pre * 1.1, 2), np.round(pre * 0.9, 2)
    open_ = np.round(pre * np.exp(0.02 * rng.standard_normal(n)), 2)
    pick = rng.random(n)
    open_ = np.where(pick < 0.15, up, np.where(pick > 0.85, down, np.clip(open_, down, up)))
    traded = rng.random(n) > 0.1
    adj = np.cumprod(np.where(rng.random(n) < 0.03, 1.0 + rng.random(n) * 0.3, 1.0))
    open_, close = np.where(traded, open_, np.nan), np.where(traded, close, np.nan)
    dates = pd.bdate_range(start, periods=n).to_numpy(dtype="datetime64[ns]")
    return SymbolInputs(symbol, dates, open_, close, up, down, traded, adj)


def kernel_args(inp: SymbolInputs, signal: np.ndarray, rules: MarketRules) -> tuple:
    return (inp.open, inp.close, inp.up, inp.down, inp.traded, inp.adj, np.asarray(signal, np.int64),
            rules.stamp_duty_array(inp.dates), float(rules.initial_cash), float(rules.lot), rules.commission_rate,
            rules.commission_min, rules.transfer_fee_rate, rules.slippage_bps / 1e4, rules.position_fraction,
            rules.limit_tolerance)


def assert_same_run(batch, single) -> None:
    assert batch.symbol == single.symbol
    assert np.array_equal(batch.dates, single.dates)
    assert np.array_equal(batch.equity, single.equity) and np.array_equal(batch.shares, single.shares)
    pd.testing.assert_frame_equal(batch.trades, single.trades, check_exact=True)
    assert batch.counters == single.counters


def test_simulate_is_the_former_kernel_to_the_bit():
    seen = np.zeros(4, dtype=np.int64)
    configs = [(3_200.0, 1.0), (20_000.0, 0.5), (100_000.0, 1.0), (3_500.0, 1.0), (50_000.0, 0.5), (1e6, 1.0)]
    for seed, (cash, fraction) in enumerate(configs):      # little cash: lots and the ¥5 minimum bite
        rng = np.random.default_rng(seed)
        rules = MarketRules(initial_cash=cash, position_fraction=fraction)
        inp = random_case(rng, 300)
        signal = rng.choice([-1, 0, 0, 1], size=300)
        got, want = simulate(*kernel_args(inp, signal, rules)), reference_simulate(*kernel_args(inp, signal, rules))
        assert len(want[3]) > 0, f"case {seed} should trade"
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and np.array_equal(g, w, equal_nan=True)
        raw = want[3]
        trades = SymbolRun(inp.symbol, inp.dates, want[0], want[1], trade_columns(inp, raw), {}).trades
        pd.testing.assert_frame_equal(trades, reference_trades_frame(inp, raw), check_exact=True)
        seen += want[4]
    assert seen.min() > 0, f"every counter should be hit: {seen}"


def test_run_symbols_equals_run_symbol_on_every_sample_symbol_and_segment(sample_store):
    rng = np.random.default_rng(7)
    sessions = sample_store.sessions()
    uni = sample_store.read_universe().set_index("ts_code")
    cases, signals = [], []
    for code in uni.index[uni["kind"] != "index"]:
        bars = sample_store.read_bars(code)
        days = bars["trade_date"]
        for lo, hi in ((None, None), (days.iloc[len(days) // 3], days.iloc[2 * len(days) // 3]),
                       (days.iloc[-5], None)):
            inp = symbol_inputs(bars, sessions, code, uni.at[code, "kind"], uni.at[code, "board"],
                                uni.at[code, "list_date"], RULES, lo, hi)
            signals.append(rng.choice([-1, 0, 0, 0, 1], size=len(inp.dates)))
            hold = np.zeros(len(inp.dates), dtype=np.int64)
            hold[0] = 1
            cases += [inp, inp]
            signals.append(hold)                      # buy and hold: an open trade at the end
    batch = run_symbols(cases, signals, RULES)
    assert len(batch) == len(cases) > 20
    singles = [run_symbol(inp, sig, RULES) for inp, sig in zip(cases, signals, strict=True)]
    for b, s in zip(batch, singles, strict=True):
        assert_same_run(b, s)
    assert sum(len(s.trades) for s in singles) > 100
    assert any(not s.trades.empty and not s.trades["closed"].iloc[-1] for s in singles)
    seen = {name: sum(s.counters[name] for s in singles) for name in COUNTER_NAMES}
    assert seen["buy_blocked_limit"] > 0 and seen["blocked_suspended"] > 0, seen   # orders waited, to the same day


def test_run_symbols_on_hand_made_cases_of_different_lengths():
    rng = np.random.default_rng(11)

    def case(open_, close=None, up=None, down=None, traded=None, adj=None, start="2024-01-02"):
        n = len(open_)
        return SymbolInputs("HAND", pd.bdate_range(start, periods=n).to_numpy(dtype="datetime64[ns]"),
                            np.asarray(open_, float), np.asarray(close if close is not None else open_, float),
                            np.asarray(up if up is not None else [np.inf] * n, float),
                            np.asarray(down if down is not None else [0.0] * n, float),
                            np.asarray(traded if traded is not None else [True] * n, bool),
                            np.asarray(adj if adj is not None else [1.0] * n, float))

    cases = [
        (case([10.0, 11.0, 11.5, 12.0], up=[11.0, 11.0, 12.1, 13.2]), [1, 0, 0, 0]),                # limit-up wait
        (case([10.0, 10.0, 9.0, 9.0, 8.5], close=[10.0, 10.0, 9.0, 9.0, 8.6], down=[0.0, 0.0, 9.0, 9.0, 8.1]),
         [1, -1, 0, 0, 0]),                                                                          # limit-down
        (case([10.0, 10.0, 10.0, np.nan, np.nan, 11.0, 11.0], close=[10.0, 10.0, 10.5, np.nan, np.nan, 11.2, 11.0],
              traded=[True, True, True, False, False, True, True]), [1, 0, -1, 0, 0, 0, 0]),        # suspension
        (case([10.0, 10.0, 9.0, 9.0], adj=[1.0, 1.0, 10 / 9, 10 / 9]), [1, 0, 0, -1]),              # ex-date
        (case([10.0]), [1]),                                                                         # one session
        (case([120.0, 120.0]), [1, 0]),                                                              # unaffordable
        (case([10.0, 10.0, 12.0], start="2023-08-24"), [1, -1, 0]),                                  # stamp cut
        (random_case(rng, 500, start="2022-01-03"), rng.choice([-1, 1], size=500)),                 # churn
    ]
    rules = MarketRules(initial_cash=10_000.0, slippage_bps=0.0)
    batch = run_symbols([c for c, _ in cases], [np.array(s) for _, s in cases], rules)
    for (inp, sig), b in zip(cases, batch, strict=True):
        assert_same_run(b, run_symbol(inp, np.array(sig), rules))
    assert batch[0].trades["entry_price"].tolist() == [11.5] and batch[5].counters["unaffordable"] == 1
    assert batch[3].shares[2] == 900 * 10 / 9 and batch[2].counters["blocked_suspended"] == 2
    with pytest.raises(ValueError, match="one signal per session"):
        run_symbols([cases[0][0]], [np.array([1, 0])], rules)
    assert run_symbols([], [], rules) == []


def test_threads_change_nothing():
    rng = np.random.default_rng(5)
    cases = [random_case(rng, int(rng.integers(50, 400)), symbol=f"S{i}") for i in range(40)]
    signals = [rng.choice([-1, 0, 1], size=len(c.dates)) for c in cases]
    for a, b in zip(run_symbols(cases, signals, RULES), run_symbols(cases, signals, RULES, threads=2), strict=True):
        assert_same_run(a, b)


def test_run_panel_equals_run_symbol_per_column_with_and_without_limits():
    rng = np.random.default_rng(3)
    n, m = 260, 6
    cols = [random_case(rng, n) for _ in range(m)]
    stack = {k: np.column_stack([getattr(c, k) for c in cols]) for k in ("open", "close", "up", "down", "traded",
                                                                         "adj")}
    signals = rng.choice([-1, 0, 0, 1], size=(n, m))
    dates = cols[0].dates
    for threads in (1, 2):
        equity, trades, counters = run_panel(stack["open"], stack["close"], signals, dates, RULES, stack["up"],
                                             stack["down"], stack["traded"], stack["adj"], threads=threads)
        dense_open, dense_close = (pd.DataFrame(stack[k]).ffill().to_numpy() for k in ("open", "close"))
        plain_eq, plain_tr, _ = run_panel(np.ascontiguousarray(dense_open), dense_close, signals, dates, RULES,
                                          threads=threads)   # C-order in, no limits / suspensions / ex-dates
        for j, c in enumerate(cols):
            single = run_symbol(c, signals[:, j], RULES)
            assert np.array_equal(equity[:, j], single.equity)
            mine = trades[trades[:, 8] == j]
            assert np.array_equal(mine[:, 5], single.trades["cost"].to_numpy())
            assert counters[j].tolist() == list(single.counters.values())
            no_limits = SymbolInputs(c.symbol, dates, dense_open[:, j], dense_close[:, j], np.full(n, np.inf),
                                     np.zeros(n), np.ones(n, bool), np.ones(n))
            plain = run_symbol(no_limits, signals[:, j], RULES)
            assert np.array_equal(plain_eq[:, j], plain.equity)
            assert np.array_equal(plain_tr[plain_tr[:, 8] == j][:, 6], plain.trades["proceeds"].to_numpy(),
                                  equal_nan=True)
    assert counters[:, :3].sum(axis=0).min() > 0


def reference_symbol_inputs(bars, sessions, symbol, kind, board, list_date, rules, start=None, end=None):
    """``symbol_inputs`` as it was: a pandas reindex of the whole frame."""
    from heqis.data.boards import limit_band, price_tick, round_price

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
            listed = bars["trade_date"].searchsorted(days)
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


def test_symbol_inputs_are_the_former_reindex_to_the_bit(sample_store):
    rng = np.random.default_rng(13)
    sessions = sample_store.sessions()
    uni = sample_store.read_universe().set_index("ts_code")
    checked = gaps = rebuilt = 0
    for code in uni.index:
        bars = sample_store.read_bars(code)
        # holes: dropped bars (suspensions), limits and adj factors missing, ST days, so every branch runs
        bars = bars.drop(index=bars.index[1:][rng.random(len(bars) - 1) < 0.05]).reset_index(drop=True)
        bars.loc[rng.random(len(bars)) < 0.05, ["up_limit", "down_limit"]] = np.nan
        bars.loc[rng.random(len(bars)) < 0.05, "adj_factor"] = np.nan
        bars.loc[:3, "adj_factor"] = np.nan                                      # a head to back-fill
        bars.loc[rng.random(len(bars)) < 0.2, "is_st"] = True
        days = bars["trade_date"]
        args = (code, uni.at[code, "kind"], uni.at[code, "board"], uni.at[code, "list_date"])
        for rules in (MarketRules(), MarketRules(use_limits=False)):
            for lo, hi in ((None, None), (days.iloc[len(days) // 4], days.iloc[len(days) // 2] + pd.Timedelta("1D")),
                           (pd.Timestamp("2000-01-01"), None), (days.iloc[-3], pd.Timestamp("2100-01-01"))):
                got = symbol_inputs(bars, sessions, *args, rules, lo, hi)
                want = reference_symbol_inputs(bars, sessions, *args, rules, lo, hi)
                for name in ("dates", "open", "close", "up", "down", "traded", "adj"):
                    g, w = getattr(got, name), getattr(want, name)
                    assert g.dtype == w.dtype and np.array_equal(g, w, equal_nan=g.dtype.kind == "f"), (code, name)
                checked += 1
                gaps += int((~want.traded).sum())
                rebuilt += int(np.isfinite(want.up).sum()) if rules.use_limits else 0
    assert checked >= 40 and gaps > 0 and rebuilt > 0
