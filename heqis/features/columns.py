"""Names and order of the feature columns (docs/architecture.md, "Features"). Changing them changes every model."""

from __future__ import annotations

MA_PERIODS = (5, 10, 20, 30, 60)
EMA_PERIODS = (5, 10, 20, 30, 60)
MACD_PARAMS = (12, 26, 9)  # fast, slow, signal
KDJ_PARAMS = (9, 3, 3)  # RSV window, K smoothing, D smoothing
RSI_PERIOD = 14

FEATURE_COLUMNS: tuple[str, ...] = (
    *(f"ma{p}" for p in MA_PERIODS),
    *(f"ema{p}" for p in EMA_PERIODS),
    "macd", "macd_signal", "macd_hist",
    "k", "d", "j",
    "rsi14",
    "ret1",
    "turnover",
    "log_vol",
)

# The model sees the adjusted OHLC plus every feature, made scale-free per window (features.windows).
MODEL_INPUTS: tuple[str, ...] = ("open", "high", "low", "close", *FEATURE_COLUMNS)

# How each input is made scale-free inside a window (see features.windows.scale_free).
PRICE_LIKE = frozenset({"open", "high", "low", "close", *(f"ma{p}" for p in MA_PERIODS),
                        *(f"ema{p}" for p in EMA_PERIODS)})
PRICE_DIFF = frozenset({"macd", "macd_signal", "macd_hist"})
PERCENT_0_100 = frozenset({"k", "d", "j", "rsi14", "turnover"})

# The indicators' parameters, recorded in every scaler file and in the feature fingerprint
# (heqis.features.fingerprint): a change here is a change of FEATURE_VERSION.
INDICATOR_PARAMS = {
    "ma": list(MA_PERIODS),
    "ema": list(EMA_PERIODS),
    "macd": list(MACD_PARAMS),
    "kdj": list(KDJ_PARAMS),
    "rsi": RSI_PERIOD,
    "ema_seed": "sma",
    "kdj_seed": 50.0,
}
