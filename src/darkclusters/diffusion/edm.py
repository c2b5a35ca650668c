"""EDM preconditioning and loss (Karras et al. 2022, "Elucidating the design space of diffusion-based
generative models", Table 1 and eq. 2, 7, 8), with conditioning by channel concatenation.

The denoiser D(x; σ, c) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x ⊕ c, c_noise(σ)) wraps a backbone F from
:mod:`darkclusters.diffusion.networks`; ⊕ concatenates the (normalised) condition channels, here the HST
photometry, to the network input (the DarkClusters prior). All quantities live in normalised units
(:mod:`darkclusters.diffusion.normalise`); σ is the noise standard deviation in those units.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["EDMLoss", "EDMPrecond", "build_denoiser"]


class EDMPrecond(nn.Module):
    """EDM denoiser D(x; σ, cond) (Karras et al. 2022, Table 1, "Ours"), an ``nn.Module`` around a backbone F.

    c_skip = σ_d²/(σ² + σ_d²), c_out = σ·σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ln(σ)/4.
    The backbone must take ``img_channels + cond_channels`` input and give ``img_channels`` output channels.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        img_channels: int,  # target channels (Σ: 1)
        cond_channels: int = 0,  # condition channels concatenated to the input (photometry: 3); 0: none
        sigma_data: float = 0.5,  # σ_d, standard deviation of the normalised data (Karras et al. 2022)
    ) -> None:
        super().__init__()
        if img_channels < 1 or cond_channels < 0:
            raise ValueError(
                f"need img_channels >= 1 and cond_channels >= 0, got {img_channels}, {cond_channels}"
            )
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.backbone = backbone
        self.img_channels = int(img_channels)
        self.cond_channels = int(cond_channels)
        self.sigma_data = float(sigma_data)

    def forward(self, x: Tensor, sigma: float | Tensor, cond: Tensor | None) -> Tensor:
        """D(x; σ, cond): the denoised estimate of x, (B, img_channels, H, W) in x's dtype.

        x: (B, img_channels, H, W) noisy image. sigma: noise level(s) > 0 — a number, a 0-d tensor, or one per
        image, (B,) or (B, 1, 1, 1). cond: (B, cond_channels, H, W), required for a conditional model (pass
        ``None`` only to an unconditional one). σ ≤ 0 raises for numbers and CPU tensors; CUDA tensors are not
        inspected, which would cost a host synchronisation per call.
        """
        if x.ndim != 4 or x.shape[1] != self.img_channels:
            raise ValueError(f"x must be (B, {self.img_channels}, H, W), got {tuple(x.shape)}")
        self._check_cond(x, cond)
        sigma = self._sigma(sigma, x)
        sd = self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sd**2 + sigma**2).sqrt()
        c_noise = sigma.log().flatten() / 4
        net_in = c_in * x
        if cond is not None:
            net_in = torch.cat([net_in, cond.to(net_in.dtype)], dim=1)  # conditioning by concatenation
        f_x = self.backbone(net_in, c_noise)
        return (c_skip * x + c_out * f_x.to(torch.float32)).to(x.dtype)

    def _check_cond(self, x: Tensor, cond: Tensor | None) -> None:
        if cond is None:
            if self.cond_channels:
                raise ValueError(
                    f"this denoiser is conditional ({self.cond_channels} condition channels), got cond=None"
                )
            return
        if not self.cond_channels:
            raise ValueError("this denoiser is unconditional (0 condition channels) but got a cond tensor")
        want = (x.shape[0], self.cond_channels, *x.shape[2:])
        if tuple(cond.shape) != want:
            raise ValueError(f"cond must have shape {want} to match x, got {tuple(cond.shape)}")

    def _sigma(self, sigma: float | Tensor, x: Tensor) -> Tensor:
        """σ as a float32 (B, 1, 1, 1) tensor on x's device."""
        batch = x.shape[0]
        if not isinstance(sigma, Tensor) or sigma.device.type == "cpu":
            bad = not bool(torch.all(torch.as_tensor(sigma) > 0))
            if bad:
                raise ValueError(f"sigma must be > 0, got {sigma}")
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        if sigma.numel() == 1:
            return sigma.reshape(1, 1, 1, 1).expand(batch, 1, 1, 1)
        if sigma.numel() != batch:
            raise ValueError(
                f"sigma must be a scalar or one value per image ({batch}), got {tuple(sigma.shape)}"
            )
        return sigma.reshape(batch, 1, 1, 1)


class EDMLoss:
    """EDM training loss (Karras et al. 2022, eq. 2 and 8, Table 1): per image, the mean over pixels of
    λ(σ)·(D(y + σn; σ, cond) − y)², ln σ ~ N(P_mean, P_std²), n ~ N(0, I), λ(σ) = (σ² + σ_d²)/(σ·σ_d)².

    Returns a (B,) tensor. ``sigma`` (B,) and ``noise`` (like y) may be given (the trainer draws them per
    image from seeded generators, so a run does not depend on how a batch is split across devices); otherwise
    they are drawn from ``generator``.
    """

    def __init__(self, *, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.5) -> None:
        self.P_mean = float(P_mean)  # mean of ln σ
        self.P_std = float(P_std)  # standard deviation of ln σ
        self.sigma_data = float(sigma_data)  # σ_d of the normalised data

    def __call__(
        self,
        denoiser: nn.Module,
        y: Tensor,
        cond: Tensor | None,
        *,
        sigma: Tensor | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        if sigma is None:
            ln_sigma = torch.randn(y.shape[0], generator=generator, device=y.device)
            sigma = (ln_sigma * self.P_std + self.P_mean).exp()
        if noise is None:
            noise = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        sigma = sigma.reshape(-1, 1, 1, 1).to(y.dtype)
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        denoised = denoiser(y + sigma * noise, sigma.flatten(), cond)
        return (weight * (denoised - y) ** 2).mean(dim=(1, 2, 3))


def build_denoiser(model_cfg: dict[str, Any]) -> EDMPrecond:
    """An :class:`EDMPrecond` from the plain dict in checkpoints and ``model.pt`` (``config["model"]``).

    Keys: ``backbone`` (registry name), ``backbone_kwargs`` (dict), ``img_channels``, ``cond_channels``,
    ``sigma_data``.
    """
    from darkclusters.diffusion.networks.registry import build_network

    missing = {"backbone", "backbone_kwargs", "img_channels", "cond_channels", "sigma_data"} - set(model_cfg)
    if missing:
        raise ValueError(f"model config lacks {sorted(missing)}")
    backbone = build_network(model_cfg["backbone"], **model_cfg["backbone_kwargs"])
    return EDMPrecond(
        backbone,
        img_channels=model_cfg["img_channels"],
        cond_channels=model_cfg["cond_channels"],
        sigma_data=model_cfg["sigma_data"],
    )
