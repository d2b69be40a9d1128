"""Rich renderings of core results for the terminal (the CLI's only presentation code)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:   # the renderers must import on edge installs too (no pandas there)
    from heqis.data.pipeline import DataResult


def table(console: Console, title: str | None = None, caption: str | None = None) -> Table:
    """A borderless table; on terminals narrower than 110 columns cells lose their padding to fit 80."""
    return Table(title=title, caption=caption, title_justify="left", box=box.SIMPLE_HEAD,
                 padding=(0, 1 if console.width >= 110 else 0), pad_edge=False)


def render_data_result(console: Console, result: DataResult) -> None:
    """The store after ``heqis data``: one row per symbol, then cleaning and provenance."""
    what = "panel" if result.source == "synthetic" else "sample data"
    label = f"[bold yellow]SYNTHETIC {what}[/] (invented prices, real XSHG calendar)" if result.synthetic \
        else f"source: {result.source}"
    shown = result.symbols if len(result.symbols) <= 40 else result.symbols[:30]   # a 5,000-symbol panel
    wide = console.width >= 110
    grid = table(console, f"HEQIS data store · {result.data_dir}", label)
    columns = [("symbol", "left"), ("name", "left"), ("type", "left"), ("rows", "right"), ("from", "left"),
               ("to", "left"), ("susp", "right"), ("lim↑", "right"), ("lim↓", "right"), ("一字", "right"),
               ("ST", "right"), ("adj", "right"), ("close", "right")]
    columns_all = list(columns)
    narrow_drop = {"name", "一字"}  # fits 80 columns without them
    if not wide:
        columns = [c for c in columns if c[0] not in narrow_drop]
    for col, just in columns:
        grid.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for s in shown:
        kind = s.board if s.kind == "stock" else ("ETF" if s.kind == "fund" else s.kind)
        row = [s.ts_code, s.name, kind, f"{s.rows:,}", s.first or "—", s.last or "—",
               str(s.suspended_days), str(s.limit_up_days), str(s.limit_down_days),
               str(s.one_price_limit_days), str(s.st_days), str(s.adj_events),
               f"{s.last_close:,.2f}" if s.last_close is not None else "—"]
        if not wide:
            row = [v for v, (col, _) in zip(row, columns_all, strict=True) if col not in narrow_drop]
        grid.add_row(*row)
    console.print(grid)
    if len(shown) < len(result.symbols):
        console.print(f"… and {len(result.symbols) - len(shown):,} more symbols (all of them in --json)")
    console.print("[dim]susp: suspended sessions · lim↑/lim↓: closes at the limit · 一字: one-price limit days · "
                  "ST: days under ST · adj: adjustment events · close: last raw close[/]")
    c = result.cleaning
    dropped = ", ".join(f"{k}: {v}" for k, v in c.counts().items()) or "none"
    fetched = sum(s.fetched for s in result.symbols)
    console.print(f"covered {result.start} → {result.end} · {fetched}/{len(result.symbols)} symbols fetched · "
                  f"{result.api_calls} {'queries (in memory)' if result.synthetic else 'API calls'} "
                  f"({result.retries} retries) · {result.seconds:.1f} s")
    console.print(f"cleaning: {c.rows_in:,} rows in, {c.rows_out:,} kept, dropped: {dropped}")
    console.print(f"watchlist: {result.watchlist} · content hash {result.content_hash[:16]}…")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")


def render_train_result(console: Console, result: dict) -> None:
    """A finished (or early-stopped) training run: one row per generator, baselines, events."""
    grid = table(console, f"HEQIS training run · {result['run_dir']} · {result['status']}")
    for col, just in (("gen", "left"), ("kind", "left"), ("params", "right"), ("best ep", "right"),
                      ("best val loss", "right"), ("val mse", "right"), ("val acc", "right")):  # at the best epoch
        grid.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for gid, g in result["generators"].items():
        best = "★ " if gid == result["best_generator"] else ""
        loss = g["best_val_loss"]
        grid.add_row(f"{best}{gid}", g["kind"], f"{g['params']:,}", str(g["best_epoch"]),
                      f"{loss:.4f}" if loss is not None else "—",
                      f"{g['val_mse']:.3e}" if g.get("val_mse") is not None else "—",
                      f"{g['val_acc']:.3f}" if g.get("val_acc") is not None else "—")
    console.print(grid)
    b = result["baselines"]
    console.print(f"baselines on val: zero-return mse {b['zero_mse']:.3e} · last-value mse {b['last_value_mse']:.3e}"
                  f" · majority-class acc {b['majority_class_acc']:.3f}")
    seg = result["segments"]
    console.print("segments: " + " · ".join(f"{k} {v[0]}→{v[1]}" for k, v in seg.items()))
    events = [e["event"] for e in result["events"]]
    console.print(f"{result['epochs_run']} epochs on {result['device']} in {result['seconds']:.1f} s · "
                  f"{len(events)} knowledge exchanges ({sum('distill' in e for e in events)} distill, "
                  f"{sum(e.startswith('cross') for e in events)} cross-finetune)")
    for note in result.get("notes", []):
        console.print(f"[yellow]note:[/] {note}")
    if result.get("evaluation"):
        render_evaluation(console, result["evaluation"], title="out of sample")
        console.print(f"[dim]the test segment: heqis evaluate {result['run_dir']} --segment test[/]", soft_wrap=True)


def render_search_result(console: Console, result: dict) -> None:
    """An Optuna study: the best trial and how the trials ended."""
    added = result.get("added")
    workers = result.get("workers", 1)
    ran = (f" · this command ran {added} in {workers} process{'es' if workers != 1 else ''}, "
           f"{result.get('seconds', 0):.0f} s" if added is not None else "")
    console.print(f"[bold]Optuna study[/] {result['study']} · {result['trials']} trials "
                  f"({result['complete']} complete, {result['pruned']} pruned){ran} · storage {result['storage']}")
    console.print(f"best trial #{result['best_trial']}: val loss {result['best_value']:.4f} with "
                  + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in result["best_params"].items()))
    console.print(f"recorded in {result['record']} · train it: heqis train --from-search "
                  f"{Path(result['record']).parent}")


def render_backtest_result(console: Console, result: dict) -> None:
    """best_metrics.csv as a table (test segment), then the portfolio against the benchmark."""
    rows = result["rows"]
    grid = table(console, f"HEQIS backtest · {result['out_dir']}")
    cols = [("symbol", "left"), ("gen", "left"), ("mode", "left"), ("return", "right"), ("B&H", "right"),
            ("sharpe", "right"), ("maxDD", "right"), ("trades", "right"), ("win", "right"), ("blocked", "right")]
    selecting = "select_sharpe" in (rows[0] if rows else {})
    if selecting:
        cols.append(("sel." + result["score"][:6], "right"))
    for col, just in cols:
        grid.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for r in rows:
        blocked = r["buy_blocked_limit"] + r["sell_blocked_limit"] + r["blocked_suspended"]
        cells = [r["symbol"], r["generator"], r["mode"], f"{r['total_return']:+.1%}", f"{r['buy_hold_return']:+.1%}",
                 f"{r['sharpe']:.2f}", f"{r['max_drawdown']:.1%}", str(r["trades"]), f"{r['win_rate']:.0%}",
                 str(blocked)]
        if selecting:
            cells.append(_num(r["select_" + result["score"]], ".2f"))   # None: buy-and-hold has no direction
        grid.add_row(*cells)
    console.print(grid)
    seg = result["segments"]
    if "test" in seg:
        console.print(f"chosen on select {seg['select'][0]}→{seg['select'][1]} by {result['score']}, "
                      f"reported on test {seg['test'][0]}→{seg['test'][1]}")
    if result.get("selection"):
        console.print(result["selection"]["summary"])
    p = result["portfolio"]
    if p:
        line = f"equal-weight portfolio {p['portfolio_return']:+.1%} (max drawdown {p['portfolio_max_drawdown']:.1%})"
        if "benchmark_return" in p:
            line += f" vs CSI 300 {p['benchmark_return']:+.1%}"
        console.print(line)
    console.print("[dim]blocked: order-days spent waiting on a limit open or a suspension · research only, "
                  "not investment advice[/]")
    for note in result.get("notes", []):
        console.print(f"[yellow]note:[/] {note}")


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _stars(p: float | None) -> str:
    return "" if p is None else "**" if p < 0.01 else "*" if p < 0.05 else ""


def render_evaluation(console: Console, result: dict, title: str = "HEQIS evaluate") -> None:
    """One table per segment: skill against a zero-return forecast, direction, cross-sectional IC."""
    for seg, body in result["segments"].items():
        grid = table(console, f"{title} · {seg} {body['from']}→{body['to']} · {body['symbols']} symbols, "
                              f"{body['days']} days, {body['samples']:,} samples")
        for col in ("model", "MSE/0", "DM t", "acc", "b.acc", "pred ↓/→/↑", "IC", "IC t", "rank IC", "t"):
            grid.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
        for name, m in body["models"].items():
            share = m["class_share"]
            grid.add_row(name, _num(m["mse_ratio_zero"], ".4f"), _num(m["dm_t"], "+.2f") + _stars(m["dm_p"]),
                         f"{m['acc']:.3f}", f"{m['balanced_acc']:.3f}",
                         f"{share['down']:.0%}/{share['flat']:.0%}/{share['up']:.0%}".replace("%", ""),
                         _num(m["ic_mean"], "+.3f"), _num(m["ic_t"], "+.1f"), _num(m["rank_ic_mean"], "+.3f"),
                         _num(m["rank_ic_t"], "+.1f"))
        console.print(grid)
    console.print("[dim]MSE/0 < 1 and DM t < 0: better than predicting a zero return (Diebold–Mariano, "
                  "Newey–West; * p < 0.05, ** p < 0.01; --json has p) · pred: % of each class predicted · "
                  "IC: daily cross-sectional correlation, t = ICIR·√days[/]", soft_wrap=True)
    for note in result.get("notes", []):
        console.print(f"[yellow]note:[/] {note}")


def render_lookahead(console: Console, report: object) -> None:
    r = report  # LookaheadReport
    verdict = "[bold red]LEAKS[/]" if r.leaks else "[bold green]no look-ahead found[/]"  # type: ignore[attr-defined]
    console.print(f"{verdict} · {r.cuts} cut days over {', '.join(r.symbols)} · "  # type: ignore[attr-defined]
                  f"{r.features_checked} feature checks, {r.signals_checked} generator checks")  # type: ignore[attr-defined]
    if r.leaks:  # type: ignore[attr-defined]
        grid = table(console)
        for col in ("symbol", "cut T", "kind", "what", "first changed", "max diff"):
            grid.add_column(col)
        for leak in r.leaks[:40]:  # type: ignore[attr-defined]
            grid.add_row(leak.symbol, leak.cut, leak.kind, leak.what, leak.first_date, f"{leak.max_diff:.3g}")
        console.print(grid)


def render_export_result(console: Console, result: dict) -> None:
    grid = table(console, f"HEQIS artifacts · {result['out_dir']}")
    for col, just in (("gen", "left"), ("kind", "left"), ("onnx", "left"), ("max|diff| b1", "right"),
                      ("max|diff| b32", "right")):
        grid.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for gid, g in result["generators"].items():
        grid.add_row(gid, g["kind"], g["onnx"], f"{g['max_abs_diff']['batch1']:.1e}",
                     f"{g['max_abs_diff']['batch32']:.1e}")
    console.print(grid)
    console.print(f"ONNX Runtime vs torch on real windows (limit 1e-4) · routing from {result['routing']['source']} · "
                  f"{len(result['files'])} files with sha256 in manifest.json")


def render_bench(console: Console, result: dict) -> None:
    grid = table(console, f"HEQIS backends · {result['artifact_dir']} · {result['calls']} batch-1 calls")
    for col, just in (("gen", "left"), ("backend", "left"), ("variant", "left"), ("p50 ms", "right"),
                      ("p99 ms", "right"), ("max ms", "right"), ("b64 win/s", "right"), ("|diff|", "right")):
        grid.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for r in result["rows"]:
        grid.add_row(r["generator"], r["backend"], r["variant"], f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}",
                     f"{r['max_ms']:.3f}", f"{r['throughput_per_s']:,.0f}", f"{r['max_abs_diff_vs_onnxruntime']:.0e}")
    console.print(grid)
    for name, why in result["unavailable"].items():
        console.print(f"[dim]{name}: unavailable — {why}[/]", soft_wrap=True)


def render_status(console: Console, doc: dict) -> None:
    """The fleet: one row per process; then why a silent brain is silent, and the gateway's watchdog."""
    where = f" · {doc['dir']}" if doc.get("dir") else ""
    grid = table(console, f"HEQIS fleet · {doc['fleet']}{where}")
    for col, just in (("node", "left"), ("role", "left"), ("pid", "right"), ("alive", "left"), ("hb age", "right"),
                      ("sent", "right"), ("answered", "right"), ("signals", "right"), ("restarts", "right")):
        grid.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for n in doc["nodes"]:
        c = n.get("counters", {})
        age = n.get("heartbeat_age_s")
        grid.add_row(n["name"], n["role"], str(n.get("pid") or "—"), "[green]yes[/]" if n["alive"] else "[red]no[/]",
                     f"{age:.1f}s" if age is not None else "—", str(c.get("sent", "—")),
                     str(c.get("answered", c.get("stored", "—"))), str(c.get("signals", "—")),
                     str(c.get("restarts", "—")))
    console.print(grid)
    for n in doc["nodes"]:
        if n.get("silent"):
            console.print(f"[bold yellow]{n['name']} is silent[/]: {n['silent']}", soft_wrap=True)
        if n.get("refused"):
            console.print(f"[bold red]{n['name']} is refused[/]: {n['refused']}", soft_wrap=True)
        c = n.get("counters", {})
        trouble = {k: c[k] for k in ("failed", "rejected_replies", "resent", "deadline_expired") if c.get(k)}
        if n["role"] == "gateway" and trouble:
            reasons = c.get("rejected_replies_by_reason") or {}
            why = f" ({', '.join(f'{k} {v}' for k, v in reasons.items())})" if reasons else ""
            console.print(f"[yellow]{n['name']}[/]: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                                                 for k, v in trouble.items()) + why, soft_wrap=True)
    for n in doc["nodes"]:
        if n["role"] == "gateway" and isinstance(n.get("watchdog"), dict):
            console.print(watchdog_line(n["watchdog"]), soft_wrap=True, markup=False, highlight=False)


def watchdog_line(wd: dict) -> str:
    """The gateway's watchdog in one line: policy and model backend, counts, flag rate, by reason.

    ``watchdog (hold, onnxruntime): 1,234 checked, 5 flagged (0.41%), 5 held — model 3, limit 2``;
    reasons with no flag are left out, the most frequent first; no model: "rules only"."""
    def n(key: str) -> int:
        v = wd.get(key)
        return int(v) if isinstance(v, (int, float)) else 0

    policy = wd.get("policy") or "?"
    if policy == "off":
        return "watchdog (off): bars are not checked"
    checked, flagged = n("checked"), n("flagged")
    rate = f" ({flagged / checked * 100:.2f}%)" if checked else ""
    line = (f"watchdog ({policy}, {wd.get('model') or 'rules only'}): {checked:,} checked, "
            f"{flagged:,} flagged{rate}, {n('held'):,} held")
    by_reason = wd.get("by_reason") if isinstance(wd.get("by_reason"), dict) else {}
    counts = sorted(((str(k), int(v)) for k, v in by_reason.items() if isinstance(v, (int, float)) and v > 0),
                    key=lambda kv: -kv[1])
    return line + (" — " + ", ".join(f"{k} {v:,}" for k, v in counts) if counts else "")


def fleet_line(t: dict) -> str:
    """One line of live counters from a gateway telemetry snapshot (the demo prints one per second)."""
    gw = t["nodes"][0]["counters"]
    lat = t["latency"]
    line = (f"signals {gw.get('signals', 0):>5} · queue {t['queue_depth']:>3} · in flight {gw.get('in_flight', 0):>2}"
            f" · drops {t['drops']} · p50 {lat['p50_us'] or 0:>5.0f} µs · p99 {lat['p99_us'] or 0:>5.0f} µs · "
            f"{lat['throughput_per_s']:>5.1f}/s")
    source = t.get("source") or {}
    if source.get("done") and source.get("last_bar_time"):
        from datetime import datetime, timezone

        day = datetime.fromtimestamp(source["last_bar_time"] / 1e9, tz=timezone.utc).date()
        line += f" · replay finished at {day}"
    return line


def render_runtime_bench(console: Console, r: dict) -> None:
    lat = r["latency"]
    console.print(f"[bold]end to end[/] at {lat['rate']:.0f} windows/s for {lat['seconds']:.0f} s: "
                  f"p50 {lat['p50_us']:.0f} µs · p99 {lat['p99_us']:.0f} µs · max {lat['max_us']:.0f} µs · "
                  f"{lat['received']}/{lat['sent']} answered")
    pp = r["pingpong"]
    console.print(f"[bold]raw pyzmq ping-pong[/] ({pp['bytes']} B, to an echo process at the same rate): "
                  f"p50 {pp['p50_us']:.0f} µs (back to back {pp['back_to_back_p50_us']:.0f} µs) · "
                  f"brain preprocess+inference p50 {r['brain_p50_us']:.0f} µs")
    console.print(f"round trip / (ping-pong + brain work) = [bold]{r['overhead_ratio']:.2f}×[/] (goal ≤ 1.5×; "
                  f"{r['overhead_ratio_back_to_back']:.2f}× against the back-to-back ping-pong)")
    for row in r["throughput"]:
        console.print(f"{row['brains']} brain(s): max zero-loss throughput {row['windows_per_s']:,.0f} windows/s")


def watchdog_trained_line(wd: dict, alone: bool = False) -> str:
    """A trained watchdog (heqis.train.watchdog.WatchdogResult) in one line."""
    return (f"watchdog: {wd['run_dir']}/watchdog.pt · threshold {wd['threshold']:.3f} (fpr {wd['fpr']:g} on "
            f"{wd['val_windows']} val windows) · {wd['train_windows']} train windows · {wd['seconds']:.1f}s"
            + (" · generators untouched" if alone else ""))


def render_watchdog_bench(console: Console, r: dict) -> None:
    from heqis.runtime.watchdog_bench import render

    console.print(escape(render(r)), soft_wrap=True, highlight=False)


def render_up(console: Console, result: dict) -> None:
    """Per host: which step it reached, what it uploaded and started, and why it failed."""
    grid = table(console, f"HEQIS up · fleet {result['fleet']} · {result['seconds']:.1f} s")
    for col, just in (("host", "left"), ("role", "left"), ("ok", "left"), ("release", "left"), ("uploaded", "right"),
                      ("started", "left"), ("problem", "left")):
        grid.add_column(col, justify=just, no_wrap=col != "problem")  # type: ignore[arg-type]
    for h in result["hosts"]:
        up_txt = f"{h['uploaded']} files, {h['uploaded_bytes'] / 2**20:.1f} MB" if h["uploaded"] else "nothing"
        problem = f"{h['step']}: {h['error']}" + (f" — log: {h['log_tail']}" if h["log_tail"] else "") \
            if not h["ok"] else ""
        grid.add_row(h["host"], h["role"], "[green]yes[/]" if h["ok"] else "[red]no[/]", h["release"] or "—", up_txt,
                     ", ".join(h["started"]) or "—", problem)
    console.print(grid)
    if result["status"]:
        render_status(console, result["status"])


def _pm(mean: float | None, std: float | None, fmt: str) -> str:
    if mean is None:
        return "—"
    return f"{mean:{fmt}}" + ("" if std is None else f" ± {std:{fmt.lstrip('+')}}")


def _pval(p: float | None) -> str:
    return "—" if p is None else f"{p:.3f}" if p >= 0.001 else f"{p:.0e}"


def render_compare(console: Console, result: dict) -> None:
    """``heqis compare``: the folds with their times, the model table, the paired tests, the verdict
    (compare.md has every column: val and select dates, per-variant seconds, per-fold p-values)."""
    c = result["config"]
    k = len(result["folds"])
    wide = console.width >= 110
    folds = table(console, f"HEQIS compare · preset {c['preset']} · {k} walk-forward folds · {result['out']}")
    for col in ("fold", "train", "val", "test", "days", "seconds"):
        folds.add_column(col, justify="left" if col in ("train", "val", "test") else "right", no_wrap=True)
    for f in result["folds"]:
        s = f["segments"]
        folds.add_row(str(f["fold"]), f"… {s['train'][1]}", f"{s['val'][0]} … {s['val'][1]}" if wide else s["val"][0],
                      f"{s['test'][0]} … {s['test'][1]}", str(next(iter(f["variants"].values()))["days"]),
                      f"{f['seconds']:.0f}")
    console.print(folds)
    grid = table(console, f"test segments · mean ± std over {k} folds · DM against a zero forecast, pooled")
    columns = ["model", "MSE/0", "DM t", "p", "IC", *(["rank IC"] if wide else []), "b.acc"]
    for col in columns:
        grid.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    chosen = []
    for r in result["rows"]:
        if r.get("chosen"):
            chosen.append(f"{r['variant']} {','.join(m or '—' for m in r['chosen'])}")
        ic = [_pm(r["ic_mean_mean"], r["ic_mean_std"], "+.3f").replace(" ", "")]
        if wide:
            ic.append(_pm(r["rank_ic_mean_mean"], r["rank_ic_mean_std"], "+.3f").replace(" ", ""))
        label = r["model"] if r["variant"] == "baseline" else f"{r['variant']} alone" if r["variant"] == r["model"] \
            else f"{r['variant']} · {r['model']}"
        grid.add_row(label,
                     _pm(r["mse_ratio_zero_mean"], r["mse_ratio_zero_std"], ".4f").replace(" ", ""),
                     _num(r["dm_t_pooled"], "+.2f") + _stars(r["dm_p_pooled"]), _pval(r["dm_p_pooled"]), *ic,
                     _pm(r["balanced_acc_mean"], r["balanced_acc_std"], ".3f").replace(" ", ""))
    console.print(grid)
    if chosen:
        console.print(f"[dim]val-best per fold: {escape('; '.join(chosen))}[/]", soft_wrap=True)
    if result["pairs"]:
        pairs = table(console, "paired · d = e²_A − e²_B a day (negative: A errs less)")
        for col in ("A", "B", "d / e²_0", "DM t", "p", *(["p per fold"] if wide else []), "A lower"):
            pairs.add_column(col, justify="left" if col in ("A", "B", "p per fold") else "right", no_wrap=True)
        for p in result["pairs"]:
            per = [",".join(_pval(x) for x in p["dm_p_folds"])] if wide else []
            pairs.add_row(p["a"], p["b"], _num(p["rel_d_pooled"], "+.1e"),
                          _num(p["dm_t_pooled"], "+.2f") + _stars(p["dm_p_pooled"]), _pval(p["dm_p_pooled"]), *per,
                          f"{p['better_folds']}/{k}")
        console.print(pairs)
    if result.get("verdict"):
        console.print(f"[bold]adversarial game:[/] {escape(result['verdict']['text'])}", soft_wrap=True)
    n = result["counts"]
    console.print(f"[dim]{n['trained']} trained, {n['resumed']} resumed, {n['skipped']} already finished · "
                  f"{result['seconds']:.0f} s · * p < 0.05, ** p < 0.01 · pooled: DM on the test days of all folds "
                  f"in a row (Newey–West) · {escape(str(Path(result['out']) / 'compare.md'))}, .csv, .json[/]",
                  soft_wrap=True)
    for note in result.get("notes", []):
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
