"""The multi-agent adversarial trainer (Multi-GAN): G1..Gn against their discriminators D1..Dn.

Epoch schedule (1-based):

1. encoders: the CAE and the t3-VAE learn to reconstruct training windows, then freeze (G4 reads them);
2. epochs ≤ ``pretrain_epochs``: supervised only — MSE on the next-day return + CE on direction;
3. later epochs, adversarial: every D_j learns real (target 1) vs the fakes of the generators it
   judges (target 0); every G_i minimises MSE + CE + adv_weight · Σ_j W[i, j] · BCE(D_j(fake_i), 1).
   The weighting matrix W is the identity during warm-up (each generator faces its own
   discriminator); after it, in the "maa" game, every row is softmax(−z / T) of the generators'
   standardised validation losses z (the critics of the generators that validate best weigh most),
   in "legacy" the uniform average;
4. every ``distill_every`` adversarial epochs the best generator (by the last validation) teaches
   the worst one (knowledge distillation); every ``cross_every`` epochs the cross step: in "maa" the
   best generator plays the best discriminator alone for ``cross_steps`` batches, kept only if its
   validation loss improves and rolled back otherwise; in "legacy" the elites fine-tune on each
   other's predictions. Both are logged as events;
5. after every epoch: validation, best-checkpoint bookkeeping and early stopping.

The "maa" game (presets.GAMES) also gives every generator its own look-back: the data is cut into
windows of the longest one and G_i reads the last ``window_i`` bars of each (inputs are scale-free
relative to the window's last bar, so that tail is exactly G_i's own window, scaled by the same
scaler); and a discriminator judges a fake under the class its generator predicted, real targets
under the true class — a forecast whose return and direction disagree is then visible to D.

The trainer holds no files: the runner saves checkpoints from ``state_dict()`` and ``best_states``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from heqis.errors import HeqisError
from heqis.models.discriminator import ConvDiscriminator
from heqis.models.encoders import build_encoders
from heqis.models.generators import Generator, build_generator
from heqis.train.data import Split, TrainingData
from heqis.train.losses import (
    balanced_class_weights,
    discriminator_loss,
    distillation_loss,
    generator_adversarial_loss,
    supervised_loss,
)
from heqis.train.presets import CLASS_WEIGHTS, GAMES, Preset

SHARE_BATCHES = 4   # batches of an adversarial epoch whose adversarial gradient share is measured (mean)


@dataclass
class EpochReport:
    """What one epoch did: one row per generator for metrics.csv, plus events and improvements."""

    epoch: int
    phase: str
    rows: list[dict[str, Any]]
    events: list[str] = field(default_factory=list)
    improved: list[str] = field(default_factory=list)
    stop: bool = False


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class MultiGANTrainer:
    def __init__(self, preset: Preset, data: TrainingData, device: str = "cpu", seed: int = 3407,
                 encoder_log: Callable[[str], None] | None = None) -> None:
        seed_everything(seed)
        self.preset = preset
        self.data = data
        self.device = torch.device(device)
        self.seed = seed
        self.shuffle = torch.Generator().manual_seed(seed)
        f = data.n_features
        self.windows = preset.windows()
        if data.window != max(self.windows.values()):
            raise ValueError(f"data cut into {data.window}-bar windows; the generators need {self.windows}")
        self.encoder_window = preset.encoder_window
        cae, t3vae = build_encoders(f, self.encoder_window, preset.cae, preset.t3vae)
        self.cae, self.t3vae = cae.to(self.device), t3vae.to(self.device)
        self.encoders_trained = False
        self.encoder_log = encoder_log or (lambda line: None)
        self.ids = list(preset.generators)
        self.generators: dict[str, Generator] = {}
        for gid, spec in preset.generators.items():
            self.generators[gid] = build_generator(spec["kind"], f, self.windows[gid], spec,
                                                   (self.cae, self.t3vae)).to(self.device)
        self.discriminators = {gid: ConvDiscriminator(preset.context, preset.discriminator.get("channels", 32))
                               .to(self.device) for gid in self.ids}
        self.g_opt = {gid: torch.optim.AdamW([p for p in g.parameters() if p.requires_grad], lr=preset.lr,
                                             weight_decay=preset.weight_decay)
                      for gid, g in self.generators.items()}
        self.d_opt = {gid: torch.optim.AdamW(d.parameters(), lr=preset.d_lr or preset.lr,
                                             weight_decay=preset.weight_decay)
                      for gid, d in self.discriminators.items()}
        self.epoch = 0
        self.best: dict[str, float] = {gid: math.inf for gid in self.ids}
        self.best_epoch: dict[str, int] = {gid: 0 for gid in self.ids}
        self.best_states: dict[str, dict[str, torch.Tensor]] = {}
        self.best_metrics: dict[str, dict[str, float]] = {}
        self.last_val: dict[str, dict[str, float]] = {}
        self.stale = 0
        self.weights = torch.eye(len(self.ids))
        self.events: list[dict[str, Any]] = []
        self.maa = preset.game == "maa"
        if preset.game not in GAMES:
            raise HeqisError(f"unknown game '{preset.game}'", hint=f"use one of: {', '.join(GAMES)}")
        if preset.class_weights not in CLASS_WEIGHTS:
            raise HeqisError(f"class_weights '{preset.class_weights}'", hint=f"use one of: {', '.join(CLASS_WEIGHTS)}")
        self.class_weight = (balanced_class_weights(data.train.cls).to(self.device)
                             if preset.class_weights == "balanced" else None)
        y = data.scaler
        ctx = data.context_index
        # the discriminators compare returns in the target's scale: map ret1's x-scale onto it
        self._ctx = (ctx, float(y.x_scale[ctx]), float(y.x_min[ctx]), y.y_scale, y.y_min)

    # -- helpers -------------------------------------------------------------------------------
    def context(self, x: torch.Tensor) -> torch.Tensor:
        i, xs, xm, ys, ym = self._ctx
        ret = (x[:, -self.preset.context:, i] - xm) / xs
        return ret * ys + ym

    @staticmethod
    def tail(x: torch.Tensor, window: int) -> torch.Tensor:
        """The last ``window`` bars of windows [B, W, F] (all of them when W == window)."""
        return x if x.shape[1] == window else x[:, -window:]

    def forward(self, gid: str, x: torch.Tensor, module: nn.Module | None = None) -> tuple[torch.Tensor, ...]:
        """G_gid (or ``module``, a copy of it) on its own look-back of the longest windows ``x``."""
        return (module or self.generators[gid])(self.tail(x, self.windows[gid]))

    def fake_labels(self, cls: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The class a discriminator judges a fake under: its generator's own prediction ("maa"), or
        the true class ("legacy")."""
        return cls.detach().argmax(1) if self.maa else label

    def supervised(self, reg: torch.Tensor, cls: torch.Tensor, y: torch.Tensor,
                   label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, mse, ce) of the preset's supervised loss, with the run's class weights."""
        p = self.preset
        return supervised_loss(reg, cls, y, label, p.mse_weight, p.ce_weight, self.class_weight)

    def batches(self, n: int) -> list[torch.Tensor]:
        order = torch.randperm(n, generator=self.shuffle)
        return list(order.split(self.preset.batch_size))

    def _inputs(self, split: Split, idx: torch.Tensor | range) -> torch.Tensor:
        """Scaled inputs of a batch, cut from the panel now (pinned for an asynchronous copy on CUDA)."""
        x = split.batch(np.arange(idx.start, idx.stop) if isinstance(idx, range) else idx)
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True)
        return x

    def _batch(self, split: Split, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d = self.device
        return self._inputs(split, idx), split.y[idx].to(d), split.cls[idx].to(d)

    def weighting_matrix(self, epoch: int) -> torch.Tensor:
        n = len(self.ids)
        if epoch <= self.preset.warmup_epochs:
            return torch.eye(n)
        if not self.maa or not self.last_val:
            return torch.full((n, n), 1.0 / n)
        return adaptive_weights([self.last_val[g]["val_loss"] for g in self.ids], self.preset.weight_temperature)

    def phase(self, epoch: int) -> str:
        """pretrain (supervised, before the game), then adversarial — or, with ``adversarial`` off (the
        supervised-only ablation), "supervised": the same epochs and knowledge exchanges, no game."""
        if epoch <= self.preset.pretrain_epochs:
            return "pretrain"
        return "adversarial" if self.preset.adversarial else "supervised"

    # -- encoders ------------------------------------------------------------------------------
    def train_encoders(self) -> list[dict[str, Any]]:
        """Reconstruction training of the CAE and the t3-VAE; they are frozen afterwards."""
        rows = []
        opts = {"CAE": torch.optim.AdamW(self.cae.parameters(), lr=self.preset.lr),
                "T3VAE": torch.optim.AdamW(self.t3vae.parameters(), lr=self.preset.lr)}
        models: dict[str, nn.Module] = {"CAE": self.cae, "T3VAE": self.t3vae}
        for model in models.values():
            model.train()
            for p in model.parameters():
                p.requires_grad_(True)
        for e in range(1, self.preset.encoder_epochs + 1):
            totals = {name: 0.0 for name in models}
            batches = self.batches(len(self.data.train))
            for idx in batches:
                x = self._inputs(self.data.train, idx)
                for name, model in models.items():
                    loss = model.loss(self.tail(x, self.encoder_window))  # type: ignore[operator]
                    opts[name].zero_grad()
                    loss.backward()
                    opts[name].step()
                    totals[name] += loss.item() / len(batches)
            for name, value in totals.items():
                rows.append({"epoch": 0, "phase": f"encoder {e}", "generator": name, "kind": name.lower(),
                             "train_loss": value})
            self.encoder_log(f"encoders {e}/{self.preset.encoder_epochs}: "
                             + ", ".join(f"{k} {v:.4f}" for k, v in totals.items()))
        for model in models.values():
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
        self.encoders_trained = True
        return rows

    # -- one epoch -----------------------------------------------------------------------------
    def run_epoch(self) -> EpochReport:
        if not self.encoders_trained:
            raise RuntimeError("train_encoders() must run before the first epoch")
        self.epoch += 1
        epoch = self.epoch
        phase = self.phase(epoch)
        self.weights = self.weighting_matrix(epoch) if phase == "adversarial" else torch.eye(len(self.ids))
        stats = {gid: {"train_loss": 0.0, "train_mse": 0.0, "train_ce": 0.0, "adv_loss": 0.0, "d_loss": 0.0}
                 for gid in self.ids}
        for g in self.generators.values():
            g.train()
        for d in self.discriminators.values():
            d.train()
        batches = self.batches(len(self.data.train))
        for k, idx in enumerate(batches):
            x, y, label = self._batch(self.data.train, idx)
            if phase == "adversarial":
                self._adversarial_step(x, y, label, stats, len(batches),
                                       measure=min(SHARE_BATCHES, len(batches)) if k < SHARE_BATCHES else 0)
            else:
                self._supervised_step(x, y, label, stats, len(batches))
        events = []
        if phase != "pretrain" and self.last_val:
            k = epoch - self.preset.pretrain_epochs
            if self.preset.distill_every and k % self.preset.distill_every == 0:
                events.append(self.distill())
            if self.preset.cross_every and k % self.preset.cross_every == 0:
                events.append(self.cross_round() if self.maa else self.cross_finetune())
        val = self.validate()
        self.last_val = val
        improved = []
        for gid, v in val.items():
            if v["val_loss"] < self.best[gid] - 1e-9:
                self.best[gid] = v["val_loss"]
                self.best_epoch[gid] = epoch
                self.best_metrics[gid] = dict(v)
                self.best_states[gid] = {k: t.detach().cpu().clone()
                                         for k, t in self.generators[gid].state_dict().items()}
                improved.append(gid)
        self.stale = 0 if improved else self.stale + 1
        for ev in events:
            self.events.append({"epoch": epoch, "event": ev})
        rows = []
        weights = self.weights.tolist()
        for i, gid in enumerate(self.ids):
            row = {"epoch": epoch, "phase": phase, "generator": gid,
                   "kind": self.preset.generators[gid]["kind"], **stats[gid], **val[gid],
                   "weights": ";".join(f"{w:.3f}" for w in weights[i]),
                   "event": " | ".join(e for e in events if gid in e), "improved": gid in improved}
            rows.append(row)
        return EpochReport(epoch, phase, rows, events, improved, stop=self.stale >= self.preset.patience)

    def _supervised_step(self, x, y, label, stats, n_batches) -> None:
        for gid in self.ids:
            reg, cls = self.forward(gid, x)
            loss, mse, ce = self.supervised(reg, cls, y, label)
            self.g_opt[gid].zero_grad()
            loss.backward()
            self.g_opt[gid].step()
            s = stats[gid]
            s["train_loss"] += loss.item() / n_batches
            s["train_mse"] += mse.item() / n_batches
            s["train_ce"] += ce.item() / n_batches

    def _judge(self, d: ConvDiscriminator, ctx: torch.Tensor, candidates: list[torch.Tensor],
               labels: list[torch.Tensor]) -> list[torch.Tensor]:
        """D's logits on several (candidate, class) batches in one forward (D has no batch
        statistics, so stacking them changes nothing but the cost)."""
        k = len(candidates)
        logits = d(ctx.repeat(k, 1), torch.cat(candidates), torch.cat(labels))
        return list(logits.chunk(k))

    def _adversarial_share(self, gid: str, supervised: torch.Tensor, adversarial: Any) -> float:
        """|∇ adversarial term| / (|∇ supervised| + |∇ adversarial|) over G's parameters, on one batch
        (two extra backward passes, so only the first ``SHARE_BATCHES`` of an adversarial epoch, whose
        mean metrics.csv records). Below a few percent the discriminators barely steer the generator."""
        if not isinstance(adversarial, torch.Tensor) or not adversarial.requires_grad:
            return 0.0
        params = [q for q in self.generators[gid].parameters() if q.requires_grad]

        def norm(term: torch.Tensor) -> float:
            grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
            return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads if g is not None))

        sup, adv = norm(supervised), norm(adversarial)
        return adv / (sup + adv) if sup + adv > 0 else 0.0

    def _adversarial_step(self, x, y, label, stats, n_batches, measure: int = 0) -> None:
        """One adversarial batch: every D_j on the real targets and its judged fakes, then every G_i
        on supervised + weighted adversarial terms against the updated discriminators.

        Each D_j runs once on [real; judged fakes] stacked, and the generators' losses share one
        backward (their parameters are disjoint, so each gets the gradient of its own loss): the
        same updates as one forward per (D, candidate) pair and one backward per generator.
        """
        p = self.preset
        ctx = self.context(x)
        outs = {gid: self.forward(gid, x) for gid in self.ids}
        as_class = {gid: self.fake_labels(cls, label) for gid, (_, cls) in outs.items()}
        w = self.weights.tolist()
        n = len(self.ids)
        # discriminators first, on detached fakes: D_j sees the fakes of the generators it judges
        for j, dj in enumerate(self.ids):
            d = self.discriminators[dj]
            judged = [i for i in range(n) if w[i][j] > 0]
            real, *fakes = self._judge(d, ctx, [y, *(outs[self.ids[i]][0].detach() for i in judged)],
                                       [label, *(as_class[self.ids[i]] for i in judged)])
            total = sum(w[i][j] for i in judged)
            fake_loss = 0.0
            for i, fake in zip(judged, fakes, strict=True):
                fake_loss = fake_loss + w[i][j] / total * discriminator_loss(real, fake)
            self.d_opt[dj].zero_grad()
            fake_loss.backward()  # type: ignore[union-attr]
            self.d_opt[dj].step()
            stats[dj]["d_loss"] += fake_loss.item() / n_batches
        # then every generator: supervised + weighted adversarial terms, D_j judging all its fakes at once
        adv_terms: list[list[torch.Tensor]] = [[] for _ in range(n)]
        for j, dj in enumerate(self.ids):
            judged = [i for i in range(n) if w[i][j] > 0]
            logits = self._judge(self.discriminators[dj], ctx, [outs[self.ids[i]][0] for i in judged],
                                 [as_class[self.ids[i]] for i in judged])
            for i, logit in zip(judged, logits, strict=True):
                adv_terms[i].append(w[i][j] * generator_adversarial_loss(logit))
        totals = []
        for i, gid in enumerate(self.ids):
            reg, cls = outs[gid]
            loss, mse, ce = self.supervised(reg, cls, y, label)
            adv = sum(adv_terms[i])
            total = loss + p.adversarial_weight * adv
            totals.append(total)
            s = stats[gid]
            if measure:
                share = self._adversarial_share(gid, loss, p.adversarial_weight * adv)
                s["adv_grad_share"] = s.get("adv_grad_share", 0.0) + share / measure
            s["train_loss"] += total.item() / n_batches
            s["train_mse"] += mse.item() / n_batches
            s["train_ce"] += ce.item() / n_batches
            s["adv_loss"] += adv.item() / n_batches  # type: ignore[union-attr]
        for gid in self.ids:
            self.g_opt[gid].zero_grad()
        torch.stack(totals).sum().backward()
        for gid in self.ids:
            self.g_opt[gid].step()

    # -- knowledge exchange --------------------------------------------------------------------
    def ranking(self) -> list[str]:
        """Generators from best to worst by the last validation loss."""
        return sorted(self.ids, key=lambda g: self.last_val[g]["val_loss"])

    def _teach(self, student: str, teachers: dict[str, nn.Module], lr_scale: float) -> None:
        """One pass over the training data: the student matches the teachers' mean output and the truth."""
        p = self.preset
        g = self.generators[student]
        g.train()
        for t in teachers.values():
            t.eval()
        opt = self.g_opt[student]
        base = [group["lr"] for group in opt.param_groups]
        for group in opt.param_groups:
            group["lr"] *= lr_scale
        for idx in self.batches(len(self.data.train)):
            x, y, label = self._batch(self.data.train, idx)
            with torch.no_grad():
                outs = [self.forward(gid, x, t) for gid, t in teachers.items()]
                t_reg = torch.stack([o[0] for o in outs]).mean(0)
                t_cls = torch.stack([o[1] for o in outs]).mean(0)
            reg, cls = self.forward(student, x)
            sup, _, _ = self.supervised(reg, cls, y, label)
            loss = 0.5 * sup + 0.5 * distillation_loss(reg, cls, t_reg, t_cls, p.distill_temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
        for group, lr in zip(opt.param_groups, base, strict=True):
            group["lr"] = lr

    def distill(self) -> str:
        """Knowledge distillation from the best generator to the worst."""
        order = self.ranking()
        best, worst = order[0], order[-1]
        if best == worst:
            return f"distill skipped (one generator: {best})"
        self._teach(worst, {best: self.generators[best]}, 1.0)
        return f"distill {worst}<-{best}"

    def cross_finetune(self) -> str:
        """Elite cross-finetuning: each of the top ``elites`` learns from the others at half the lr."""
        elites = self.ranking()[: max(2, self.preset.elites)]
        frozen = {gid: copy.deepcopy(self.generators[gid]) for gid in elites}  # teachers as they were
        for gid in elites:
            self._teach(gid, {o: frozen[o] for o in elites if o != gid}, 0.5)
        return "cross " + "<->".join(elites)

    def best_discriminator(self) -> str:
        """The discriminator that told real from fake best on validation (mean of its two accuracies)."""
        def acc(gid: str) -> float:
            v = self.last_val.get(gid, {})
            return (v.get("d_acc_real", 0.5) + v.get("d_acc_fake", 0.5)) / 2
        return max(self.ids, key=acc)

    def cross_round(self) -> str:
        """MAA's cross-finetune: the best generator against the best discriminator alone for
        ``cross_steps`` batches (supervised + adversarial; supervised only without the game), kept
        only if the generator's validation loss improves, rolled back — both players and their
        optimisers — otherwise."""
        p = self.preset
        gid = self.ranking()[0]
        did = self.best_discriminator() if p.adversarial else None
        g, opt = self.generators[gid], self.g_opt[gid]
        saved = [copy.deepcopy(m.state_dict()) for m in (g, opt)]
        if did is not None:
            d, d_opt = self.discriminators[did], self.d_opt[did]
            saved += [copy.deepcopy(m.state_dict()) for m in (d, d_opt)]
        before = self.validation_loss(gid)
        g.train()
        for idx in self.batches(len(self.data.train))[: max(1, p.cross_steps)]:
            x, y, label = self._batch(self.data.train, idx)
            reg, cls = self.forward(gid, x)
            loss, _, _ = self.supervised(reg, cls, y, label)
            if did is not None:
                ctx, as_class = self.context(x), self.fake_labels(cls, label)
                d.train()
                real, fake = self._judge(d, ctx, [y, reg.detach()], [label, as_class])
                d_opt.zero_grad()
                discriminator_loss(real, fake).backward()
                d_opt.step()
                (logit,) = self._judge(d, ctx, [reg], [as_class])
                loss = loss + p.adversarial_weight * generator_adversarial_loss(logit)
            opt.zero_grad()
            loss.backward()
            opt.step()
        after = self.validation_loss(gid)
        versus = f" vs D[{did}]" if did else ""
        if after < before:
            return f"cross {gid}{versus}: kept (val {before:.4f} -> {after:.4f})"
        g.load_state_dict(saved[0])
        opt.load_state_dict(saved[1])
        if did is not None:
            d.load_state_dict(saved[2])
            d_opt.load_state_dict(saved[3])
        return f"cross {gid}{versus}: rolled back (val {before:.4f} -> {after:.4f})"

    # -- validation ----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_all(self, split: Split, batch: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Every generator's (reg, cls) on a split; each batch of inputs is cut once for all of them."""
        batch = batch or (16384 if self.device.type == "cuda" else 2048)
        for g in self.generators.values():
            g.eval()
        parts: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {gid: [] for gid in self.ids}
        for start in range(0, len(split), batch):
            x = self._inputs(split, range(start, min(start + batch, len(split))))
            for gid in self.ids:
                reg, cls = self.forward(gid, x)
                parts[gid].append((reg.cpu(), cls.cpu()))
        return {gid: (torch.cat([r for r, _ in ps]), torch.cat([c for _, c in ps])) for gid, ps in parts.items()}

    @torch.no_grad()
    def predict(self, gid: str, split: Split, batch: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
        self.generators[gid].eval()
        regs, clss = [], []
        for start in range(0, len(split), batch):
            reg, cls = self.forward(gid, self._inputs(split, range(start, min(start + batch, len(split)))))
            regs.append(reg.cpu())
            clss.append(cls.cpu())
        return torch.cat(regs), torch.cat(clss)

    @torch.no_grad()
    def validation_loss(self, gid: str) -> float:
        """One generator's validation loss (the number ``validate`` ranks and keeps checkpoints by)."""
        val = self.data.val
        reg, cls = self.predict(gid, val)
        return float(self.supervised(reg, cls, val.y, val.cls)[0])

    @torch.no_grad()
    def validate(self) -> dict[str, dict[str, float]]:
        """Validation losses on the (capped, ``max_val_windows``) validation split, in large batches."""
        p = self.preset
        val = self.data.val
        sc = self.data.scaler
        out = {}
        preds = self.predict_all(val)
        for gid in self.ids:
            reg, cls = preds[gid]
            loss, mse, ce = self.supervised(reg, cls, val.y, val.cls)
            ret = (reg.squeeze(1).double() - sc.y_min) / sc.y_scale
            out[gid] = {"val_loss": float(loss), "val_mse_scaled": float(mse), "val_ce": float(ce),
                        "val_mse": float(torch.mean((ret - val.ret.double()) ** 2)),
                        "val_acc": float((cls.argmax(1) == val.cls).float().mean())}
        if p.adversarial:
            for gid, (real, fake) in self.discriminator_accuracy(val, preds).items():
                out[gid].update(d_acc_real=real, d_acc_fake=fake)
        return out

    @torch.no_grad()
    def discriminator_accuracy(self, split: Split, preds: dict[str, tuple[torch.Tensor, torch.Tensor]],
                               batch: int = 2048) -> dict[str, tuple[float, float]]:
        """Held-out accuracy of each D_j on ``split``: (real targets called real, G_j's forecasts
        called fake). Both near 0.5: the discriminator cannot tell, and the game teaches nothing."""
        d = self.device
        hits = {gid: [0, 0] for gid in self.ids}
        for start in range(0, len(split), batch):
            rows = range(start, min(start + batch, len(split)))
            ctx = self.context(self._inputs(split, rows))
            label = split.cls[start:rows.stop].to(d)
            for gid in self.ids:
                disc = self.discriminators[gid].eval()
                real = disc(ctx, split.y[start:rows.stop].to(d), label)
                as_class = self.fake_labels(preds[gid][1][start:rows.stop].to(d), label)
                fake = disc(ctx, preds[gid][0][start:rows.stop].to(d), as_class)
                hits[gid][0] += int((real > 0).sum())
                hits[gid][1] += int((fake < 0).sum())
        n = max(1, len(split))
        return {gid: (h[0] / n, h[1] / n) for gid, h in hits.items()}

    def baselines(self) -> dict[str, float]:
        """Validation MSE of naive guesses (zero return; repeat the last return) and the majority class rate."""
        v = self.data.val
        majority = float(torch.bincount(self.data.train.cls, minlength=3).argmax())
        return {"zero_mse": float(torch.mean(v.ret.double() ** 2)),
                "last_value_mse": float(torch.mean((v.last_ret.double() - v.ret.double()) ** 2)),
                "majority_class_acc": float((v.cls == majority).float().mean())}

    # -- state for resume ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "encoders_trained": self.encoders_trained,
            "cae": self.cae.state_dict(),
            "t3vae": self.t3vae.state_dict(),
            "generators": {gid: g.state_dict() for gid, g in self.generators.items()},
            "discriminators": {gid: d.state_dict() for gid, d in self.discriminators.items()},
            "g_opt": {gid: o.state_dict() for gid, o in self.g_opt.items()},
            "d_opt": {gid: o.state_dict() for gid, o in self.d_opt.items()},
            "best": dict(self.best),
            "best_epoch": dict(self.best_epoch),
            "best_states": self.best_states,
            "best_metrics": self.best_metrics,
            "last_val": self.last_val,
            "stale": self.stale,
            "events": self.events,
            "rng_torch": torch.get_rng_state(),
            "rng_shuffle": self.shuffle.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore everything; raises KeyError/RuntimeError on a checkpoint of another shape (strict)."""
        self.cae.load_state_dict(state["cae"], strict=True)
        self.t3vae.load_state_dict(state["t3vae"], strict=True)
        for gid in self.ids:
            self.generators[gid].load_state_dict(state["generators"][gid], strict=True)
            self.discriminators[gid].load_state_dict(state["discriminators"][gid], strict=True)
            self.g_opt[gid].load_state_dict(state["g_opt"][gid])
            self.d_opt[gid].load_state_dict(state["d_opt"][gid])
        if state["encoders_trained"]:
            for model in (self.cae, self.t3vae):
                model.eval()
                for p in model.parameters():
                    p.requires_grad_(False)
        self.encoders_trained = bool(state["encoders_trained"])
        self.epoch = int(state["epoch"])
        self.best = {k: float(v) for k, v in state["best"].items()}
        self.best_epoch = {k: int(v) for k, v in state["best_epoch"].items()}
        self.best_states = state["best_states"]
        self.best_metrics = state["best_metrics"]
        self.last_val = state["last_val"]
        self.stale = int(state["stale"])
        self.events = list(state["events"])
        torch.set_rng_state(state["rng_torch"])
        self.shuffle.set_state(state["rng_shuffle"])


def adaptive_weights(val_losses: list[float], temperature: float) -> torch.Tensor:
    """The "maa" weighting matrix after warm-up: every row softmax(−z / T) over the discriminators,
    z the generators' validation losses standardised (scale-free: the losses of a run differ in
    the third decimal, so a raw softmax would be uniform at any sensible T). Row i says how much
    G_i listens to each D_j; the critic paired with the generator that validates best weighs most."""
    losses = torch.tensor(val_losses, dtype=torch.float64)
    spread = losses.std(unbiased=False)
    z = (losses - losses.mean()) / spread if len(losses) > 1 and spread > 0 else torch.zeros_like(losses)
    row = torch.softmax(-z / max(float(temperature), 1e-6), 0).float()
    return row.expand(len(losses), -1).clone()
