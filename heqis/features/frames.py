"""Features on a bars DataFrame (research only: pandas) — the same ``feature_arrays`` the brain runs."""

from __future__ import annotations

import pandas as pd

from heqis.features.compute import feature_arrays


def add_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Return ``bars`` with the feature columns (docs/architecture.md, "Features") appended or refreshed."""
    feats = feature_arrays(bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy(),
                           bars["vol"].to_numpy(), bars["turnover"].to_numpy())
    derived = {k: v for k, v in feats.items() if k != "turnover"}  # turnover is a bar column already
    base = bars.drop(columns=[c for c in derived if c in bars.columns])
    return pd.concat([base, pd.DataFrame(derived, index=base.index)], axis=1)
