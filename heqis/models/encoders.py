"""Latent-factor encoders for windows: a convolutional autoencoder and a t3-VAE.

The t3-VAE (Kim, Kwon, Cho, Lee, Kwon: "t3-Variational Autoencoder: Learning Heavy-tailed Data
with Student's t and Power Divergence", ICLR 2024) replaces the Gaussian prior and posterior with
Student-t distributions and the KL term with the γ-power divergence, γ = -2 / (ν + n + m) for
data dimension n and latent dimension m. Its loss has a closed form (the paper's eq. for L_γ):

    recon  = ||x - x̂||² / σ²
    reg    = ||μ||² + ν/(ν+n-2)·tr(Σ) - ν·C·|Σ|^(-γ/(2(1+γ)))   (+ a constant)

with C = (1 + m/(ν+n-2)) · τ^(-γ/(1+γ)) from the t normalising constant, and the encoder samples
z = μ + sqrt(ν/(ν+n)) σ_φ ε / sqrt(χ²_{ν+n}/(ν+n)). Financial returns are heavy-tailed: the
reason to use it here. Latents used downstream are the posterior means.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class CAE(nn.Module):
    """1-D convolutional autoencoder over time: [B, W, F] → z [B, latent] → [B, W, F]."""

    def __init__(self, n_features: int, window: int, latent: int, channels: int = 32) -> None:
        super().__init__()
        self.latent = latent
        self.enc = nn.Sequential(
            nn.Conv1d(n_features, channels, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv1d(channels, 2 * channels, 5, stride=2, padding=2), nn.GELU(),
        )
        with torch.no_grad():
            reduced = self.enc(torch.zeros(1, n_features, window)).shape[-1]
        self.to_z = nn.Linear(2 * channels * reduced, latent)
        self.from_z = nn.Linear(latent, 2 * channels * reduced)
        self.shape = (2 * channels, reduced)
        self.dec = nn.Sequential(
            nn.Upsample(size=(window + 1) // 2), nn.Conv1d(2 * channels, channels, 5, padding=2), nn.GELU(),
            nn.Upsample(size=window), nn.Conv1d(channels, n_features, 5, padding=2),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_z(self.enc(x.transpose(1, 2)).flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(self.from_z(z).reshape(-1, *self.shape)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mean((self(x) - x) ** 2)


def build_encoders(n_features: int, window: int, cae: dict, t3vae: dict) -> tuple[CAE, T3VAE]:
    """The CAE and t3-VAE a preset (or a checkpoint's copy of it) describes."""
    return (CAE(n_features, window, cae["latent"], cae.get("channels", 32)),
            T3VAE(n_features, window, t3vae["latent"], t3vae.get("hidden", 128), t3vae.get("nu", 5.0)))


def _log_t_normaliser(nu: float, d: int) -> float:
    """log of the Student-t density's normalising constant in d dimensions."""
    return math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - d / 2 * math.log(nu * math.pi)


class T3VAE(nn.Module):
    """t3-VAE with an MLP encoder/decoder on the flattened window."""

    def __init__(self, n_features: int, window: int, latent: int, hidden: int = 128, nu: float = 5.0,
                 sigma: float = 1.0) -> None:
        super().__init__()
        if nu <= 2:
            raise ValueError("the t3-VAE needs nu > 2")
        self.latent = latent
        self.window = window
        self.n_features = n_features
        n = window * n_features
        self.n = n
        self.nu = nu
        self.sigma = sigma
        self.nu_post = nu + n                               # posterior degrees of freedom
        self.gamma = -2.0 / (nu + n + latent)
        log_tau = (-n * math.log(sigma) + _log_t_normaliser(nu, n)
                   - math.log(nu + n - 2) + math.log(nu - 2))
        self.reg_const = (1 + latent / (nu + n - 2)) * math.exp(-self.gamma / (1 + self.gamma) * log_tau)
        self.tau_sq = nu / self.nu_post * math.exp(2 / (nu + n - 2) * log_tau)
        self.enc = nn.Sequential(nn.Linear(n, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.GELU(), nn.Linear(hidden, n))

    def encode_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(x.reshape(x.shape[0], -1))
        return self.mu(h), self.logvar(h).clamp(-12.0, 8.0)

    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_stats(x)[0]

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The t reparameterisation: a Gaussian draw divided by sqrt(χ²_{ν'}/ν')."""
        eps = torch.randn_like(mu)
        chi2 = torch.distributions.Chi2(torch.full((mu.shape[0], 1), float(self.nu_post))).sample()
        scale = math.sqrt(self.nu / self.nu_post) * torch.exp(0.5 * logvar)
        return mu + scale * eps * torch.sqrt(self.nu_post / chi2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode_stats(x)
        recon = self.dec(self.sample(mu, logvar)).reshape(x.shape)
        return recon, mu, logvar

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """γ-power divergence loss per sample (constant terms included, so it is ≥ 0 in expectation)."""
        recon, mu, logvar = self(x)
        rec = torch.sum((recon - x) ** 2, dim=(1, 2)) / self.sigma**2
        trace = self.nu / (self.nu + self.n - 2) * logvar.exp().sum(dim=1)
        det_term = torch.exp(-self.gamma / (2 + 2 * self.gamma) * logvar.sum(dim=1))
        reg = mu.pow(2).sum(dim=1) + trace - self.nu * self.reg_const * det_term + self.nu_post * self.tau_sq
        return torch.mean(rec + reg) / self.n
