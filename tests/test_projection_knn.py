"""The compiled 2-D kNN box kernel (projection/knn.py, knn_kernels.py) against independent references: a
brute-force numpy sort of every pixel's distances (clustered sets, unequal weights, Q > 1, k > N, particles
far outside the map, discs leaving the particles' bounding box, exact ties), scipy's cKDTree, wrong search
bounds, the particle order, the numba thread count, species subsets and the map pipeline."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy.spatial import cKDTree

from darkclusters.projection import knn_kernels
from darkclusters.projection.knn import Workspace, build_tree, knn_surface_density
from darkclusters.projection.maps import _SPECIES_ROW, _TOTAL, _knn_view, _prepare, _sky_xy
from darkclusters.projection.settings import fields_of_view, projection_config
from darkclusters.simulations.particles import ParticleSet, Species


def _brute_force(
    xy: np.ndarray, w: np.ndarray, npix: int, pixel: float, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Σ (Q, npix, npix) and r_k by sorting every pixel centre's squared distances to all particles.

    r_k² = the k-th smallest d²; Σ_q = (Σ_{d² < r_k²} w_q + (k − n_<)/n_= Σ_{d² = r_k²} w_q) / (π r_k²): the
    particles tied at r_k share the remaining rank equally (knn_kernels module docstring)."""
    k = min(k, len(xy))
    c = (np.arange(npix) + 0.5 - npix / 2) * pixel
    sigma = np.zeros((w.shape[0], npix, npix))
    rk = np.zeros((npix, npix))
    for i in range(npix):
        for j in range(npix):
            d2 = (xy[:, 0] - c[j]) ** 2 + (xy[:, 1] - c[i]) ** 2
            d2k = np.partition(d2, k - 1)[k - 1]
            less, tied = d2 < d2k, d2 == d2k
            share = (k - np.count_nonzero(less)) / np.count_nonzero(tied)
            sigma[:, i, j] = (w[:, less].sum(axis=1) + share * w[:, tied].sum(axis=1)) / (np.pi * d2k)
            rk[i, j] = np.sqrt(d2k)
    return sigma, rk


def _clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """2-D points with a density contrast of ~10⁶: nested clumps on a wide halo, a few far outside."""
    scales = np.exp(rng.uniform(np.log(0.05), np.log(200.0), size=(n, 1)))
    centres = rng.normal(0, 25, size=(6, 2))[rng.integers(0, 6, n)]
    xy = centres + rng.normal(size=(n, 2)) * scales
    xy[:5] = rng.uniform(-1, 1, size=(5, 2)) * 1e5  # far outside the map and the index's fine cells
    return xy


@pytest.mark.parametrize("k", [1, 7, 120])
def test_exact_on_clustered_particles_with_unequal_weights(k: int) -> None:
    rng = np.random.default_rng(21)
    xy = _clustered(rng, 3000)
    w = np.stack([rng.uniform(0.1, 3.0, len(xy)), rng.lognormal(0, 2, len(xy)), np.ones(len(xy))])
    ref, ref_rk = _brute_force(xy, w, 24, 6.0, k)
    for half in (None, 80.0):  # fine cells over the bounding box (1e5) or over the map alone
        got, rk = knn_surface_density(
            build_tree(xy, half_kpc=half), w, npix=24, pixel_kpc=6.0, k=k, interpolation_ratio=None
        )
        np.testing.assert_allclose(rk, ref_rk, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_exact_when_discs_leave_the_particles_and_k_exceeds_n() -> None:
    """A small cloud in the middle of a map twice its size: the outer pixels' discs reach far beyond every
    particle; with k > N every pixel uses all particles (r_k = the farthest)."""
    rng = np.random.default_rng(22)
    xy = rng.uniform(-30, 30, size=(400, 2))
    w = rng.uniform(0.5, 2.0, size=(2, 400))
    for k in (150, 1000):
        ref, ref_rk = _brute_force(xy, w, 20, 6.0, k)
        got, rk = knn_surface_density(
            build_tree(xy), w, npix=20, pixel_kpc=6.0, k=k, interpolation_ratio=None
        )
        np.testing.assert_allclose(rk, ref_rk, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_exact_ties_share_the_remaining_rank() -> None:
    """Particles on an integer lattice (some duplicated, unequal weights) seen from pixel centres at integer
    and half-integer points: d² is exact in float64, so many particles sit exactly at r_k."""
    rng = np.random.default_rng(23)
    g = np.arange(-12, 13, dtype=float)
    xy = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    xy = np.concatenate([xy, xy[rng.choice(len(xy), 100, replace=False)]])
    w = rng.uniform(0.5, 2.0, size=(1, len(xy)))
    for pixel, k in ((1.0, 9), (1.0, 30), (2.0, 50)):
        ref, ref_rk = _brute_force(xy, w, 16, pixel, k)
        got, rk = knn_surface_density(
            build_tree(xy), w, npix=16, pixel_kpc=pixel, k=k, interpolation_ratio=None
        )
        np.testing.assert_allclose(rk, ref_rk, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    # with equal weights any choice among the tied particles gives the same sum: cKDTree's too
    ones = np.ones((1, len(xy)))
    ref, _ = knn_surface_density(cKDTree(xy), ones, npix=16, pixel_kpc=1.0, k=30, interpolation_ratio=None)
    got, _ = knn_surface_density(build_tree(xy), ones, npix=16, pixel_kpc=1.0, k=30, interpolation_ratio=None)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("ratio", [None, 4.0, 1.5])
def test_agrees_with_the_ckdtree_path_on_a_large_cluster(ratio: float | None) -> None:
    """k = 300 on 60 000 clustered particles, the adaptive interpolation on and off: the same r_k and Σ as
    the cKDTree queries (which the same hierarchy drives)."""
    rng = np.random.default_rng(24)
    xy = _clustered(rng, 60_000)
    w = np.stack([rng.uniform(0.5, 2.0, len(xy)), rng.uniform(0, 1, len(xy))])
    ref, ref_rk = knn_surface_density(
        cKDTree(xy), w, npix=64, pixel_kpc=2.5, k=300, interpolation_ratio=ratio
    )
    got, rk = knn_surface_density(
        build_tree(xy, half_kpc=100.0), w, npix=64, pixel_kpc=2.5, k=300, interpolation_ratio=ratio
    )
    np.testing.assert_allclose(rk, ref_rk, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=0)


def test_wrong_search_bounds_cost_time_not_exactness() -> None:
    """query_runs with per-query bounds that are far too tight (upper ≪ r_k, lower ≫ r_k) or absent, in runs
    of scattered points: the retries still find the exact r_k and sums."""
    rng = np.random.default_rng(25)
    xy = _clustered(rng, 5000)
    w = rng.uniform(0.5, 2.0, size=(1, len(xy)))
    index = build_tree(xy)
    ws = knn_kernels.take_rows(w, index.order)
    q = rng.uniform(-60, 60, size=(300, 2))
    tree_d, tree_i = cKDTree(xy).query(q, k=40)
    ref_rk = tree_d[:, -1]
    ref = w[0, tree_i].sum(axis=1) / (np.pi * ref_rk**2)
    runs = np.array([0, 1, 50, 51, 200, 300])
    for upper, lower in (
        (None, None),
        (0.3 * ref_rk, None),
        (None, 3.0 * ref_rk),
        (0.5 * ref_rk, 2 * ref_rk),
    ):
        sigma, rk, scans = knn_kernels.query_runs(
            index.xs, index.ys, ws, index.offsets, index.levels, index.box, q[:, 0], q[:, 1], runs, 40,
            upper=upper, lower=lower,
        )  # fmt: skip
        np.testing.assert_allclose(rk, ref_rk, rtol=1e-12, atol=0)
        np.testing.assert_allclose(sigma[:, 0], ref, rtol=1e-12, atol=0)
        assert scans >= len(q)


def test_missed_guesses_widen_the_window_and_stay_exact() -> None:
    """Guesses of r_k (made at a distance ``near``) that miss the first window (± 0.1 near) by a little or by
    a lot, above and below, with and without valid bounds: the widened windows still find the exact r_k and
    sums (brute force)."""
    rng = np.random.default_rng(28)
    xy = _clustered(rng, 4000)
    w = rng.uniform(0.5, 2.0, size=(2, len(xy)))
    index = build_tree(xy)
    ws = knn_kernels.take_rows(w, index.order)
    q = rng.uniform(-40, 40, size=(200, 2))
    d2 = ((xy[None, :, :] - q[:, None, :]) ** 2).sum(axis=2)
    d2k = np.sort(d2, axis=1)[:, 29]
    ref_rk = np.sqrt(d2k)
    nearest = d2 <= d2k[:, None]  # the 30 nearest (no ties with continuous positions)
    ref = (nearest @ w.T) / (np.pi * d2k[:, None])
    runs = np.arange(len(q) + 1)  # one query per run: only the given guess bounds it
    near = np.full(len(q), 2.0)
    for off in (0.25, -0.25, 1.0, -1.0, 30.0, -0.9 * ref_rk / near):  # × near: misses by 1.5–300 windows
        guess = ref_rk + off * near
        for upper, lower in ((None, None), (ref_rk + near, np.maximum(ref_rk - near, 0.0))):
            sigma, rk, scans = knn_kernels.query_runs(
                index.xs, index.ys, ws, index.offsets, index.levels, index.box, q[:, 0], q[:, 1], runs, 30,
                upper=upper, lower=lower, guess=guess, near=near,
            )  # fmt: skip
            np.testing.assert_allclose(rk, ref_rk, rtol=1e-12, atol=0)
            np.testing.assert_allclose(sigma, ref, rtol=1e-12, atol=0)
            if np.all(off > 0):  # every first window lies above r_k: missed
                assert scans >= 2 * len(q)


def test_workspace_reuse_equals_fresh_arrays() -> None:
    """Indexes and subsets built into one reused Workspace (larger, then smaller inputs) are bitwise those
    built into fresh arrays, and so are their maps."""
    rng = np.random.default_rng(29)
    workspace = Workspace()
    for n in (12_000, 7_000, 9_000):
        xy = _clustered(rng, n)
        w = rng.uniform(0.5, 2.0, size=(2, n))
        fresh = build_tree(xy, half_kpc=60.0, weights=w)
        reused = build_tree(xy, half_kpc=60.0, weights=w, workspace=workspace)
        subsets = (
            fresh.subset(1000, 5000, n_weights=1),
            reused.subset(1000, 5000, n_weights=1, workspace=workspace),
        )
        for a, b in ((fresh, reused), subsets):
            for name in ("xs", "ys", "weights", "order", "offsets"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            np.testing.assert_array_equal(
                knn_surface_density(a, None, npix=24, pixel_kpc=4.0, k=40)[0],
                knn_surface_density(b, None, npix=24, pixel_kpc=4.0, k=40)[0],
            )


def test_independent_of_particle_order_and_thread_count() -> None:
    rng = np.random.default_rng(26)
    xy = _clustered(rng, 20_000)
    w = np.stack([rng.uniform(0.5, 2.0, len(xy)), rng.lognormal(0, 1, len(xy))])

    def maps(xy: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return knn_surface_density(build_tree(xy, half_kpc=90.0), w, npix=48, pixel_kpc=3.0, k=100)

    ref, ref_rk = maps(xy, w)
    perm = rng.permutation(len(xy))
    got, rk = maps(xy[perm], w[:, perm])
    np.testing.assert_array_equal(rk, ref_rk)  # distances do not depend on the order
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=0)  # sums do, by rounding only
    threads = numba.get_num_threads()
    try:
        for n in {1, min(2, numba.config.NUMBA_NUM_THREADS)}:
            numba.set_num_threads(n)
            got, rk = maps(xy, w)
            np.testing.assert_array_equal(got, ref)  # bitwise: each map row is one thread's run
            np.testing.assert_array_equal(rk, ref_rk)
    finally:
        numba.set_num_threads(threads)


def test_subset_index_equals_an_index_of_the_subset() -> None:
    rng = np.random.default_rng(27)
    xy = _clustered(rng, 9000)
    w = rng.uniform(0.5, 2.0, size=(1, 3000))
    index = build_tree(xy, half_kpc=70.0)
    sub = index.subset(3000, 6000)
    own = build_tree(xy[3000:6000], half_kpc=70.0)
    assert sub.n == 3000
    np.testing.assert_array_equal(xy[3000:6000][sub.order, 0], sub.xs)
    a, ra = knn_surface_density(sub, w, npix=32, pixel_kpc=4.0, k=50, interpolation_ratio=None)
    b, rb = knn_surface_density(own, w, npix=32, pixel_kpc=4.0, k=50, interpolation_ratio=None)
    ref, ref_rk = knn_surface_density(cKDTree(xy[3000:6000]), w, npix=32, pixel_kpc=4.0, k=50,
                                      interpolation_ratio=None)  # fmt: skip
    np.testing.assert_allclose(ra, ref_rk, rtol=1e-12, atol=0)
    np.testing.assert_allclose(rb, ref_rk, rtol=1e-12, atol=0)
    np.testing.assert_allclose(a, ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(b, ref, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="outside"):
        index.subset(5, 9001)


def test_map_pipeline_equals_per_species_ckdtree_maps() -> None:
    """_knn_view: the total from all particles, each species from its own, gas also for tSZ and X-ray; a
    few particles far beyond the field of view (the index holds them in its open border cells)."""
    rng = np.random.default_rng(28)
    attrs = {"redshift": 0.3, "scale_factor": 1 / 1.3, "hubble_h": 0.7, "omega_m": 0.3, "omega_b": 0.048}
    species = {}
    for name, n in {"gas": 2500, "dm": 4000, "stars": 900, "bh": 4}.items():
        pos = rng.normal(0, 120, size=(n, 3))
        pos[:2] *= 200.0  # far outside
        fields = {}
        if name == "gas":
            fields = {"internal_energy_km2_s2": rng.uniform(1e5, 1e6, n),
                      "electron_abundance": np.full(n, 1.16), "density_msun_kpc3": rng.uniform(1e5, 1e7, n),
                      "star_formation_rate_msun_yr": np.zeros(n)}  # fmt: skip
        species[name] = Species(pos, rng.uniform(1e8, 2e8, n), fields)
    particles = ParticleSet(**species, attrs=attrs)
    cfg = projection_config({"knn_k": 60, "knn_interpolation_ratio": None,
                             "fields_of_view": [{"name": "a", "fov_kpc": 300.0, "npix": 24},
                                                {"name": "b", "fov_kpc": 150.0, "npix": 16}]})  # fmt: skip
    fovs = fields_of_view(cfg, 4.6)
    prep = _prepare(particles, cfg)
    xy = _sky_xy(prep.pos, np.array([0.3, -0.4, np.sqrt(0.75)]))
    got = _knn_view(prep, xy, fovs, cfg)
    for fov, out in zip(fovs, got, strict=True):
        g = fov.geometry
        ref, _ = knn_surface_density(cKDTree(xy), prep.mass[None], npix=g.npix, pixel_kpc=g.pixel_kpc, k=60,
                                     interpolation_ratio=None)  # fmt: skip
        np.testing.assert_allclose(out[_TOTAL], ref[0], rtol=1e-12, atol=0)
        for span, rows, weights in prep.species_groups():
            ref, _ = knn_surface_density(cKDTree(xy[span]), weights, npix=g.npix, pixel_kpc=g.pixel_kpc, k=60,
                                         interpolation_ratio=None)  # fmt: skip
            np.testing.assert_allclose(out[rows], ref, rtol=1e-12, atol=0)
        assert np.all(out[_SPECIES_ROW["bh"]] > 0)  # 4 black holes: k > N uses all of them
