"""The light-traces-mass sensitivity tool re-renders a cluster's images exactly as the workflow does."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from darkclusters.photometry import observe_photometry_file
from darkclusters.photometry.pipeline import map_grids
from darkclusters.photometry.realism import ImageVariant, ltm_pcc_variants
from darkclusters.projection.maps import project_cluster_file
from darkclusters.projection.settings import projection_config
from darkclusters.simulations.particles import write_particles
from tests.test_photometry import _cluster

QUIET = {"icl": {"enabled": False}, "background": {"source": "none"}, "noise": {"enabled": False}}


@pytest.fixture
def observed_cluster(tmp_path):
    particles, maps, obs = tmp_path / "p.h5", tmp_path / "m.h5", tmp_path / "o.h5"
    write_particles(_cluster(tng=True), particles, provenance={"test": "realism"})
    cfg = projection_config(
        {
            "n_views": 2,
            "method": "knn",
            "fields_of_view": [{"name": "fov225", "fov_arcsec": 90.0, "npix": 24}],
        }
    )
    project_cluster_file(particles, maps, projection_cfg=cfg, seed=3)
    directions, fovs = map_grids(maps)
    observe_photometry_file(
        particles, obs, directions=directions, fields_of_view=fovs, photometry_cfg={}, seed=17
    )
    return particles, maps, obs


def test_unchanged_variant_reproduces_the_files_images(observed_cluster) -> None:
    """Same seed, config and random streams: the re-rendered PCC equals the file's, view by view."""
    variants = [
        ImageVariant("same", "no change"),
        ImageVariant("fewer", "", {"background": {"synthetic": {"counts_scale": 0.2}}}),
    ]
    out = ltm_pcc_variants(*observed_cluster, variants=variants)
    assert out["observed"].shape == (2,)
    np.testing.assert_allclose(out["same"], out["observed"], rtol=0, atol=1e-7)  # file: float32
    assert not np.allclose(out["fewer"], out["observed"])  # an override reaches the rendering


def test_scaling_a_lone_clusters_light_leaves_the_pcc_unchanged(observed_cluster) -> None:
    """Without field galaxies, noise and ICL the F814W image is linear in the star fluxes, and the log-scale
    PCC (floor at max / 1e4) is invariant to a global factor; with sky noise, brighter light raises it."""
    variants = [
        ImageVariant("x1", "", QUIET, 1.0),
        ImageVariant("x7", "", QUIET, 7.0),
        ImageVariant("noisy_x1", "", {**QUIET, "noise": {"enabled": True}}, 1.0),
        ImageVariant("noisy_x50", "", {**QUIET, "noise": {"enabled": True}}, 50.0),
    ]
    out = ltm_pcc_variants(*observed_cluster, variants=variants)
    np.testing.assert_allclose(out["x7"], out["x1"], rtol=1e-9)
    assert np.all(out["noisy_x50"] > out["noisy_x1"])


def test_missing_provenance_is_named(observed_cluster) -> None:
    particles, maps, obs = observed_cluster
    with h5py.File(obs, "a") as f:
        del f.attrs["seed"]
    with pytest.raises(KeyError, match="'seed' provenance"):
        ltm_pcc_variants(particles, maps, obs)
    with pytest.raises(ValueError, match="cluster_light_scale"):
        ImageVariant("bad", "", {}, 0.0)
