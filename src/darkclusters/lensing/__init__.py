"""Gravitational lensing: operators on convergence maps, mocks, likelihoods and classical mass maps.

Modules (import them directly; this package imports nothing heavy):

* ``operators`` — torch κ → ψ, α, γ, μ, reduced shear, and the Kaiser–Squires inverse; batched,
  differentiable, CPU/GPU, numpy in → numpy out.
* ``interpolate`` — bilinear sampling of maps at sky positions (``sample_field``), differentiable.
* ``weak`` — weak-lensing mock catalogs (source redshifts, positions, reduced shear, shape noise).
* ``weak_likelihood`` — ``WeakLensingLikelihood``: dense RBF-shear MSE (published) or exact per-source χ².
* ``mass_mapping`` — binned shear, Kaiser–Squires and Wiener-filter mass maps (baselines).
* ``strong``, ``sersic``, ``strong_likelihood`` — strong-lensing images, Sérsic sources and their likelihood.

Conventions, shared by every module:

* Angles in arcsec. Maps are ``(..., H, W)`` indexed ``[row = y, col = x]``, x to the right, y up (plot with
  ``origin="lower"``); pixel (i, j) is centred at x_j = (j + ½ − W/2)·p, y_i = (i + ½ − H/2)·p, so the map
  centre is the origin (``darkclusters.projection.geometry``).
* Lens equation β = θ − α(θ); ψ with α = ∇ψ; γ1 = ½(ψ,xx − ψ,yy), γ2 = ψ,xy (lenstronomy's signs); tangential
  shear γt = −(γ1 cos 2φ + γ2 sin 2φ); reduced shear g = γ/(1 − κ).
* κ = Σ/Σcr for one source redshift; a map made for z_ref serves a source at z_s after multiplying κ, ψ, α, γ
  by (D_ls/D_s)(z_s)/(D_ls/D_s)(z_ref). Σcr, D_ls/D_s and arcsec ↔ kpc live in ``darkclusters.cosmology``.
"""
