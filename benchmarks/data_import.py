"""Seconds per symbol of ``heqis data`` for the sample, csv and synthetic sources, this tree against a baseline.

    .venv/bin/python benchmarks/data_import.py                       # N = 10, 100, 1000; synthetic also 5000
    .venv/bin/python benchmarks/data_import.py --sizes 10,100 --repeats 3 --workers 1

Each measurement runs in a fresh interpreter that first imports and warms everything with a one-symbol
run (numba compilation, lazy imports), then times ``run_data`` on N symbols (``DataResult.seconds``).
The baseline is the same working tree with ``heqis/data`` taken from ``--baseline`` (a commit before
the import speed-up); baseline and new runs alternate, the best of ``--repeats`` is kept, and the
stores they write must have the same content hash (the benchmark stops otherwise). Inputs: CSV folders
and watchlists made from the synthetic panel (N stocks + 000300.SH), so csv and sample import the same
symbols. ``--workers 1`` measures the per-symbol cost; the default (the cores) includes the pool.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = "2a58dbd"   # heqis/data before the synthetic source and the import speed-up

RUNNER = r"""
import dataclasses, json, sys, tempfile
from pathlib import Path
from heqis.config import Settings
from heqis.data.pipeline import DataRequest, run_data
args = json.loads(sys.argv[1])
fields = {f.name for f in dataclasses.fields(DataRequest)}
def request(**kw):
    return DataRequest(**{k: Path(v) if k in ("data_dir", "csv_path", "watchlist") and v else v
                          for k, v in kw.items() if k in fields})
warm = dict(args["warm"]); warm["data_dir"] = tempfile.mkdtemp()
run_data(request(**warm), Settings())
r = run_data(request(**args["run"]), Settings())
print(json.dumps({"seconds": r.seconds, "content_hash": r.content_hash, "symbols": len(r.symbols)}))
"""


def make_inputs(work: Path, n: int) -> tuple[Path, Path]:
    """(a CSV folder, a watchlist) of the synthetic panel's N stocks and its benchmark."""
    sys.path.insert(0, str(REPO))
    from heqis.data.sources.synthetic import SyntheticPanel

    panel = SyntheticPanel(n)
    folder = work / f"csv{n}"
    folder.mkdir()
    for inst in panel.instruments():
        raw, _ = panel.build(inst)
        out = raw.rename(columns={"trade_date": "date", "open_raw": "open", "high_raw": "high", "low_raw": "low",
                                  "close_raw": "close"})
        out["volume"] = (out["vol"] * 100).round(0)
        out["amount"] = (out["amount"] * 1000).round(2)
        out["date"] = out["date"].dt.strftime("%Y-%m-%d")
        out[["date", "open", "high", "low", "close", "volume", "amount"]].to_csv(folder / f"{inst.ts_code}.csv",
                                                                                 index=False)
    watchlist = work / f"watchlist{n}.txt"
    watchlist.write_text("".join(f"{i.ts_code} {i.kind}\n" for i in panel.instruments()), encoding="utf-8")
    return folder, watchlist


def baseline_tree(work: Path, commit: str) -> Path:
    """This tree's ``heqis`` with ``heqis/data`` from ``commit``."""
    tree = work / "baseline"
    shutil.copytree(REPO / "heqis", tree / "heqis", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(tree / "heqis" / "data")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "heqis/data"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def measure(tree: Path, run: dict, warm: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", RUNNER, json.dumps({"run": run, "warm": warm})],
                         env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(tree)},
                         capture_output=True, text=True, check=False, cwd=tree)
    if out.returncode:
        raise SystemExit(f"run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--synthetic-max", type=int, default=5000, help="an extra synthetic size (0: none)")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many (sizes over 100: one run)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--sources", default="sample,csv,synthetic")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sources = args.sources.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="heqis-bench-") as tmp:
        work = Path(tmp)
        base = baseline_tree(work, args.baseline)
        tiny_csv, tiny_list = make_inputs(work, 1)
        for n in sizes + ([args.synthetic_max] if args.synthetic_max and "synthetic" in sources else []):
            extra = n not in sizes
            folder, watchlist = make_inputs(work, n) if not extra and {"csv", "sample"} & set(sources) else (None, None)
            repeats = args.repeats if n <= 100 else 1
            for source in sources:
                if extra and source != "synthetic":
                    continue
                common = {"source": source, "workers": args.workers, "replace": True}
                if source == "csv":
                    run, warm = {**common, "csv_path": str(folder)}, {**common, "csv_path": str(tiny_csv)}
                elif source == "sample":
                    run, warm = {**common, "watchlist": str(watchlist)}, {**common, "watchlist": str(tiny_list)}
                else:
                    run, warm = {**common, "symbols": n}, {**common, "symbols": 1}
                best_old = best_new = None
                hashes = set()
                for r in range(repeats):
                    for label, tree in (("old", base), ("new", REPO)):
                        if label == "old" and source == "synthetic":
                            continue
                        res = measure(tree, {**run, "data_dir": str(work / f"{source}{n}-{label}-{r}")}, warm)
                        hashes.add(res["content_hash"])
                        shutil.rmtree(work / f"{source}{n}-{label}-{r}", ignore_errors=True)
                        per = res["seconds"] / res["symbols"]
                        if label == "old":
                            best_old = per if best_old is None else min(best_old, per)
                        else:
                            best_new = per if best_new is None else min(best_new, per)
                if len(hashes) != 1:
                    raise SystemExit(f"{source} N={n}: the stores differ between runs ({sorted(hashes)})")
                rows.append((source, n, best_old, best_new))
                old = f"{best_old * 1000:8.1f}" if best_old is not None else "       —"
                ratio = f"{best_old / best_new:5.2f}x" if best_old is not None else "     —"
                print(f"{source:<10} N={n:>5}  old {old} ms/symbol  new {best_new * 1000:8.1f} ms/symbol  "
                      f"{ratio}  (best of {repeats}, same content hash)", flush=True)


if __name__ == "__main__":
    main()
