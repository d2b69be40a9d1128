"""The ``heqis`` command: a thin shell over the core (parse options, call one function, render).

This is the composition root: the only module of ``heqis`` allowed to import ``heqis_console``
and ``heqis_remote``, and only lazily inside the commands that need them (DESIGN.md §1).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from heqis import __version__
from heqis.errors import HeqisError

app = typer.Typer(
    name="heqis",
    help="HEQIS — Heterogeneous Edge Quant Inference System: A-share data → multi-GAN models → "
         "backtest → ONNX/TensorRT/RKNN → RK3568 gateway + Jetson brain fleet → live console.\n\n"
         "Research only: HEQIS never places real orders.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

stdout = Console(highlight=False)
err = Console(stderr=True, highlight=False)
log = logging.getLogger("heqis")
# what the `research` extra brings; an edge install (brain, gateway) has none of it
RESEARCH_MODULES = {"pandas", "pyarrow", "exchange_calendars", "tushare", "torch", "optuna", "onnx", "fabric"}


@dataclass
class State:
    verbose: bool = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"heqis {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details; show tracebacks of bugs.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """HEQIS command line."""
    ctx.obj = State(verbose=verbose)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s")


@contextlib.contextmanager
def user_errors(ctx: typer.Context) -> Iterator[None]:
    """HeqisError → one red line + hint on stderr, exit 1; bugs → one line (traceback with -v)."""
    verbose = bool(ctx.obj and ctx.obj.verbose)
    try:
        yield
    except HeqisError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
        if exc.hint:
            err.print(f"[dim]hint: {escape(exc.hint)}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/] — re-run the same command to resume", soft_wrap=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in RESEARCH_MODULES:
            raise
        err.print(f"[bold red]error:[/] this command needs the research install (module '{exc.name}' is missing)",
                  soft_wrap=True)
        err.print("[dim]hint: pip install 'heqis[research]' (edge hosts only run brain and gateway)[/]")
        raise typer.Exit(1) from None
    except Exception as exc:
        if verbose:
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}", soft_wrap=True)
        err.print("[dim]this is a bug in heqis; re-run with --verbose for the traceback and report it[/]")
        raise typer.Exit(1) from None


def emit_json(payload: Any) -> None:
    """Machine-readable output on stdout (one JSON document)."""
    typer.echo(json.dumps(payload, ensure_ascii=False, indent=2, default=_json_default))


def show(payload: Any, json_out: bool, renderer: str) -> None:
    """Print a result: JSON for scripts, else the named rich renderer of heqis.render (imported late)."""
    if json_out:
        emit_json(payload)
        return
    from heqis import render

    getattr(render, renderer)(stdout, payload)


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _progress_enabled(json_out: bool) -> bool:
    return not json_out and sys.stdout.isatty()


@contextlib.contextmanager
def progress_bar(enabled: bool, label: str) -> Iterator[Any]:
    """A rich progress bar driven by the core's ``(what, done, total)`` callback; a no-op off a TTY."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[what]}"), TimeElapsedColumn(), console=stdout,
                  transient=True) as bar:
        task = bar.add_task(label, total=None, what="")

        def update(what: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, what=what)

        yield update


# ---------------------------------------------------------------------------------------------
# heqis data
# ---------------------------------------------------------------------------------------------
StartOpt = Annotated[datetime | None, typer.Option(
    formats=["%Y-%m-%d", "%Y%m%d"], help="First trade date (sample: 2018-01-02; tushare: 2018-01-01).")]
EndOpt = Annotated[datetime | None, typer.Option(
    formats=["%Y-%m-%d", "%Y%m%d"], help="Last trade date (sample: 2024-12-31; tushare: today).")]


@app.command(rich_help_panel="Research")
def data(
    ctx: typer.Context,
    source: Annotated[str, typer.Option(
        "--source", "-s", help="sample (bundled synthetic data, offline) | tushare | csv.")] = "sample",
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", "-d", help="Store directory (default ./heqis-data, or HEQIS_DATA_DIR).")] = None,
    watchlist: Annotated[Path | None, typer.Option(
        "--watchlist", "-w", help="Watchlist file (default ./标的参考.txt, else the bundled one).")] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    path: Annotated[Path | None, typer.Option(
        "--path", help="CSV file or folder (--source csv): date, open, high, low, close, volume[, amount].")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol of a single CSV file (default: the file name).")] = None,
    volume_unit: Annotated[str, typer.Option(help="CSV volume unit: shares | lots.")] = "shares",
    amount_unit: Annotated[str, typer.Option(help="CSV amount unit: yuan | thousand.")] = "yuan",
    features: Annotated[bool, typer.Option(help="Compute and store the indicator columns.")] = True,
    replace: Annotated[bool, typer.Option(help="Start the store over (needed to switch sources).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fetch, clean, adjust and store daily bars, and compute the indicator features.

    [bold]Examples[/]

      heqis data                                   # bundled synthetic sample set, offline
      HEQIS_TUSHARE_TOKEN=… heqis data -s tushare --start 2019-01-01
      heqis data -s csv --path prices.csv --symbol 600519.SH

    Re-running fetches only the dates the store lacks; an interrupted download resumes.
    The Tushare token comes from HEQIS_TUSHARE_TOKEN or a 0600 token file, never from a flag.
    """
    from heqis.config import load_settings
    from heqis.data.pipeline import DataRequest, run_data

    if volume_unit not in ("shares", "lots"):
        raise typer.BadParameter("use shares or lots", param_hint="--volume-unit")
    if amount_unit not in ("yuan", "thousand"):
        raise typer.BadParameter("use yuan or thousand", param_hint="--amount-unit")
    if source not in ("sample", "tushare", "csv"):
        raise typer.BadParameter(f"'{source}' is not one of sample, tushare, csv", param_hint="--source")
    if source == "csv" and path is None:
        raise typer.BadParameter("--source csv needs --path FILE (or a folder of CSV files)", param_hint="--path")
    with user_errors(ctx):
        settings = load_settings(data_dir=data_dir, data_watchlist=watchlist,
                                 data_start=start.date() if start else None,
                                 data_end=end.date() if end else None)
        req = DataRequest(source=source, data_dir=settings.data_dir, watchlist=settings.data_watchlist,
                          start=settings.data_start, end=settings.data_end, features=features,
                          replace=replace, csv_path=path, csv_symbol=symbol, volume_unit=volume_unit,
                          amount_unit=amount_unit)
        with progress_bar(_progress_enabled(json_out), f"data ({source})") as update:
            result = run_data(req, settings, progress=update)
    if json_out:
        emit_json(result.to_dict())
    else:
        from heqis.render import render_data_result

        render_data_result(stdout, result)


# ---------------------------------------------------------------------------------------------
# heqis train
# ---------------------------------------------------------------------------------------------
def epoch_line(report: Any, total: int) -> str:
    """One plain line per epoch: validation MSE and direction accuracy per generator, and events."""
    parts = [f"{r['generator']} mse {r['val_mse']:.3e} acc {r['val_acc']:.3f}{'*' if r['improved'] else ''}"
             for r in report.rows]
    events = f"  [{'; '.join(report.events)}]" if report.events else ""
    return f"epoch {report.epoch}/{total} {report.phase:<11} " + " | ".join(parts) + events


@app.command(rich_help_panel="Research")
def train(
    ctx: typer.Context,
    preset: Annotated[str, typer.Option("--preset", "-p", help="tiny (seconds on a laptop) | default | paper "
                                        "(the prototype's sizes).")] = "tiny",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", "-d", help="Data store (default ./heqis-data, "
                                                  "or HEQIS_DATA_DIR).")] = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated ts_codes (default: every stored symbol).")]
        = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override the preset's epochs (with --resume: "
                                               "extend the run).")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present) | cpu | cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of every random number generator.")] = 3407,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<time>-<preset>).")]
        = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last completed epoch.")] = False,
    search: Annotated[int | None, typer.Option(min=1, help="Run an Optuna study of N trials (lr, hidden size, "
                                               "window) instead of one run.")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL for --search (default: sqlite in "
                                                "--out); share it to search from several machines.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train the multi-GAN generators (G1 GRU, G2 BiLSTM, G3 Transformer+RoPE, G4 on CAE/t3-VAE latents).

    [bold]Examples[/]

      heqis train                                  # tiny preset on ./heqis-data, seconds
      heqis train -p default --epochs 60 -o runs/exp1
      heqis train --resume -o runs/exp1            # after Ctrl-C, or to extend with --epochs
      heqis train --search 20 -o runs/search       # Optuna study

    Each run directory holds checkpoints, the train-only scaler, manifest.json and metrics.csv.
    """
    from heqis.config import load_settings
    from heqis.train.run import TrainRequest

    if resume and out is None:
        raise typer.BadParameter("--resume needs --out RUN_DIR", param_hint="--resume")
    with user_errors(ctx):
        settings = load_settings(data_dir=data_dir)
        req = TrainRequest(data_dir=settings.data_dir, preset=preset,
                           symbols=[s.strip().upper() for s in symbols.split(",") if s.strip()] if symbols else None,
                           epochs=epochs, device=device, seed=seed, out=out, resume=resume)
        if req.out is None:
            from heqis.train.run import default_run_dir

            req.out = default_run_dir(preset)
        try:
            if search:
                from heqis.train.search import run_search

                result_dict = run_search(req, search, storage, log=lambda line: err.print(escape(line))).to_dict()
            else:
                result_dict = _train_with_progress(req, json_out).to_dict()
        except KeyboardInterrupt:
            err.print(f"[yellow]interrupted[/]: the last completed epoch is saved; resume with "
                      f"[bold]heqis train --resume --out {escape(str(req.out))}[/]", soft_wrap=True)
            raise typer.Exit(130) from None
    show(result_dict, json_out, "render_search_result" if search else "render_train_result")


def _train_with_progress(req: Any, json_out: bool) -> Any:
    from heqis.train.run import run_train

    total = [0]

    def log(line: str) -> None:
        if not json_out:
            err.print(f"[dim]{escape(line)}[/]")

    if not _progress_enabled(json_out):
        def plain(report: Any, trainer: Any) -> None:
            err.print(escape(epoch_line(report, trainer.preset.epochs)), soft_wrap=True, highlight=False)

        return run_train(req, on_epoch=plain, log=log)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[status]}"), console=stdout, transient=False) as bar:
        task = bar.add_task("train", total=None, status="encoders…")

        def tty(report: Any, trainer: Any) -> None:
            total[0] = trainer.preset.epochs
            bar.update(task, completed=report.epoch, total=total[0], status=report.phase)
            bar.console.print(escape(epoch_line(report, total[0])), soft_wrap=True, highlight=False)

        return run_train(req, on_epoch=tty, log=lambda line: bar.console.print(f"[dim]{escape(line)}[/]"))


# ---------------------------------------------------------------------------------------------
# heqis backtest, heqis check
# ---------------------------------------------------------------------------------------------
@app.command(rich_help_panel="Research")
def backtest(
    ctx: typer.Context,
    run_dir: Annotated[Path | None, typer.Argument(help="Training run to backtest (every generator × mode).")]
        = None,
    signals: Annotated[Path | None, typer.Option("--signals", help="Backtest your own signals instead: CSV or "
                                                 "parquet with symbol, trade_date, signal (-1/0/1).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", "-d", help="Data store (default: the run's, "
                                                  "or ./heqis-data with --signals).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default RUN_DIR/backtest, or "
                                             "./backtest with --signals).")] = None,
    rules: Annotated[list[str] | None, typer.Option("--rules", help="Override market rules, KEY=VALUE[,...], "
                                                    "e.g. slippage_bps=0,position_fraction=0.5.")] = None,
    score: Annotated[str, typer.Option(help="What the select segment is ranked by: sharpe | total_return | "
                                       "calmar | excess_return.")] = "sharpe",
    start: StartOpt = None,
    end: EndOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Backtest under A-share rules (T+1, limits, suspensions, lots, fees, stamp duty, slippage).

    With a RUN_DIR every generator × mode (cls: argmax class; reg: predicted return vs a threshold) is
    scored on the run's select segment; the chosen one per symbol is reported on the later test segment,
    so the reported numbers are not the ones the choice was tuned on. Writes best_metrics.csv,
    candidates.csv, trades.parquet, equity.parquet, portfolio.parquet and summary.json.

    [bold]Examples[/]

      heqis backtest runs/exp1
      heqis backtest runs/exp1 --rules slippage_bps=0 --score total_return
      heqis backtest --signals my_signals.csv -d heqis-data
    """
    from heqis.backtest.rules import MarketRules

    if (run_dir is None) == (signals is None):
        raise typer.BadParameter("give a RUN_DIR or --signals FILE (one of them)", param_hint="RUN_DIR")
    with user_errors(ctx):
        market = MarketRules().with_overrides(rules)
        if signals is not None:
            from heqis.backtest.run import backtest_signals
            from heqis.config import load_settings

            settings = load_settings(data_dir=data_dir)
            result = backtest_signals(signals, settings.data_dir, market, out,
                                      start=_ts(start), end=_ts(end))
        else:
            from heqis.backtest.run import backtest_run

            with progress_bar(_progress_enabled(json_out), "backtest") as update:
                result = backtest_run(run_dir, data_dir, market, score, out, progress=update)  # type: ignore[arg-type]
    show(result.to_dict(), json_out, "render_backtest_result")


def _ts(value: datetime | None) -> Any:
    import pandas as pd

    return pd.Timestamp(value.date()) if value else None


check_app = typer.Typer(help="Guards for research code: look-ahead in features and signals.", no_args_is_help=True)
app.add_typer(check_app, name="check", rich_help_panel="Research")


@check_app.command("lookahead")
def check_lookahead_cmd(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(help="Training run whose features and generators are checked.")],
    points: Annotated[int, typer.Option(min=1, help="How many cut days T to test per symbol.")] = 8,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated ts_codes (default: up to 3 of the run).")]
        = None,
    features: Annotated[str | None, typer.Option(help="Check your own feature function instead, as "
                                                 "'module:function' (bars DataFrame in, bars with features out).")]
        = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", "-d", help="Data store (default: the run's).")]
        = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Perturb every bar after day T and report any feature or signal at or before T that changed.

    After freqtrade's lookahead-analysis: a feature that peeks at the future changes its past values when
    the future changes. Exit code 1 when something leaks.
    """
    from heqis.backtest.lookahead import check_lookahead, load_feature_function

    with user_errors(ctx):
        fn = load_feature_function(features) if features else None
        report = check_lookahead(run_dir, data_dir=data_dir, points=points,
                                 symbols=[s.strip().upper() for s in symbols.split(",")] if symbols else None,
                                 feature_fn=fn)
    if json_out:
        emit_json(report.to_dict())
    else:
        from heqis.render import render_lookahead

        render_lookahead(stdout, report)
    if report.leaks:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------
# heqis export, heqis convert, heqis bench
# ---------------------------------------------------------------------------------------------
@app.command(rich_help_panel="Deploy")
def export(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(help="Training run to export.")],
    generator: Annotated[list[str] | None, typer.Option("--generator", "-g", help="Generator to export "
                                                        "(repeatable; default: all of the run's).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Artifact folder.")] = Path("deploy_output"),
    data_dir: Annotated[Path | None, typer.Option("--data-dir", "-d", help="Data store (default: the run's).")]
        = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Export ONNX models (opset 17, dynamic batch), routing.json, scaler_params.json and a sha256 manifest.

    Every model is run in ONNX Runtime on real windows at batch 1 and 32 and compared with torch;
    the export fails (writing nothing) when a difference exceeds 1e-4. routing.json takes the
    backtest's choice per symbol when RUN_DIR/backtest exists, else the best generator on validation.
    """
    from heqis.export.onnx_export import export_run

    with user_errors(ctx):
        result = export_run(run_dir, generator, out, data_dir)
    show(result.to_dict(), json_out, "render_export_result")


@app.command(rich_help_panel="Deploy")
def convert(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="tensorrt (on the Jetson) | rknn (simulated here, for the "
                                    "RK3568).")],
    artifacts: Annotated[Path, typer.Option("--artifacts", "-a", help="Artifact folder from heqis export.")] =
        Path("deploy_output"),
    generator: Annotated[list[str] | None, typer.Option("--generator", "-g", help="Generator (repeatable; default "
                                                        "all).")] = None,
    precision: Annotated[str, typer.Option(help="TensorRT: fp32 | fp16 | int8.")] = "fp16",
    target: Annotated[str, typer.Option(help="RKNN target platform.")] = "rk3568",
    quantize: Annotated[bool, typer.Option(help="RKNN: INT8-quantize on the shipped real windows.")] = False,
    dry_run: Annotated[bool, typer.Option(help="TensorRT: print the trtexec command instead of building.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Convert exported ONNX models: TensorRT engines (FP16/INT8) or RKNN models (checked in the simulator).

    [bold]Examples[/]

      heqis convert --to rknn                      # needs `make rknn-env`; prints simulator parity
      heqis convert --to rknn --quantize -g G1
      heqis convert --to tensorrt --precision int8 --dry-run
    """
    if to not in ("tensorrt", "rknn"):
        raise typer.BadParameter(f"'{to}' is not tensorrt or rknn", param_hint="--to")
    with user_errors(ctx):
        from heqis.export.artifacts import verify

        gens = generator or list(verify(artifacts)["generators"])
        if to == "rknn":
            from heqis.export.rknn_convert import convert_rknn

            results = []
            for gid in gens:
                r = convert_rknn(artifacts, gid, target, quantize)
                results.append(r.to_dict())
                if not json_out:
                    stdout.print(f"{gid}: {r.path} · {'INT8' if r.quantized else 'float'} · simulator vs ONNX "
                                 f"Runtime max |diff|: return {r.reg_max_abs_diff:.2e}, class probabilities "
                                 f"{r.prob_max_abs_diff:.2e}, logits {r.cls_max_abs_diff:.2e} · direction "
                                 f"agreement {r.direction_agreement:.0%}")
            if json_out:
                emit_json({"to": "rknn", "results": results})
            return
        from heqis.export.tensorrt_convert import convert_tensorrt

        payload = convert_tensorrt(artifacts, gens, precision, dry_run)
    if json_out:
        emit_json(payload)
    else:
        for line in payload["lines"]:
            stdout.print(escape(line), soft_wrap=True)


bench_app = typer.Typer(help="Benchmarks of the installed system.", no_args_is_help=True)
app.add_typer(bench_app, name="bench", rich_help_panel="Deploy")


@bench_app.command("backends")
def bench_backends_cmd(
    ctx: typer.Context,
    artifacts: Annotated[Path, typer.Option("--artifacts", "-a", help="Artifact folder from heqis export.")] =
        Path("deploy_output"),
    generator: Annotated[list[str] | None, typer.Option("--generator", "-g", help="Generator (repeatable).")]
        = None,
    backend: Annotated[list[str] | None, typer.Option("--backend", "-b", help="Backend (repeatable; default all "
                                                      "available).")] = None,
    calls: Annotated[int, typer.Option(min=10, help="Timed batch-1 calls after warm-up.")] = 200,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Batch-1 latency (p50/p99/max) and batch-64 throughput of every available backend, same model and inputs."""
    from heqis.bench import bench_backends

    with user_errors(ctx):
        result = bench_backends(artifacts, generator, backend, calls)
    show(result.to_dict(), json_out, "render_bench")


# ---------------------------------------------------------------------------------------------
# heqis demo
# ---------------------------------------------------------------------------------------------
@app.command(rich_help_panel="Getting started")
def demo(
    ctx: typer.Context,
    root: Annotated[Path, typer.Option("--dir", help="Folder of the demo's data store, run and artifacts.")] =
        Path("heqis-demo"),
    fleet: Annotated[bool, typer.Option(help="End by starting the local fleet (gateway + 2 brains) replaying "
                                        "the sample data; `heqis down` stops it.")] = True,
    watch: Annotated[float, typer.Option(help="Seconds of live fleet counters to print.")] = 6.0,
    base_port: Annotated[int | None, typer.Option(help="Take the fleet's ports from here on (default: 5555… for "
                                                  "brains, 5560/5561/8765).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run the whole chain on the bundled synthetic sample data and show the result.

    data (sample) → train (tiny preset) → backtest → export → local fleet (gateway + 2 brains replaying
    the sample data) → the live console (on a terminal; q quits). Headless (no TTY) it prints a summary
    and exits 0. The fleet keeps running for `heqis status` / `heqis console` until `heqis down`.
    """
    from heqis.config import load_settings
    from heqis.demo import run_demo, start_fleet

    def plain(report: Any, trainer: Any) -> None:
        if not json_out:
            err.print(escape(epoch_line(report, trainer.preset.epochs)), soft_wrap=True, highlight=False)

    with user_errors(ctx):
        settings = load_settings()
        with progress_bar(_progress_enabled(json_out), "demo: data") as update:
            result = run_demo(root, settings, progress=update, on_epoch=plain,
                              log=lambda line: None if json_out else err.print(f"[dim]{escape(line)}[/]"))
        status = start_fleet(root, base_port=base_port) if fleet else None
    if json_out:
        emit_json({**result.to_dict(), "fleet": status})
        return
    from heqis.render import (
        render_backtest_result,
        render_data_result,
        render_export_result,
        render_status,
        render_train_result,
    )

    stdout.rule("[bold]HEQIS demo[/] · step 1/7: data")
    render_data_result(stdout, result.data)
    stdout.rule("[bold]HEQIS demo[/] · step 2/7: train (tiny preset)")
    render_train_result(stdout, result.train)
    stdout.rule("[bold]HEQIS demo[/] · step 3/7: backtest")
    render_backtest_result(stdout, result.backtest)
    stdout.rule("[bold]HEQIS demo[/] · step 4/7: export")
    render_export_result(stdout, result.export)
    if status is not None:
        import time

        from heqis.runtime.local_fleet import STATE_FILE, control, read_state

        stdout.rule("[bold]HEQIS demo[/] · step 5/7: local fleet (gateway + 2 brains, replaying 2024-H2)")
        render_status(stdout, status)
        address = read_state(STATE_FILE)["control"]
        for _ in range(max(1, int(watch))):
            time.sleep(1.0)
            t = control(address, {"cmd": "telemetry"}, 2.0)
            if t is None:
                break
            gw = t["nodes"][0]["counters"]
            lat = t["latency"]
            stdout.print(f"signals {gw.get('signals', 0):>5} · queue {t['queue_depth']:>3} · in flight "
                         f"{gw.get('in_flight', 0):>2} · drops {t['drops']} · p50 {lat['p50_us'] or 0:>5.0f} µs · "
                         f"p99 {lat['p99_us'] or 0:>5.0f} µs · {lat['throughput_per_s']:>5.1f}/s")
        stdout.print("[dim]the fleet keeps running: `heqis status` shows it, `heqis down` stops it[/]")
        if sys.stdout.isatty() and sys.stdin.isatty():
            from heqis_console.app import run_console

            state = read_state(STATE_FILE)
            run_console(state["telemetry"], state["control"])   # step 6/7: the live console (q quits)
    stdout.print("\n[dim]more: `heqis console` (live) · `heqis console --run heqis-demo/run` (research views) · "
                 "`heqis bench backends -a heqis-demo/deploy_output` · `heqis bench runtime -a "
                 "heqis-demo/deploy_output -d heqis-demo/data`[/]")


# ---------------------------------------------------------------------------------------------
# heqis up, down, status, logs — the fleet (local processes, or SSH hosts through heqis_remote)
# ---------------------------------------------------------------------------------------------
FleetOpt = Annotated[Path | None, typer.Option("--fleet", "-f", help="fleet.toml (default: ./fleet.toml when it "
                                               "exists, else the local fleet).")]


def _fleet_file(fleet: Path | None) -> Path | None:
    if fleet is not None:
        return fleet
    return Path("fleet.toml") if Path("fleet.toml").exists() and not Path(".heqis/local-fleet.json").exists() \
        else None


@app.command(rich_help_panel="Edge runtime")
def up(
    ctx: typer.Context,
    fleet: FleetOpt = None,
    local: Annotated[bool, typer.Option("--local", help="Run the fleet on this machine instead.")] = False,
    rollback: Annotated[bool, typer.Option(help="Go back to each host's previous release.")] = False,
    trust_new_hosts: Annotated[bool, typer.Option(help="Accept and record host keys not in known_hosts "
                                                  "(first contact only).")] = False,
    artifacts: Annotated[Path, typer.Option("--artifacts", "-a", help="--local: artifact folder.")] =
        Path("deploy_output"),
    data_dir: Annotated[Path, typer.Option("--data-dir", "-d", help="--local: data store to replay.")] =
        Path("heqis-data"),
    brains: Annotated[int, typer.Option(min=1, max=16, help="--local: number of brains.")] = 1,
    backend: Annotated[str, typer.Option(help="--local: brain backend.")] = "onnxruntime",
    rate: Annotated[float, typer.Option(help="--local: replay bars per second (0 = as fast as possible).")] = 0.0,
    start: StartOpt = None,
    end: EndOpt = None,
    symbols: Annotated[str | None, typer.Option(help="--local: comma-separated ts_codes to replay.")] = None,
    base_port: Annotated[int, typer.Option(help="--local: first brain port (brain i uses base+2i and +1).")] = 5555,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Bring the fleet up: over SSH from fleet.toml (idempotent), or --local on this machine.

    Over SSH: strict host keys, parallel to every host, upload only what changed into releases/<id>
    with a `current` link, offline install from a wheelhouse, secrets as 0600 files, systemd units or
    setsid + pidfile, then wait until the gateway reports every brain's heartbeat.
    """
    with user_errors(ctx):
        fleet_file = None if local else _fleet_file(fleet)
        if fleet_file is None:
            if not local:
                raise HeqisError("no fleet.toml here", hint="write one (README, section Fleet), pass --fleet FILE, "
                                 "or use --local")
            from heqis.runtime.local_fleet import LocalFleetRequest, up_local

            doc = up_local(LocalFleetRequest(
                artifacts=artifacts, data_dir=data_dir, brains=brains, base_port=base_port, backend=backend, rate=rate,
                start=start.date().isoformat() if start else None, end=end.date().isoformat() if end else None,
                symbols=[s.strip().upper() for s in symbols.split(",")] if symbols else None))
            show(doc, json_out, "render_status")
            return
        from heqis_remote.deploy import rollback_fleet, up_fleet
        from heqis_remote.fleet import load_fleet

        cfg = load_fleet(fleet_file)
        with progress_bar(_progress_enabled(json_out), "up") as update:
            def report(host: str, step: str) -> None:
                if update is not None:
                    update(f"{host}: {step}", 0, len(cfg.hosts))
                elif not json_out:
                    err.print(f"[dim]{host}: {step}[/]")

            result = rollback_fleet(cfg, report) if rollback else up_fleet(cfg, report, trust_new_hosts)
    show(result.to_dict(), json_out, "render_up")
    if not result.ok:
        raise typer.Exit(1)


@app.command(rich_help_panel="Edge runtime")
def status(
    ctx: typer.Context,
    fleet: FleetOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print DESIGN.md §8's status document.")] = False,
    watch: Annotated[float, typer.Option(help="Repeat every N seconds (0 = once).")] = 0.0,
) -> None:
    """Each process of the fleet: reachable, alive, heartbeat age, version, artifact hash, counters."""
    import time

    with user_errors(ctx):
        fleet_file = _fleet_file(fleet)
        while True:
            if fleet_file is None:
                from heqis.runtime.local_fleet import status_local

                doc = status_local()
            else:
                from heqis_remote.deploy import status_fleet
                from heqis_remote.fleet import load_fleet

                doc = status_fleet(load_fleet(fleet_file))
            show(doc, json_out, "render_status")
            if watch <= 0:
                break
            time.sleep(watch)


@app.command(rich_help_panel="Edge runtime")
def down(
    ctx: typer.Context,
    fleet: FleetOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds between SIGTERM and SIGKILL.")] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Stop the fleet (the gateway first): SIGTERM, then SIGKILL after --timeout."""
    with user_errors(ctx):
        fleet_file = _fleet_file(fleet)
        if fleet_file is None:
            from heqis.runtime.local_fleet import down_local

            results = down_local(timeout=timeout)
        else:
            from heqis_remote.deploy import down_fleet
            from heqis_remote.fleet import load_fleet

            results = down_fleet(load_fleet(fleet_file), timeout)
    if json_out:
        emit_json({"stopped": results})
    else:
        for r in results:
            state = "stopped" if r.get("stopped") else \
                ("UNREACHABLE: " + r["error"] if "error" in r else "STILL RUNNING")
            stdout.print(f"{r['name']}: {state}{' (was not running)' if r.get('was_running') is False else ''}")
    if not all(r.get("stopped") for r in results):
        raise typer.Exit(1)


@app.command(rich_help_panel="Edge runtime")
def logs(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(help="Host (fleet.toml name) or local node (gateway, brain-1, …).")],
    fleet: FleetOpt = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, help="How many lines.")] = 50,
) -> None:
    """The last lines of a host's (or local node's) log."""
    with user_errors(ctx):
        fleet_file = _fleet_file(fleet)
        if fleet_file is None:
            from heqis.runtime.local_fleet import read_state

            state = read_state()
            node = next((n for n in [state["gateway"], *state["brains"]] if n["name"] == host), None)
            if node is None:
                raise HeqisError(f"no local node named '{host}'",
                                 hint=f"nodes: {', '.join(n['name'] for n in [state['gateway'], *state['brains']])}")
            text = "\n".join(Path(node["log"]).read_text(errors="replace").splitlines()[-lines:]) + "\n"
        else:
            from heqis_remote.deploy import logs_fleet
            from heqis_remote.fleet import load_fleet

            text = logs_fleet(load_fleet(fleet_file), host, lines)
    typer.echo(text, nl=False)


# ---------------------------------------------------------------------------------------------
# heqis console
# ---------------------------------------------------------------------------------------------
def console_addresses(connect: str | None, fleet: Path | None) -> tuple[str, str | None, Path | None]:
    """(telemetry, control, keys dir) of the gateway to watch: --connect, fleet.toml, or the local fleet."""
    if connect:
        host, _, port = connect.removeprefix("tcp://").rpartition(":")
        control = f"tcp://{host}:{int(port) + 1}" if port.isdigit() else None
        return connect if connect.startswith("tcp://") else f"tcp://{connect}", control, None
    fleet_file = _fleet_file(fleet)
    if fleet_file is not None:
        from heqis_remote.fleet import load_fleet

        cfg = load_fleet(fleet_file)
        gw = cfg.gateway.host
        return (f"tcp://{gw}:{cfg.fleet.telemetry_port}", f"tcp://{gw}:{cfg.fleet.control_port}", cfg.fleet.keys)
    from heqis.runtime.local_fleet import read_state

    state = read_state()
    return state["telemetry"], state["control"], None


@app.command(rich_help_panel="Edge runtime")
def console(
    ctx: typer.Context,
    connect: Annotated[str | None, typer.Option(help="Gateway telemetry address, tcp://HOST:PORT (its control "
                                                "socket is taken as PORT+1).")] = None,
    fleet: FleetOpt = None,
    run: Annotated[Path | None, typer.Option("--run", help="Research views of a training run instead: curves, "
                                             "backtest table, K-line with trades.")] = None,
    keys_dir: Annotated[Path | None, typer.Option("--keys", help="CURVE key folder (console identity).")] = None,
) -> None:
    """The full-screen operator console: fleet, latency, queue, signals, K-line, alerts (live); or --run views.

    With no option it attaches to the local fleet of this directory (.heqis/local-fleet.json), else
    to the gateway named in fleet.toml. Keys: ? help · q quit · / symbol · p pause · r reset a brain.
    """
    with user_errors(ctx):
        if run is not None:
            from heqis.train.run import read_run_manifest

            read_run_manifest(run)
            telemetry, control, keys_path = None, None, None
        else:
            telemetry, control, keys_path = console_addresses(connect, fleet)
        keys = None
        if keys_dir or keys_path:
            from heqis.runtime.security import KeyConfig

            keys = KeyConfig(keys_dir or keys_path, "console")  # type: ignore[arg-type]
        if not sys.stdout.isatty():
            raise HeqisError("the console needs a terminal", hint="use `heqis status --watch 1` in scripts")
        from heqis_console.app import run_console

        run_console(telemetry, control, keys, run)


def _register_runtime() -> None:
    from heqis.cli_runtime import register

    register(app)


_register_runtime()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
