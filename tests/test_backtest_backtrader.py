"""Our engine against backtrader: same signals, same fills and fees → same trades, same final equity.

Real prices (AAPL 2000-2013 from bokeh_sampledata), price limits off (backtrader has none), no
slippage. backtrader runs with cheat-on-open so that, like our engine, it sizes the order with the
open price it will fill at: the signal is decided at day T's close and filled at T+1's open.
"""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from bokeh_sampledata.stocks import AAPL, IBM

from heqis.backtest.engine import SymbolInputs, run_symbol
from heqis.backtest.rules import MarketRules

RULES = MarketRules(initial_cash=1_000_000.0, slippage_bps=0.0, use_limits=False)


def frame(data: dict) -> pd.DataFrame:
    df = pd.DataFrame({k: data[k] for k in ("open", "high", "low", "close", "volume")})
    df.index = pd.to_datetime(pd.Series(data["date"]))
    return df


def ma_cross(close: np.ndarray, fast: int = 10, slow: int = 30) -> np.ndarray:
    s = pd.Series(close)
    f, w = s.rolling(fast).mean(), s.rolling(slow).mean()
    return np.where(f > w, 1, np.where(f < w, -1, 0)).astype(np.int64)


class AShareFees(bt.CommInfoBase):
    params = (("stocklike", True), ("commtype", bt.CommInfoBase.COMM_FIXED))

    def _getcommission(self, size, price, pseudoexec):
        value = abs(size) * price
        fee = max(value * RULES.commission_rate, RULES.commission_min) + value * RULES.transfer_fee_rate
        if size < 0:
            fee += value * RULES.stamp_duty_before  # stamp duty on sells; the data all predate 2023-08-28
        return fee


class FollowSignals(bt.Strategy):
    params = (("signals", None),)

    def __init__(self):
        self.pending = 0
        self.fills = []

    def next_open(self):  # cheat-on-open: runs at the new bar's open, orders fill at this open
        price = self.data.open[0]
        if self.pending == 1 and not self.position:
            cash = self.broker.getcash()
            lots = np.floor(cash / (price * RULES.lot * (1 + RULES.commission_rate + RULES.transfer_fee_rate)))
            while lots > 0 and lots * RULES.lot * price + max(lots * RULES.lot * price * RULES.commission_rate,
                                                              RULES.commission_min) \
                    + lots * RULES.lot * price * RULES.transfer_fee_rate > cash:
                lots -= 1
            if lots > 0:
                self.buy(size=lots * RULES.lot)
            self.pending = 0
        elif self.pending == -1 and self.position:
            self.close()
            self.pending = 0

    def next(self):  # runs at the close: decide
        s = self.p.signals[len(self) - 1]
        if s > 0:
            self.pending = 1 if not self.position else 0
        elif s < 0:
            self.pending = -1 if self.position else 0

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append((bt.num2date(order.executed.dt).date(), order.executed.size, order.executed.price))


def run_backtrader(df: pd.DataFrame, signals: np.ndarray) -> tuple[list, float]:
    cerebro = bt.Cerebro(cheat_on_open=True, stdstats=False)
    cerebro.broker.setcash(RULES.initial_cash)
    cerebro.broker.addcommissioninfo(AShareFees())
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(FollowSignals, signals=signals)
    strat = cerebro.run()[0]
    return strat.fills, cerebro.broker.getvalue()


@pytest.mark.parametrize("name,data", [("AAPL", AAPL), ("IBM", IBM)])
def test_same_trades_and_final_equity_as_backtrader(name, data):
    df = frame(data)
    signals = ma_cross(df["close"].to_numpy())
    n = len(df)
    inp = SymbolInputs(name, df.index.to_numpy(dtype="datetime64[ns]"), df["open"].to_numpy(float),
                       df["close"].to_numpy(float), np.full(n, np.inf), np.zeros(n), np.ones(n, bool), np.ones(n))
    ours = run_symbol(inp, signals, RULES)
    fills, final_value = run_backtrader(df, signals)
    mine = []
    for t in ours.trades.itertuples():
        mine.append((pd.Timestamp(t.entry_date).date(), t.shares, t.entry_price))
        if t.closed:
            mine.append((pd.Timestamp(t.exit_date).date(), -t.shares, t.exit_price))
    assert len(mine) > 50, "the signals should trade often"
    assert [(d, int(s)) for d, s, _ in mine] == [(d, int(s)) for d, s, _ in fills]
    np.testing.assert_allclose([p for *_, p in mine], [p for *_, p in fills], rtol=0, atol=1e-9)
    assert round(ours.equity[-1], 2) == round(final_value, 2)
