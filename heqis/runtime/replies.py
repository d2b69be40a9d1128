"""Validating a brain's reply against the gateway's own record of the request (docs/architecture.md, "Replies").

The gateway trusts nothing in a reply beyond what it can check: the reply must answer a request in
flight *to this brain*, for the same symbol and bar time, from the model ``routing.json`` assigns
the symbol and the artifact set the gateway runs, and every number must be of the right type and in
range. What is stored is then built from the request record plus these validated numbers — never
from the reply's own symbol, time or model — so a spoofed or confused reply cannot plant rows.

``check_reply`` returns either the validated numbers or the reason for refusing; the gateway counts
reasons, logs them rate-limited and sends the request again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# reasons a reply is refused (the keys of the gateway's "rejected_replies" counters)
REASONS = ("brain_error", "bad_payload", "bad_action", "bad_probabilities", "bad_timing", "wrong_symbol",
           "wrong_bar_time", "wrong_model", "wrong_artifacts")
TIMING = ("queue_us", "pre_us", "inf_us")
PAYLOAD = 5                       # reg, p_down, p_flat, p_up, action


@dataclass(frozen=True)
class Expected:
    """What the gateway's request record says the reply must be."""

    symbol: str
    bar_time: int
    model: str | None             # None: no routing known (then any model name of the right form is taken)
    artifacts: str | None         # None: the gateway was not told its artifact set


@dataclass(frozen=True)
class Checked:
    reg: float
    p_down: float
    p_flat: float
    p_up: float
    action: int
    model: str
    artifacts: str | None
    timing: dict[str, float | None]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable() else None


def check_reply(symbol: str, bar_time: int, data: np.ndarray | None, extra: dict[str, Any],
                expected: Expected) -> Checked | str:
    """The reply's validated numbers, or the reason it is refused (one of ``REASONS``)."""
    if "error" in extra:
        return "brain_error"
    if symbol != expected.symbol:
        return "wrong_symbol"
    if bar_time != expected.bar_time:
        return "wrong_bar_time"
    model = _name(extra.get("model"))
    if model is None or (expected.model is not None and model != expected.model):
        return "wrong_model"
    artifacts = _name(extra.get("artifacts"))
    if expected.artifacts and artifacts != expected.artifacts:
        return "wrong_artifacts"
    if data is None or data.shape != (PAYLOAD,):
        return "bad_payload"
    values = [float(v) for v in data]
    if not all(math.isfinite(v) for v in values):
        return "bad_payload"
    reg, p_down, p_flat, p_up, action = values
    if action not in (-1.0, 0.0, 1.0):
        return "bad_action"
    probs = (p_down, p_flat, p_up)
    if not all(0.0 <= p <= 1.0 for p in probs) or abs(sum(probs) - 1.0) > 1e-3:
        return "bad_probabilities"
    timing: dict[str, float | None] = {}
    for key in TIMING:
        raw = extra.get(key)
        timing[key] = _finite(raw)
        if raw is not None and (timing[key] is None or timing[key] < 0):    # type: ignore[operator]
            return "bad_timing"
    return Checked(reg, p_down, p_flat, p_up, int(action), model, artifacts, timing)
