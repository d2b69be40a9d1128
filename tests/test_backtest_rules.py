"""Hand-computed backtests with known answers: every number below is worked out by hand."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from heqis.backtest.engine import SymbolInputs, run_symbol
from heqis.backtest.metrics import compute_metrics, max_drawdown
from heqis.backtest.rules import MarketRules
from heqis.errors import HeqisError

NO_SLIP = MarketRules(initial_cash=100_000.0, slippage_bps=0.0)


def inputs(open_, close=None, up=None, down=None, traded=None, adj=None, start="2024-01-02") -> SymbolInputs:
    n = len(open_)
    open_ = np.asarray(open_, float)
    return SymbolInputs(
        "TEST", pd.bdate_range(start, periods=n).to_numpy(dtype="datetime64[ns]"), open_,
        np.asarray(close if close is not None else open_, float),
        np.asarray(up if up is not None else [np.inf] * n, float),
        np.asarray(down if down is not None else [0.0] * n, float),
        np.asarray(traded if traded is not None else [True] * n, bool),
        np.asarray(adj if adj is not None else [1.0] * n, float))


def fees(value: float, sell_stamp: float = 0.0) -> float:
    return max(value * 0.00025, 5.0) + value * 0.00001 + value * sell_stamp


def test_buy_blocked_by_limit_up_open_fills_the_next_day():
    inp = inputs(open_=[10.0, 11.0, 11.5, 12.0], up=[11.0, 11.0, 12.1, 13.2])
    run = run_symbol(inp, np.array([1, 0, 0, 0]), NO_SLIP)
    assert run.counters["buy_blocked_limit"] == 1                   # day 1 opened at the limit: waits
    t = run.trades.iloc[0]
    assert t["entry_date"] == inp.dates[2] and t["entry_price"] == 11.5
    # 100000 / (11.5 × 100 × 1.00026) = 86.9 → 86 lots = 8,600 shares
    assert t["shares"] == 8600
    cost = 8600 * 11.5 + fees(8600 * 11.5)                          # 98,900 + 24.725 + 0.989
    assert t["cost"] == pytest.approx(cost, abs=1e-9)
    assert run.equity[1] == 100_000.0                               # nothing happened yet
    assert run.equity[3] == pytest.approx(100_000 - cost + 8600 * 12.0, abs=1e-9)


def test_sell_blocked_by_limit_down_waits_and_counts_every_day():
    inp = inputs(open_=[10.0, 10.0, 9.0, 9.0, 8.5], close=[10.0, 10.0, 9.0, 9.0, 8.6],
                 down=[0.0, 0.0, 9.0, 9.0, 8.1])
    run = run_symbol(inp, np.array([1, -1, 0, 0, 0]), NO_SLIP)      # buy at day 1, sell from day 2
    assert run.counters["sell_blocked_limit"] == 2                  # days 2 and 3 open at the limit
    t = run.trades.iloc[0]
    assert t["entry_date"] == inp.dates[1] and t["exit_date"] == inp.dates[4] and t["exit_price"] == 8.5
    shares = 9900                                                   # 100000 / (1000 × 1.00026) → 99 lots
    proceeds = shares * 8.5 - fees(shares * 8.5, sell_stamp=0.0005)  # 2024: stamp duty 0.05%
    assert t["proceeds"] == pytest.approx(proceeds, abs=1e-9)
    assert run.equity[-1] == pytest.approx(100_000 - shares * 10 - fees(shares * 10) + proceeds, abs=1e-9)


def test_sell_signal_on_the_buy_day_fills_the_next_morning_t_plus_1():
    inp = inputs(open_=[10.0, 10.0, 10.5, 11.0])
    run = run_symbol(inp, np.array([1, -1, 0, 0]), NO_SLIP)
    t = run.trades.iloc[0]
    assert t["entry_date"] == inp.dates[1] and t["exit_date"] == inp.dates[2]
    assert run.shares.tolist() == [0, 9900, 0, 0]


def test_suspension_in_the_middle_of_a_holding():
    inp = inputs(open_=[10.0, 10.0, 10.0, np.nan, np.nan, 11.0, 11.0],
                 close=[10.0, 10.0, 10.5, np.nan, np.nan, 11.2, 11.0],
                 traded=[True, True, True, False, False, True, True])
    run = run_symbol(inp, np.array([1, 0, -1, 0, 0, 0, 0]), NO_SLIP)
    # equity is marked at the last close while suspended
    assert run.equity[3] == run.equity[4] == run.equity[2]
    assert run.counters["blocked_suspended"] == 2                   # the sell waited both suspended days
    t = run.trades.iloc[0]
    assert t["exit_date"] == inp.dates[5] and t["exit_price"] == 11.0


def test_minimum_commission_and_lot_rounding():
    rules = MarketRules(initial_cash=10_000.0, slippage_bps=0.0)
    # 10000 / (3332 × 1.00026) = 3.0004 → 3 lots would cost 9996 + 5 + 0.09996 > 10000 → 2 lots
    run = run_symbol(inputs(open_=[33.32, 33.32, 33.32]), np.array([1, 0, 0]), rules)
    t = run.trades.iloc[0]
    assert t["shares"] == 200
    assert t["buy_fees"] == pytest.approx(5.0 + 6664 * 0.00001, abs=1e-12)   # 0.025% would be 1.67 → ¥5
    # at 33.00 three lots fit: 9900 + 5 + 0.099 = 9905.099
    run = run_symbol(inputs(open_=[33.0, 33.0, 33.0]), np.array([1, 0, 0]), rules)
    assert run.trades.iloc[0]["shares"] == 300
    assert run.trades.iloc[0]["cost"] == pytest.approx(9905.099, abs=1e-9)
    # too little cash for one lot: the order is dropped and counted
    run = run_symbol(inputs(open_=[120.0, 120.0]), np.array([1, 0]), rules)
    assert run.trades.empty and run.counters["unaffordable"] == 1


@pytest.mark.parametrize(("sell_day", "stamp"), [("2023-08-25", 0.001), ("2023-08-28", 0.0005)])
def test_stamp_duty_before_and_after_2023_08_28(sell_day, stamp):
    days = pd.bdate_range(end=sell_day, periods=3)
    inp = inputs(open_=[10.0, 10.0, 12.0], start=str(days[0].date()))
    run = run_symbol(inp, np.array([1, -1, 0]), NO_SLIP)
    t = run.trades.iloc[0]
    assert pd.Timestamp(t["exit_date"]) == pd.Timestamp(sell_day)
    value = 9900 * 12.0
    assert t["proceeds"] == pytest.approx(value - fees(value, sell_stamp=stamp), abs=1e-9)
    assert MarketRules().stamp_duty(date(2023, 8, 27)) == 0.001


def test_slippage_moves_fills_against_the_trader():
    rules = MarketRules(initial_cash=100_000.0, slippage_bps=10.0)
    run = run_symbol(inputs(open_=[10.0, 10.0, 10.0]), np.array([1, -1, 0]), rules)
    t = run.trades.iloc[0]
    assert t["entry_price"] == pytest.approx(10.01) and t["exit_price"] == pytest.approx(9.99)


def test_ex_date_scales_shares_so_dividends_keep_their_value():
    # a ¥1 cash dividend on day 2: raw price 10 → 9, adj_factor 1 → 10/9
    inp = inputs(open_=[10.0, 10.0, 9.0, 9.0], close=[10.0, 10.0, 9.0, 9.0], adj=[1.0, 1.0, 10 / 9, 10 / 9])
    run = run_symbol(inp, np.array([1, 0, 0, -1]), NO_SLIP)
    assert run.shares[2] == pytest.approx(9900 * 10 / 9)
    assert run.equity[2] == pytest.approx(run.equity[1], abs=1e-6)   # no value lost, none invented


def test_zero_and_missing_signals_keep_the_position_and_the_pending_order():
    inp = inputs(open_=[10.0, 11.0, 11.0, 10.5], up=[11.0, 11.0, 12.1, 12.1])
    run = run_symbol(inp, np.array([1, 0, 0, 0]), NO_SLIP)   # blocked on day 1, still pending on day 2
    assert run.trades.iloc[0]["entry_date"] == inp.dates[2]
    run = run_symbol(inp, np.array([1, -1, 0, 0]), NO_SLIP)  # -1 while flat cancels the waiting buy
    assert run.trades.empty


def test_metrics_on_a_known_path():
    inp = inputs(open_=[10.0, 10.0, 12.0, 12.0], close=[10.0, 10.0, 12.0, 12.0])
    rules = MarketRules(initial_cash=100_000.0, slippage_bps=0.0, commission_min=0.0, commission_rate=0.0,
                        transfer_fee_rate=0.0, stamp_duty_after=0.0)
    run = run_symbol(inp, np.array([1, 0, -1, 0]), rules)
    m = compute_metrics(run, rules.initial_cash, rules.periods_per_year)
    assert m["total_return"] == pytest.approx(0.20)
    assert m["trades"] == 1 and m["win_rate"] == 1.0 and m["exposure"] == 0.5
    assert m["worst_trade"] == pytest.approx(0.20)
    assert max_drawdown(np.array([100.0, 120.0, 90.0, 130.0])) == pytest.approx(-0.25)


def test_rules_overrides_and_validation():
    r = MarketRules().with_overrides(["slippage_bps=0,lot=200", "use_limits=false"])
    assert (r.slippage_bps, r.lot, r.use_limits) == (0.0, 200, False)
    with pytest.raises(HeqisError, match="unknown rule 'slipage'"):
        MarketRules().with_overrides(["slipage=1"])
    with pytest.raises(HeqisError, match="is not a float"):
        MarketRules().with_overrides(["slippage_bps=lots"])
    with pytest.raises(HeqisError, match="position_fraction"):
        MarketRules(position_fraction=1.5)


def test_panel_kernel_equals_per_symbol_runs():
    from heqis.backtest.engine import run_panel

    rng = np.random.default_rng(1)
    n, m = 120, 4
    close = 20 * np.exp(np.cumsum(0.02 * rng.standard_normal((n, m)), axis=0))
    open_ = close * np.exp(0.005 * rng.standard_normal((n, m)))
    signals = rng.choice([-1, 0, 0, 1], size=(n, m))
    dates = pd.bdate_range("2023-08-01", periods=n).to_numpy(dtype="datetime64[ns]")   # spans the stamp cut
    equity, trades, counters = run_panel(open_, close, signals, dates, NO_SLIP)
    for j in range(m):
        single = run_symbol(inputs(open_[:, j], close[:, j], start="2023-08-01"), signals[:, j], NO_SLIP)
        np.testing.assert_allclose(equity[:, j], single.equity, rtol=0, atol=1e-9)
        mine = trades[trades[:, 8] == j]
        assert len(mine) == len(single.trades)
        np.testing.assert_allclose(mine[:, 5], single.trades["cost"].to_numpy(), rtol=0, atol=1e-9)
        assert counters[j].tolist() == list(single.counters.values())
