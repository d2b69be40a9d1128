"""Time per training step of each generator, per preset size, on CPU (and CUDA where present).

A step is forward + backward + AdamW update of one generator on one batch of its own windows
[batch, window, 24] (supervised loss), the unit the multi-GAN trainer repeats. Printed as ms per step
and windows per second, with the GRU of the same preset as the baseline ratio.

``--epoch`` times whole passes of the multi-GAN trainer over one training set instead (tiny preset
by default, synthetic sine bars): a supervised pass, the adversarial pass as the trainer runs it,
and the adversarial pass as it was written before discriminators were batched (one D forward per
candidate, one backward per generator) — the same updates, checked equal, interleaved, best of
``--repeats``; plus a whole supervised vs adversarial epoch (validation included, no exchanges).

    python benchmarks/train_step.py [--presets tiny,default,paper] [--steps N] [--json]
    python benchmarks/train_step.py --epoch [--presets tiny] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from heqis.features.columns import MODEL_INPUTS
from heqis.models.encoders import build_encoders
from heqis.models.generators import build_generator
from heqis.train.losses import discriminator_loss, generator_adversarial_loss, supervised_loss
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


def reference_adversarial_step(t, x, y, label, stats, n_batches) -> None:
    """The adversarial step before batching (the baseline): one D forward per candidate batch, the
    same game as the trainer's (each generator on its own look-back, fakes judged under
    ``t.fake_labels``)."""
    p = t.preset
    ctx = t.context(x)
    outs = {gid: t.forward(gid, x) for gid in t.ids}
    as_class = {gid: t.fake_labels(cls, label) for gid, (_, cls) in outs.items()}
    w = t.weights
    for j, dj in enumerate(t.ids):
        d = t.discriminators[dj]
        judged = [(i, gi) for i, gi in enumerate(t.ids) if w[i, j] > 0]
        real = d(ctx, y, label)
        total = sum(float(w[i, j]) for i, _ in judged)
        fake_loss = 0.0
        for i, gi in judged:
            fake = d(ctx, outs[gi][0].detach(), as_class[gi])
            fake_loss = fake_loss + float(w[i, j]) / total * discriminator_loss(real, fake)
        t.d_opt[dj].zero_grad()
        fake_loss.backward()
        t.d_opt[dj].step()
        stats[dj]["d_loss"] += fake_loss.item() / n_batches
    for i, gid in enumerate(t.ids):
        reg, cls = outs[gid]
        loss, _, _ = t.supervised(reg, cls, y, label)
        adv = sum(float(w[i, j]) * generator_adversarial_loss(t.discriminators[dj](ctx, reg, as_class[gid]))
                  for j, dj in enumerate(t.ids) if w[i, j] > 0)
        total = loss + p.adversarial_weight * adv
        t.g_opt[gid].zero_grad()
        total.backward()
        t.g_opt[gid].step()
        s = stats[gid]
        s["train_loss"] += total.item() / n_batches
        s["adv_loss"] += adv.item() / n_batches


def epoch_rows(preset_name: str, repeats: int, windows: int) -> list[dict]:
    """Seconds per pass over the training set: supervised, adversarial, adversarial before batching."""
    import copy

    from heqis.train.data import prepare
    from heqis.train.trainer import MultiGANTrainer
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # the repo root: tests.synthetic
    from tests.synthetic import sine_market

    p = get_preset(preset_name, encoder_epochs=1, distill_every=0, cross_every=0, warmup_epochs=0)
    bars, sessions = sine_market(symbols=4, n=1200)
    data = prepare(bars, sessions, p.longest_window, p.flat_band, windows, 3407,
                   max_val=p.max_val_windows)
    t = MultiGANTrainer(p, data, device="cpu", seed=3407)
    t.train_encoders()
    start = copy.deepcopy(t.state_dict())
    n = len(t.ids)
    kinds = {
        "supervised": lambda *a: t._supervised_step(*a),
        "adversarial": lambda *a: t._adversarial_step(*a),
        "adversarial (before)": lambda *a: reference_adversarial_step(t, *a),
    }
    best = {k: float("inf") for k in kinds}
    params = {}
    for _ in range(repeats):
        for name, step in kinds.items():
            t.load_state_dict(copy.deepcopy(start))
            t.weights = torch.full((n, n), 1.0 / n)        # after warm-up: every D judges every G
            torch.manual_seed(0)
            batches = t.batches(len(data.train))
            stats = {g: {"train_loss": 0.0, "train_mse": 0.0, "train_ce": 0.0, "adv_loss": 0.0, "d_loss": 0.0}
                     for g in t.ids}
            t0 = time.perf_counter()
            for idx in batches:
                step(*t._batch(data.train, idx), stats, len(batches))
            best[name] = min(best[name], time.perf_counter() - t0)
            params[name] = torch.cat([q.detach().flatten() for g in t.generators.values() for q in g.parameters()])
    diff = float((params["adversarial"] - params["adversarial (before)"]).abs().max())
    if diff > 1e-4:
        raise SystemExit(f"batched adversarial pass differs from the reference by {diff:.2e}")
    # whole epochs: pretrain (supervised) vs adversarial, validation included
    epoch = {}
    for phase in ("pretrain", "adversarial"):
        secs = []
        for _ in range(repeats):
            t.load_state_dict(copy.deepcopy(start))
            t.preset.pretrain_epochs = 10 if phase == "pretrain" else 0
            t0 = time.perf_counter()
            t.run_epoch()
            secs.append(time.perf_counter() - t0)
        epoch[phase] = min(secs)
    sup = best["supervised"]
    rows = [{"preset": preset_name, "pass": k, "seconds": v, "windows_per_s": len(data.train) / v,
             "vs_supervised": v / sup} for k, v in best.items()]
    rows += [{"preset": preset_name, "pass": f"epoch {k}", "seconds": v, "windows_per_s": len(data.train) / v,
              "vs_supervised": v / epoch["pretrain"]} for k, v in epoch.items()]
    rows.append({"preset": preset_name, "pass": "max |param diff| batched vs before", "seconds": diff,
                 "windows_per_s": float("nan"), "vs_supervised": float("nan")})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=None, help="default: tiny,default,paper (--epoch: tiny)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--epoch", action="store_true", help="time trainer passes (supervised vs adversarial)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--windows", type=int, default=1024, help="--epoch: training windows per pass")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.epoch:
        rows = [r for name in (args.presets or "tiny").split(",") for r in epoch_rows(name.strip(), args.repeats,
                                                                                 args.windows)]
        if args.json:
            print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=2))
            return 0
        print(f"trainer passes over the training set, best of {args.repeats}; {torch.get_num_threads()} CPU threads")
        print(f"{'preset':<8}{'pass':<36}{'seconds':>10}{'windows/s':>11}{'vs sup.':>9}")
        for r in rows:
            print(f"{r['preset']:<8}{r['pass']:<36}{r['seconds']:>10.3g}{r['windows_per_s']:>11,.0f}"
                  f"{r['vs_supervised']:>8.2f}×")
        return 0
    args.presets = args.presets or "tiny,default,paper"
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    n_f = len(MODEL_INPUTS)
    for name in args.presets.split(","):
        p = get_preset(name.strip())
        for device in devices:
            torch.manual_seed(0)
            enc = build_encoders(n_f, p.encoder_window, p.cae, p.t3vae)
            base = None
            for gid, spec in p.generators.items():
                window = p.windows()[gid]                # what the trainer feeds it: its own look-back
                model = build_generator(spec["kind"], n_f, window, spec, enc).to(device)
                sec = time_steps(model, p.batch_size, window, device, args.steps)
                base = base or sec
                rows.append({"preset": name, "device": device, "generator": gid, "kind": spec["kind"],
                             "window": window, "batch": p.batch_size, "ms_per_step": sec * 1e3,
                             "windows_per_s": p.batch_size / sec, "vs_gru": sec / base,
                             "params": sum(q.numel() for q in model.parameters() if q.requires_grad)})
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=2))
        return 0
    print(f"training step (forward + backward + AdamW), median of {args.steps}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{'preset':<8}{'device':<7}{'gen':<4}{'kind':<12}{'params':>11}{'window':>7}{'batch':>7}{'ms/step':>10}"
          f"{'windows/s':>11}{'vs GRU':>8}")
    for r in rows:
        print(f"{r['preset']:<8}{r['device']:<7}{r['generator']:<4}{r['kind']:<12}{r['params']:>11,}"
              f"{r['window']:>7}{r['batch']:>7}{r['ms_per_step']:>10.1f}{r['windows_per_s']:>11,.0f}"
              f"{r['vs_gru']:>7.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
