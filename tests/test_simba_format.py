"""yt recognises the synthetic SIMBA snapshot as GIZMO; the CAESAR catalog's index lists select the right
particles (checked through yt's own reading of ParticleIDs, independent of our h5py reader)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from darkclusters.simulations.simba import load_caesar_halos, load_simba_halo, read_indexed_rows

SNAPSHOT = "snap_m100n1024_125.hdf5"
CAESAR = "Groups/m100n1024_125.hdf5"


def test_yt_loads_it_as_gizmo(simba_dir: Path, tmp_path: Path) -> None:
    yt = pytest.importorskip("yt")
    ds = yt.load(str(simba_dir / SNAPSHOT), index_filename=str(tmp_path / "snap.ewah"))
    assert type(ds).__name__ == "GizmoDataset"
    assert ds.current_redshift == pytest.approx(0.49)
    assert ds.cosmological_simulation
    ad = ds.all_data()
    with h5py.File(simba_dir / SNAPSHOT) as f:
        n_stars = f["PartType4/Masses"].shape[0]
        assert "Config" not in f
        assert not any(k.startswith("GFM_") for k in f["PartType0"])
        assert f["PartType0/Metallicity"].shape[1] == 11
        assert "Masses" in f["PartType1"]
        assert "SmoothingLength" in f["PartType0"]
        assert f["PartType0/Coordinates"].dtype == np.float32
    assert ad["PartType4", "Coordinates"].shape == (n_stars, 3)
    assert str(ad["PartType4", "Coordinates"].units) == "code_length"
    assert ad["PartType0", "Metallicity_00"].shape[0] > 0
    ages = ad["PartType4", "age"].to("Gyr").value
    assert np.all(ages > 0)
    assert np.all(ages < ds.cosmology.t_from_z(0.49).to("Gyr").value)


def test_caesar_catalog_layout_and_units(simba_dir: Path) -> None:
    yt = pytest.importorskip("yt")
    with h5py.File(simba_dir / CAESAR) as f:
        assert int(f.attrs["nhalos"]) == len(f["halo_data/GroupID"])
        registry = yt.units.unit_registry.UnitRegistry.from_json(f.attrs["unit_registry_json"])
        pos = yt.YTArray(f["halo_data/pos"][()], f["halo_data/pos"].attrs["unit"], registry=registry)
        h = f["halo_data/dicts/masses.m200c"]
        assert h.attrs["unit"] == "Msun"
        assert np.all(np.diff(f["halo_data/dicts/masses.total"][()]) <= 0)  # sorted by mass
        for lst, count in (("dmlist", "ndm"), ("glist", "ngas"), ("slist", "nstar"), ("bhlist", "nbh")):
            n = f[f"halo_data/{lst}_end"][()] - f[f"halo_data/{lst}_start"][()]
            np.testing.assert_array_equal(n, f[f"halo_data/{count}"][()])
    # kpccm (no h) → ckpc/h multiplies by h: the registry from yt parses the comoving unit.
    assert np.all(pos.to("kpccm/h").value <= 100000.0 * 1.0001)


def test_index_lists_select_the_particles_yt_reads(simba_dir: Path, tmp_path: Path) -> None:
    yt = pytest.importorskip("yt")
    ds = yt.load(str(simba_dir / SNAPSHOT), index_filename=str(tmp_path / "snap.ewah"))
    ad = ds.all_data()
    with h5py.File(simba_dir / CAESAR) as f:
        start, end = f["halo_data/slist_start"][0], f["halo_data/slist_end"][0]
        slist = f["halo_data/lists/slist"][start:end]
    yt_ids = ad["PartType4", "ParticleIDs"].value.astype(np.uint64)
    yt_mass = ad["PartType4", "Masses"].to("Msun").value
    halo = load_simba_halo(simba_dir / SNAPSHOT, simba_dir / CAESAR, 0)
    # yt orders particles as the file does: the index list rows pick the same stars.
    assert halo.stars.total_mass_msun == pytest.approx(yt_mass[slist].sum(), rel=1e-5)
    assert len(np.unique(yt_ids[slist])) == len(slist) == len(halo.stars)


def test_catalog_agrees_with_particles(simba_dir: Path) -> None:
    with h5py.File(simba_dir / SNAPSHOT) as f:
        h, a = f["Header"].attrs["HubbleParam"], f["Header"].attrs["Time"]
    table = load_caesar_halos(simba_dir / CAESAR, h, a)
    with h5py.File(simba_dir / CAESAR) as f:
        totals = f["halo_data/dicts/masses.total"][()]
    for hid in range(len(table)):
        halo = load_simba_halo(simba_dir / SNAPSHOT, simba_dir / CAESAR, hid)
        assert len(halo.dm) == table["n_dm"][hid]
        assert len(halo.stars) == table["n_stars"][hid]
        assert halo.total_mass_msun == pytest.approx(totals[hid], rel=1e-5)
        # the centre is the potential minimum: the densest DM lies around the origin
        assert np.linalg.norm(np.median(halo.dm.pos_kpc, axis=0)) < 0.3 * table["r200c_kpc"][hid]


def test_read_indexed_rows_matches_fancy_indexing(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(50000, 3)).astype(np.float32)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["d"] = data
    idx = rng.choice(50000, size=700, replace=False)
    with h5py.File(tmp_path / "x.h5") as f:
        np.testing.assert_array_equal(read_indexed_rows(f["d"], idx, max_gap=100), data[idx])
        assert read_indexed_rows(f["d"], np.array([], dtype=int)).shape == (0, 3)
        with pytest.raises(IndexError, match="out of range"):
            read_indexed_rows(f["d"], np.array([50000]))
