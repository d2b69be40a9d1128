"""The "Getting started" panel: ``heqis demo`` — the whole chain on the bundled data, then the console."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from heqis.cli.common import JsonOpt, emit_json, err, progress, settings, stdout, user_errors
from heqis.cli.research import epoch_line

PANEL = "Getting started"


def demo(
    ctx: typer.Context,
    root: Annotated[Path, typer.Option("--dir", metavar="DIR", help="Folder of the demo's data store, run and "
                                       "artifacts.")] = Path("heqis-demo"),
    fleet: Annotated[bool, typer.Option(help="End by starting the local fleet (gateway + 2 brains) replaying "
                                        "the sample data; `heqis down` stops it.")] = True,
    watch: Annotated[float, typer.Option(min=0, help="Seconds of live fleet counters to print.")] = 6.0,
    base_port: Annotated[int | None, typer.Option(min=1, max=65500, help="The fleet's first port (telemetry; "
                                                  "then control, WebSocket, brains; default 5560).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the whole chain on the bundled synthetic sample data and show the result.

    data (sample) → train (tiny preset) → backtest → export → local fleet (gateway + 2 brains replaying
    the second half of 2024) → the live console (on a terminal; q quits). Headless (no TTY) it prints
    one line per stage, a summary and exits 0. The fleet keeps running for `heqis status` /
    `heqis console` until `heqis down`.
    """
    from heqis.demo import run_demo, start_fleet, watch_fleet

    def plain(report: Any, trainer: Any) -> None:
        if not json_out:
            err.print(escape(epoch_line(report, trainer.preset.epochs)), soft_wrap=True, highlight=False)

    with user_errors(ctx):
        s = settings(local_base_port=base_port)
        result = run_demo(root, s, stage=lambda label: progress(json_out, label), on_epoch=plain,
                          log=lambda line: None if json_out else err.print(f"[dim]{escape(line)}[/]"))
        status = None
        if fleet:
            with progress(json_out, "demo: local fleet") as update:
                update("", 0, 0)
                status = start_fleet(root, s.local_base_port)
    if json_out:
        emit_json({**result.to_dict(), "fleet": status})
        return
    from heqis.cli import render

    stdout.rule("[bold]HEQIS demo[/] · step 1/6: data")
    render.render_data_result(stdout, result.data)
    stdout.rule("[bold]HEQIS demo[/] · step 2/6: train (tiny preset)")
    render.render_train_result(stdout, result.train)
    if result.train.get("watchdog"):
        stdout.print(escape(render.watchdog_trained_line(result.train["watchdog"])), soft_wrap=True)
    stdout.rule("[bold]HEQIS demo[/] · step 3/6: backtest")
    render.render_backtest_result(stdout, result.backtest)
    stdout.rule("[bold]HEQIS demo[/] · step 4/6: export")
    render.render_export_result(stdout, result.export)
    if status is not None:
        from heqis.runtime.local_fleet import read_state

        stdout.rule("[bold]HEQIS demo[/] · step 5/6: local fleet (gateway + 2 brains, replaying 2024-H2)")
        render.render_status(stdout, status)
        state = read_state()
        for snapshot in watch_fleet(state["control"], state["gateway"]["pid"], watch):
            stdout.print(render.fleet_line(snapshot))
        stdout.print("[dim]the fleet keeps running: `heqis status` shows it, `heqis down` stops it[/]")
        if sys.stdout.isatty() and sys.stdin.isatty():
            from heqis_console.app import run_console

            run_console(state["telemetry"], state["control"])   # step 6/6: the live console (q quits)
    stdout.print(f"\n[dim]more: `heqis console` (live) · `heqis console --run {root}/run` (research views) · "
                 f"`heqis bench backends -a {root}/deploy_output` · `heqis bench runtime -a {root}/deploy_output "
                 f"-d {root}/data`[/]", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(demo)
