"""The "Deploy" panel: ``heqis export``, ``convert`` and the ``bench`` group — thin shells over the core."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from heqis.cli.common import ArtifactsOpt, DataDirOpt, JsonOpt, emit_json, settings, show, stdout, user_errors

PANEL = "Deploy"
BACKENDS = ("onnxruntime", "torch", "tensorrt", "rknn")
GeneratorOpt = Annotated[list[str] | None, typer.Option("--generator", "-g", metavar="GID", help="Generator "
                                                        "(repeatable; default: all of them).")]


def export(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="Training run to export.")],
    generator: GeneratorOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="DIR", help="Artifact folder (default "
                                             "./deploy_output; \\[artifacts] dir).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", "-d", metavar="DIR", help="Data store (default: "
                                                  "the run's).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export ONNX models (opset 17, dynamic batch), routing.json, scaler_params.json and a sha256 manifest.

    Every model is run in ONNX Runtime on real windows at batch 1 and 32 and compared with torch;
    the export fails (writing nothing) when a difference exceeds 1e-4. routing.json takes the
    backtest's choice per symbol when RUN_DIR/backtest exists, else the best generator on validation.
    The set is named by a set id (recorded with every signal the fleet stores).
    """
    from heqis.export.onnx_export import export_run

    with user_errors(ctx):
        s = settings(artifacts_dir=out)
        result = export_run(run_dir, generator, s.artifacts_dir, data_dir)
    show(result.to_dict(), json_out, "render_export_result")


def convert(
    ctx: typer.Context,
    to: Annotated[Literal["tensorrt", "rknn"], typer.Option("--to", help="tensorrt (on the Jetson) | rknn "
                                                           "(checked in the simulator here, for the RK3568).")],
    artifacts: ArtifactsOpt = None,
    generator: GeneratorOpt = None,
    precision: Annotated[Literal["fp32", "fp16", "int8"], typer.Option(help="TensorRT precision.")] = "fp16",
    target: Annotated[Literal["rk3566", "rk3568", "rk3588", "rk3562", "rk3576"], typer.Option(
        help="RKNN target platform.")] = "rk3568",
    quantize: Annotated[bool, typer.Option("--quantize", help="RKNN: INT8-quantize on the shipped real "
                                           "windows.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="TensorRT: print the trtexec command instead of "
                                          "building.")] = False,
    watchdog: Annotated[bool, typer.Option("--watchdog/--no-watchdog", help="RKNN: also convert the gateway's "
                                           "watchdog model, when the set has one.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Convert exported ONNX models: TensorRT engines (FP16/INT8) or RKNN models (checked in the simulator).

    RKNN also converts the set's watchdog (rknn/watchdog.rknn, which the gateway on the board then
    scores with): checked on what the gateway acts on, its flags at the set's threshold, on held-out
    clean windows and faulty copies of them. A watchdog whose flags differ (float), or agree on fewer
    than 98% of the windows (INT8), fails the command and leaves the model in place as it was.

    [bold]Examples[/]

      heqis convert --to rknn                      # needs `make rknn-env`; prints simulator parity
      heqis convert --to rknn --quantize -g G1
      heqis convert --to tensorrt --precision int8 --dry-run
    """
    with user_errors(ctx):
        from heqis.formats.artifacts import ArtifactSet

        folder = settings(artifacts_dir=artifacts).artifacts_dir
        gens = generator or ArtifactSet.open(folder).generators
        if to == "rknn":
            from heqis.export.rknn_convert import convert_rknn, convert_watchdog_rknn

            results = []
            for gid in gens:
                r = convert_rknn(folder, gid, target, quantize)
                results.append(r.to_dict())
                if not json_out:
                    stdout.print(f"{gid}: {r.path} · {'INT8' if r.quantized else 'float'} · simulator vs ONNX "
                                 f"Runtime max |diff|: return {r.reg_max_abs_diff:.2e}, class probabilities "
                                 f"{r.prob_max_abs_diff:.2e}, logits {r.cls_max_abs_diff:.2e} · direction "
                                 f"agreement {r.direction_agreement:.0%}", soft_wrap=True)
            wd = None
            if watchdog and ArtifactSet.open(folder, verify=False).manifest.get("watchdog"):
                w = convert_watchdog_rknn(folder, target, quantize)
                wd = w.to_dict()
                if not json_out:
                    kind = "INT8 (score tail float16)" if w.quantized else "float"
                    stdout.print(f"watchdog: {w.path} · {kind} · simulator vs ONNX Runtime max |score diff| "
                                 f"{w.max_abs_diff:.3g} ({w.max_rel_diff:.1e} of max(score, threshold); "
                                 f"float tolerance {w.score_rtol:g}) · flag agreement at threshold "
                                 f"{w.threshold:.2f}: {w.flag_agreement:.1%} (clean {w.clean_windows}: "
                                 f"{w.clean_flag_agreement:.1%}, faulty {w.faulty_windows}: "
                                 f"{w.faulty_flag_agreement:.1%})", soft_wrap=True)
            if json_out:
                emit_json({"to": "rknn", "results": results, "watchdog": wd})
            return
        from heqis.export.tensorrt_convert import convert_tensorrt

        payload = convert_tensorrt(folder, gens, precision, dry_run)
    if json_out:
        emit_json(payload)
    else:
        for line in payload["lines"]:
            stdout.print(escape(line), soft_wrap=True)


def bench_backends(
    ctx: typer.Context,
    artifacts: ArtifactsOpt = None,
    generator: GeneratorOpt = None,
    backend: Annotated[list[str] | None, typer.Option("--backend", "-b", metavar="|".join(BACKENDS),
                                                      help="Backend (repeatable; default every available one).")]
        = None,
    calls: Annotated[int, typer.Option(min=10, help="Timed batch-1 calls after warm-up.")] = 200,
    json_out: JsonOpt = False,
) -> None:
    """Batch-1 latency (p50/p99/max) and batch-64 throughput of every available backend, same model and inputs."""
    from heqis.bench import bench_backends as run_bench

    for b in backend or []:
        if b not in BACKENDS:
            raise typer.BadParameter(f"'{b}' is not one of {', '.join(BACKENDS)}", param_hint="--backend")
    with user_errors(ctx):
        result = run_bench(settings(artifacts_dir=artifacts).artifacts_dir, generator, backend, calls)
    show(result.to_dict(), json_out, "render_bench")


def bench_runtime(
    ctx: typer.Context,
    artifacts: ArtifactsOpt = None,
    data_dir: DataDirOpt = None,
    rate: Annotated[float, typer.Option(min=1, help="Fixed rate for the latency measurement (windows/s).")] = 1000.0,
    seconds: Annotated[float, typer.Option(min=0.5, help="Duration of the latency measurement.")] = 5.0,
    brains: Annotated[str, typer.Option(metavar="N,M", help="Brain counts for the zero-loss throughput "
                                        "scaling, e.g. 1,2,4.")] = "1,2",
    json_out: JsonOpt = False,
) -> None:
    """End-to-end latency at a fixed rate and max zero-loss throughput, next to a raw pyzmq ping-pong.

    Real gateway and brain processes on loopback ports taken free from the OS; the replayed bars
    come from the data store.
    """
    from heqis.runtime.bench import bench_runtime as run_bench

    counts = [int(b) for b in brains.split(",") if b.strip().isdigit() and int(b) > 0]
    if not counts or len(counts) != len(brains.split(",")):
        raise typer.BadParameter(f"'{brains}' is not a comma-separated list of brain counts", param_hint="--brains")
    with user_errors(ctx):
        s = settings(artifacts_dir=artifacts, data_dir=data_dir)
        result = run_bench(s.artifacts_dir, s.data_dir, rate, seconds, counts)
    show(result, json_out, "render_runtime_bench")


def bench_watchdog(
    ctx: typer.Context,
    artifacts: ArtifactsOpt = None,
    data_dir: DataDirOpt = None,
    bars: Annotated[int, typer.Option(min=10, help="Replayed bars per round.")] = 2000,
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved rounds; the best of each side counts.")] = 7,
    json_out: JsonOpt = False,
) -> None:
    """The gateway's data watchdog: the model's cost per window (ONNX Runtime, 1 thread, batch 1; target
    ≤ 0.3 ms), the rules' per bar, and its share of the gateway's per-bar time (off vs warn, same bars).

    Needs an artifact set with watchdog.onnx (heqis train --watchdog -o RUN, then heqis export RUN) and
    the data store to replay. Outputs are checked equal before anything is timed.
    """
    from heqis.runtime.watchdog_bench import measure

    with user_errors(ctx):
        s = settings(artifacts_dir=artifacts, data_dir=data_dir)
        result = measure(s.artifacts_dir, s.data_dir, bars, rounds)
    show(result, json_out, "render_watchdog_bench")


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(export)
    app.command(rich_help_panel=PANEL)(convert)
    bench = typer.Typer(help="Benchmarks of the installed system: backends, the runtime end to end, and the "
                        "gateway's data watchdog.",
                        no_args_is_help=True)
    bench.command("backends")(bench_backends)
    bench.command("runtime")(bench_runtime)
    bench.command("watchdog")(bench_watchdog)
    app.add_typer(bench, name="bench", rich_help_panel=PANEL)
