"""Observation files: lensing only for the configured fields of view (lensing.fields_of_view), the other
fields keep their images (no arcs, no lensing group), and the config names a field the lensing needs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from darkclusters.config import ConfigError, load_config
from darkclusters.lensing.observe import observe_lensing_file
from darkclusters.observations import assemble_observations
from darkclusters.projection.maps import project_cluster_file
from darkclusters.projection.settings import projection_config
from darkclusters.simulations.particles import ParticleSet, Species, write_particles
from tests.test_photometry import _cluster

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def maps_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("obs")
    particles, maps = tmp / "p.h5", tmp / "m.h5"
    toy = _cluster(tng=True)
    # a concentrated halo (σ = 60 kpc Gaussian, 4e14 Msun: κ ≫ 1 in the core) so that there are arcs
    dm = Species(np.random.default_rng(1).normal(0.0, 60.0, (4000, 3)), np.full(4000, 1e11))
    write_particles(ParticleSet(toy.gas, dm, toy.stars, toy.bh, toy.attrs), particles, provenance={})
    fovs = [
        {"name": "near", "fov_arcsec": 60.0, "npix": 24},
        {"name": "wide", "fov_arcsec": 120.0, "npix": 24},
    ]
    cfg = projection_config({"n_views": 2, "method": "sph", "fields_of_view": fovs})
    project_cluster_file(particles, maps, projection_cfg=cfg, seed=3)
    return particles, maps


def _lensing_cfg(fields):
    cfg = load_config(ROOT / "config" / "config.yaml")["lensing"]
    return {**cfg, "fields_of_view": fields}


def test_lensing_only_for_the_configured_fields(maps_file, tmp_path) -> None:
    particles, maps = maps_file
    outs = {}
    for key, fields in (("all", None), ("near", ["near"])):
        lens, obs = tmp_path / f"l_{key}.h5", tmp_path / f"o_{key}.h5"
        observe_lensing_file(maps, lens, lensing_cfg=_lensing_cfg(fields), seed=5)
        assemble_observations(
            particles_path=particles, maps_path=maps, lensing_path=lens, out_path=obs,
            photometry_cfg={}, seed=9,
        )  # fmt: skip
        outs[key] = (lens, obs)
    with h5py.File(outs["all"][0]) as a, h5py.File(outs["near"][0]) as n:
        assert {"near", "wide"} <= set(a)
        assert "near" in n
        assert "wide" not in n
        # the near field's lensing does not depend on whether the wide one is observed (per-field seeds)
        np.testing.assert_array_equal(a["near/kappa_ref"][()], n["near/kappa_ref"][()])
        e1 = "near/view_000/weak_conventional/e1"
        np.testing.assert_array_equal(a[e1][()], n[e1][()])
    with h5py.File(outs["all"][1]) as a, h5py.File(outs["near"][1]) as n:
        assert set(n["lensing"]) == {"near"}
        assert set(a["lensing"]) == {"near", "wide"}
        # both fields are imaged; the near field is identical, the wide one lacks only the arcs
        np.testing.assert_array_equal(a["photometry/near/images"][()], n["photometry/near/images"][()])
        with h5py.File(outs["all"][0]) as lens:
            arcs = lens["wide/arcs"][()]
        difference = a["photometry/wide/images"][()] - n["photometry/wide/images"][()]
        assert arcs.max() > 0
        # arcs enter before the PSF (which conserves flux) and the same random streams follow
        assert difference.sum() == pytest.approx(arcs.sum(), rel=1e-3)


def test_unknown_lensed_field_is_named(maps_file, tmp_path) -> None:
    _, maps = maps_file
    with pytest.raises(KeyError, match=r"lensing\.fields_of_view names \['far'\]"):
        observe_lensing_file(maps, tmp_path / "l.h5", lensing_cfg=_lensing_cfg(["far"]), seed=5)
    assert not (tmp_path / "l.h5").exists()


def test_config_requires_the_reconstruction_field() -> None:
    path = ROOT / "config" / "config.yaml"
    with pytest.raises(ConfigError, match=r"lensing\.fields_of_view.*'nope'"):
        load_config(path, overrides={"lensing": {"fields_of_view": ["nope"]}})
    with pytest.raises(ConfigError, match=r"lensing\.fields_of_view.*lacks 'fov225'"):
        load_config(path, overrides={"lensing": {"fields_of_view": ["fov450"]}})
    no_lensing_methods = {"reconstruction": {"methods": ["P"]}, "lensing": {"fields_of_view": ["fov450"]}}
    with pytest.raises(
        ConfigError, match=r"lacks 'fov225'.*\['KS', 'Wiener'\]"
    ):  # the shear-inversion baselines
        load_config(path, overrides=no_lensing_methods)
    cfg = load_config(path, overrides={**no_lensing_methods, "evaluation": {"baselines": ["LTM", "UNet"]}})
    assert cfg["lensing"]["fields_of_view"] == ["fov450"]
    cfg = load_config(path, overrides={"lensing": {"fields_of_view": ["fov225"]}})
    assert cfg["lensing"]["fields_of_view"] == ["fov225"]
    assert load_config(path)["lensing"]["fields_of_view"] is None
