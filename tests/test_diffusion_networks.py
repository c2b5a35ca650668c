"""Backbones, EDM preconditioning and loss: shapes, paper parameter counts, the conditioning contract, the
σ → 0 limit, the closed-form Gaussian denoiser through the Heun sampler, and a loss that decreases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from darkclusters.diffusion.edm import EDMLoss, EDMPrecond, build_denoiser
from darkclusters.diffusion.networks import NETWORKS, build_network
from darkclusters.diffusion.networks.songunet import UNetBlock

TINY = {
    "model_channels": 16,
    "channel_mult": [1, 2],
    "num_blocks": 1,
    "attn_resolutions": [8],
    "dropout": 0.0,
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions run fastest (and without contention) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _denoiser(backbone: str = "ddpmpp", cond_channels: int = 2, seed: int = 0) -> EDMPrecond:
    kwargs = {"img_resolution": 16, "in_channels": 1 + cond_channels, "out_channels": 1, **TINY}
    with torch.random.fork_rng():  # initial weights from the seed, without touching the caller's RNG
        torch.manual_seed(seed)
        return build_denoiser(
            {
                "backbone": backbone,
                "backbone_kwargs": kwargs,
                "img_channels": 1,
                "cond_channels": cond_channels,
                "sigma_data": 0.5,
            }
        )


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_backbone_shapes_and_attention_placement(name: str) -> None:
    net = build_network(
        name, img_resolution=32, in_channels=4, out_channels=1, **{**TINY, "channel_mult": [1, 2, 2]}
    )
    out = net(torch.randn(3, 4, 32, 32), torch.zeros(3))
    assert out.shape == (3, 1, 32, 32)
    # attention only where asked: at 8² (from attn_resolutions) and at the bottleneck (also 8² here)
    sizes = []
    hook_handles = [
        m.register_forward_hook(lambda mod, inp, outp: sizes.append(outp.shape[-1]))
        for m in net.modules()
        if isinstance(m, UNetBlock) and m.num_heads
    ]
    net(torch.randn(1, 4, 32, 32), torch.zeros(1))
    for h in hook_handles:
        h.remove()
    assert set(sizes) == {8}
    with pytest.raises(ValueError, match="divisible"):
        net(torch.randn(1, 4, 30, 30), torch.zeros(1))


def test_registry_and_sizes_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'unet3d'"):
        build_network("unet3d", img_resolution=16)
    with pytest.raises(ValueError, match="not divisible"):
        build_network("adm", img_resolution=18, in_channels=1, out_channels=1, channel_mult=[1, 1, 1])
    with pytest.raises(ValueError, match="cannot build backbone 'adm'"):
        build_network("adm", img_resolution=16, in_channels=1, out_channels=1, heads=3)


def _count(name: str, **kwargs: object) -> int:
    with torch.device("meta"):  # no memory, no initialisation: only the shapes
        return sum(p.numel() for p in build_network(name, **kwargs).parameters())


def test_parameter_counts_of_the_paper_configs() -> None:
    # DarkClusters prior: ADM at 512², 1 target + 3 photometry channels (diegoroyo/InverseBench); ~137 M
    adm = _count(
        "adm",
        img_resolution=512,
        in_channels=4,
        out_channels=1,
        model_channels=128,
        channel_mult=[1, 1, 2, 2, 4, 4],
        attn_resolutions=[32, 16],
        num_blocks=2,
        dropout=0.13,
    )
    assert adm == 136_966_913
    # ADM ImageNet-64 of Karras et al. (2022): 295.9 M with the class embedding (1000 × 768) we do not build
    assert abs(_count("adm", img_resolution=64, in_channels=3, out_channels=3) + 768_000 - 295.9e6) < 0.05e6
    # DDPM++ (EDM defaults: 128, [2, 2, 2], 4 blocks, attention at 16²) as the prior at 512²
    ddpmpp = _count("ddpmpp", img_resolution=512, in_channels=4, out_channels=1)
    assert ddpmpp == 54_147_713


def test_conditioning_is_required() -> None:
    d = _denoiser(cond_channels=2)
    x, cond = torch.randn(2, 1, 16, 16), torch.randn(2, 2, 16, 16)
    assert d(x, 1.0, cond).shape == x.shape
    assert d(x, 1.0, cond=cond).shape == x.shape
    with pytest.raises(TypeError):
        d(x, 1.0)  # forgetting cond is a TypeError, not a silent unconditional call
    with pytest.raises(ValueError, match="conditional"):
        d(x, 1.0, None)
    with pytest.raises(ValueError, match="cond must have shape"):
        d(x, 1.0, torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        d(x, 0.0, cond)
    with pytest.raises(ValueError, match="one value per image"):
        d(x, torch.ones(3), cond)
    unconditional = _denoiser(cond_channels=0)
    assert unconditional(x, torch.full((2,), 0.3), None).shape == x.shape
    with pytest.raises(ValueError, match="unconditional"):
        unconditional(x, 1.0, cond)


class _Recorder(torch.nn.Module):
    """A backbone that records its input and returns a fixed F."""

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor) -> torch.Tensor:
        self.x, self.noise_labels = x, noise_labels
        return torch.full_like(x[:, :1], 0.7)


def test_preconditioning_follows_table_1() -> None:
    rec = _Recorder()
    d = EDMPrecond(rec, img_channels=1, cond_channels=2, sigma_data=0.5)
    x, cond = torch.randn(2, 1, 4, 4), torch.randn(2, 2, 4, 4)
    sigma = torch.tensor([0.1, 3.0])
    out = d(x, sigma, cond)
    s, sd = sigma.reshape(-1, 1, 1, 1), 0.5
    c_skip, c_out = sd**2 / (s**2 + sd**2), s * sd / (s**2 + sd**2).sqrt()
    c_in = 1 / (s**2 + sd**2).sqrt()
    torch.testing.assert_close(out, c_skip * x + c_out * 0.7)
    torch.testing.assert_close(rec.x, torch.cat([c_in * x, cond], dim=1))  # F(c_in·x ⊕ cond, c_noise)
    torch.testing.assert_close(rec.noise_labels, sigma.log() / 4)


def test_denoiser_tends_to_identity_as_sigma_goes_to_zero() -> None:
    d = _denoiser("adm")
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a non-trivial F: the zero-initialised output layer would make this test vacuous
        for p in d.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    x, cond = torch.randn(2, 1, 16, 16, generator=gen), torch.randn(2, 2, 16, 16, generator=gen)
    with torch.no_grad():
        errors = [float((d(x, s, cond) - x).abs().max()) for s in (1e-1, 1e-3, 1e-5)]
    assert errors[0] > 1e-3  # F really contributes
    assert errors[1] < errors[0] / 30  # |D − x| = c_out·|F| ∝ σ
    assert errors[2] < errors[1] / 30
    assert errors[2] < 1e-4


def test_heun_with_the_network_denoiser_matches_the_gaussian_closed_form() -> None:
    """A freshly built denoiser has F = 0 (zero output layer), so D(x; σ) = c_skip·x: the exact posterior mean
    for data ~ N(0, σ_d² I). The probability-flow ODE then maps x(σ_max) to
    x(0) = x(σ_max)·σ_d/√(σ_max² + σ_d²).
    Heun (the samplers' implementation, Karras et al. 2022 Alg. 2) must reach it to second order, passing cond
    to every network call."""
    from darkclusters.diffusion.samplers.heun import sample_heun
    from darkclusters.diffusion.samplers.schedules import edm_sigmas

    d = _denoiser("ddpmpp").eval()
    calls = []
    d.register_forward_pre_hook(lambda mod, args: calls.append(args[2] is not None))
    gen = torch.Generator().manual_seed(3)
    x_T = torch.randn(2, 1, 16, 16, generator=gen) * 80.0
    cond = torch.randn(2, 2, 16, 16, generator=gen)
    exact = x_T * 0.5 / math.sqrt(80.0**2 + 0.5**2)
    errors = []
    for n in (8, 32):
        out = sample_heun(d, x_T.clone(), edm_sigmas(n), cond=cond)
        errors.append(float((out - exact).abs().max() / exact.abs().max()))
    assert all(calls)  # every one of the 2N − 1 calls got the conditioning
    assert len(calls) == (2 * 8 - 1) + (2 * 32 - 1)
    assert errors[1] < 0.02
    assert errors[0] / errors[1] > 8  # ~16 for a second-order method at 4× the steps


def _blobs(n: int, seed: int, res: int = 16) -> torch.Tensor:
    """Gaussian blobs of random centre and width, scaled to about [−1, 1]: (n, 1, res, res)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:res, 0:res] + 0.5
    out = np.empty((n, 1, res, res), dtype=np.float32)
    for i in range(n):
        cx, cy = rng.uniform(4, res - 4, 2)
        width = rng.uniform(1.5, 3.5)
        out[i, 0] = 2 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2)) - 1
    return torch.from_numpy(out)


def test_edm_loss_decreases_on_gaussian_blobs() -> None:
    data = _blobs(64, seed=0)
    d = _denoiser("ddpmpp", cond_channels=0, seed=1)
    loss = EDMLoss(P_mean=-1.2, P_std=1.2, sigma_data=0.5)
    gen = torch.Generator().manual_seed(2)
    # a fixed evaluation set of noise levels and noise, so before and after see the same draws
    sig_eval = (torch.randn(4 * 64, generator=gen) * 1.2 - 1.2).exp()
    noise_eval = torch.randn(4 * 64, 1, 16, 16, generator=gen)

    def evaluate() -> float:
        d.eval()
        with torch.no_grad():
            value = loss(d, data.repeat(4, 1, 1, 1), None, sigma=sig_eval, noise=noise_eval).mean()
        d.train()
        return float(value)

    before = evaluate()
    opt = torch.optim.Adam(d.parameters(), lr=2e-3)
    for _ in range(80):
        idx = torch.randint(0, 64, (8,), generator=gen)
        opt.zero_grad()
        loss(d, data[idx], None, generator=gen).mean().backward()
        opt.step()
    after = evaluate()
    assert after < 0.5 * before, (before, after)
