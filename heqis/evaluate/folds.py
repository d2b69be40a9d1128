"""Walk-forward folds for ``heqis compare``: K expanding-window splits of one calendar, no look-ahead.

The last ``test_share`` of the sessions is cut into K consecutive blocks of ``L`` sessions; fold k
tests on block k, selects (backtest) on the ``S`` sessions just before it, validates (early stopping,
the choice of the best generator) on the ``V`` sessions before those, and trains on everything
earlier. Within a fold the four segments are consecutive and disjoint, in the order train < val <
select < test; across folds the test blocks are disjoint and in time order, and the train segment
grows by ``L`` sessions a fold, so a later fold trains on the earlier folds' test days — as a model
retrained every ``L`` sessions would. ``V = min(L, round(0.15·N))`` and ``S = max(1, round(V/2))``:
with K = 3 each fold tests on 10% of the sessions and fold 1 trains on 55%.

Samples belong to the segment of their target day (``features.windows``), so no training label
and no scaler statistic of a fold comes from a day after its train segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from heqis.errors import HeqisError
from heqis.features.windows import Segments

TEST_SHARE = 0.3          # the sessions the K test blocks cover together (the last ones)
VAL_SHARE = 0.15          # at most this share of the sessions validates a fold
MIN_TEST_SESSIONS = 20    # a test block shorter than this gives no useful DM test
MIN_TRAIN_SESSIONS = 120  # the first fold's train segment: warm-up and windows need bars


@dataclass(frozen=True)
class Fold:
    index: int            # 1..K
    segments: Segments

    def to_dict(self) -> dict[str, object]:
        return {"fold": self.index, "segments": self.segments.to_dict()}


def walk_forward(sessions: pd.DatetimeIndex, folds: int, test_share: float = TEST_SHARE) -> list[Fold]:
    """The K walk-forward folds of ``sessions`` (module docstring)."""
    if folds < 1:
        raise HeqisError(f"--folds {folds}: needs at least 1 fold")
    if not 0 < test_share < 1:
        raise HeqisError(f"test share {test_share} must lie between 0 and 1")
    days = pd.DatetimeIndex(sorted(set(sessions)))
    n = len(days)
    block, val, select, first_train = _sizes(n, folds, test_share)
    if not _fits(n, folds, test_share):
        need = next(m for m in range(n + 1, 100 * n + 10_000) if _fits(m, folds, test_share))
        span = f" ({days[0].date()} … {days[-1].date()})" if n else ""
        raise HeqisError(f"--folds {folds}: {n} sessions{span} are too few — each fold would test on {block} "
                         f"sessions (at least {MIN_TEST_SESSIONS}) and fold 1 train on {max(first_train, 0)} "
                         f"(at least {MIN_TRAIN_SESSIONS}); {folds} fold{'s' if folds > 1 else ''} need "
                         f"{need} sessions", hint="use fewer --folds, or a store with a longer history")
    out = []
    for k in range(folds):
        test_start = n - (folds - k) * block
        cuts = {"train": (0, test_start - select - val), "val": (test_start - select - val, test_start - select),
                "select": (test_start - select, test_start), "test": (test_start, test_start + block)}
        out.append(Fold(k + 1, Segments({name: (days[a], days[b - 1]) for name, (a, b) in cuts.items()})))
    return out


def _sizes(n: int, folds: int, test_share: float) -> tuple[int, int, int, int]:
    """(test block L, val V, select S, fold 1's train) in sessions, for ``n`` sessions."""
    block = int(n * test_share) // folds
    val = min(block, round(VAL_SHARE * n))
    select = max(1, round(val / 2))
    return block, val, select, n - folds * block - select - val


def _fits(n: int, folds: int, test_share: float) -> bool:
    block, _, _, first_train = _sizes(n, folds, test_share)
    return block >= MIN_TEST_SESSIONS and first_train >= MIN_TRAIN_SESSIONS
