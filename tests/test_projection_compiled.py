"""Compiled fast paths of the projection against independent references: the Morton-grid k-th-neighbour search
against brute-force distances and cKDTree, the numba splat against per-particle pixel integration of the
kernel, the numba rotation against the geometry module, and the maps' independence of the particle order."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.spatial import cKDTree

from darkclusters.projection import splat_kernels
from darkclusters.projection.deposit import neighbour_support_radius, sph_splat
from darkclusters.projection.geometry import hemisphere_directions, rotation_to_z, sky_coordinates
from darkclusters.projection.kernels import projected_kernel
from darkclusters.projection.maps import project_particles
from darkclusters.projection.neighbours import kth_neighbour_distance, morton_order
from darkclusters.projection.settings import projection_config
from darkclusters.simulations.particles import ParticleSet, Species


def _clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """Points with a density contrast of ~10⁶: nested Gaussian clumps on a wide halo."""
    scales = np.exp(rng.uniform(np.log(0.01), np.log(100.0), size=(n, 1)))
    centres = rng.normal(0, 30, size=(8, 3))[rng.integers(0, 8, n)]
    return centres + rng.normal(size=(n, 3)) * scales


@pytest.mark.parametrize("k", [1, 7, 32])
def test_kth_neighbour_distance_equals_brute_force(k: int) -> None:
    rng = np.random.default_rng(11)
    pos = _clustered(rng, 1500)
    pos[:20] = pos[20:40]  # exact duplicates: distance 0 to the twin
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=-1)
    ref = np.sqrt(np.sort(d2, axis=1)[:, k])  # column 0 is the point itself
    np.testing.assert_allclose(kth_neighbour_distance(pos, k), ref, rtol=1e-12, atol=0)


def test_kth_neighbour_distance_matches_ckdtree_on_a_large_clustered_set() -> None:
    rng = np.random.default_rng(12)
    pos = _clustered(rng, 60_000)
    ref = cKDTree(pos).query(pos, k=33)[0][:, 32]
    np.testing.assert_allclose(kth_neighbour_distance(pos, 32), ref, rtol=1e-12, atol=0)
    # neighbour_support_radius routes the same-set case through the compiled search
    np.testing.assert_allclose(neighbour_support_radius(pos, 32), ref, rtol=1e-12, atol=0)


def test_kth_neighbour_distance_with_fewer_points_than_k_is_the_farthest() -> None:
    pos = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    np.testing.assert_allclose(kth_neighbour_distance(pos, 10), [4.0, 5.0, 5.0])
    with pytest.raises(ValueError, match="k=0"):
        kth_neighbour_distance(pos, 0)
    with pytest.raises(ValueError, match="at least 2"):
        kth_neighbour_distance(pos[:1], 3)


def test_morton_order_is_the_z_curve_of_a_cube_of_cells() -> None:
    """Hand-derived Z order of the 8 corners of a cube: x is the lowest key bit, then y, then z."""
    corners = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], dtype=float)
    rng = np.random.default_rng(13)
    shuffled = rng.permutation(8)
    order = morton_order(corners[shuffled])
    np.testing.assert_array_equal(shuffled[order], np.arange(8))


# --------------------------------------------------------------------------------------------------- splat
def _brute_force(x: np.ndarray, y: np.ndarray, h: np.ndarray, w: np.ndarray, npix: int) -> np.ndarray:
    """Each particle's projected Wendland kernel integrated over the pixels by supersampling."""
    ref = np.zeros((npix, npix))
    for xi, yi, hi, wi in zip(x, y, h, w, strict=True):
        sub = int(np.clip(np.ceil(16 / hi), 4, 64))
        u, v = xi + npix / 2, yi + npix / 2
        j0, j1 = max(int(np.floor(u - hi)), 0), min(int(np.floor(u + hi)) + 1, npix)
        i0, i1 = max(int(np.floor(v - hi)), 0), min(int(np.floor(v + hi)) + 1, npix)
        if j1 <= j0 or i1 <= i0:
            continue
        cx = j0 + (np.arange((j1 - j0) * sub) + 0.5) / sub
        cy = i0 + (np.arange((i1 - i0) * sub) + 0.5) / sub
        f = projected_kernel(np.hypot(cx[None, :] - u, cy[:, None] - v) / hi, "wendland_c2") / hi**2
        ref[i0:i1, j0:j1] += wi * f.reshape(i1 - i0, sub, j1 - j0, sub).sum(axis=(1, 3)) / sub**2
    return ref


def test_splat_of_every_size_class_matches_brute_force_pixel_integration() -> None:
    """Supports from 0.1 px (the separable 3 × 3 path) to 3× the map (the coarsest level and its sampled
    giants), particles inside and outside the map, two weight rows with zeros."""
    rng = np.random.default_rng(14)
    n, npix = 1200, 32
    x, y = rng.uniform(-40, 40, n), rng.uniform(-40, 40, n)
    h = np.exp(rng.uniform(np.log(0.1), np.log(100.0), n))
    w = np.stack([rng.uniform(0.5, 2.0, n), np.where(rng.uniform(size=n) < 0.5, 0.0, 1.0)])
    got = sph_splat(x, y, h, w, npix=npix)
    # isolated (non-overlapping) 1–8 px kernels carry the node approximation's shape error (~8 % L1 each,
    # deposit module docstring), hence looser bounds than for the clustered set of test_projection.py
    for q in range(2):
        ref = _brute_force(x, y, h, w[q], npix)
        assert np.abs(got[q] - ref).sum() / ref.sum() < 0.03
        bright = ref > np.median(ref)
        assert np.median(np.abs(got[q] - ref)[bright] / ref[bright]) < 0.015


def test_point_like_particles_keep_their_mass_in_their_pixel() -> None:
    """Supports ≪ 1 px: the separable deposit puts (almost) all the weight in the containing pixel."""
    x, y = np.array([3.3, -7.8]), np.array([-0.6, 5.2])
    got = sph_splat(x, y, np.array([0.05, 0.05]), np.array([2.0, 3.0]), npix=16)
    assert got[7, 11] == pytest.approx(2.0, rel=1e-9)  # row ⌊−0.6 + 8⌋, col ⌊3.3 + 8⌋
    assert got[13, 0] == pytest.approx(3.0, rel=1e-9)
    assert got.sum() == pytest.approx(5.0, rel=1e-12)


def test_rotate_xy_equals_the_sky_coordinates_of_geometry() -> None:
    rng = np.random.default_rng(15)
    pos = rng.normal(size=(500, 3)) * 100
    for n in hemisphere_directions(7):
        np.testing.assert_allclose(
            splat_kernels.rotate_xy(pos, rotation_to_z(n)[:2]), sky_coordinates(pos, n)[:, :2], atol=1e-10
        )


# --------------------------------------------------------------------------------------------------- maps
def _particles(rng: np.random.Generator, perm: dict[str, np.ndarray] | None = None) -> ParticleSet:
    n = {"dm": 3000, "gas": 2000, "stars": 800, "bh": 3}
    species: dict[str, Species] = {}
    for name, count in n.items():
        pos = rng.normal(0, 150, size=(count, 3))
        mass = rng.uniform(1e8, 2e8, count)
        fields: dict[str, np.ndarray] = {}
        if name == "gas":
            fields = {
                "internal_energy_km2_s2": rng.uniform(1e5, 1e6, count),
                "electron_abundance": np.full(count, 1.16),
                "density_msun_kpc3": rng.uniform(1e5, 1e7, count),
                "star_formation_rate_msun_yr": np.zeros(count),
            }
        species[name] = Species(pos, mass, fields)
    attrs = {"redshift": 0.3, "scale_factor": 1 / 1.3, "hubble_h": 0.7, "omega_m": 0.3, "omega_b": 0.048}
    ps = ParticleSet(**species, attrs=attrs)
    if perm is None:
        return ps
    return ParticleSet(**{k: s.select(perm[k]) for k, s in ps.species().items()}, attrs=attrs)


def test_sph_maps_do_not_depend_on_the_particle_order() -> None:
    """The sph path sorts every species along a Morton curve; shuffled input gives the same maps."""
    cfg: dict[str, Any] = projection_config(
        {"method": "sph", "n_views": 2, "fields_of_view": [{"name": "a", "fov_arcsec": 150.0, "npix": 32}]}
    )
    a = project_particles(_particles(np.random.default_rng(16)), cfg)
    perm_rng = np.random.default_rng(17)
    perm = {k: perm_rng.permutation(c) for k, c in {"dm": 3000, "gas": 2000, "stars": 800, "bh": 3}.items()}
    b = project_particles(_particles(np.random.default_rng(16), perm), cfg)
    for key in ("sigma", "tsz_y", "xray_sb", "stellar_mass"):
        ref = a.maps["a"][key]
        np.testing.assert_allclose(b.maps["a"][key], ref, rtol=2e-6, atol=1e-9 * float(np.abs(ref).max()))
