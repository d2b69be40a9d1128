"""The watchlist file ``标的参考.txt``: one ts_code per line, ``#`` comments, optional kind.

A line may name the kind explicitly (``000300.SH index``) where the code alone is ambiguous;
otherwise it is inferred from the code (boards.classify).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from heqis.data.boards import TS_CODE, classify
from heqis.data.schema import KINDS
from heqis.errors import HeqisError

DEFAULT_NAME = "标的参考.txt"


@dataclass(frozen=True)
class Instrument:
    """One line of the watchlist."""

    ts_code: str
    kind: str   # stock | index | fund
    board: str  # main | chinext | star | bse


def parse_watchlist(text: str, origin: str = DEFAULT_NAME) -> list[Instrument]:
    """Parse watchlist text; errors name the file and line."""
    seen: dict[str, Instrument] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        parts = body.split()
        code = parts[0].upper()
        if not TS_CODE.match(code):
            raise HeqisError(f"{origin}:{lineno}: '{parts[0]}' is not a ts_code",
                             hint="one code per line, like 600519.SH or 000001.SZ; '#' starts a comment")
        kind, board = classify(code)
        if len(parts) > 1:
            if parts[1].lower() not in KINDS or len(parts) > 2:
                raise HeqisError(f"{origin}:{lineno}: unexpected '{' '.join(parts[1:])}' after {code}",
                                 hint=f"an optional kind may follow the code: {', '.join(KINDS)}")
            kind = parts[1].lower()
        seen.setdefault(code, Instrument(code, kind, board))
    if not seen:
        raise HeqisError(f"{origin}: the watchlist names no symbol", hint="add one ts_code per line")
    return list(seen.values())


def default_watchlist_text() -> str:
    """The bundled watchlist (the symbols of the sample data set)."""
    return resources.files("heqis.data").joinpath("watchlist_default.txt").read_text(encoding="utf-8")


def load_watchlist(path: Path | None) -> tuple[list[Instrument], str]:
    """(instruments, where they came from). ``None``: ./标的参考.txt if present, else the bundled one."""
    if path is None:
        local = Path(DEFAULT_NAME)
        if not local.exists():
            return parse_watchlist(default_watchlist_text(), "bundled 标的参考.txt"), "bundled"
        path = local
    if not path.exists():
        raise HeqisError(f"{path}: watchlist not found", hint="pass --watchlist FILE or create 标的参考.txt")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise HeqisError(f"{path}: watchlist is not UTF-8 text", hint="save it as UTF-8") from None
    return parse_watchlist(text, str(path)), str(path)
