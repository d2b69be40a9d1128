"""A-share backtest: market rules, a compiled execution engine, metrics and generator selection."""

from heqis.backtest.rules import MarketRules

__all__ = ["MarketRules"]
