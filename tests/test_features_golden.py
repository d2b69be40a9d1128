"""The feature numbers are pinned: they change only with a FEATURE_VERSION bump (tests/golden_features.py)."""

from __future__ import annotations

import json

import numpy as np

from heqis.features.fingerprint import FEATURE_VERSION, feature_fingerprint
from tests.golden_features import GOLDEN, current

HOW = "if the change is meant: bump FEATURE_VERSION and run `.venv/bin/python -m tests.golden_features --write`"


def test_feature_numbers_match_the_golden_values_of_this_version():
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert golden["fingerprint"]["version"] == FEATURE_VERSION, \
        f"FEATURE_VERSION is {FEATURE_VERSION} but the golden values are for {golden['fingerprint']['version']}: {HOW}"
    assert golden["fingerprint"] == feature_fingerprint(), \
        f"indicator parameters or input columns changed without a FEATURE_VERSION bump: {HOW}"
    now = current()
    for key in ("rows", "scale_free_last_row", "scale_free_first_row"):
        want, got = golden[key], now[key]
        if isinstance(want, dict):
            want, got = np.array(list(want.values())), np.array(list(got.values()))  # rows by index
        np.testing.assert_allclose(np.array(got, float), np.array(want, float), rtol=1e-9, atol=1e-12,
                                   err_msg=f"feature numbers changed without a FEATURE_VERSION bump ({key}): {HOW}")


def test_the_fingerprint_names_version_parameters_and_columns():
    fp = feature_fingerprint()
    assert fp["id"].startswith(f"v{FEATURE_VERSION}-") and len(fp["columns"]) == 24
    assert fp["parameters"]["ma"] == [5, 10, 20, 30, 60] and fp["parameters"]["macd"] == [12, 26, 9]
