"""Features shared by training, backtest and the live brain: one code path, so they never disagree."""

from heqis.features.columns import FEATURE_COLUMNS, MODEL_INPUTS

__all__ = ["FEATURE_COLUMNS", "MODEL_INPUTS"]
