"""Shared fixtures: tiny SYNTHETIC TNG and SIMBA simulations in the real formats, built once per session."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from darkclusters.config import validate_config
from darkclusters.simulations.synthetic.universe import synthesize_simulation

ROOT = Path(__file__).resolve().parents[1]

TINY_SYNTHETIC = {
    "n_clusters": 3,
    "m200c_min_msun": 1.5e14,
    "m200c_max_msun": 6.0e14,
    "n_field_halos": 1,
    "dm_particle_mass_msun": 1.0e11,
    "gas_particle_mass_msun": 2.0e10,
    "star_particle_mass_msun": 2.0e9,
}


def tiny_config(tmp_root: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """A validated config with one tiny synthetic TNG (two snapshots) and one tiny SIMBA simulation."""
    cfg: dict[str, Any] = {
        "seed": 7,
        "simulations": {
            "tng_tiny": {
                "format": "tng",
                "snapshots": [84, 50],
                "synthetic": dict(TINY_SYNTHETIC),
            },
            "simba_tiny": {
                "format": "simba",
                "snapshots": [125],
                "synthetic": {**TINY_SYNTHETIC, "redshifts": {"125": 0.49}},
            },
        },
        "selection": {"m200c_min_msun": 1.0e14},
    }
    for key, value in overrides.items():
        cfg[key] = value
    return dict(validate_config(copy.deepcopy(cfg)))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory holding results/simulations/{tng_tiny,simba_tiny} as the workflow would write
    them."""
    root = tmp_path_factory.mktemp("synthetic")
    cfg = tiny_config()
    for name, sim in cfg["simulations"].items():
        synthesize_simulation(name, sim, seed=cfg["seed"], out_dir=root / "results" / "simulations" / name)
    return root


@pytest.fixture(scope="session")
def tiny_cfg() -> dict[str, Any]:
    return tiny_config()


@pytest.fixture(scope="session")
def tng_base(synthetic_root: Path) -> Path:
    """The synthetic TNG basePath (``.../output``)."""
    return synthetic_root / "results" / "simulations" / "tng_tiny" / "output"


@pytest.fixture(scope="session")
def simba_dir(synthetic_root: Path) -> Path:
    return synthetic_root / "results" / "simulations" / "simba_tiny"


@pytest.fixture(scope="session")
def tng_truth(synthetic_root: Path) -> dict[str, Any]:
    return json.loads((synthetic_root / "results" / "simulations" / "tng_tiny" / "truth.json").read_text())


@pytest.fixture
def tng_copy(tng_base: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic TNG run (for tests that damage files); returns its basePath."""
    run = tmp_path / "run"
    shutil.copytree(tng_base.parent, run)
    return run / "output"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip gpu tests without CUDA and slurm tests without sbatch, even when selected with -m."""
    has_sbatch = shutil.which("sbatch") is not None
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
        if "slurm" in item.keywords and not has_sbatch:
            item.add_marker(pytest.mark.skip(reason="needs a SLURM controller (sbatch)"))
