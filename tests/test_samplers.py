"""Samplers against closed forms: an exact Gaussian-prior denoiser and a linear-Gaussian likelihood.

Prior x ~ N(μ, s² I) per pixel, so the exact denoiser is D(x; σ) = (s² x + σ² μ)/(s² + σ²) and the PF-ODE map
is x(σ') − μ = (x(σ) − μ)·√((s² + σ'²)/(s² + σ²)). With y = a·x + n, n ~ N(0, τ²), the posterior is Gaussian,
and every sampler here is an affine map of Gaussian noise, so its output moments follow from a scalar
recursion written out below independently of the samplers (only the σ schedules are shared, and those are
checked against Karras et al. eq. 5 on their own). Each pixel of the toy is an independent problem, so moments
pool over pixels. Runs are seeded and deterministic; tolerances are ~4 Monte Carlo standard errors (SE) plus,
where stated, the algorithm's own bias, so a reseed should not fail them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from darkclusters.diffusion.samplers import (
    DAPSConfig,
    DPSConfig,
    PerSampleGenerator,
    SamplerDivergedError,
    add_nll,
    daps_nfe,
    ddpm_index_to_edm_sigma,
    edm_sigma_to_ddpm_index,
    edm_sigmas,
    likelihood_prefit,
    likelihood_scale,
    quadratic_pull,
    sample_conditional,
    sample_daps,
    sample_dps,
    sample_euler,
    sample_heun,
    total_variation,
)

MU, S = 0.3, 1.0  # Gaussian prior per pixel
TAU = 0.1  # likelihood noise std: informative data, the regime DAPS and DPS are built for
A_HI, A_LO, Y_HI, Y_LO = 1.0, 0.5, 1.2, -0.4  # checkerboard of two (a, y) problems on 8×8 pixels
F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """The toys are tiny tensors: intra-op threads only add OpenMP synchronisation (100× slower sums on a
    loaded 2-core runner), so these tests run single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian_denoiser(mu: float = MU, s: float = S):
    """Exact D(x; σ) = E[x0 | x_σ] for x0 ~ N(mu, s²) per pixel; ignores cond."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return (s**2 * x + sigma**2 * mu) / (s**2 + sigma**2)

    return denoise


def checkerboard(hw: int = 8) -> torch.Tensor:
    i, j = torch.meshgrid(torch.arange(hw), torch.arange(hw), indexing="ij")
    return ((i + j) % 2 == 0).reshape(1, 1, hw, hw)


HI = checkerboard()
A_MAP = torch.where(HI, A_HI, A_LO).to(F64)
Y_MAP = torch.where(HI, Y_HI, Y_LO).to(F64)


def misfit(x0: torch.Tensor) -> torch.Tensor:
    """½‖a·x0 − y‖² per sample (elementwise a: no batch-size-dependent BLAS)."""
    return 0.5 * (A_MAP.to(x0) * x0 - Y_MAP.to(x0)).square().flatten(1).sum(1)


def posterior(a: float, y: float, tau: float = TAU) -> tuple[float, float]:
    var = 1.0 / (1.0 / S**2 + a**2 / tau**2)
    return var * (MU / S**2 + a * y / tau**2), var


def karras(hi: float, lo: float, n: int, rho: float) -> list[float]:
    """Karras et al. (2022) eq. 5, written again here: n levels from hi down to lo."""
    if n == 1:
        return [hi]
    return [(hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho for i in range(n)]


def ode_gain(sigma: float, cfg: DAPSConfig) -> float:
    """F with x̂0 − μ = F·(x − μ) for DAPS's inner Euler/Heun ODE under the Gaussian denoiser."""

    def q(u: float) -> float:  # dx/dσ = q(σ)·(x − μ) for D(x; σ) = k x + (1 − k) μ
        return (1 - S**2 / (S**2 + u**2)) / u

    if sigma <= cfg.ode_sigma_min:
        return S**2 / (S**2 + sigma**2)
    levels = karras(sigma, cfg.ode_sigma_min, cfg.ode_steps + 1, cfg.rho)
    gain = 1.0
    for u, u_next in itertools.pairwise(levels):
        h = u_next - u
        step = 1 + h * q(u)
        if cfg.ode_heun:
            step = 1 + 0.5 * h * (q(u) + q(u_next) * (1 + h * q(u)))
        gain *= step
    return gain


def daps_moments(cfg: DAPSConfig, a: float, y: float) -> tuple[float, float]:
    """Exact mean and variance of DAPS's output for one pixel (Gaussian moments through the affine steps)."""
    n = cfg.annealing_steps
    sigmas = [*karras(cfg.sigma_max, cfg.sigma_min, n, cfg.rho), 0.0]
    m, v = 0.0, sigmas[0] ** 2
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        gain = ode_gain(s, cfg)
        m0, v0 = MU + gain * (m - MU), gain**2 * v
        eta = cfg.lr * (1 + (i / n) * (cfg.lr_min_ratio - 1)) * (s**2 if cfg.scale_lr_by_sigma2 else 1.0)
        f = 1 - eta * (1 / s**2 + a**2 / cfg.tau**2)  # z ← f z + g x̂0 + h + √(2η) ε
        g, h = eta / s**2, eta * a * y / cfg.tau**2
        mz, vz, cz = m0, v0, v0  # Langevin starts at x̂0; cz = Cov(z, x̂0)
        for _ in range(cfg.langevin_steps):
            mz = f * mz + g * m0 + h
            vz, cz = f * f * vz + 2 * f * g * cz + g * g * v0 + 2 * eta, f * cz + g * v0
        m, v = mz, vz + s_next**2
    return m, v


def dps_moments(cfg: DPSConfig, a: float, y: float, tau: float = TAU) -> tuple[float, float]:
    """Exact mean and variance of DPS's output for one pixel with nll = ½(a x0 − y)²/τ²."""
    sigmas = [*karras(cfg.sigma_max, cfg.sigma_min, cfg.n_steps, cfg.rho), 0.0]
    scales = (likelihood_scale(torch.tensor(sigmas[:-1], dtype=F64), cfg) * cfg.zeta).tolist()
    m, v = 0.0, sigmas[0] ** 2
    for i in range(cfg.n_steps):
        s, s_next = sigmas[i], sigmas[i + 1]
        k = S**2 / (S**2 + s**2)  # x̂0 = k x + (1 − k) μ; ∇ nll(x̂0(x)) = k a (a x̂0 − y)/τ²
        grad_x, grad_c = k * a * a * k / tau**2, k * a * (a * (1 - k) * MU - y) / tau**2
        if cfg.stochastic:
            r = (s_next / s) ** 2
            alpha, beta, noise, weight = (
                k + r * (1 - k),
                (1 - k) * MU * (1 - r),
                s_next**2 * (1 - r),
                s**2 - s_next**2,
            )
        else:
            f = (s_next - s) / s
            alpha, beta, noise, weight = 1 + f * (1 - k), -f * (1 - k) * MU, 0.0, s * (s - s_next)
        alpha, beta = alpha - scales[i] * weight * grad_x, beta - scales[i] * weight * grad_c
        m, v = alpha * m + beta, alpha**2 * v + noise
    return m, v


def calibrated_z_std(n: int) -> float:
    """std of (x_true − mean)/std for a calibrated Gaussian posterior with mean and std from n samples."""
    return math.sqrt((1 + 1 / n) * (n - 1) / (n - 3))


def group_values(x: torch.Tensor, hi: bool) -> torch.Tensor:
    mask = HI if hi else ~HI
    return x[mask.expand_as(x)]


def assert_moments(values: torch.Tensor, mean: float, var: float, *, bias_mean=0.0, bias_var=0.0) -> None:
    """Sample mean within 4 SE (+ bias_mean·std) of mean; sample variance within 4 SE (+ bias_var) of var."""
    n = values.numel()
    se_mean, se_var_rel = math.sqrt(var / n), math.sqrt(2 / (n - 1))  # Gaussian SEs of mean and variance
    got_mean, got_var = float(values.mean()), float(values.var())
    assert abs(got_mean - mean) < 4 * se_mean + bias_mean * math.sqrt(var), (got_mean, mean, var)
    assert abs(got_var / var - 1) < 4 * se_var_rel + bias_var, (got_var, var)


# --- schedules ------------------------------------------------------------------------------------------


def test_edm_sigmas_is_karras_eq5_with_final_zero():
    sigmas = edm_sigmas(18, dtype=F64)
    assert sigmas.shape == (19,)
    assert float(sigmas[-1]) == 0.0
    expected = torch.tensor(karras(80.0, 0.002, 18, 7.0), dtype=F64)
    torch.testing.assert_close(sigmas[:-1], expected, rtol=1e-12, atol=0)  # float64 round-off only
    assert edm_sigmas(1).tolist() == [80.0, 0.0]
    with pytest.raises(ValueError, match="sigma_min"):
        edm_sigmas(10, sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="n_steps"):
        edm_sigmas(0)


def test_ddpm_index_to_edm_sigma_matches_reference_numbers():
    # reference/diffusion.md: t = 150, 450, 500, 700 ↔ σ ≈ 0.13, 0.51, 0.62, 1.45 (sigmoid β schedule, data in
    # [−1, 1]); tolerance is half a unit in the last quoted digit.
    t = torch.tensor([150, 450, 500, 700])
    quoted = torch.tensor([0.13, 0.51, 0.62, 1.45], dtype=F64)
    got = ddpm_index_to_edm_sigma(t).to(F64)
    assert torch.all((got - quoted).abs() <= 0.005), got
    linear = ddpm_index_to_edm_sigma(t, schedule="linear").to(F64)  # DDPM's linear β: a different map
    assert torch.all((linear - quoted).abs() > 0.3), linear
    # the continuous inverse round-trips (float64 interpolation: 1e-9 in index units)
    t_cont = torch.tensor([0.0, 150.0, 450.5, 500.0, 998.25], dtype=F64)
    torch.testing.assert_close(
        edm_sigma_to_ddpm_index(ddpm_index_to_edm_sigma(t_cont)), t_cont, atol=1e-9, rtol=0
    )
    cfg = DPSConfig()  # A(σ(t̄)) = sigmoid(0) = ½ and A falls with σ
    scale = likelihood_scale(ddpm_index_to_edm_sigma(torch.tensor([400.0, 500.0, 600.0], dtype=F64)), cfg)
    assert abs(float(scale[1]) - 0.5) < 1e-9
    assert float(scale[0]) > 0.99
    assert float(scale[2]) < 0.01
    with pytest.raises(ValueError, match="DDPM index"):
        ddpm_index_to_edm_sigma(1000.0)


# --- Heun and the conditional sampler -------------------------------------------------------------------


def test_heun_is_second_order():
    denoise = gaussian_denoiser(mu=0.3, s=0.5)
    x_start = 80.0 * PerSampleGenerator([0, 1]).randn((1, 4, 4), dtype=F64)
    sigma_end = 0.002  # stop at σ_min > 0 so that every step is a Heun step
    exact = 0.3 + (x_start - 0.3) * math.sqrt((0.5**2 + sigma_end**2) / (0.5**2 + 80.0**2))
    errors = []
    for n in (16, 64):
        sigmas = torch.tensor(karras(80.0, sigma_end, n + 1, 7.0), dtype=F64)
        errors.append(float((sample_heun(denoise, x_start, sigmas, cond=None) - exact).abs().max()))
    order = math.log(errors[0] / errors[1]) / math.log(4)  # 4× steps → 4^p less error; measured p ≈ 2.07
    assert 1.8 < order < 2.3, (errors, order)  # first order would give ~1, and fail


def test_heun_reproduces_prior_moments_and_counts_nfe():
    denoise = gaussian_denoiser(mu=0.3, s=0.5)
    nfe = []
    x = sample_conditional(
        denoise,
        (1, 4, 4),
        cond=None,
        seeds=range(2000),
        n_steps=128,
        dtype=F64,
        callback=lambda d: nfe.append(d["nfe"]),
    )
    assert nfe[-1] == 2 * 128 - 1  # Heun: 2N − 1 calls (no correction on the last step to σ = 0)
    # 32000 i.i.d. pixels: SE(mean) = 0.0028, SE(var)/var = 0.8 %. N = 128 leaves a 0.4 % variance bias (at
    # N = 18, EDM's default, this Gaussian comes out 12 % too wide), inside the 4-SE band.
    assert_moments(x.flatten(), 0.3, 0.25)


def test_conditional_prior_is_calibrated_and_uses_cond():
    # x ~ N(μ, s²), c = x + N(0, ω²) per pixel ⇒ p(x | c) = N(m_c, v_c): the exact conditional denoiser.
    omega, hw, n_samples = 0.5, 32, 64
    gen = torch.Generator().manual_seed(7)
    x_true = MU + S * torch.randn(1, 1, hw, hw, generator=gen, dtype=F64)
    c = x_true + omega * torch.randn(1, 1, hw, hw, generator=gen, dtype=F64)
    v_c = 1 / (1 / S**2 + 1 / omega**2)
    cond = c.expand(n_samples, -1, -1, -1)

    def denoise(x, sigma, cond_):
        m_c = v_c * (MU / S**2 + cond_ / omega**2)
        return (v_c * x + sigma**2 * m_c) / (v_c + sigma**2)

    x = sample_conditional(denoise, (1, hw, hw), cond=cond, seeds=range(n_samples), n_steps=64, dtype=F64)
    z = (x_true[0] - x.mean(0)) / x.std(0)
    # 1024 independent pixels: SE 0.031 for mean(z) and 0.022 for std(z), tolerance 4 SE. With the std taken
    # from n samples, z of a calibrated sampler is √(1 + 1/n)·t_{n−1}: std(z) = calibrated_z_std(n).
    assert abs(float(z.mean())) < 0.13, float(z.mean())
    assert abs(float(z.std()) - calibrated_z_std(n_samples)) < 0.09, float(z.std())
    # Sharpness: a sampler ignoring cond would give var(x) = s² = 1, not v_c = 0.2. Mean of 1024 per-pixel
    # variances: SE 0.6 %; Heun with N = 64 leaves ~1.5 % (see the prior test); tolerance 5 %.
    assert abs(float(x.var(0).mean()) / v_c - 1) < 0.05, float(x.var(0).mean())


# --- DAPS -----------------------------------------------------------------------------------------------

# Accurate DAPS for the toy: its own bias here (exact recursion) is ≤ 0.08 posterior std in the mean and
# ≤ 3.6 % in the variance, from the Gaussian approximation N(x̂0_ODE, σ²) of p(x0 | x_σ) and the finite
# Langevin chain.
DAPS_TOY = DAPSConfig(
    annealing_steps=30, langevin_steps=200, lr=1e-3, lr_min_ratio=0.1, sigma_max=10.0, sigma_min=0.05, tau=TAU
)


def test_daps_matches_its_exact_moments_and_the_posterior():
    x = sample_daps(
        gaussian_denoiser(), (1, 8, 8), cond=None, nll=misfit, seeds=range(128), cfg=DAPS_TOY, dtype=F64
    )
    for hi, a, y in ((True, A_HI, Y_HI), (False, A_LO, Y_LO)):
        values = group_values(x, hi)  # 4096 i.i.d. values: SE(var)/var = 2.2 %
        m_alg, v_alg = daps_moments(DAPS_TOY, a, y)
        assert_moments(values, m_alg, v_alg)  # the implementation is the algorithm, within MC error
        m_post, v_post = posterior(a, y)
        assert abs(m_alg - m_post) < 0.1 * math.sqrt(v_post)
        assert abs(v_alg / v_post - 1) < 0.05
        assert_moments(values, m_post, v_post, bias_mean=0.1, bias_var=0.05)  # bias bounds: the line above


@pytest.mark.parametrize(
    "cfg",
    [  # σ²-scaled step (DarkClusters' DAPS-LL) with a Heun inner ODE; plain step with an Euler inner ODE
        DAPSConfig(annealing_steps=10, langevin_steps=10, lr=0.03, scale_lr_by_sigma2=True, ode_heun=True),
        DAPSConfig(annealing_steps=10, langevin_steps=10, lr=1e-3),
    ],
)
def test_daps_variants_match_their_exact_moments(cfg):
    # Implementation check only, on short chains whose moments depend on every part of the step: dropping the
    # lr decay (lr_min_ratio 0.01), switching Heun ↔ Euler or τ → τ/√2 moves them by 9–24 SE (recursion).
    cfg = dataclasses.replace(cfg, sigma_max=3.0, sigma_min=0.05, tau=0.5)
    x = sample_daps(
        gaussian_denoiser(), (1, 8, 8), cond=None, nll=misfit, seeds=range(256), cfg=cfg, dtype=F64
    )
    for hi, a, y in ((True, A_HI, Y_HI), (False, A_LO, Y_LO)):
        assert_moments(group_values(x, hi), *daps_moments(cfg, a, y))  # 8192 values: SE(var)/var = 1.6 %


def test_daps_standardized_errors_are_standard_normal():
    hw, n_samples = 32, 32
    gen = torch.Generator().manual_seed(11)
    a = torch.where(checkerboard(hw), A_HI, A_LO).to(F64)
    x_true = MU + S * torch.randn(1, 1, hw, hw, generator=gen, dtype=F64)
    y = a * x_true + TAU * torch.randn(1, 1, hw, hw, generator=gen, dtype=F64)

    def nll(x0):
        return 0.5 * (a * x0 - y).square().flatten(1).sum(1)

    x = sample_daps(
        gaussian_denoiser(), (1, hw, hw), cond=None, nll=nll, seeds=range(n_samples), cfg=DAPS_TOY
    )
    z = (x_true[0] - x.mean(0)) / x.std(0)
    # 1024 independent pixels: SE 0.031 for mean(z), 0.022 for std(z); tolerance 4 SE, plus 0.02 for std(z)
    # as DAPS's variance is up to 3.6 % wide here (above). calibrated_z_std: the n = 32 sample-std effect.
    assert abs(float(z.mean())) < 0.13, float(z.mean())
    assert abs(float(z.std()) - calibrated_z_std(n_samples)) < 0.11, float(z.std())


# --- DPS ------------------------------------------------------------------------------------------------


def dps_nll(x0):
    return misfit(x0) / TAU**2


def test_dps_matches_its_exact_moments_and_the_posterior():
    cfg = DPSConfig(n_steps=200)
    x = sample_dps(
        gaussian_denoiser(), (1, 8, 8), cond=None, nll=dps_nll, seeds=range(128), cfg=cfg, dtype=F64
    )
    for hi, a, y in ((True, A_HI, Y_HI), (False, A_LO, Y_LO)):
        values = group_values(x, hi)
        m_alg, v_alg = dps_moments(cfg, a, y)
        assert_moments(values, m_alg, v_alg)  # the implementation is the algorithm, within MC error
        # DPS replaces p(y | x_σ) by N(y; a x̂0, τ²), dropping a² Var[x0 | x_σ]: at this SNR its posterior is
        # ~2× too narrow (exact recursion: variance ratio 0.45–0.47) and its mean off by ≤ 0.22 std (≤ 5.5 %
        # relative): tolerances 0.3 std for the mean and [0.3, 1.0] for the variance ratio.
        m_post, v_post = posterior(a, y)
        assert abs(float(values.mean()) - m_post) < 0.3 * math.sqrt(v_post)
        assert 0.3 < float(values.var()) / v_post < 1.0


@pytest.mark.parametrize(
    "cfg",
    [DPSConfig(n_steps=100, stochastic=False), DPSConfig(n_steps=100, likelihood_scaling=False, zeta=0.5)],
)
def test_dps_variants_match_their_exact_moments(cfg):
    x = sample_dps(
        gaussian_denoiser(), (1, 8, 8), cond=None, nll=dps_nll, seeds=range(64), cfg=cfg, dtype=F64
    )
    for hi, a, y in ((True, A_HI, Y_HI), (False, A_LO, Y_LO)):
        m_alg, v_alg = dps_moments(cfg, a, y)
        if v_alg < 1e-12:  # the ODE variant collapses the spread: compare the mean only
            torch.testing.assert_close(
                group_values(x, hi), torch.full((2048,), m_alg, dtype=F64), rtol=0, atol=1e-6
            )
        else:
            assert_moments(group_values(x, hi), m_alg, v_alg)


# --- reproducibility, conditioning, divergence ------------------------------------------------------------

SMALL_DAPS = DAPSConfig(annealing_steps=4, ode_steps=3, langevin_steps=5, lr=1e-3, tau=0.5)
SMALL_DPS = DPSConfig(n_steps=6)


def run_sampler(name: str, seeds, *, denoise=None, cond=None, nll=misfit, dtype=F64):
    denoise = denoise or gaussian_denoiser()
    shape = (1, 8, 8)
    if name == "conditional":
        return sample_conditional(denoise, shape, cond=cond, seeds=seeds, n_steps=6, dtype=dtype)
    if name == "daps":
        return sample_daps(denoise, shape, cond=cond, nll=nll, seeds=seeds, cfg=SMALL_DAPS, dtype=dtype)
    if name == "dps":
        return sample_dps(denoise, shape, cond=cond, nll=nll, seeds=seeds, cfg=SMALL_DPS, dtype=dtype)
    device = cond.device if cond is not None else None
    return likelihood_prefit(nll, shape, seeds=seeds, n_steps=5, lr=0.1, device=device, dtype=dtype)


@pytest.mark.parametrize("name", ["conditional", "daps", "dps", "prefit"])
def test_seeded_runs_repeat_and_ignore_batch(name):
    first = run_sampler(name, [3, 5, 7, 9])
    assert torch.equal(first, run_sampler(name, [3, 5, 7, 9]))  # bitwise on the CPU
    assert torch.equal(first[1:2], run_sampler(name, [5]))  # seed 5 alone = seed 5 second of four
    assert not torch.equal(first[0], first[1])


class RecordingDenoiser:
    """The Gaussian denoiser, recording whether each call received the expected cond object."""

    def __init__(self, cond):
        self.expected, self.got_cond, self.denoise = cond, [], gaussian_denoiser()

    def __call__(self, x, sigma, cond):
        self.got_cond.append(cond is self.expected)
        return self.denoise(x, sigma, cond)


@pytest.mark.parametrize("name", ["conditional", "daps", "dps", "daps_heun"])
def test_cond_reaches_every_network_call(name):
    cond = torch.randn(2, 3, 8, 8, dtype=F64)
    recorder = RecordingDenoiser(cond)
    if name == "daps_heun":
        cfg = dataclasses.replace(SMALL_DAPS, ode_heun=True)
        sample_daps(recorder, (1, 8, 8), cond=cond, nll=misfit, seeds=[0, 1], cfg=cfg, dtype=F64)
        assert len(recorder.got_cond) == daps_nfe(cfg) == 4 * 3 * 2
    else:
        run_sampler(name, [0, 1], denoise=recorder, cond=cond)
        expected_calls = {"conditional": 2 * 6 - 1, "daps": daps_nfe(SMALL_DAPS), "dps": SMALL_DPS.n_steps}
        assert len(recorder.got_cond) == expected_calls[name]
    assert all(recorder.got_cond), recorder.got_cond  # the published DarkClusters DAPS fails in its inner ODE


def test_cond_is_required_and_checked():
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(TypeError):
        sample_heun(gaussian_denoiser(), x, edm_sigmas(4))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="cond"):
        sample_euler(gaussian_denoiser(), x, edm_sigmas(4), cond=torch.zeros(3, 1, 4, 4))
    with pytest.raises(ValueError, match="decreasing"):
        sample_heun(gaussian_denoiser(), x, torch.tensor([1.0, 2.0, 0.0]), cond=None)


def nan_value_nll(x0):
    return misfit(x0) * float("nan")


class NanGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x0):
        return x0.square().flatten(1).sum(1)

    @staticmethod
    def backward(ctx, grad_output):
        return torch.full((grad_output.shape[0], 1, 8, 8), float("nan"), dtype=grad_output.dtype)


@pytest.mark.parametrize(
    ("name", "nll", "term"),
    [
        ("daps", nan_value_nll, "likelihood value"),
        ("daps", NanGradient.apply, "likelihood gradient"),
        ("daps", lambda x0: 1e12 * x0.square().flatten(1).sum(1), "Langevin state"),
        ("dps", nan_value_nll, "likelihood value"),
        ("dps", NanGradient.apply, "likelihood gradient"),
        ("prefit", nan_value_nll, "loss"),
    ],
)
def test_divergence_raises_with_context(name, nll, term):
    with pytest.raises(SamplerDivergedError, match="diverged at step 0") as info:
        run_sampler(name, [0, 1], nll=nll)
    err = info.value
    assert err.step == 0
    assert err.term == term
    assert "sigma=" in str(err)
    if name == "daps":
        assert err.sigma == SMALL_DAPS.sigma_max


def test_heun_nan_denoiser_raises():
    def bad(x, sigma, cond):
        return x * float("nan")

    with pytest.raises(SamplerDivergedError, match="heun diverged at step 0"):
        sample_heun(bad, torch.ones(1, 1, 2, 2), edm_sigmas(3), cond=None)


def test_bad_configuration_raises_value_error():
    with pytest.raises(ValueError, match="tau"):
        DAPSConfig(tau=0.0)
    with pytest.raises(ValueError, match="sigma_min"):
        DAPSConfig(sigma_min=200.0)
    with pytest.raises(ValueError, match="ddpm_schedule"):
        DPSConfig(ddpm_schedule="cosine")
    with pytest.raises(ValueError, match="nll must return"):
        sample_dps(gaussian_denoiser(), (1, 2, 2), cond=None, nll=lambda x: x, seeds=[0], cfg=SMALL_DPS)
    with pytest.raises(ValueError, match="seed"):
        PerSampleGenerator([-1])
    with pytest.raises(ValueError, match="batch"):
        sample_daps(gaussian_denoiser(), (3, 1, 2, 2), cond=None, nll=None, seeds=[0], cfg=SMALL_DAPS)


def test_float32_follows_dtype():
    for name in ("conditional", "daps", "dps", "prefit"):
        assert run_sampler(name, [0], dtype=torch.float32).dtype == torch.float32


# --- pre-fit and pull term ------------------------------------------------------------------------------


def test_prefit_finds_the_likelihood_minimum_and_tv_smooths():
    # nll = ½‖a x − y‖²/τ² has its minimum at x = y/a; Adam (lr 0.05, 400 steps) gets within 1e-3 of it.
    fit = likelihood_prefit(dps_nll, (1, 8, 8), seeds=[0, 1], n_steps=400, lr=0.05, tv_weight=0.0, dtype=F64)
    torch.testing.assert_close(fit, (Y_MAP / A_MAP).expand(2, -1, -1, -1), atol=1e-3, rtol=0)
    weight = 200.0  # comparable to the data term (1/τ² = 100 per pixel), so the optimum moves visibly
    smooth = likelihood_prefit(
        dps_nll, (1, 8, 8), seeds=[0, 1], n_steps=400, lr=0.05, tv_weight=weight, dtype=F64
    )
    assert float(total_variation(smooth).max()) < 0.8 * float(total_variation(fit).min())  # measured 0.68
    objective = dps_nll(smooth) + weight * total_variation(smooth)
    assert torch.all(objective < dps_nll(fit) + weight * total_variation(fit))  # it minimises nll + w·TV


def test_quadratic_pull_and_add_nll():
    x_fit = torch.randn(2, 1, 4, 4, dtype=F64)
    x = torch.randn(2, 1, 4, 4, dtype=F64, requires_grad=True)
    pull = quadratic_pull(x_fit, weight=50.0)
    value = pull(x)
    torch.testing.assert_close(value, 50.0 * ((x_fit - x) ** 2).mean(dim=(1, 2, 3)))
    (grad,) = torch.autograd.grad(value.sum(), x)
    torch.testing.assert_close(grad, 50.0 * 2 * (x - x_fit) / 16)  # d/dx of w·mean((x_fit − x)²) over 16 px
    total = add_nll(pull, lambda z: z.flatten(1).sum(1))
    torch.testing.assert_close(total(x), value + x.flatten(1).sum(1))


@pytest.mark.gpu
def test_samplers_on_cuda_follow_the_device_and_ignore_batch():
    cond = torch.randn(4, 3, 8, 8, device="cuda")
    for name in ("conditional", "daps", "dps", "prefit"):
        first = run_sampler(name, [3, 5, 7, 9], cond=cond, dtype=torch.float32)
        assert first.device.type == "cuda"
        assert first.dtype == torch.float32
        alone = run_sampler(name, [5], cond=cond[1:2], dtype=torch.float32)
        torch.testing.assert_close(first[1:2], alone, rtol=0, atol=1e-6)  # GPU kernels may reassociate sums
