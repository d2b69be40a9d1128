"""Features on a bars DataFrame (research only: pandas): the model's own inputs as named columns.

The store's feature cache and ``heqis check lookahead`` use ``add_features``; it returns exactly what
``model_inputs`` computes from the bars (the same numbers training, backtest and the brain use).
"""

from __future__ import annotations

import pandas as pd

from heqis.features.columns import FEATURE_COLUMNS, MODEL_INPUTS
from heqis.features.windows import research_inputs


def add_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Return ``bars`` with the feature columns (docs/architecture.md, "Features") appended or refreshed."""
    values = research_inputs(bars)
    derived = {c: values[:, MODEL_INPUTS.index(c)] for c in FEATURE_COLUMNS if c != "turnover"}   # a bar column
    base = bars.drop(columns=[c for c in derived if c in bars.columns])
    return pd.concat([base, pd.DataFrame(derived, index=base.index)], axis=1)
