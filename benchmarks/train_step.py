"""Time per training step of each generator, per preset size, on CPU (and CUDA where present).

A step is forward + backward + AdamW update of one generator on one batch of windows
[batch, 60, 24] (supervised loss), the unit the multi-GAN trainer repeats. Printed as ms per step
and windows per second, with the GRU of the same preset as the baseline ratio.

    python benchmarks/train_step.py [--presets tiny,default,paper] [--steps N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from heqis.features.columns import MODEL_INPUTS
from heqis.models.encoders import build_encoders
from heqis.models.generators import build_generator
from heqis.train.losses import supervised_loss
from heqis.train.presets import get_preset


def time_steps(model: torch.nn.Module, batch: int, window: int, device: str, steps: int) -> float:
    """Median seconds per training step after warm-up."""
    n_f = len(MODEL_INPUTS)
    x = torch.randn(batch, window, n_f, device=device)
    y = torch.randn(batch, 1, device=device)
    c = torch.randint(0, 3, (batch,), device=device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    times = []
    for i in range(steps + 3):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        reg, cls = model(x)
        loss, _, _ = supervised_loss(reg, cls, y, c)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,default,paper")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    n_f = len(MODEL_INPUTS)
    for name in args.presets.split(","):
        p = get_preset(name.strip())
        for device in devices:
            torch.manual_seed(0)
            enc = build_encoders(n_f, p.window, p.cae, p.t3vae)
            base = None
            for gid, spec in p.generators.items():
                model = build_generator(spec["kind"], n_f, p.window, spec, enc).to(device)
                sec = time_steps(model, p.batch_size, p.window, device, args.steps)
                base = base or sec
                rows.append({"preset": name, "device": device, "generator": gid, "kind": spec["kind"],
                             "batch": p.batch_size, "ms_per_step": sec * 1e3,
                             "windows_per_s": p.batch_size / sec, "vs_gru": sec / base,
                             "params": sum(q.numel() for q in model.parameters() if q.requires_grad)})
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=2))
        return 0
    print(f"training step (forward + backward + AdamW), median of {args.steps}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{'preset':<8}{'device':<7}{'gen':<4}{'kind':<12}{'params':>11}{'batch':>7}{'ms/step':>10}"
          f"{'windows/s':>11}{'vs GRU':>8}")
    for r in rows:
        print(f"{r['preset']:<8}{r['device']:<7}{r['generator']:<4}{r['kind']:<12}{r['params']:>11,}"
              f"{r['batch']:>7}{r['ms_per_step']:>10.1f}{r['windows_per_s']:>11,.0f}{r['vs_gru']:>7.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
