"""The "Research" panel: ``heqis data``, ``train``, ``backtest``, ``check lookahead`` — thin shells over the core."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from heqis.cli.common import (
    DataDirOpt,
    JsonOpt,
    SymbolsOpt,
    date_option,
    day,
    dim_line,
    err,
    interactive,
    parse_symbols,
    progress,
    settings,
    show,
    stdout,
    usage_error,
    user_errors,
)
from heqis.errors import HeqisError

PANEL = "Research"
Preset = Literal["tiny", "default", "paper"]
Device = Literal["auto", "cpu", "cuda"]
Score = Literal["sharpe", "total_return", "calmar", "excess_return", "balanced_acc"]


def data(
    ctx: typer.Context,
    source: Annotated[Literal["sample", "tushare", "csv", "synthetic"], typer.Option(
        "--source", "-s", help="sample (bundled synthetic data, offline) | tushare | csv | synthetic (an "
        "invented panel of --symbols N stocks, offline).")] = "sample",
    data_dir: DataDirOpt = None,
    watchlist: Annotated[Path | None, typer.Option(
        "--watchlist", "-w", metavar="FILE", help="Watchlist (default ./标的参考.txt, else the bundled one; "
        "\\[data] watchlist).")] = None,
    start: Annotated[datetime | None, date_option("First trade date to fetch (sample: from 2018-01-02; tushare: "
                                      "2018-01-01)")] = None,
    end: Annotated[datetime | None, date_option("Last trade date to fetch (sample: up to 2024-12-31; tushare: "
                                                "today)")] = None,
    path: Annotated[Path | None, typer.Option(
        "--path", metavar="PATH", help="--source csv: a CSV file or a folder of them (date, open, high, low, "
        "close, volume[, amount]).")] = None,
    symbol: Annotated[str | None, typer.Option(metavar="CODE", help="--source csv: the symbol of a single file "
                                               "(default: the file name).")] = None,
    volume_unit: Annotated[Literal["shares", "lots"], typer.Option(help="--source csv: the volume column's "
                                                                   "unit.")] = "shares",
    amount_unit: Annotated[Literal["yuan", "thousand"], typer.Option(help="--source csv: the amount column's "
                                                                     "unit.")] = "yuan",
    market: Annotated[Literal["cn", "us", "none"] | None, typer.Option(
        help="--source csv: whose trading rules the backtest applies — cn (A-share limits, stamp duty, "
             "100-share lots, 242 sessions a year) or us/none (no limits or stamp duty, 1-share lots, 252). "
             "Default: cn for Tushare-style codes (600519.SH), else none.")] = None,
    features: Annotated[bool, typer.Option(help="Keep the feature cache (features/*.parquet) current; "
                                           "--no-features drops it (research computes inputs from bars "
                                           "either way).")] = True,
    replace: Annotated[bool, typer.Option("--replace", help="Start the store over (needed to switch "
                                          "sources).")] = False,
    n_symbols: Annotated[int, typer.Option("--symbols", min=1, metavar="N", help="--source synthetic: how many "
                                           "stocks (plus the 000300.SH benchmark).")] = 100,
    years: Annotated[int, typer.Option(min=1, max=18, metavar="Y", help="--source synthetic: years of bars "
                                       "up to --end (default 2024-12-31).")] = 7,
    planted_ic: Annotated[float, typer.Option("--planted-ic", metavar="X", help="--source synthetic: plant a "
                                              "daily cross-sectional IC of X between ret1 at T and the "
                                              "T->T+1 return (0: pure noise).")] = 0.0,
    seed: Annotated[int | None, typer.Option(metavar="S", help="--source synthetic: random seed (same seed, "
                                             "same panel).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, metavar="K", help="csv, synthetic, sample: build "
                                                "symbols in K processes (default: the cores; 1 below 200 "
                                                "symbols). tushare runs one symbol at a time (it is "
                                                "rate-limited).")] = None,
    cluster: Annotated[str | None, typer.Option(metavar="ADDR", help="csv, synthetic, sample: build symbols on "
                                                "the Dask scheduler at ADDR (tcp://HOST:8786; the store "
                                                "must be on a shared path), or 'local'.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Fetch, clean, adjust and store daily bars, and keep the feature cache current.

    [bold]Examples[/]

      heqis data                                   # bundled synthetic sample set, offline
      HEQIS_TUSHARE_TOKEN=… heqis data -s tushare --start 2019-01-01
      heqis data -s csv --path prices.csv --symbol 600519.SH
      heqis data -s csv --path csv_folder/ --workers 4
      heqis data -s synthetic --symbols 5000 --planted-ic 0.05 -d syn-data   # SYNTHETIC panel

    Re-running fetches only the dates the store lacks; an interrupted download resumes. A store
    written by an older heqis is upgraded in place; an interrupted csv or synthetic run resumes
    where it stopped when run again. The Tushare token comes from
    HEQIS_TUSHARE_TOKEN or a 0600 token file, never from a flag.
    """
    from heqis.data.pipeline import DataRequest, run_data

    if source == "csv" and path is None:
        raise usage_error("--path", "--source csv needs --path FILE (or a folder of CSV files)")
    if source != "synthetic":
        for name, flag in (("n_symbols", "--symbols"), ("years", "--years"), ("planted_ic", "--planted-ic"),
                           ("seed", "--seed")):
            if given_on_command_line(ctx, name):
                raise usage_error(flag, f"{flag} shapes a synthetic panel: it needs --source synthetic")
    if market not in (None, "cn") and source != "csv":
        raise usage_error("--market", f"--source {source} holds A-shares (market cn); --market {market} is for "
                                      "--source csv")
    with user_errors(ctx):
        s = settings(data_dir=data_dir, data_watchlist=watchlist, data_start=day(start), data_end=day(end))
        req = DataRequest(source=source, data_dir=s.data_dir, watchlist=s.data_watchlist, start=s.data_start,
                          end=s.data_end, features=features, replace=replace, csv_path=path, csv_symbol=symbol,
                          volume_unit=volume_unit, amount_unit=amount_unit, symbols=n_symbols, years=years,
                          planted_ic=planted_ic, seed=seed, workers=workers, cluster=cluster, market=market)
        with progress(json_out, f"data ({source})") as update:
            result = run_data(req, s, progress=update)
    show(result, json_out, "render_data_result")


def parse_generators(text: str | None) -> list[str] | None:
    """``--generators G1,g3`` → ["G1", "G3"] (None when not given; an empty list the preset refuses)."""
    return None if text is None else [g.strip().upper() for g in text.split(",") if g.strip()]


def given_on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` was given (not defaulted); compared by name because typer ships its
    own copy of click, whose ``ParameterSource`` is another class than ``click.core``'s."""
    return getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")


def epoch_line(report: Any, total: int) -> str:
    """One plain line per epoch: validation MSE and direction accuracy per generator, and events."""
    parts = [f"{r['generator']} mse {r['val_mse']:.3e} acc {r['val_acc']:.3f}{'*' if r['improved'] else ''}"
             for r in report.rows]
    events = f"  [{'; '.join(report.events)}]" if report.events else ""
    return f"epoch {report.epoch}/{total} {report.phase:<11} " + " | ".join(parts) + events


def train(
    ctx: typer.Context,
    preset: Annotated[Preset, typer.Option("--preset", "-p", help="tiny (seconds on a laptop) | default | "
                                           "paper (the prototype's sizes).")] = "tiny",
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", "-d", metavar="DIR", help="Data store (default ./heqis-data, or with --resume the run's "
        "own; \\[data] dir, HEQIS_DATA_DIR).")] = None,
    symbols: SymbolsOpt = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override the preset's epochs (with --resume: "
                                               "extend the run).")] = None,
    device: Annotated[Device, typer.Option(help="auto (CUDA when present) | cpu | cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of every random number generator.")] = 3407,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="RUN_DIR", help="Run directory (default "
                                             "runs/<time>-<preset>; \\[train] runs_dir).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last completed "
                                         "epoch.")] = False,
    search: Annotated[int | None, typer.Option(min=1, metavar="N", help="Run an Optuna study of N trials (lr, "
                                               "hidden size, window) instead of one run; N counts this "
                                               "command's trials, shared by its --workers.")] = None,
    storage: Annotated[str | None, typer.Option(metavar="URL", help="Optuna storage for --search: default "
                                                "RUN_DIR/optuna.journal (safe for several processes); "
                                                "journal:PATH or PATH.journal; postgresql://USER:PASS@HOST/DB "
                                                "to search from several machines.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, metavar="K", help="--search: K processes on this "
                                                "machine work on the study (torch threads split between "
                                                "them).")] = None,
    from_search: Annotated[Path | None, typer.Option("--from-search", metavar="RUN_DIR", help="Train with the "
                                                     "best trial of the search in RUN_DIR (its search.json), "
                                                     "with its preset, epochs and seed unless given.")] = None,
    params_file: Annotated[Path | None, typer.Option("--params", metavar="FILE", help="Train with the lr, "
                                                     "hidden and window of a JSON file, e.g. "
                                                     '{"lr": 0.002, "hidden": 32, "window": 45}.')] = None,
    target: Annotated[Literal["close", "open"] | None, typer.Option(
        "--target", help="What the models predict: close (close T → close T+1; the default) or open (open "
        "T+1 → open T+2, what a signal decided at T's close and filled at the next open earns).")] = None,
    generators: Annotated[str | None, typer.Option("--generators", metavar="G1,G3", help="Ablation: train only "
                                                   "these generators of the preset.")] = None,
    adversarial: Annotated[bool, typer.Option("--adversarial/--no-adversarial", help="Ablation: "
                                              "--no-adversarial trains every epoch supervised (same epochs, "
                                              "same knowledge exchanges, no discriminators).")] = True,
    distill: Annotated[bool, typer.Option("--distill/--no-distill", help="Ablation: --no-distill skips the "
                                          "best → worst knowledge distillation.")] = True,
    cross: Annotated[bool, typer.Option("--cross/--no-cross", help="Ablation: --no-cross skips the "
                                        "cross-finetune step.")] = True,
    game: Annotated[Literal["maa", "legacy"] | None, typer.Option(
        "--game", help="The multi-agent game: maa (the default: each generator its own look-back, fakes "
        "judged under their own predicted class, weights adapted to validation losses, best G against best "
        "D kept only if validation improves) or legacy (the first trainer: one window, fixed weights).")] = None,
    class_weights: Annotated[Literal["balanced", "none"] | None, typer.Option(
        "--class-weights", help="Direction head's cross-entropy: balanced (weights from the train segment's "
        "classes, so always answering 'up' does not pay; the default) or none.")] = None,
    max_train_windows: Annotated[int | None, typer.Option("--max-train-windows", min=1, metavar="N", help="Use "
                                                          "at most N train windows (a seeded draw; overrides "
                                                          "the preset's cap, recorded in the run manifest).")] = None,
    watchdog: Annotated[bool, typer.Option("--watchdog", help="Also train the gateway's data-quality model "
                                           "(watchdog.pt) at the end. With --out a finished run: train only "
                                           "the watchdog into it, the generators stay as they are.")] = False,
    watchdog_fpr: Annotated[float, typer.Option("--watchdog-fpr", min=0.0001, max=0.2, metavar="FPR", help="The "
                                                "watchdog's threshold flags this share of clean validation "
                                                "windows.")] = 0.005,
    json_out: JsonOpt = False,
) -> None:
    """Train the multi-GAN generators (G1 GRU, G2 BiLSTM, G3 Transformer+RoPE, G4 on CAE/t3-VAE latents).

    [bold]Examples[/]

      heqis train                                  # tiny preset on ./heqis-data, seconds
      heqis train -p default --epochs 60 -o runs/exp1
      heqis train --resume -o runs/exp1            # after Ctrl-C, or to extend with --epochs
      heqis train --search 20 --workers 2 -o runs/s   # 20 trials, 2 processes
      heqis train --from-search runs/s -o runs/best   # train the best trial
      heqis train --params best.json                  # lr, hidden, window
      heqis train --watchdog -o runs/exp1             # add the data-quality model to a finished run
      heqis train --no-adversarial -o runs/sup        # ablation: the same schedule without the game

    [bold]Search from several machines[/]: the same data store on each, one database:

      heqis train --search 30 --workers 4 -o runs/s1 \\
        --storage postgresql://heqis:PASS@db-host/optuna

    Each command adds its N trials to the one study (one per data store, preset and
    --symbols); its search.json lists every trial the study held when it finished.
    --from-search takes the search's preset, epochs, seed and symbols unless given again,
    and refuses a store with other data.

    Each run directory holds checkpoints, the train-only scaler, manifest.json and metrics.csv.
    \\[features] window and flat_band in heqis.toml (or HEQIS_FEATURES_*) override the preset's.
    """
    from heqis.train.run import TrainRequest, default_run_dir

    if resume and out is None:
        raise usage_error("--resume", "--resume needs --out RUN_DIR")
    if workers is not None and not search:
        raise usage_error("--workers", "--workers needs --search N (a single run trains in one process)")
    if storage is not None and not search:
        raise usage_error("--storage", "--storage needs --search N")
    if watchdog and search:
        raise usage_error("--watchdog", "--watchdog goes with one run, not --search")
    if given_on_command_line(ctx, "watchdog_fpr") and not watchdog:
        raise usage_error("--watchdog-fpr", "--watchdog-fpr needs --watchdog")
    if max_train_windows is not None and resume:
        raise usage_error("--max-train-windows", "a resumed run keeps the train windows it started with")
    if from_search is not None and params_file is not None:
        raise usage_error("--params", "give --from-search RUN_DIR or --params FILE, not both")
    chosen_opt = "--from-search" if from_search is not None else "--params" if params_file is not None else None
    if chosen_opt and (search or resume):
        raise usage_error(chosen_opt, f"{chosen_opt} trains one new run: it does not go with "
                          f"{'--search' if search else '--resume'}")
    ablations = {"generators": parse_generators(generators),
                 "adversarial": None if adversarial else False, "distill_every": None if distill else 0,
                 "cross_every": None if cross else 0, "game": game}
    for name, flag, value in (("class weights", "--class-weights", class_weights), ("target", "--target", target),
                              ("game", "--game", game),
                              ("generators", "--generators", generators),
                              ("schedule", "--no-adversarial", ablations["adversarial"]),
                              ("schedule", "--no-distill", ablations["distill_every"]),
                              ("schedule", "--no-cross", ablations["cross_every"])):
        if value is not None and resume:
            raise usage_error(flag, f"a resumed run keeps the {name} it started with")
    with user_errors(ctx):
        s = settings(data_dir=data_dir)
        overrides = {k: v for k, v in (("window", s.features_window), ("flat_band", s.features_flat_band))
                     if v is not None and not resume}
        if class_weights is not None:
            overrides["class_weights"] = class_weights
        if target is not None:
            overrides["target"] = target
        overrides.update({k: v for k, v in ablations.items() if v is not None})
        if max_train_windows is not None:
            overrides["max_train_windows"] = max_train_windows
        if watchdog and out is not None and not resume and _finished_run(out):
            from heqis.train.watchdog import WatchdogConfig, train_watchdog

            wd = train_watchdog(out, data_dir, config=WatchdogConfig(fpr=watchdog_fpr, seed=seed),
                                log=lambda line: None if json_out else dim_line(line))
            _show_watchdog(wd.to_dict(), json_out, alone=True)
            return
        chosen = None
        if chosen_opt:
            from heqis.train.provenance import params_from_file, params_from_search

            chosen = params_from_search(from_search) if from_search is not None else params_from_file(params_file)

            def given(name: str) -> bool:
                return given_on_command_line(ctx, name)

            preset = preset if given("preset") or not chosen.preset else chosen.preset  # type: ignore[assignment]
            epochs = epochs if given("epochs") or chosen.epochs is None else chosen.epochs
            seed = seed if given("seed") or chosen.seed is None else chosen.seed
            symbols = symbols if given("symbols") or not chosen.symbols else ",".join(chosen.symbols)
            overrides = {**chosen.overrides, **overrides}
        req = TrainRequest(data_dir=data_dir or (None if resume else s.data_dir), preset=preset,
                           symbols=parse_symbols(symbols), epochs=epochs, device=device, seed=seed,
                           out=out or default_run_dir(preset, s.train_runs_dir), resume=resume, overrides=overrides,
                           params=chosen.params if chosen else {}, params_from=chosen.source if chosen else None)
        try:
            if search:
                from heqis.train.search import run_search

                result_dict = run_search(req, search, storage, workers=workers or 1,
                                         log=lambda line: err.print(escape(line), soft_wrap=True)).to_dict()
            else:
                result_dict = _train_with_progress(req, json_out).to_dict()
                result_dict["evaluation"] = _validation_part(Path(result_dict["run_dir"]), json_out)
                if watchdog:
                    from heqis.train.watchdog import WatchdogConfig, train_watchdog

                    result_dict["watchdog"] = train_watchdog(
                        Path(result_dict["run_dir"]), req.data_dir, config=WatchdogConfig(fpr=watchdog_fpr, seed=seed),
                        log=lambda line: None if json_out else dim_line(line)).to_dict()
        except KeyboardInterrupt:
            if search:
                err.print("[yellow]interrupted[/]: finished trials are in the study; the same command "
                          "continues it", soft_wrap=True)
                raise typer.Exit(130) from None
            err.print(f"[yellow]interrupted[/]: the last completed epoch is saved; resume with "
                      f"[bold]heqis train --resume --out {escape(str(req.out))}[/]", soft_wrap=True)
            raise typer.Exit(130) from None
    show(result_dict, json_out, "render_search_result" if search else "render_train_result")
    if watchdog and not json_out and result_dict.get("watchdog"):
        _show_watchdog(result_dict["watchdog"], json_out, alone=False)


def _show_watchdog(wd: dict[str, Any], json_out: bool, alone: bool) -> None:
    if json_out:
        from heqis.cli.common import emit_json

        emit_json({"watchdog": wd})
        return
    from heqis.cli.render import watchdog_trained_line

    stdout.print(escape(watchdog_trained_line(wd, alone)), soft_wrap=True)


def _finished_run(out: Path) -> bool:
    """Whether ``out`` holds a training run that has finished (complete or stopped early)."""
    from heqis.formats.run import RunFolder

    if not (Path(out) / "manifest.json").exists():
        return False
    return RunFolder.open(Path(out)).status in ("complete", "early_stopped")


def _validation_part(run_dir: Path, json_out: bool) -> dict[str, Any] | None:
    """``heqis evaluate RUN`` on val, as every training ends (test only when asked for, by evaluate):
    None, with a note, when it cannot run (the training itself has succeeded)."""
    from heqis.evaluate.run import evaluate_run

    try:
        with progress(json_out, "evaluate on val") as update:
            return evaluate_run(run_dir, "val", progress=update).to_dict()
    except HeqisError as exc:
        if not json_out:
            err.print(f"[yellow]note:[/] no validation evaluation: {escape(exc.message)}", soft_wrap=True)
        return None


def _train_with_progress(req: Any, json_out: bool) -> Any:
    from heqis.train.run import run_train

    def log(line: str) -> None:
        if not json_out:
            dim_line(line)

    if not interactive(json_out):
        def plain(report: Any, trainer: Any) -> None:
            if not json_out:
                err.print(escape(epoch_line(report, trainer.preset.epochs)), soft_wrap=True, highlight=False)

        return run_train(req, on_epoch=plain, log=log)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[status]}"), console=stdout, transient=False) as bar:
        task = bar.add_task("train", total=None, status="encoders…")

        def tty(report: Any, trainer: Any) -> None:
            bar.update(task, completed=report.epoch, total=trainer.preset.epochs, status=report.phase)
            bar.console.print(escape(epoch_line(report, trainer.preset.epochs)), soft_wrap=True, highlight=False)

        return run_train(req, on_epoch=tty, log=lambda line: bar.console.print(f"[dim]{escape(line)}[/]"))


def backtest(
    ctx: typer.Context,
    run_dir: Annotated[Path | None, typer.Argument(metavar="[RUN_DIR]", help="Training run to backtest (every "
                                                   "generator × mode).")] = None,
    signals: Annotated[Path | None, typer.Option("--signals", metavar="FILE", help="Backtest your own signals "
                                                 "instead: CSV or parquet with symbol, trade_date, signal "
                                                 "(-1/0/1).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", "-d", metavar="DIR", help="Data store (default: "
                                                  "the run's; with --signals ./heqis-data or \\[data] dir).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="DIR", help="Output folder (default "
                                             "RUN_DIR/backtest, or ./backtest with --signals).")] = None,
    rules: Annotated[list[str] | None, typer.Option("--rules", metavar="KEY=VALUE", help="Override market rules, "
                                                    "KEY=VALUE[,...], e.g. slippage_bps=0,position_fraction=0.5.")]
        = None,
    score: Annotated[Score, typer.Option(help="What the select segment is ranked by.")] = "sharpe",
    inference: Annotated[Literal["auto", "onnxruntime", "torch"], typer.Option(
        help="Model inference for RUN_DIR: auto = torch on a GPU, else ONNX Runtime (CPU) when installed.")]
        = "auto",
    workers: Annotated[int | None, typer.Option(min=1, metavar="K", help="RUN_DIR: backtest symbols in K "
                                                "processes (default: the cores; 1 up to 32 symbols).")] = None,
    cluster: Annotated[str | None, typer.Option(metavar="ADDR", help="RUN_DIR: backtest symbols on the Dask "
                                                "scheduler at ADDR (tcp://HOST:8786; the run and data "
                                                "folders at the same paths on every worker), or 'local'.")]
        = None,
    gate: Annotated[float, typer.Option(min=1e-9, max=1.0, metavar="P", help="RUN_DIR: a generator × mode is "
                                        "chosen only if, over all the run's symbols, its equal-weight portfolio "
                                        "beats buy-and-hold on select (daily alpha, Newey–West t, one-sided p < "
                                        "P / candidates); a symbol with none holds (generator buy_hold).")]
        = 0.01,
    no_gate: Annotated[bool, typer.Option("--no-gate", help="RUN_DIR: choose each symbol's best candidate on "
                                          "select whether or not it beats holding (the select_* columns then "
                                          "overstate the edge).")] = False,
    start: Annotated[datetime | None, date_option("--signals: first day to simulate")] = None,
    end: Annotated[datetime | None, date_option("--signals: last day to simulate")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Backtest under A-share rules (T+1, limits, suspensions, lots, fees, stamp duty, slippage).

    With a RUN_DIR every generator × mode (cls: argmax class; reg: predicted return vs a threshold) is
    scored on the run's select segment; the chosen one per symbol is reported on the later test segment,
    so the reported numbers are not the ones the choice was tuned on. The best of eight candidates on
    one symbol's select year always looks better than holding, so a candidate may be chosen only if it
    beats buy-and-hold on select over all the run's symbols (--gate); otherwise the symbol holds. Writes
    best_metrics.csv, candidates.csv, trades.parquet, equity.parquet, portfolio.parquet and summary.json.

    [bold]Examples[/]

      heqis backtest runs/exp1
      heqis backtest runs/exp1 --rules slippage_bps=0 --score total_return
      heqis backtest --signals my_signals.csv -d heqis-data
      heqis backtest runs/exp1 --workers 2             # symbols in 2 processes
      heqis backtest runs/exp1 --no-gate               # best on select, even if no better than holding
    """
    from heqis.backtest.rules import MarketRules

    if (run_dir is None) == (signals is None):
        raise usage_error("RUN_DIR", "give a RUN_DIR or --signals FILE (one of them)")
    for name in ("workers", "cluster"):
        if signals is not None and given_on_command_line(ctx, name):
            raise usage_error(f"--{name}", f"--{name} spreads a RUN_DIR's symbols; --signals runs in one process")
    for name in ("gate", "no_gate"):
        if signals is not None and given_on_command_line(ctx, name):
            flag = "--" + name.replace("_", "-")
            raise usage_error(flag, f"{flag} chooses among a RUN_DIR's generators; a signal file has one strategy")
    with user_errors(ctx):
        MarketRules().with_overrides(rules)          # a bad --rules fails here, before any work
        if signals is not None:
            import pandas as pd

            from heqis.backtest.run import backtest_signals

            s = settings(data_dir=data_dir)
            result = backtest_signals(signals, s.data_dir, None, out, rule_overrides=rules,
                                      start=pd.Timestamp(start.date()) if start else None,
                                      end=pd.Timestamp(end.date()) if end else None)
        else:
            from heqis.backtest.run import backtest_run

            with progress(json_out, "backtest") as update:
                result = backtest_run(run_dir, data_dir, None, score, out, progress=update,  # type: ignore[arg-type]
                                      inference_backend=inference, workers=workers, cluster=cluster,
                                      rule_overrides=rules, gate=None if no_gate else gate)
    show(result.to_dict(), json_out, "render_backtest_result")


def evaluate(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="Training run to evaluate.")],
    segment: Annotated[Literal["val", "select", "test", "all"], typer.Option(
        "--segment", help="Which segment's samples (by target day); all = val, select and test. test only when "
                          "asked for, so that tuning does not look at it.")] = "val",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", "-d", metavar="DIR", help="Data store (default: "
                                                  "the run's).")] = None,
    inference: Annotated[Literal["auto", "onnxruntime", "torch"], typer.Option(
        help="Model inference: auto = torch on a GPU, else ONNX Runtime (CPU) when installed.")] = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Out-of-sample skill of every generator, their ensemble and the baselines, with significance.

    Per model: MSE and its ratio to predicting a zero return, the Diebold–Mariano test against
    that zero forecast (daily cross-sectional mean loss differences, Newey–West lag ⌊T^(1/3)⌋,
    two-sided), direction accuracy and balanced accuracy, the share of each predicted class, and
    on days with ≥ 5 symbols the daily cross-sectional IC and rank IC (mean, t = ICIR·√days).
    Baselines: zero, train_mean, last_value, majority (the train segment's most frequent class).

    [bold]Examples[/]

      heqis evaluate runs/exp1                     # the validation segment
      heqis evaluate runs/exp1 --segment test --json
    """
    from heqis.evaluate.run import evaluate_run

    with user_errors(ctx), progress(json_out, "evaluate") as update:
        result = evaluate_run(run_dir, segment, data_dir, inference, progress=update)
    show(result.to_dict(), json_out, "render_evaluation")


def compare(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    preset: Annotated[Preset, typer.Option("--preset", "-p", help="The preset every run trains with (tiny: "
                                           "minutes for the whole comparison on a laptop).")] = "tiny",
    folds: Annotated[int, typer.Option("--folds", "-k", min=1, metavar="K", help="Walk-forward folds: K test "
                                       "blocks that together cover the last 30% of the sessions; each fold "
                                       "trains on everything before its val and select segments.")] = 3,
    variants: Annotated[str | None, typer.Option("--variants", metavar="A,B", help="What to train per fold "
                                                 "(default maa,supervised and each generator alone): maa, "
                                                 "supervised (--no-adversarial), no-distill, no-cross, legacy "
                                                 "(the first trainer's game), G1 … G4 (--generators G1).")] = None,
    generators: Annotated[str | None, typer.Option("--generators", metavar="G1,G3", help="Use only these "
                                                   "generators of the preset, in every variant (and only their "
                                                   "single-generator variants).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, metavar="N", help="Epochs per run (default: the "
                                               "preset's); early stopping may end a run sooner.")] = None,
    symbols: SymbolsOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of every run.")] = 3407,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="DIR", help="Output folder (default "
                                             "runs/compare-<time>; \\[train] runs_dir). The same --out again "
                                             "resumes: finished runs are not trained again.")] = None,
    target: Annotated[Literal["close", "open"] | None, typer.Option(
        "--target", help="What the models predict (as heqis train --target; default close).")] = None,
    max_train_windows: Annotated[int | None, typer.Option("--max-train-windows", min=1, metavar="N", help="Use at "
                                                          "most N train windows per run (overrides the "
                                                          "preset's cap).")] = None,
    device: Annotated[Device, typer.Option(help="auto (CUDA when present) | cpu | cuda.")] = "auto",
    inference: Annotated[Literal["auto", "onnxruntime", "torch"], typer.Option(
        help="Inference on the test segments: auto = torch on a GPU, else ONNX Runtime when installed.")] = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Compare MAA with supervised-only training, each generator alone and the baselines, over walk-forward folds.

    Per fold and variant one ordinary run (OUT/fold-K/VARIANT: heqis evaluate and backtest work on
    it), scored on the fold's test segment. The table: mean ± std over the folds of MSE/zero, IC,
    rank IC and balanced accuracy; Diebold–Mariano against a zero forecast per fold and pooled over
    all test days; paired DM tests of maa's ensemble against each variant (maa against supervised:
    did the adversarial game help?). Writes OUT/compare.md, .csv, -pairs.csv and .json.

    [bold]Examples[/]

      heqis compare -o runs/cmp                     # tiny, 3 folds: maa, supervised, G1 … G4 alone
      heqis compare -o runs/cmp5 --folds 5 --epochs 4 --variants maa,supervised
      heqis compare -o runs/cmp13 --generators G1,G3  # maa and supervised of G1+G3, G1 and G3 alone
      heqis compare -o runs/cmp                     # again: resumes, nothing finished is retrained
    """
    from heqis.evaluate.compare import CompareRequest, parse_variants, run_compare
    from heqis.train.presets import get_preset

    with user_errors(ctx):
        s = settings(data_dir=data_dir)
        subset = parse_generators(generators)
        names = parse_variants(variants, get_preset(preset, generators=subset or None))
        overrides = {k: v for k, v in (("window", s.features_window), ("flat_band", s.features_flat_band))
                     if v is not None}
        out_dir = out or s.train_runs_dir / f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        req = CompareRequest(data_dir=s.data_dir, out=out_dir, preset=preset, folds=folds, variants=names,
                             epochs=epochs, symbols=parse_symbols(symbols), seed=seed, device=device, target=target,
                             max_train_windows=max_train_windows, generators=subset or None, overrides=overrides,
                             inference=inference)
        try:
            result = run_compare(req, log=lambda line: None if json_out else dim_line(line))
        except KeyboardInterrupt:
            err.print(f"[yellow]interrupted[/]: finished runs are kept; resume with the same options and "
                      f"[bold]--out {escape(str(out_dir))}[/]", soft_wrap=True)
            raise typer.Exit(130) from None
    show(result.to_dict(), json_out, "render_compare")


def check_lookahead(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="Training run whose features and generators "
                                            "are checked.")],
    points: Annotated[int, typer.Option(min=1, help="How many cut days T to test per symbol.")] = 8,
    symbols: Annotated[str | None, typer.Option(metavar="A,B", help="Comma-separated ts_codes (default: up to 3 "
                                                "of the run).")] = None,
    features: Annotated[str | None, typer.Option(metavar="MODULE:FUNCTION", help="Check your own feature "
                                                 "function instead (bars DataFrame in, bars with features "
                                                 "out).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", "-d", metavar="DIR", help="Data store (default: "
                                                  "the run's).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Perturb every bar after day T and report any feature or signal at or before T that changed.

    After freqtrade's lookahead-analysis: a feature that peeks at the future changes its past values when
    the future changes. Exit code 1 when something leaks.
    """
    from heqis.backtest.lookahead import check_lookahead as run_check
    from heqis.backtest.lookahead import load_feature_function

    with user_errors(ctx):
        fn = load_feature_function(features) if features else None
        with progress(json_out, "check lookahead") as update:
            update("", 0, 0)
            report = run_check(run_dir, data_dir=data_dir, points=points, symbols=parse_symbols(symbols),
                               feature_fn=fn)
    show(report, json_out, "render_lookahead")
    if report.leaks:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(data)
    app.command(rich_help_panel=PANEL)(train)
    app.command(rich_help_panel=PANEL)(backtest)
    app.command(rich_help_panel=PANEL)(evaluate)
    app.command(rich_help_panel=PANEL)(compare)
    check = typer.Typer(help="Guards for research code: look-ahead in features and signals.", no_args_is_help=True)
    check.command("lookahead")(check_lookahead)
    app.add_typer(check, name="check", rich_help_panel=PANEL)

