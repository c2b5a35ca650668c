"""The real illustris_python (and yt's AREPO frontend) read the synthetic TNG files, and the catalog is
consistent
with the particles: lengths, masses, offsets, halo order, units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import illustris_python as il
import numpy as np
import pytest

from darkclusters.simulations.tng import TNG_SNAPSHOT_REDSHIFTS

SNAP = 84


def test_layout_has_multiple_chunks_and_offsets(tng_base: Path) -> None:
    assert len(list((tng_base / "snapdir_084").glob("snap_084.*.hdf5"))) >= 2
    assert len(list((tng_base / "groups_084").glob("fof_subhalo_tab_084.*.hdf5"))) >= 2
    assert not list((tng_base / "groups_084").glob("groups_084.*"))  # would switch the loader's convention
    assert (tng_base.parent / "postprocessing" / "offsets" / "offsets_084.hdf5").is_file()


def test_headers(tng_base: Path) -> None:
    header = il.groupcat.loadHeader(str(tng_base), SNAP)
    assert header["Redshift"] == pytest.approx(TNG_SNAPSHOT_REDSHIFTS[SNAP], rel=0, abs=1e-12)
    assert header["Ngroups_Total"] >= 4
    assert header["Nsubgroups_Total"] > header["Ngroups_Total"]
    assert "MassTable" not in header
    with h5py.File(tng_base / "snapdir_084" / "snap_084.0.hdf5") as f:
        snap = dict(f["Header"].attrs)
        assert "Masses" not in f["PartType1"]
        assert f["PartType4/GFM_StellarPhotometrics"].shape[1] == 8
        for field in ("InternalEnergy", "ElectronAbundance", "Density", "Masses"):
            assert field in f["PartType0"]
    for key in ("MassTable", "Time", "Redshift", "BoxSize", "NumFilesPerSnapshot", "Omega0", "OmegaLambda",
                "HubbleParam", "UnitLength_in_cm", "UnitMass_in_g", "UnitVelocity_in_cm_per_s"):  # fmt: skip
        assert key in snap
    assert snap["Time"] == pytest.approx(1 / (1 + snap["Redshift"]))
    assert snap["MassTable"][1] > 0


def test_loadhalos_and_loadhalo_agree(tng_base: Path) -> None:
    bp = str(tng_base)
    groups = il.groupcat.loadHalos(
        bp, SNAP, fields=["GroupLenType", "GroupMassType", "GroupFirstSub", "GroupNsubs", "Group_M_Crit200"]
    )
    assert groups["GroupFirstSub"].dtype == np.int32
    header = il.groupcat.loadHeader(bp, SNAP)
    with h5py.File(tng_base / "snapdir_084" / "snap_084.0.hdf5") as f:
        m_dm = f["Header"].attrs["MassTable"][1]
    for gid in range(header["Ngroups_Total"]):
        for ptype in (0, 1, 4, 5):
            n = groups["GroupLenType"][gid, ptype]
            fields = ["Coordinates", "ParticleIDs"] if ptype == 1 else ["Coordinates", "Masses"]
            data = il.snapshot.loadHalo(bp, SNAP, gid, ptype, fields=fields)
            assert data["count"] == n
            mass = n * m_dm if ptype == 1 else (data["Masses"].sum(dtype=np.float64) if n else 0.0)
            assert mass == pytest.approx(groups["GroupMassType"][gid, ptype], rel=1e-5)
        assert groups["Group_M_Crit200"][gid] < groups["GroupMassType"][gid].sum() * 1.2


def test_dm_has_no_masses_field(tng_base: Path) -> None:
    with pytest.raises(Exception, match="does not have field"):
        il.snapshot.loadHalo(str(tng_base), SNAP, 0, "dm", fields=["Masses"])


def test_subhalos_lie_inside_their_group_in_halo_order(tng_base: Path) -> None:
    bp = str(tng_base)
    subs = il.groupcat.loadSubhalos(bp, SNAP, fields=["SubhaloLenType", "SubhaloGrNr", "SubhaloPos"])
    groups = il.groupcat.loadHalos(bp, SNAP, fields=["GroupFirstSub", "GroupNsubs", "GroupLenType"])
    with h5py.File(tng_base.parent / "postprocessing" / "offsets" / "offsets_084.hdf5") as f:
        group_start = f["Group/SnapByType"][()]
        sub_start = f["Subhalo/SnapByType"][()]
    # Offsets are cumulative sums of the lengths: particles are stored group after group.
    np.testing.assert_array_equal(group_start[1:], np.cumsum(groups["GroupLenType"], axis=0)[:-1])
    for gid in range(len(groups["GroupNsubs"])):
        first, n = groups["GroupFirstSub"][gid], groups["GroupNsubs"][gid]
        if n == 0:
            assert first == -1
            continue
        assert np.all(subs["SubhaloGrNr"][first : first + n] == gid)
        np.testing.assert_array_equal(sub_start[first], group_start[gid])  # the central comes first
        end = sub_start[first + n - 1] + subs["SubhaloLenType"][first + n - 1]
        assert np.all(end <= group_start[gid] + groups["GroupLenType"][gid])
    # Particles of a satellite, read with loadSubhalo, cluster around its SubhaloPos.
    sat = int(groups["GroupFirstSub"][0]) + 1
    dm = il.snapshot.loadSubhalo(bp, SNAP, sat, "dm", fields=["Coordinates"])
    assert dm.shape[0] == subs["SubhaloLenType"][sat, 1]
    d = dm - subs["SubhaloPos"][sat]
    with h5py.File(tng_base / "snapdir_084" / "snap_084.0.hdf5") as f:
        box = f["Header"].attrs["BoxSize"]
    d = (d + box / 2) % box - box / 2
    assert np.median(np.linalg.norm(d, axis=1)) < 300.0  # ckpc/h: compact, unlike the whole group


def test_loadsubset_reads_every_particle_including_unbound(tng_base: Path) -> None:
    bp = str(tng_base)
    coords = il.snapshot.loadSubset(bp, SNAP, "dm", fields=["Coordinates"])
    groups = il.groupcat.loadHalos(bp, SNAP, fields=["GroupLenType"])
    assert coords.shape[0] > groups[:, 1].sum()  # particles outside every FoF group exist
    ids = il.snapshot.loadSubset(bp, SNAP, "stars", fields=["ParticleIDs"])
    assert len(np.unique(ids)) == len(ids)
    born = il.snapshot.loadSubset(bp, SNAP, "stars", fields=["GFM_StellarFormationTime"])
    assert np.any(born <= 0)
    assert np.any(born > 0)


def test_catalog_m200c_matches_the_particles(tng_base: Path, tng_truth: dict[str, Any]) -> None:
    """Group_M_Crit200 is the spherical-overdensity mass of what the snapshot holds around GroupPos."""
    bp = str(tng_base)
    with h5py.File(tng_base / "snapdir_084" / "snap_084.0.hdf5") as f:
        hdr = dict(f["Header"].attrs)
    box, h, a = hdr["BoxSize"], hdr["HubbleParam"], hdr["Time"]
    groups = il.groupcat.loadHalos(bp, SNAP, fields=["GroupPos", "Group_M_Crit200", "Group_R_Crit200"])
    pos, mass = [], []
    for ptype in (0, 1, 4, 5):
        fields = ["Coordinates"] if ptype == 1 else ["Coordinates", "Masses"]
        d = il.snapshot.loadSubset(bp, SNAP, ptype, fields=fields)
        c = d if ptype == 1 else d["Coordinates"]
        pos.append(c)
        mass.append(np.full(len(c), hdr["MassTable"][1]) if ptype == 1 else d["Masses"].astype(np.float64))
    pos, mass = np.concatenate(pos), np.concatenate(mass)
    for gid in range(2):
        d = (pos - groups["GroupPos"][gid] + box / 2) % box - box / 2
        r = np.linalg.norm(d, axis=1)
        inside = mass[r <= groups["Group_R_Crit200"][gid]].sum()
        assert inside == pytest.approx(groups["Group_M_Crit200"][gid], rel=0.01)
        # and the mean density inside R200c is 200 ρ_crit(z) (comoving code units → physical)
        from darkclusters.cosmology import TNG_COSMOLOGY

        rho_c = TNG_COSMOLOGY.critical_density(1 / a - 1).to_value("Msun / kpc3")
        r_kpc = groups["Group_R_Crit200"][gid] * a / h
        m_msun = groups["Group_M_Crit200"][gid] * 1e10 / h
        assert m_msun / (4 / 3 * np.pi * r_kpc**3) == pytest.approx(200 * rho_c, rel=0.02)
    masses = sorted(tng_truth["snapshots"]["84"]["m200c_input_msun"])[::-1]
    measured = np.sort(groups["Group_M_Crit200"] * 1e10 / h)[::-1]
    np.testing.assert_allclose(
        measured[:3], masses[:3], rtol=0.1
    )  # the model's M200c is what SUBFIND would see


def test_yt_reads_the_tng_snapshot(tng_base: Path) -> None:
    yt = pytest.importorskip("yt")
    ds = yt.load(str(tng_base / "snapdir_084" / "snap_084.0.hdf5"))
    assert type(ds).__name__ == "ArepoHDF5Dataset"
    assert ds.current_redshift == pytest.approx(TNG_SNAPSHOT_REDSHIFTS[SNAP])
    ad = ds.all_data()
    n_stars = il.snapshot.loadSubset(str(tng_base), SNAP, "stars", fields=["Masses"]).shape[0]
    assert ad["PartType4", "Masses"].shape[0] == n_stars
