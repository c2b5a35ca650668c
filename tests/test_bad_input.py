"""Bad input gets a clear error that names the file or field; nothing is left half-written."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from darkclusters.simulations.catalog import load_halo_table
from darkclusters.simulations.simba import load_caesar_halos, load_simba_halo
from darkclusters.simulations.tng import load_tng_groups, load_tng_halo

TNG = {"format": "tng"}


def _read_everything(base_path: Path) -> None:
    """Read the catalog and every group's particles, so that any damaged chunk is touched."""
    for gid in load_tng_groups(base_path, 84)["halo_id"]:
        load_tng_halo(base_path, 84, int(gid))


def test_missing_base_path(tmp_path: Path) -> None:
    missing = tmp_path / "TNG300-1" / "output"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_tng_groups(missing, 84)
    with pytest.raises(FileNotFoundError, match="basePath"):
        load_halo_table(TNG, missing, 84)


def test_missing_snapshot_names_expected_path(tng_copy: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"snapdir_067/snap_067\.0\.hdf5"):
        load_tng_halo(tng_copy, 67, 0)


def test_missing_offsets_file_names_expected_path(tng_copy: Path) -> None:
    offsets = tng_copy.parent / "postprocessing" / "offsets" / "offsets_084.hdf5"
    offsets.unlink()
    with pytest.raises(FileNotFoundError, match=str(offsets)):
        load_tng_halo(tng_copy, 84, 0)


@pytest.mark.parametrize("victim", ["snapdir_084/snap_084.1.hdf5", "groups_084/fof_subhalo_tab_084.1.hdf5"])
def test_truncated_chunk_is_named(tng_copy: Path, victim: str) -> None:
    path = tng_copy / victim
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(OSError, match=str(path)):
        _read_everything(tng_copy)


def test_corrupt_chunk_is_named(tng_copy: Path) -> None:
    path = tng_copy / "snapdir_084" / "snap_084.1.hdf5"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(OSError, match=str(path)):
        _read_everything(tng_copy)


def test_halo_id_out_of_range(tng_base: Path) -> None:
    with pytest.raises(IndexError, match="halo_id 10000 out of range"):
        load_tng_halo(tng_base, 84, 10000)


def test_simba_missing_and_malformed(simba_dir: Path, tmp_path: Path) -> None:
    snap = simba_dir / "snap_m100n1024_125.hdf5"
    with pytest.raises(FileNotFoundError, match="CAESAR catalog not found"):
        load_simba_halo(snap, tmp_path / "nope.hdf5", 0)
    bad = tmp_path / "m100n1024_125.hdf5"
    shutil.copy(snap, bad)  # a snapshot is not a CAESAR catalog
    with pytest.raises(KeyError, match="no halo_data group"):
        load_caesar_halos(bad, 0.68, 0.67)
    truncated = tmp_path / "snap.hdf5"
    truncated.write_bytes(snap.read_bytes()[:1000])
    with pytest.raises(OSError, match=str(truncated)):
        load_simba_halo(truncated, simba_dir / "Groups" / "m100n1024_125.hdf5", 0)
