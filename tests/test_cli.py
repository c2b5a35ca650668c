"""The ``darkclusters`` console script, run as a user would (a subprocess on the installed entry point)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

EXE = shutil.which("darkclusters") or str(
    Path(__file__).resolve().parents[1] / ".venv" / "bin" / "darkclusters"
)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, check=False)


def test_check_config_prints_defaults() -> None:
    out = run("check-config", str(ROOT / "config" / "config.yaml"))
    assert out.returncode == 0, out.stderr
    assert "radius_kpc: 3000.0" in out.stdout


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config" / "config.yaml").read_text().replace("radius_kpc:", "radius_kpcs:"))
    out = run("check-config", str(bad))
    assert out.returncode == 2
    assert "'radius_kpcs' was unexpected" in out.stderr


def test_inspect_shows_units_and_provenance(simba_dir: Path) -> None:
    out = run("inspect", str(simba_dir / "Groups" / "m100n1024_125.hdf5"))
    assert out.returncode == 0, out.stderr
    assert "@config_sha256" in out.stdout
    assert "halo_data/dicts/masses.m200c" in out.stdout
    missing = run("inspect", "/nonexistent.h5")
    assert missing.returncode == 2
    assert "/nonexistent.h5" in missing.stderr


@pytest.mark.parametrize("sim", ["nope"])
def test_synthesize_unknown_simulation(sim: str, tmp_path: Path) -> None:
    out = run("synthesize", str(ROOT / "config" / "config.yaml"), sim, str(tmp_path / "x"))
    assert out.returncode == 2
    assert "no simulation 'nope'" in out.stderr
