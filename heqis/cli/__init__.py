"""The ``heqis`` command: the composition root, assembled here from one module per help panel.

``common`` holds what every command shares (errors, output, progress, settings, options); the panel
modules (``getting_started``, ``research``, ``deploy``, ``edge``) hold the commands, thin shells that
parse options, call one core function and render its result (``render``). Only ``edge`` and
``getting_started`` may import ``heqis_console`` / ``heqis_remote``, lazily, inside the commands that
need them (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from heqis import __version__
from heqis.cli import deploy, edge, getting_started, research
from heqis.cli.common import State, hide_flag_types

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


hide_flag_types()
for panel in (getting_started, research, deploy, edge):
    panel.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
