"""What the watchdog panel says, as plain lines: fitted to the panel's width and line budget.

The gateway's telemetry carries a ``watchdog`` block (policy ``warn`` / ``hold`` / ``off``, the
anomaly model's backend and threshold, checked / flagged / held counts, counts by reason and the
last flags, newest last). Kept free of Textual like heqis_console.layout, so the rules are tested
on their own: the app only turns the (text, style) lines into a Text.

At one line (80×24) the panel is a summary; with more lines it is a title, the counts, the counts
by reason and then the last flags (newest first) as aligned columns that drop the score, then the
action, when the width runs out; the reasons column takes what is left and ends in "…" if cut.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len

from heqis_console.layout import fit_parts, pack_parts, shorten
from heqis_console.state import day

Line = tuple[str, str]          # (text, rich style)
SUSPECT = "⚠"                   # the signals table's marker of a signal the watchdog flagged
NOT_REPORTED = "watchdog: not reported"


def _int(v: Any) -> int:
    return int(v) if isinstance(v, (int, float)) else 0


def flag_rate(flagged: Any, checked: Any) -> str:
    """flagged / checked as a percentage with two decimals ("0.41%"), "—" before anything was checked."""
    return f"{_int(flagged) / _int(checked) * 100:.2f}%" if _int(checked) > 0 else "—"


def reason_parts(by_reason: Any) -> list[str]:
    """The non-zero reasons as "model 3", most frequent first (ties in the document's order)."""
    counts = [(str(k), _int(v)) for k, v in (by_reason or {}).items() if _int(v) > 0] \
        if isinstance(by_reason, dict) else []
    return [f"{k} {v:,}" for k, v in sorted(counts, key=lambda kv: -kv[1])]


def score_text(score: Any) -> str:
    """The anomaly score to 3 significant digits, "—" when the model did not score the bar."""
    return f"{score:.3g}" if isinstance(score, (int, float)) else "—"


def summary(wd: dict[str, Any], width: int) -> str:
    """One line: policy, flagged (rate), held — the longest wording that fits ``width``."""
    policy = str(wd.get("policy") or "?")
    if policy == "off":
        return fit_parts(["watchdog off", "bars not checked"], width)
    c, f, h = _int(wd.get("checked")), _int(wd.get("flagged")), _int(wd.get("held"))
    rate = flag_rate(f, c)
    for text in (f"watchdog {policy} · {c:,} checked · {f:,} flagged ({rate}) · {h:,} held",
                 f"watchdog {policy} · {f:,} flagged ({rate}) · {h:,} held",
                 f"watchdog {policy}: {f:,} flagged {rate}, {h:,} held",
                 f"wd {policy}: {f:,} flagged {rate}, {h:,} held"):
        if cell_len(text) <= width:
            return text
    return fit_parts([f"wd {policy}:", f"{f:,} flagged {rate},", f"{h:,} held"], width, " ")


def counts(wd: dict[str, Any], width: int) -> str:
    """checked, flagged (rate), held — the longest wording that fits ``width``."""
    c, f, h = _int(wd.get("checked")), _int(wd.get("flagged")), _int(wd.get("held"))
    rate = flag_rate(f, c)
    for text in (f"{c:,} checked · {f:,} flagged ({rate}) · {h:,} held",
                 f"{c:,} checked, {f:,} flagged {rate}, {h:,} held",
                 f"{f:,}/{c:,} flagged ({rate}) · {h:,} held",
                 f"{f:,}/{c:,} flagged {rate}, {h:,} held"):
        if cell_len(text) <= width:
            return text
    return fit_parts([f"{f:,}/{c:,} flagged", rate, f"{h:,} held"], width, " ")


def flag_rows(last: Any, width: int, max_rows: int) -> tuple[str, list[Line]]:
    """The header and up to ``max_rows`` of the last flags, newest first, as columns in ``width``.

    Columns: day, symbol, action, score, reasons. Day and symbol always; the reasons take what is
    left (at least a few cells, shortened with "…"); score goes first, then the action, when the
    width runs out; the full date when everything fits with it, else MM-DD like the signals table."""
    flags = [f for f in (last if isinstance(last, list) else []) if isinstance(f, dict)][::-1][:max_rows]
    if not flags or max_rows <= 0:
        return "", []
    rows = [{"day": day(_int(f.get("bar_time"))), "symbol": str(f.get("symbol", "")),
             "act": str(f.get("action") or ""), "score": score_text(f.get("score")),
             "why": ",".join(str(r) for r in f.get("reasons") or [])} for f in flags]
    labels = {"day": "day", "symbol": "symbol", "act": "act", "score": "score", "why": "why"}

    def need(key: str) -> int:
        return max([cell_len(labels[key]), *(cell_len(r[key]) for r in rows)])

    full = sum(need(k) for k in labels) + len(labels) - 1
    if full > width:                                   # the short date, as in the signals table
        for r in rows:
            r["day"] = r["day"][5:]
    why_min = min(need("why"), 8)
    keys = ["day", "symbol"]
    used = need("day") + 1 + need("symbol") + 1 + why_min
    for key in ("act", "score"):                       # by priority: the action is kept longest
        if used + need(key) + 1 <= width:
            keys.append(key)
            used += need(key) + 1
    keys = [k for k in ("day", "symbol", "act", "score") if k in keys] + ["why"]
    why_w = max(min(need("why"), width - (used - why_min)), 1)
    widths = {k: need(k) for k in keys} | {"why": why_w}
    right = {"score"}

    def line(cells: dict[str, str]) -> str:
        out = []
        for k in keys:
            text = shorten(cells[k], widths[k])
            pad = " " * (widths[k] - cell_len(text))
            out.append(pad + text if k in right else text + ("" if k == "why" else pad))
        return " ".join(out)

    styled = [(line(r), "yellow" if r["act"] == "hold" else "") for r in rows]
    return line(labels), styled


def panel_lines(wd: dict[str, Any] | None, width: int, max_lines: int) -> list[Line]:
    """The watchdog panel in at most ``max_lines`` lines of ``width`` cells.

    None (the gateway does not report a watchdog): one dim "not reported" line. One line: the
    summary. More: title (policy, model backend, threshold, the ⚠ legend), counts with the flag
    rate, counts by reason, then the last flags under a header."""
    width, max_lines = max(width, 1), max(max_lines, 1)
    if wd is None:
        return [(shorten(NOT_REPORTED, width), "dim")]
    flagged = _int(wd.get("flagged"))
    policy = str(wd.get("policy") or "?")
    if max_lines == 1 or policy == "off":
        return [(summary(wd, width), "dim" if policy == "off" else "yellow" if flagged else "")]
    threshold = wd.get("threshold")
    title = [f"watchdog {policy}", str(wd.get("model") or "rules only")]
    if policy == "warn":
        title.append(f"{SUSPECT} = suspect")
    if isinstance(threshold, (int, float)):
        title.append(f"threshold {threshold:.3g}")
    lines: list[Line] = [(fit_parts(title, width), "bold"), (counts(wd, width), "yellow" if flagged else "")]
    if len(lines) < max_lines:
        parts = reason_parts(wd.get("by_reason"))
        if parts:
            budget = 2 if max_lines - len(lines) >= 8 else 1
            lines += [(text, "") for text in pack_parts([f"by reason: {parts[0]}", *parts[1:]], width, budget)]
        else:
            lines.append(("no flags yet", "dim"))
    room = max_lines - len(lines) - 1                   # one line is the flags' header
    header, rows = flag_rows(wd.get("last"), width, room)
    if rows:
        lines += [(header, "bold dim"), *rows]
    return lines[:max_lines]
