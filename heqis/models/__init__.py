"""Models: generators G1..G4, label-conditioned discriminators, CAE and t3-VAE encoders.

Every generator maps a window ``[B, W, F]`` (scaled, scale-free inputs) to ``(reg [B,1], cls [B,3])``:
``reg`` is the next-day return in the scaler's target scale, ``cls`` the logits of [down, flat, up].
"""

from heqis.models.generators import GENERATOR_KINDS, Generator, build_generator

__all__ = ["GENERATOR_KINDS", "Generator", "build_generator"]
