"""Training presets. ``paper`` is the original prototype's sizes; ``tiny`` trains in seconds on 2 cores.

Sizes and schedules only: the algorithm is the same for every preset.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from heqis.errors import HeqisError

CLASS_WEIGHTS = ("balanced", "none")
# the multi-agent game (docs/architecture.md, "Training"): "maa" as MAA describes it — per-generator
# look-back windows, fakes judged under their generator's own predicted class, a weighting matrix that
# adapts to validation losses, best-G-against-best-D cross-finetuning kept only when validation improves;
# "legacy" the first trainer's game (one window, true-label conditioning, fixed weights, mutual
# distillation as the cross step), kept so that the two can be compared
GAMES = ("maa", "legacy")
ADV_WEIGHT = {"maa": 20.0, "legacy": 0.05}   # adv_weight when the preset leaves it unset (maa: see README)


@dataclass
class Preset:
    """Everything that shapes a training run, recorded verbatim in the run manifest."""

    name: str
    generators: dict[str, dict[str, Any]]     # id → {"kind": ..., sizes}
    discriminator: dict[str, Any]
    cae: dict[str, Any]
    t3vae: dict[str, Any]
    epochs: int
    pretrain_epochs: int                      # supervised only (MSE + CE), before the adversarial phase
    encoder_epochs: int                       # CAE / t3-VAE reconstruction training
    warmup_epochs: int                        # weighting matrix is the identity until then
    distill_every: int                        # knowledge distillation best → worst, every N epochs
    cross_every: int                          # elite cross-finetuning, every N epochs
    patience: int                             # early stopping: epochs without a better val loss
    batch_size: int
    lr: float
    weight_decay: float = 1e-4
    d_lr: float | None = None
    adv_weight: float | None = None           # None: the game's (ADV_WEIGHT)
    mse_weight: float = 1.0
    ce_weight: float = 1.0
    distill_temperature: float = 2.0
    elites: int = 2
    context: int = 20                         # returns the discriminators see before the candidate
    window: int = 60                          # the longest look-back; "maa" generators name their own
    flat_band: float = 0.005
    max_train_windows: int | None = None      # subsample the train segment (tiny/CI only)
    max_val_windows: int | None = None        # validate on this many val windows, drawn with the seed
    adversarial: bool = True                  # False (--no-adversarial): every epoch supervised, no exchanges
    target: str = "close"                     # features.windows.TARGETS: close T→T+1 | open T+1→T+2
    class_weights: str = "balanced"           # direction CE (CLASS_WEIGHTS): "balanced" by train classes, "none"
    game: str = "maa"                         # GAMES
    weight_temperature: float = 1.0           # maa: W = softmax(-z / T), z the standardised validation losses
    cross_steps: int = 20                     # maa: batches of the best-G-against-best-D round
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Preset:
        # a run recorded before class weights (or the MAA game) existed trained — and resumes — without them
        return cls(**{"class_weights": "none", "game": "legacy", "adv_weight": ADV_WEIGHT["legacy"], **raw})

    @property
    def adversarial_weight(self) -> float:
        return float(self.adv_weight if self.adv_weight is not None else ADV_WEIGHT[self.game])

    def windows(self) -> dict[str, int]:
        """Each generator's look-back: its own ``window`` in the "maa" game, the preset's in "legacy"."""
        if self.game == "legacy":
            return {gid: self.window for gid in self.generators}
        return {gid: int(spec.get("window", self.window)) for gid, spec in self.generators.items()}

    @property
    def longest_window(self) -> int:
        """The windows the data is cut into: every generator reads its own tail of them."""
        return max(self.windows().values())

    @property
    def encoder_window(self) -> int:
        """The windows the CAE and the t3-VAE encode: the latent-factor generator's (the longest
        without one)."""
        own = self.windows()
        latent = [own[g] for g, spec in self.generators.items() if spec["kind"] == "latent"]
        return max(latent) if latent else max(own.values())

    def set_window(self, window: int) -> None:
        """Set the longest look-back; the generators' own windows keep their proportions (at least 2)."""
        old = self.longest_window
        for spec in self.generators.values():
            if "window" in spec:
                spec["window"] = max(2, round(int(spec["window"]) * window / old))
        self.window = int(window)


def _generators(gru: int, lstm: int, lstm_layers: int, d_model: int, layers: int, heads: int, latent: int,
                dropout: float) -> dict[str, dict[str, Any]]:
    """The four generators; MAA's agents look back over different lengths: the GRU a month, the BiLSTM
    two, the transformer and the latent-factor model (its CAE / t3-VAE encode the same window) three."""
    return {
        "G1": {"kind": "gru", "hidden": gru, "layers": 1, "dropout": dropout, "window": 20},
        "G2": {"kind": "bilstm", "hidden": lstm, "layers": lstm_layers, "dropout": dropout, "window": 40},
        "G3": {"kind": "transformer", "d_model": d_model, "layers": layers, "heads": heads, "dropout": dropout,
               "window": 60},
        "G4": {"kind": "latent", "hidden": latent, "dropout": dropout, "window": 60},
    }


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        generators=_generators(32, 24, 1, 32, 1, 2, 32, 0.0),
        discriminator={"channels": 16},
        cae={"latent": 8, "channels": 16},
        t3vae={"latent": 8, "hidden": 64, "nu": 5.0},
        epochs=8, pretrain_epochs=2, encoder_epochs=2, warmup_epochs=3, distill_every=2, cross_every=3,
        patience=4, batch_size=256, lr=2e-3, max_train_windows=4000, max_val_windows=2000,
    ),
    "default": Preset(
        name="default",
        generators=_generators(128, 96, 2, 128, 2, 4, 128, 0.1),
        discriminator={"channels": 32},
        cae={"latent": 16, "channels": 32},
        t3vae={"latent": 16, "hidden": 256, "nu": 5.0},
        epochs=40, pretrain_epochs=5, encoder_epochs=10, warmup_epochs=8, distill_every=5, cross_every=10,
        patience=8, batch_size=128, lr=3e-4, max_val_windows=20000,
    ),
    "paper": Preset(  # the prototype's sizes and optimiser settings
        name="paper",
        generators=_generators(768, 512, 2, 512, 2, 8, 512, 0.1),
        discriminator={"channels": 64},
        cae={"latent": 32, "channels": 64},
        t3vae={"latent": 32, "hidden": 512, "nu": 5.0},
        epochs=100, pretrain_epochs=10, encoder_epochs=20, warmup_epochs=10, distill_every=10, cross_every=20,
        patience=10, batch_size=64, lr=2e-5, max_val_windows=50000,
    ),
}


def get_preset(name: str, **overrides: Any) -> Preset:
    """A copy of the named preset with ``overrides`` (None values ignored) applied."""
    if name not in PRESETS:
        raise HeqisError(f"unknown preset '{name}'", hint=f"use one of: {', '.join(PRESETS)}")
    preset = copy.deepcopy(PRESETS[name])
    # the window first: it scales the generators' own windows, which a generator subset then keeps
    for key, value in sorted(overrides.items(), key=lambda kv: kv[0] != "window"):
        if value is None:
            continue
        if not hasattr(preset, key):
            raise HeqisError(f"unknown preset field '{key}'")
        if key == "window":
            preset.set_window(int(value))
            continue
        if key == "generators" and isinstance(value, (list, tuple)):   # a subset, by id (--generators G1,G3)
            unknown = [g for g in value if g not in preset.generators]
            if unknown or not value:
                raise HeqisError(f"--generators: no generator {', '.join(unknown) or '(none given)'} in preset "
                                 f"'{name}'", hint=f"choose from {', '.join(preset.generators)}")
            value = {g: preset.generators[g] for g in preset.generators if g in value}
        setattr(preset, key, value)
    if preset.epochs < 1:
        raise HeqisError(f"--epochs must be at least 1, got {preset.epochs}")
    return preset
