"""What every command shares: error handling, output, progress, settings and the common options.

Conventions (docs/architecture.md, "CLI"): a user's mistake is one red ``error:`` line plus at
most one ``hint:`` line on stderr, exit 1; a usage error (unknown option, invalid value) exits 2;
a bug prints ``internal error`` (a traceback with ``--verbose``); Ctrl-C exits 130. ``--json``
prints one JSON document on stdout. Progress is a bar on a terminal and one line per stage
otherwise, on stderr, so stdout stays a clean result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from heqis.errors import HeqisError, InvalidValue
from heqis.fileio import json_default

stdout = Console(highlight=False)
err = Console(stderr=True, highlight=False)
log = logging.getLogger("heqis")
# what the `research` extra brings; an edge install (brain, gateway) has none of it
RESEARCH_MODULES = {"pandas", "pyarrow", "exchange_calendars", "tushare", "torch", "optuna", "onnx", "fabric",
                    "textual", "textual_plotext"}


@dataclass
class State:
    verbose: bool = False


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def print_error(message: str, hint: str | None) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        err.print(f"[dim]hint: {escape(hint)}[/]", soft_wrap=True)


@contextlib.contextmanager
def user_errors(ctx: typer.Context) -> Iterator[None]:
    """HeqisError → one red line + hint on stderr, exit 1 (2 for InvalidValue); bugs → one line
    (a traceback with -v); a missing research-only module → which extra to install."""
    verbose = bool(ctx.obj and ctx.obj.verbose)
    try:
        yield
    except HeqisError as exc:
        print_error(exc.message, exc.hint)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/] — re-run the same command to resume", soft_wrap=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in RESEARCH_MODULES:
            raise
        print_error(f"this command needs the research install (module '{exc.name}' is missing)",
                    "pip install 'heqis[research]' (edge hosts only run brain and gateway)")
        raise typer.Exit(1) from None
    except Exception as exc:
        if verbose:
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}", soft_wrap=True)
        err.print("[dim]this is a bug in heqis; re-run with --verbose for the traceback and report it[/]")
        raise typer.Exit(1) from None


def usage_error(option: str, message: str) -> typer.BadParameter:
    """A usage error found while checking options (exit 2), for ``raise usage_error(...)``."""
    return typer.BadParameter(message, param_hint=option)


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------
def emit_json(payload: Any) -> None:
    """Machine-readable output on stdout (one JSON document)."""
    typer.echo(json.dumps(payload, ensure_ascii=False, indent=2, default=json_default))


def show(payload: Any, json_out: bool, renderer: str) -> None:
    """Print a result: JSON for scripts (a result object's ``to_dict()``), else the named rich renderer
    of heqis.cli.render (imported late)."""
    if json_out:
        emit_json(payload.to_dict() if hasattr(payload, "to_dict") else payload)
        return
    from heqis.cli import render

    getattr(render, renderer)(stdout, payload)


def interactive(json_out: bool) -> bool:
    return not json_out and sys.stdout.isatty()


def dim_line(text: str) -> None:
    err.print(f"[dim]{escape(text)}[/]", soft_wrap=True, highlight=False)


@contextlib.contextmanager
def progress(json_out: bool, label: str) -> Iterator[Callable[[str, int, int], None]]:
    """A ``(what, done, total)`` callback for the core: a rich bar on a terminal; off a terminal one
    line when the stage starts and one when it ends (nothing with --json, which owns stdout)."""
    if not interactive(json_out):
        t0 = time.monotonic()
        seen: dict[str, int] = {}

        def line(what: str, done: int, total: int) -> None:
            if not seen:
                dim_line(f"{label} …" + (f" ({total} to do)" if total else ""))
            seen["total"] = total

        yield (lambda what, done, total: None) if json_out else line
        if seen and not json_out:
            dim_line(f"{label}: done in {time.monotonic() - t0:.1f} s")
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
# settings and values
# ---------------------------------------------------------------------------------------------
def settings(**flags: Any) -> Any:
    """heqis.toml + HEQIS_* + the flags a command got (None: not given) — the one resolver."""
    from heqis.config import load_settings

    return load_settings(**flags)


def parse_symbols(text: str | None, option: str = "--symbols") -> list[str] | None:
    """A comma-separated list of ts_codes (or CSV symbol names), upper-cased; None when not given."""
    if text is None:
        return None
    import re

    out = []
    for part in text.split(","):
        code = part.strip().upper()
        if not code:
            continue
        if not re.fullmatch(r"[A-Z0-9][A-Z0-9._-]{0,31}", code):
            raise InvalidValue(option, f"'{part.strip()}' is not a symbol", hint="comma-separated ts_codes, "
                               "e.g. 600519.SH,000001.SZ")
        out.append(code)
    if not out:
        raise InvalidValue(option, "no symbol given")
    return list(dict.fromkeys(out))


def day(value: datetime | None) -> date | None:
    return value.date() if value else None


# ---------------------------------------------------------------------------------------------
# options used by several commands
# ---------------------------------------------------------------------------------------------
DATE_FORMATS = ["%Y-%m-%d", "%Y%m%d"]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")]
DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", "-d", metavar="DIR", help="Data store (default ./heqis-data; \\[data] dir, HEQIS_DATA_DIR).")]
ArtifactsOpt = Annotated[Path | None, typer.Option(
    "--artifacts", "-a", metavar="DIR", help="Artifact set from heqis export (default ./deploy_output; "
    "\\[artifacts] dir, HEQIS_ARTIFACTS_DIR).")]
SymbolsOpt = Annotated[str | None, typer.Option(
    metavar="A,B", help="Comma-separated ts_codes (default: every stored symbol).")]


def date_option(help_text: str, *names: str) -> Any:
    return typer.Option(*names, formats=DATE_FORMATS, metavar="DATE", help=help_text + " (YYYY-MM-DD).")


StartOpt = Annotated[datetime | None, date_option("First trade date")]
EndOpt = Annotated[datetime | None, date_option("Last trade date")]


def hide_flag_types() -> None:
    """Typer labels every flag ``<bool>`` in ``--help``, though a flag takes no value: show nothing.

    Applied once when the app is built; ``tests/test_cli_help.py`` renders every help page and fails
    if a ``<bool>`` comes back (e.g. after a Typer upgrade)."""
    from typer.core import TyperOption

    if getattr(TyperOption, "_heqis_flags", False):
        return
    original = TyperOption.display_type_rich

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return self.metavar or ""
        return original(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    TyperOption._heqis_flags = True  # type: ignore[attr-defined]
