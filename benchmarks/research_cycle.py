"""One research cycle, stage by stage, at several universe sizes: where the time and memory go.

data (synthetic panel) → train (1 epoch) → backtest → export, each stage a real ``heqis`` command
in its own process, as a user runs it. Per stage: wall seconds, seconds per symbol and the stage
process's peak RSS (from ``wait4``, so one stage's memory is not mixed with another's). The growth
per symbol between sizes is printed at the end: a stage that scales linearly shows a flat
seconds-per-symbol column.

    python benchmarks/research_cycle.py [--sizes 10,100,300] [--years 7] [--preset tiny] [--json]

The data are SYNTHETIC (``heqis data --source synthetic``): the figures measure the machinery,
not any market.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEQIS = [sys.executable, "-m", "heqis"]


def run_stage(args: list[str], log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one ``heqis`` command; its output goes to ``log``."""
    with log.open("ab") as out:
        out.write(f"$ heqis {' '.join(args)}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen([*HEQIS, *args], stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        sys.exit(f"heqis {' '.join(args)} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return seconds, usage.ru_maxrss / 1024.0   # ru_maxrss is in KiB on Linux


def cycle(n: int, years: int, preset: str, root: Path, log: Path) -> dict[str, dict[str, float]]:
    data, run, art = root / f"data-{n}", root / f"run-{n}", root / f"artifacts-{n}"
    stages = {
        "data": ["data", "--source", "synthetic", "--symbols", str(n), "--years", str(years), "-d", str(data)],
        "train": ["train", "--preset", preset, "--epochs", "1", "-d", str(data), "-o", str(run)],
        "backtest": ["backtest", str(run)],
        "export": ["export", str(run), "-o", str(art)],
    }
    out = {}
    for name, args in stages.items():
        seconds, rss = run_stage(args, log)
        out[name] = {"seconds": seconds, "per_symbol_s": seconds / n, "peak_rss_mb": rss}
        print(f"  N={n:<5} {name:<9} {seconds:8.1f} s  {seconds / n * 1000:8.1f} ms/symbol  {rss:8.0f} MB",
              file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,300", help="universe sizes (symbols), comma-separated")
    ap.add_argument("--years", type=int, default=7)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",") if s]
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="heqis-cycle-"))
    root.mkdir(parents=True, exist_ok=True)
    log = root / "commands.log"
    print(f"research cycle on SYNTHETIC data, {a.years} years, preset {a.preset}; log: {log}", file=sys.stderr)
    try:
        table = {n: cycle(n, a.years, a.preset, root, log) for n in sizes}
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    if a.json:
        print(json.dumps({"years": a.years, "preset": a.preset, "sizes": table}, indent=2))
        return
    stages = list(next(iter(table.values())))
    print(f"\nResearch cycle (SYNTHETIC, {a.years} years, preset {a.preset}, 1 epoch): "
          "seconds | ms per symbol | peak RSS MB")
    print(f"{'N':>6} " + " ".join(f"{s:>26}" for s in stages) + f" {'total s':>9}")
    for n, row in table.items():
        cells = [f"{row[s]['seconds']:7.1f} |{row[s]['per_symbol_s'] * 1000:7.1f} |{row[s]['peak_rss_mb']:7.0f}"
                 for s in stages]
        print(f"{n:>6} " + " ".join(f"{c:>26}" for c in cells) + f" {sum(r['seconds'] for r in row.values()):9.1f}")
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"\ngrowth from N={lo} to N={hi}, per added symbol (memory per symbol-year = MB / {a.years}):")
        for s in stages:
            ds = (table[hi][s]["seconds"] - table[lo][s]["seconds"]) / (hi - lo)
            dm = (table[hi][s]["peak_rss_mb"] - table[lo][s]["peak_rss_mb"]) / (hi - lo)
            print(f"  {s:<9} {ds * 1000:8.1f} ms/symbol  {dm:7.2f} MB/symbol  {dm / a.years:6.3f} MB/symbol-year")


if __name__ == "__main__":
    main()
