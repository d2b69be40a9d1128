"""What fits: choosing table columns, alert lines and captions for the width a widget really has.

Kept free of Textual (plain strings and numbers) so the rules are tested on their own. The rule
everywhere is the same: a narrow terminal gets *fewer* things, never *cut* things — a table drops
whole columns (lowest priority first), an alert wraps under its time stamp and, when it still does
not fit, ends in a deliberate "…", a caption drops its least useful parts.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len

ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """A table column: ``key`` into a row's cells, ``label`` on top, ``priority`` 0 = always shown.

    Columns with a higher priority number are the first to go when the width runs out, so the
    order in which a table lists its columns (left to right) is independent of what it drops."""

    key: str
    label: str
    priority: int = 0
    right: bool = False


def fit_columns(columns: Sequence[Column], rows: Sequence[dict[str, str]], width: int,
                padding: int = 1) -> list[tuple[Column, int]]:
    """The columns (in their table order) whose whole content fits in ``width`` cells, with widths.

    A column's width is its widest cell or its label, whichever is wider, plus ``padding`` cells on
    each side (a DataTable's ``cell_padding``). Priority-0 columns are always kept (a terminal too
    narrow even for them is clipped by the terminal, not by us); the others are tried by rising
    priority and kept when they still fit, so a wide low-priority column that does not fit does not
    stop a narrow one after it."""
    need = {c.key: max([cell_len(c.label), *(cell_len(r.get(c.key, "")) for r in rows)]) for c in columns}
    chosen = {c.key for c in columns if c.priority == 0}
    used = sum(need[k] + 2 * padding for k in chosen)
    for c in sorted((c for c in columns if c.priority > 0), key=lambda c: c.priority):
        cost = need[c.key] + 2 * padding
        if used + cost <= width:
            chosen.add(c.key)
            used += cost
    return [(c, need[c.key]) for c in columns if c.key in chosen]


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells: whole when it fits, else cut at a word with a "…"."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    cut = text[: width - 1]
    while cell_len(cut) > width - 1:
        cut = cut[:-1]
    space = cut.rfind(" ")
    if space > width // 2:              # end on a word when that does not waste half the line
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def wrap_entry(stamp: str, text: str, width: int, max_lines: int | None = None) -> list[str]:
    """``stamp text`` wrapped to ``width`` with the continuation lines indented under the text.

    When it needs more than ``max_lines`` lines, the last one kept ends in "…": the cut is ours
    and visible, never the widget edge's."""
    indent = " " * (cell_len(stamp) + 1)
    if width <= len(indent) + 4:              # too narrow to indent: plain wrap
        lines = textwrap.wrap(f"{stamp} {text}", width) or [stamp]
    else:
        lines = textwrap.wrap(text, width, initial_indent=f"{stamp} ", subsequent_indent=indent,
                              break_on_hyphens=False) or [stamp]
    if max_lines is not None and len(lines) > max_lines:
        rest = " ".join(line.strip() for line in lines[max_lines - 1:])
        head = lines[max_lines - 1][: len(lines[max_lines - 1]) - len(lines[max_lines - 1].lstrip())]
        lines = [*lines[: max_lines - 1], head + shorten(rest, width - cell_len(head))]
    return lines


def fit_entries(entries: Sequence[tuple[str, str]], width: int, height: int) -> tuple[list[list[str]], int]:
    """As many whole entries (stamp, text) as fit in ``height`` lines of ``width``, in the given order.

    The first entry is always shown (shortened with "…" if even it does not fit); a later entry is
    shown only whole. Returns the wrapped entries and how many were left out."""
    out: list[list[str]] = []
    used = 0
    for i, (stamp, text) in enumerate(entries):
        lines = wrap_entry(stamp, text, width, max_lines=max(height, 1) if i == 0 else None)
        if used + len(lines) > height and out:
            return out, len(entries) - i
        out.append(lines)
        used += len(lines)
    return out, 0


def fit_parts(parts: Sequence[str], width: int, sep: str = " · ") -> str:
    """The leading ``parts`` joined by ``sep`` that fit in ``width`` (the first is shortened if need be)."""
    if not parts:
        return ""
    text = shorten(parts[0], width)
    for part in parts[1:]:
        longer = text + sep + part
        if cell_len(longer) > width:
            break
        text = longer
    return text


def pack_parts(parts: Sequence[str], width: int, max_lines: int, sep: str = " · ") -> list[str]:
    """``parts`` packed greedily into at most ``max_lines`` lines of ``width`` (a part is never split
    over two lines; one longer than a line is shortened with "…"; what does not fit is left out)."""
    lines: list[str] = []
    for part in parts:
        part = shorten(part, width)
        if lines and cell_len(lines[-1] + sep + part) <= width:
            lines[-1] += sep + part
        elif len(lines) < max_lines:
            lines.append(part)
        else:
            break
    return lines
