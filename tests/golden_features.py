"""Golden feature values: the numbers ``model_inputs`` gives on a fixed bar series, per FEATURE_VERSION.

``tests/test_features_golden.py`` compares today's numbers with ``tests/golden/features.json``. When a
change to the feature code changes the numbers on purpose, bump ``FEATURE_VERSION`` in
heqis/features/fingerprint.py and rewrite the file::

    .venv/bin/python -m tests.golden_features --write

Stores then recompute their feature cache on the next ``heqis data``, and runs and artifact sets
made with the old version are refused until retrained / re-exported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from heqis.features.fingerprint import feature_fingerprint
from heqis.features.inputs import model_inputs
from heqis.features.transform import scale_free

GOLDEN = Path(__file__).with_name("golden") / "features.json"
ROWS = (59, 120, 250, 399)     # after every warm-up, and the last bar


def golden_bars(n: int = 400) -> np.ndarray:
    """A fixed [n, 7] bar series: a random walk with wicks, a dividend (new factor) and unknown turnover."""
    rng = np.random.default_rng(20261201)
    close = 50 * np.exp(np.cumsum(rng.normal(0.0003, 0.018, n)))
    open_ = close * (1 + rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, n)))
    vol = rng.uniform(2e4, 9e4, n)
    turnover = rng.uniform(0.3, 3.0, n)
    turnover[::37] = np.nan
    factor = np.where(np.arange(n) >= 300, 1.04, 1.0)
    return np.column_stack([open_, high, low, close, vol, turnover, factor])


def current() -> dict:
    x = model_inputs(golden_bars())
    window = scale_free(x[-60:])
    return {"fingerprint": feature_fingerprint(), "rows": {str(r): x[r].tolist() for r in ROWS},
            "scale_free_last_row": window[-1].tolist(), "scale_free_first_row": window[0].tolist()}


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.golden_features --write   (after bumping FEATURE_VERSION)")
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(current(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN} for features {feature_fingerprint()['id']}")
