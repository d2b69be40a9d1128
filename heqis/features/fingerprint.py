"""The feature fingerprint: which feature code produced a set of numbers.

It is an explicit ``FEATURE_VERSION``, the indicator parameters and the column list — not a hash of
source text, so a refactor that keeps the numbers keeps every run valid. ``tests/test_features_golden.py``
pins the numbers: when they change without a version bump, that test fails. The fingerprint is
recorded in the store manifest (its feature cache), every run manifest and every artifact set; a
reader whose code has another fingerprint refuses with a one-line error (docs/architecture.md,
"Invariants").
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from heqis.errors import HeqisError
from heqis.features.columns import INDICATOR_PARAMS, MODEL_INPUTS

FEATURE_VERSION = 1


def feature_fingerprint() -> dict[str, Any]:
    """This code's fingerprint: version, indicator parameters, model input columns, and a short id."""
    body = {"version": FEATURE_VERSION, "parameters": INDICATOR_PARAMS, "columns": list(MODEL_INPUTS)}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    return {**body, "id": f"v{FEATURE_VERSION}-{digest}"}


def same_features(recorded: dict[str, Any] | None) -> bool:
    return bool(recorded) and recorded.get("id") == feature_fingerprint()["id"]  # type: ignore[union-attr]


def require_features(recorded: dict[str, Any] | None, what: str, hint: str) -> None:
    """HeqisError when ``recorded`` (a fingerprint read from ``what``) is not this code's."""
    if same_features(recorded):
        return
    theirs = (recorded or {}).get("id", "none recorded")
    raise HeqisError(f"{what} was made with features {theirs}; this heqis computes {feature_fingerprint()['id']}",
                     hint=hint)
