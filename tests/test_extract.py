"""Extraction: mass conservation against the catalog, periodic unwrapping, physical units, empty species."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import h5py
import illustris_python as il
import numpy as np
import pytest

from darkclusters.cosmology import TNG_COSMOLOGY
from darkclusters.simulations.catalog import write_catalog
from darkclusters.simulations.extract import extract_cluster, extract_cluster_file
from darkclusters.simulations.particles import read_particles
from darkclusters.simulations.synthetic.common import PlacedHalo
from darkclusters.simulations.synthetic.halo_model import HaloModelParams, make_cluster
from darkclusters.simulations.synthetic.tng_writer import write_tng_snapshot
from darkclusters.simulations.tng import load_tng_halo

SNAP = 84


def test_extraction_conserves_fof_mass(tng_base: Path, tiny_cfg: dict[str, Any]) -> None:
    bp = str(tng_base)
    h = il.groupcat.loadHeader(bp, SNAP)["HubbleParam"]
    groups = il.groupcat.loadHalos(bp, SNAP, fields=["GroupMassType", "GroupLenType"])
    for gid in range(3):
        halo = load_tng_halo(tng_base, SNAP, gid)
        born = il.snapshot.loadHalo(bp, SNAP, gid, "stars", fields=["GFM_StellarFormationTime", "Masses"])
        wind_mass = born["Masses"][born["GFM_StellarFormationTime"] <= 0].sum(dtype=np.float64) * 1e10 / h
        expected = groups["GroupMassType"][gid].sum(dtype=np.float64) * 1e10 / h - wind_mass
        assert halo.total_mass_msun == pytest.approx(expected, rel=1e-5)
        assert len(halo.dm) == groups["GroupLenType"][gid, 1]
        assert halo.attrs["n_wind_cells_dropped"] == np.sum(born["GFM_StellarFormationTime"] <= 0)
        assert np.all(halo.stars.fields["formation_scale_factor"] > 0)
        # a radius enclosing everything keeps everything; a small one keeps less
        sim = tiny_cfg["simulations"]["tng_tiny"]
        everything = extract_cluster(sim, tng_base, SNAP, gid, radius_kpc=1e5)
        assert everything.total_mass_msun == pytest.approx(halo.total_mass_msun, rel=1e-12)
        inner = extract_cluster(sim, tng_base, SNAP, gid, radius_kpc=500.0)
        assert inner.total_mass_msun < halo.total_mass_msun
        assert np.all(np.linalg.norm(inner.dm.pos_kpc, axis=1) <= 500.0)
        assert inner.attrs["mass_outside_radius_msun"] == pytest.approx(
            halo.total_mass_msun - inner.total_mass_msun, rel=1e-9
        )


def test_cluster_straddling_the_box_corner_is_unwrapped(tng_base: Path, tng_truth: dict[str, Any]) -> None:
    gid = tng_truth["snapshots"]["84"]["halo_id"][0]  # cluster 0 is placed at the box corner
    centre = np.array(tng_truth["centre_ckpc_h"][0])
    box = tng_truth["box_size_ckpc_h"]
    assert np.any(np.minimum(centre, box - centre) < 1000.0)
    raw = il.snapshot.loadHalo(str(tng_base), SNAP, gid, "dm", fields=["Coordinates", "ParticleIDs"])
    spans = raw["Coordinates"].max(axis=0) - raw["Coordinates"].min(axis=0)
    assert np.all(spans > 0.9 * box)  # wrapped across all three faces in the file
    halo = load_tng_halo(tng_base, SNAP, gid)
    a, h = halo.attrs["scale_factor"], halo.attrs["hubble_h"]
    r_max = np.linalg.norm(halo.dm.pos_kpc, axis=1).max()
    assert r_max < 5 * halo.attrs["r200c_kpc"]  # whole again around the centre
    # physical = comoving · a / h, component by component, for the unwrapped offsets
    d = (raw["Coordinates"] - centre + box / 2) % box - box / 2
    np.testing.assert_allclose(halo.dm.pos_kpc, d * a / h, rtol=1e-6, atol=1e-3)


def test_physical_r200c_matches_rho_crit(tng_base: Path) -> None:
    halo = load_tng_halo(tng_base, SNAP, 0)
    rho_c = TNG_COSMOLOGY.critical_density(halo.attrs["redshift"]).to_value("Msun / kpc3")
    mean = halo.attrs["m200c_msun"] / (4 / 3 * np.pi * halo.attrs["r200c_kpc"] ** 3)
    assert mean == pytest.approx(200 * rho_c, rel=0.01)
    assert 1e14 < halo.attrs["m200c_msun"] < 1e15
    assert 500 < halo.attrs["r200c_kpc"] < 3000


def test_extract_file_round_trip_with_provenance(
    tmp_path: Path, tng_base: Path, tiny_cfg: dict[str, Any]
) -> None:
    sim = tiny_cfg["simulations"]["tng_tiny"]
    catalog = tmp_path / "cat.parquet"
    table = write_catalog("tng_tiny", sim, tng_base, tiny_cfg["selection"], tiny_cfg["seed"], catalog)
    row = table.iloc[0]
    out = tmp_path / "p.h5"
    written = extract_cluster_file(
        sim_cfg=sim,
        base_path=tng_base,
        extraction=tiny_cfg["extraction"],
        catalog_path=catalog,
        snap=int(row["snapshot"]),
        halo_id=int(row["halo_id"]),
        out_path=out,
    )
    back = read_particles(out)
    assert back.attrs["cluster_id"] == row["cluster_id"]
    assert back.attrs["split"] == row["split"]
    assert back.total_mass_msun == pytest.approx(written.total_mass_msun, rel=1e-12)
    np.testing.assert_allclose(back.gas.fields["density_msun_kpc3"], written.gas.fields["density_msun_kpc3"])
    with h5py.File(out) as f:
        for key in ("config_sha256", "git_commit", "darkclusters_version", "inputs", "seed"):
            assert key in f.attrs
        assert f["stars/pos_kpc"].attrs["units"].startswith("kpc")
        assert f["gas/mass_msun"].attrs["units"] == "Msun"
    with pytest.raises(KeyError, match="no selected cluster"):
        extract_cluster_file(
            sim_cfg=sim,
            base_path=tng_base,
            extraction=tiny_cfg["extraction"],
            catalog_path=catalog,
            snap=84,
            halo_id=999,
            out_path=tmp_path / "q.h5",
        )
    assert not (tmp_path / "q.h5").exists()


def test_halo_without_stars_is_extracted_and_flagged(tmp_path: Path) -> None:
    params = HaloModelParams(
        dm_particle_mass_msun=2e11, gas_particle_mass_msun=5e10, star_particle_mass_msun=5e9
    )
    cluster = make_cluster(2e14, 0.2, TNG_COSMOLOGY, params, seed=1)
    empty3 = np.zeros((0, 3))
    starless = dataclasses.replace(
        cluster,
        star_pos_kpc=empty3,
        star_vel_km_s=empty3,
        star_mass_msun=np.zeros(0),
        star_subhalo=np.zeros(0, np.int32),
        star_initial_mass_msun=np.zeros(0),
        star_formation_a=np.zeros(0),
        star_metallicity=np.zeros(0),
        star_photometrics=np.zeros((0, 8), np.float32),
        bh_pos_kpc=empty3,
        bh_vel_km_s=empty3,
        bh_mass_msun=np.zeros(0),
        bh_subhalo=np.zeros(0, np.int32),
    )
    other = make_cluster(3e14, 0.2, TNG_COSMOLOGY, params, seed=2)
    base = tmp_path / "run" / "output"
    ids = write_tng_snapshot(
        base,
        84,
        [
            PlacedHalo(starless, np.array([5000.0, 5000.0, 5000.0])),
            PlacedHalo(other, np.array([50000.0] * 3)),
        ],
        redshift=0.2,
        cosmology=TNG_COSMOLOGY,
        box_size_ckpc_h=100000.0,
        dm_particle_mass_msun=2e11,
        n_snapshot_chunks=2,
        n_catalog_chunks=2,
    )
    sim = {"format": "tng"}
    halo = extract_cluster(sim, base, 84, ids[0], radius_kpc=3000.0)
    assert len(halo.stars) == 0
    assert halo.stars.pos_kpc.shape == (0, 3)
    assert len(halo.bh) == 0
    assert halo.attrs["no_stars"] == 1
    assert len(halo.dm) > 0
    assert extract_cluster(sim, base, 84, ids[1], radius_kpc=3000.0).attrs["no_stars"] == 0
