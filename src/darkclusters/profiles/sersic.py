"""The elliptical Sérsic profile (Sérsic 1963): one implementation for the photometry and the lensed sources.

Shared convention (every caller passes these parameters; conversions from the stored conventions below)::

    I(x, y) = amp · exp{−b_n [(R / r_eff)^(1/n) − 1]},   b_n: γ(2n, b_n) = Γ(2n)/2 (exact, ``gammaincinv``),

with R the *circularised* elliptical radius R = √(q x'² + y'²/q), x' along the major axis, q = b/a ≤ 1,
written with ellipticity components as in lenstronomy's ``param_util.transform_e1e2_product_average``:
u = [(1 − e1) Δx − e2 Δy] / N, v = [−e2 Δx + (1 + e1) Δy] / N, N = √(1 − e1² − e2²), R = √(u² + v²),
Δ = position − centre, e1 + i e2 = (1 − q)/(1 + q) · e^(2iφ) with φ the major-axis angle counter-clockwise
from +x (:func:`ellipticity_from_axis_ratio`). r_eff is the circularised half-light radius √q · a_e (a_e the
half-light semi-major axis) and amp = I_e the surface brightness at R = r_eff. The ellipse R ≤ r has area πr²,
so the total flux is (Graham & Driver 2005, PASA 22, 118, eq. 4)

    F = 2π n e^(b_n) b_n^(−2n) Γ(2n) · amp · r_eff²  ( = 2π n e^(b_n) b_n^(−2n) Γ(2n) · q I_e a_e² ).

Positions, centres and radii share one angular unit (arcsec in this project); amp is any flux unit per that
unit², the total flux that flux unit.

The two modules this replaces differed in all three conventions: ``photometry.sersic`` used the semi-major a_e
with (q, θ) and the exact b_n (F with the factor q); ``lensing.sersic`` used lenstronomy's ``SERSIC_ELLIPSE``:
the circularised R_sersic with (e1, e2) and the linear b_n = 1.9992 n − 0.3271 (Capaccioli 1989), for which
R_sersic is not the half-light radius (1.5 % short of it at n = 0.5, 0.4 % at n = 1). The shared profile takes
(e1, e2) and the circularised radius, smooth at q = 1 where θ is undefined (the lensing likelihood
differentiates through it), and the exact b_n, so r_eff is the true half-light radius. Stored file attributes
keep their meaning; the call sites convert:

* photometry (``SersicShape``, the ``icl_shapes`` attribute: a_e, n, q, θ): r_eff = √q a_e, (e1, e2) from
  (q, θ) — the same profile to rounding;
* strong-lensing families (amp, R_sersic_arcsec, n_sersic, e1, e2 in lenstronomy's convention):
  ``darkclusters.lensing.sersic.half_light_parameters``, r_eff = R_sersic (b_n / b_lin)^n and
  I_e = amp e^(b_lin − b_n) — the identical profile, as b_n (R/r_eff)^(1/n) = b_lin (R/R_sersic)^(1/n).

Every formula is written once, against a small array namespace (exp, log, sqrt, cos, sin, lgamma, b_n) chosen
by the inputs: with no tensor among them numpy's functions run (numpy in gives float64 numpy out, at numpy's
speed: torch's float64 exp and pow ran 2–3× slower on the CPU, which the photometry's background stamps feel);
with any tensor torch's run, the arrays become tensors of one dtype and device, Python floats stay floats
(kernel arguments, no host-to-device copy), and gradients flow to every tensor argument. Parameters broadcast
with the positions. The exact b_n comes from scipy (on the CPU); its derivative in n, for tensors, is a
central difference of ``gammaincinv`` (relative error ~1e-11 against 40-digit roots), so the profile is
differentiable in every parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.special import gammaincinv, gammaln
from torch.autograd.function import once_differentiable

__all__ = [
    "as_common_tensors",
    "elliptical_radius",
    "ellipticity_from_axis_ratio",
    "sersic_amp_for_flux",
    "sersic_bn",
    "sersic_radial",
    "sersic_surface_brightness",
    "sersic_total_flux",
]

#: Relative step in a = 2n of the central difference that gives db_n/dn for tensors.
_BN_DERIVATIVE_STEP = 1e-4


def as_common_tensors(*values: Any) -> tuple[list[torch.Tensor], bool]:
    """Tensors of one floating dtype and device for ``values``, and whether any input was a tensor.

    With a tensor among the inputs, the dtype is the promotion of theirs (at least float32) and the device the
    first tensor's; with none, float64 on the CPU (numpy arrays are shared, not copied, where possible).
    """
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if tensors:
        dtype = torch.promote_types(tensors[0].dtype, torch.float32)
        for t in tensors[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
        device = tensors[0].device
    else:
        dtype, device = torch.float64, torch.device("cpu")
    return [torch.as_tensor(v, dtype=dtype, device=device) for v in values], bool(tensors)


class _ExactBn(torch.autograd.Function):
    """b_n = P⁻¹(2n, ½) by scipy on the CPU; backward by a central difference of ``gammaincinv`` in 2n."""

    @staticmethod
    def forward(ctx: Any, n: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(n)
        a = 2.0 * n.detach().cpu().to(torch.float64).numpy()
        return torch.as_tensor(gammaincinv(a, 0.5), dtype=n.dtype, device=n.device)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (n,) = ctx.saved_tensors
        a = 2.0 * n.detach().cpu().to(torch.float64).numpy()
        step = _BN_DERIVATIVE_STEP * a
        db_da = (gammaincinv(a + step, 0.5) - gammaincinv(a - step, 0.5)) / (2.0 * step)
        return grad * torch.as_tensor(2.0 * db_da, dtype=grad.dtype, device=grad.device)


@dataclass(frozen=True)
class _Namespace:
    """The few array functions the profile needs, from one library: the math below is written once against
    this interface; numpy's functions run numpy inputs (fast, no copies), torch's run tensors (autograd)."""

    exp: Callable[[Any], Any]
    log: Callable[[Any], Any]
    sqrt: Callable[[Any], Any]
    cos: Callable[[Any], Any]
    sin: Callable[[Any], Any]
    lgamma: Callable[[Any], Any]
    exact_bn: Callable[[Any], Any]


def _tensor_or_scalar(
    on_tensor: Callable[[Any], Any], on_scalar: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """``on_tensor`` for tensors, ``on_scalar`` for the Python floats the torch path leaves as they are."""
    return lambda v: on_tensor(v) if isinstance(v, torch.Tensor) else on_scalar(v)


def _scalar_bn(n: float) -> float:
    return float(gammaincinv(2.0 * n, 0.5))


_NUMPY = _Namespace(np.exp, np.log, np.sqrt, np.cos, np.sin, gammaln, lambda n: gammaincinv(2.0 * n, 0.5))
_TORCH = _Namespace(
    *(
        _tensor_or_scalar(on_tensor, on_scalar)
        for on_tensor, on_scalar in (
            (torch.exp, math.exp),
            (torch.log, math.log),
            (torch.sqrt, math.sqrt),
            (torch.cos, math.cos),
            (torch.sin, math.sin),
            (torch.lgamma, math.lgamma),
            (_ExactBn.apply, _scalar_bn),
        )
    )
)


def _arrays(*values: Any) -> tuple[_Namespace, list[Any]]:
    """Numpy's namespace and float64 arrays when no value is a tensor. Otherwise torch's, the arrays as
    tensors of the dtype and device of :func:`as_common_tensors`, and Python floats (and ints) left as floats:
    torch takes them as kernel arguments, so per-call scalar parameters (``render_arcs``' families) cost no
    host-to-device copy (each of which waits for the GPU)."""
    if not any(isinstance(v, torch.Tensor) for v in values):
        return _NUMPY, [np.asarray(v, dtype=np.float64) for v in values]
    arrays = [i for i, v in enumerate(values) if not _is_scalar(v)]
    tensors, _ = as_common_tensors(*(values[i] for i in arrays))
    out: list[Any] = [float(v) if _is_scalar(v) else None for v in values]
    for i, t in zip(arrays, tensors, strict=True):
        out[i] = t
    return _TORCH, out


def _is_scalar(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _values(value: Any) -> Any:
    """The values of an argument for the parameter checks: tensors detached, anything else as numpy."""
    return value.detach() if isinstance(value, torch.Tensor) else np.asarray(value)


def _check_positive(value: Any, name: str) -> None:
    """ValueError naming ``name`` unless every element of ``value`` is > 0 (values only, not gradients)."""
    value = _values(value)
    if not bool((value > 0).all()):
        raise ValueError(f"{name} must be > 0; got minimum {float(value.min())}")


def _bn(xp: _Namespace, n: Any) -> Any:
    _check_positive(n, "Sérsic index n")
    return xp.exact_bn(n)


def sersic_bn(n: Any) -> Any:
    """b_n, the root of γ(2n, b_n) = Γ(2n)/2 (r_eff encloses half the light), for Sérsic index n > 0.

    Any shape; numpy in gives numpy out, tensors keep device and dtype and are differentiable in n (module
    docstring).
    """
    xp, (n_a,) = _arrays(n)
    return _bn(xp, n_a)


def ellipticity_from_axis_ratio(q: Any, phi_rad: Any) -> tuple[Any, Any]:
    """(e1, e2) = (1 − q)/(1 + q) · (cos 2φ, sin 2φ) for axis ratio 0 < q ≤ 1 and major-axis angle φ [rad]
    counter-clockwise from +x (lenstronomy ``param_util.phi_q2_ellipticity``). Broadcasting; same type out."""
    xp, (q_a, phi) = _arrays(q, phi_rad)
    _check_positive(q_a, "axis ratio q")
    if not bool((_values(q_a) <= 1).all()):
        raise ValueError(f"axis ratio q must be <= 1; got maximum {float(_values(q_a).max())}")
    modulus = (1.0 - q_a) / (1.0 + q_a)
    return modulus * xp.cos(2.0 * phi), modulus * xp.sin(2.0 * phi)


def _radius(xp: _Namespace, x: Any, y: Any, e1: Any, e2: Any, cx: Any, cy: Any, softening: float) -> Any:
    if softening < 0:
        raise ValueError(f"softening={softening} must be >= 0")
    e_sq = _values(e1) ** 2 + _values(e2) ** 2
    if not bool((e_sq < 1).all()):
        raise ValueError(f"ellipticity (e1, e2) must have e1² + e2² < 1; got maximum {float(e_sq.max())}")
    dx, dy = x - cx, y - cy
    norm = xp.sqrt(1.0 - e1**2 - e2**2)
    u = ((1.0 - e1) * dx - e2 * dy) / norm
    v = (-e2 * dx + (1.0 + e1) * dy) / norm
    return xp.sqrt(u**2 + v**2 + softening**2)


def _radial(xp: _Namespace, radius: Any, amp: Any, r_eff: Any, n: Any) -> Any:
    _check_positive(r_eff, "r_eff")
    return amp * xp.exp(-_bn(xp, n) * ((radius / r_eff) ** (1.0 / n) - 1.0))


def elliptical_radius(
    x: Any,
    y: Any,
    *,
    e1: Any = 0.0,
    e2: Any = 0.0,
    center_x: Any = 0.0,
    center_y: Any = 0.0,
    softening: float = 0.0,
) -> Any:
    """Circularised elliptical radius R = √(u² + v² + softening²) of positions (x, y) (module docstring).

    x, y and the parameters broadcast; unit of x. ``softening`` (≥ 0, unit of x) keeps the gradient finite at
    the centre (R → √(R² + ε²)). Numpy in gives numpy out; tensors keep gradients.
    """
    xp, args = _arrays(x, y, e1, e2, center_x, center_y)
    return _radius(xp, *args, softening)


def sersic_radial(radius: Any, *, amp: Any, r_eff: Any, n: Any) -> Any:
    """I(R) = amp · exp{−b_n [(R / r_eff)^(1/n) − 1]} at circularised radii R (unit of r_eff), broadcasting.

    Returns the unit of amp; numpy in gives numpy out, tensors keep gradients.
    """
    xp, args = _arrays(radius, amp, r_eff, n)
    return _radial(xp, *args)


def sersic_surface_brightness(
    x: Any,
    y: Any,
    *,
    amp: Any,
    r_eff: Any,
    n: Any,
    e1: Any = 0.0,
    e2: Any = 0.0,
    center_x: Any = 0.0,
    center_y: Any = 0.0,
    softening: float = 0.0,
) -> Any:
    """Surface brightness I(x, y) of the elliptical Sérsic profile (module docstring), in the unit of amp.

    x, y: positions (any broadcastable shape, unit of r_eff); amp: I at R = r_eff; r_eff: circularised
    half-light radius (> 0); n: Sérsic index (> 0); e1, e2: ellipticity (e1² + e2² < 1); center_x, center_y;
    softening: as in :func:`elliptical_radius`. Returns the broadcast shape; numpy in gives numpy (float64)
    out, tensors keep device, dtype and gradients in every argument.
    """
    xp, (x_a, y_a, amp_a, r_a, n_a, e1_a, e2_a, cx, cy) = _arrays(
        x, y, amp, r_eff, n, e1, e2, center_x, center_y
    )
    return _radial(xp, _radius(xp, x_a, y_a, e1_a, e2_a, cx, cy, softening), amp_a, r_a, n_a)


def _unit_total_flux(xp: _Namespace, r_eff: Any, n: Any) -> Any:
    """F / amp = 2π n e^(b_n) b_n^(−2n) Γ(2n) r_eff², by logarithms (finite for large n)."""
    _check_positive(r_eff, "r_eff")
    bn = _bn(xp, n)
    log_shape = xp.lgamma(2.0 * n) + bn - 2.0 * n * xp.log(bn) + xp.log(2.0 * math.pi * n)
    return r_eff**2 * xp.exp(log_shape)


def sersic_total_flux(amp: Any, r_eff: Any, n: Any) -> Any:
    """Total flux F = 2π n e^(b_n) b_n^(−2n) Γ(2n) · amp · r_eff² of the untruncated profile (module
    docstring).

    Independent of e1, e2 (r_eff is circularised). Unit: amp's unit × r_eff's unit². Broadcasting; numpy or
    torch, differentiable.
    """
    xp, (amp_a, r_a, n_a) = _arrays(amp, r_eff, n)
    return amp_a * _unit_total_flux(xp, r_a, n_a)


def sersic_amp_for_flux(flux: Any, r_eff: Any, n: Any) -> Any:
    """The amp (surface brightness at r_eff, flux unit per r_eff unit²) of the profile with total ``flux``."""
    xp, (flux_a, r_a, n_a) = _arrays(flux, r_eff, n)
    return flux_a / _unit_total_flux(xp, r_a, n_a)
