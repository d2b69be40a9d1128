"""The README's command examples run as written.

Every ```bash block of README.md is executed line by line, in README order, in one scratch
directory (so a later block finds what an earlier one made: ./heqis-data, runs/exp1, deploy_output),
with the files the examples name (prices.csv, csv_dir/, my_signals.csv). The only changes made to a
line: ``.venv/bin/`` means this interpreter's venv, and a fixed port (9765, 6100) becomes a free
one. A line that cannot run here is listed in SKIPPED with the reason; any other line must exit 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tests.runtime_helpers import free_ports

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# (what the line starts with → why it is not run here)
SKIPPED = {
    "make demo": "make demo is `heqis demo` after the install; tests/test_cli.py runs `heqis demo` itself",
    "make test": "this test is part of make test",
    "HEQIS_TUSHARE_TOKEN=… heqis data -s tushare --start": "needs a real Tushare token and the internet "
                                                         "(the test-server example below runs instead)",
    "heqis data -s tushare --replace": "needs a real Tushare token and the internet",
    "heqis brain --port 5555": "runs until stopped; tests/test_runtime.py and test_local_fleet.py start real brains",
    "heqis gateway --target-ip 192.0.2.11": "192.0.2.x are documentation addresses of a real fleet",
    ".venv/bin/python benchmarks/fleet.py": "needs root and openssh-server; tests/test_fleet.py runs the same "
                                            "bring-up against real sshd hosts",
    ".venv/bin/heqis status --fleet /tmp/heqis-fleet-bench-": "follows the fleet benchmark above",
    ".venv/bin/heqis logs brain-1 --fleet /tmp/heqis-fleet-bench-": "follows the fleet benchmark above",
    ".venv/bin/heqis down --fleet /tmp/heqis-fleet-bench-": "follows the fleet benchmark above",
    "heqis train --search 20 --workers 2": "20 trials take minutes; tests/test_search.py runs two workers on one "
                                           "journal and --from-search end to end",
    "heqis train --from-search runs/s": "follows the search above (tests/test_search.py)",
    ".venv/bin/python benchmarks/": "benchmarks take minutes; make bench runs them",
}


def readme_lines() -> list[str]:
    """The command lines of every bash block (continuations joined, comments and blanks dropped)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for raw in joined.splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def strip_comment(line: str) -> str:
    return re.sub(r"\s+#\s.*$", "", line).strip()


def example_files(where: Path) -> None:
    """The inputs the examples name: a CSV of daily bars, a folder of them, and a signal file."""
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2021-01-04", periods=400)
    def bars(scale: float) -> pd.DataFrame:
        close = scale * np.exp(np.cumsum(rng.normal(0, 0.015, len(days))))
        return pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "open": close * 0.998, "high": close * 1.01,
                             "low": close * 0.99, "close": close, "volume": rng.integers(10_000, 90_000, len(days))})
    bars(1500).to_csv(where / "prices.csv", index=False)
    (where / "csv_dir").mkdir()
    bars(10).to_csv(where / "csv_dir" / "AAA.csv", index=False)
    bars(20).to_csv(where / "csv_dir" / "BBB.csv", index=False)
    pd.DataFrame({"symbol": ["600519.SH", "600519.SH", "000001.SZ"],
                  "trade_date": ["2024-03-01", "2024-06-03", "2024-03-04"],
                  "signal": [1, -1, 1]}).to_csv(where / "my_signals.csv", index=False)


def test_readme_examples_run_as_written(tmp_path):
    work = tmp_path / "readme"
    work.mkdir()
    example_files(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEQIS_")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(REPO), COLUMNS="100",
               NO_COLOR="1")
    ports = {"9765": str(free_ports(1)), "6100": str(free_ports(16))}
    background: list[subprocess.Popen] = []
    ran, skipped = [], []
    try:
        for line in readme_lines():
            reason = next((why for start, why in SKIPPED.items() if line.startswith(start)), None)
            if reason:
                skipped.append((line, reason))
                continue
            command = strip_comment(line).replace(".venv/bin/", f"{VENV_BIN}/")
            for fixed, free in ports.items():
                command = re.sub(rf"\b{fixed}\b", free, command)
            if command.endswith("&"):
                background.append(subprocess.Popen(command[:-1], shell=True, cwd=work, env=env,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                time.sleep(2.0)
                continue
            proc = subprocess.run(command, shell=True, cwd=work, env=env, capture_output=True, text=True,
                                  timeout=1200, executable="/bin/bash")
            assert proc.returncode == 0, f"README line failed: {line}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            assert "Traceback" not in proc.stderr, line
            ran.append(line)
    finally:
        for p in background:
            p.terminate()
            p.wait(30)
        if (work / ".heqis" / "local-fleet.json").exists():
            subprocess.run([str(VENV_BIN / "heqis"), "down"], cwd=work, env=env, capture_output=True, timeout=120)
    assert len(ran) >= 15, ran                     # the examples really ran
    unused = set(SKIPPED) - {next(s for s in SKIPPED if line.startswith(s)) for line, _ in skipped}
    assert not unused, f"SKIPPED names lines the README no longer has: {unused}"

