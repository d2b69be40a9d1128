"""Training memory grows with the bars, not with the windows (docs/architecture.md, "Training").

Two subprocesses prepare the same synthetic panel at two sizes and train one tiny epoch on it; the
difference of their peak RSS per symbol-year must stay under 1 MB. Materialised [N, 60, 24] windows
with their float64 temporaries cost ~3.6 MB per symbol-year, so they fail this test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BARS = 400                       # ~1.6 years of sessions per symbol
YEARS = BARS / 244

SCRIPT = r"""
import inspect, json, resource, sys
sys.path.insert(0, sys.argv[2])
import pandas as pd
from heqis.train.data import prepare
from heqis.train.presets import get_preset
from heqis.train.trainer import MultiGANTrainer
from tests.synthetic import bars_from_closes, regime_sine

n_sym, n_bars = int(sys.argv[1]), int(sys.argv[3])
bars = {f"S{i:04d}": bars_from_closes(regime_sine(n_bars, phase=i * 0.37, seed=i), seed=i) for i in range(n_sym)}
sessions = pd.DatetimeIndex(bars["S0000"]["trade_date"])
p = get_preset("tiny", encoder_epochs=1, pretrain_epochs=1, max_train_windows=256, batch_size=256)
# max_val only where prepare has it, so the script also runs against the materialised code (how
# this test was checked to fail)
extra = {"max_val": 512} if "max_val" in inspect.signature(prepare).parameters else {}
data = prepare(bars, sessions, p.window, p.flat_band, p.max_train_windows, 3407, **extra)
t = MultiGANTrainer(p, data, device="cpu", seed=3407)
t.train_encoders()
t.run_epoch()
print(json.dumps({"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "windows": data.n_train_total}))
"""


def peak_rss_kb(symbols: int, root: Path = ROOT) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(symbols), str(root), str(BARS)], capture_output=True,
                         text=True, timeout=600, check=False, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_rss_grows_under_1_mb_per_symbol_year():
    small, large = peak_rss_kb(10), peak_rss_kb(60)
    assert large["windows"] > 5 * small["windows"]            # the larger panel really has more windows
    per_symbol_year_mb = (large["peak_kb"] - small["peak_kb"]) / 1024 / ((60 - 10) * YEARS)
    assert per_symbol_year_mb < 1.0, f"{per_symbol_year_mb:.2f} MB per symbol-year ({small}, {large})"
