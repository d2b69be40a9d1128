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

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
log = logging.getLogger("heqis")


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
    except Exception as exc:
        if verbose:
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}", soft_wrap=True)
        err.print("[dim]this is a bug in heqis; re-run with --verbose for the traceback and report it[/]")
        raise typer.Exit(1) from None


def emit_json(payload: Any) -> None:
    """Machine-readable output on stdout (one JSON document)."""
    typer.echo(json.dumps(payload, ensure_ascii=False, indent=2, default=_json_default))


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
                  TextColumn("{task.fields[what]}"), TimeElapsedColumn(), console=out,
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

        render_data_result(out, result)


# ---------------------------------------------------------------------------------------------
# heqis demo
# ---------------------------------------------------------------------------------------------
@app.command(rich_help_panel="Getting started")
def demo(
    ctx: typer.Context,
    data_dir: Annotated[Path, typer.Option("--data-dir", "-d", help="Store directory of the demo.")] =
        Path("heqis-demo/data"),
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run the whole chain on the bundled synthetic sample data and show the result.

    Today the chain is the data step; training, backtest, export, the local fleet and the console
    join it as they land. Headless (no TTY) it prints a summary and exits 0.
    """
    from heqis.config import load_settings
    from heqis.data.pipeline import DataRequest, run_data

    with user_errors(ctx):
        settings = load_settings(data_dir=data_dir)
        req = DataRequest(source="sample", data_dir=settings.data_dir, bundled_watchlist=True)
        with progress_bar(_progress_enabled(json_out), "demo: data") as update:
            result = run_data(req, settings, progress=update)
    if json_out:
        emit_json({"data": result.to_dict()})
        return
    from heqis.render import render_data_result

    out.rule("[bold]HEQIS demo[/] · step 1/7: data")
    render_data_result(out, result)
    out.print("\n[dim]next steps (train → backtest → export → fleet → console) join `make demo` as they land.[/]")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
