"""Config validation: defaults fill in, and every kind of mistake names its key path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from darkclusters.config import ConfigError, load_config, validate_config

from .conftest import ROOT, tiny_config


def test_default_config_validates_and_fills_defaults() -> None:
    cfg = load_config(ROOT / "config" / "config.yaml")
    assert cfg["extraction"]["radius_kpc"] == 3000.0
    tng = cfg["simulations"]["tng_synth"]
    assert tng["synthetic"]["box_size_ckpc_h"] is None  # default filled inside a per-simulation block
    assert tng["snapshot_file"] == "snap_m100n1024_{snap:03d}.hdf5"
    assert cfg["selection"]["split_fractions"] == {"train": 0.7, "val": 0.15, "test": 0.15}


def test_paper_config_validates() -> None:
    cfg = load_config(ROOT / "config" / "paper.yaml")
    assert cfg["simulations"]["TNG300-1"]["synthetic"] is None
    assert cfg["selection"]["max_clusters"] == 500


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c["selection"].update(m200c_min_msun="big"), "selection.m200c_min_msun"),
        (lambda c: c["selection"].update(m200c_minimum=1.0), "selection"),
        (
            lambda c: c["simulations"]["tng_tiny"]["synthetic"].update(n_clusters=0),
            "tng_tiny.synthetic.n_clusters",
        ),
        (lambda c: c["simulations"]["tng_tiny"].update(format="gadget"), "simulations.tng_tiny.format"),
        (lambda c: c["extraction"].update(radius_kpc=-1.0), "extraction.radius_kpc"),
        (lambda c: c.update(sead=3), "<top level>"),
    ],
)
def test_bad_values_name_the_key(mutate, key: str) -> None:
    cfg = copy.deepcopy(tiny_config())
    mutate(cfg)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(cfg)


def test_unknown_key_is_named() -> None:
    cfg = copy.deepcopy(tiny_config())
    cfg["selection"]["max_cluster"] = 3
    with pytest.raises(ConfigError, match=r"'max_cluster' was unexpected"):
        validate_config(cfg)


def test_cross_key_rules() -> None:
    cfg = copy.deepcopy(tiny_config())
    cfg["selection"]["split_fractions"] = {"train": 0.5, "val": 0.2, "test": 0.2}
    with pytest.raises(ConfigError, match=r"split_fractions.*sum to 0\.9"):
        validate_config(cfg)
    cfg = copy.deepcopy(tiny_config())
    cfg["simulations"]["simba_tiny"]["synthetic"]["redshifts"] = {}
    with pytest.raises(ConfigError, match=r"simba_tiny\.synthetic\.redshifts.*snapshot 125"):
        validate_config(cfg)
    cfg = copy.deepcopy(tiny_config())
    cfg["simulations"]["tng_tiny"]["reference_snapshot"] = 99
    with pytest.raises(ConfigError, match=r"tng_tiny\.reference_snapshot"):
        validate_config(cfg)
    cfg = copy.deepcopy(tiny_config())
    cfg["simulations"]["tng_tiny"]["synthetic"]["halo_model"] = {"no_such_parameter": 1.0}
    with pytest.raises(ConfigError, match=r"halo_model\.no_such_parameter"):
        validate_config(cfg)
    real = {"format": "tng", "snapshots": [84]}
    with pytest.raises(ConfigError, match=r"simulations\.real\.base_path"):
        validate_config({"simulations": {"real": real}})


def test_yaml_exponent_without_sign_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"simulations": {"x": {"format": "tng", "snapshots": [84], "base_path": "/d"}}})
    )
    path.write_text(path.read_text() + "selection:\n  m200c_min_msun: 1e14\n")
    with pytest.raises(ConfigError, match=r"selection\.m200c_min_msun.*1\.0e\+14"):
        load_config(path)


def test_dataset_and_reconstruction_references() -> None:
    cfg = copy.deepcopy(tiny_config())
    cfg["datasets"] = {"d": {"simulations": ["nope"]}}
    with pytest.raises(ConfigError, match=r"datasets\.d\.simulations.*'nope'"):
        validate_config(cfg)
    cfg = copy.deepcopy(tiny_config())
    cfg["datasets"] = {"d": {"simulations": ["tng_tiny"], "fov": "fov999"}}
    with pytest.raises(ConfigError, match=r"datasets\.d\.fov"):
        validate_config(cfg)
    cfg = copy.deepcopy(tiny_config())
    cfg["datasets"] = {"d": {"simulations": ["tng_tiny"]}}
    cfg["reconstruction"] = {"dataset": "other"}
    with pytest.raises(ConfigError, match=r"reconstruction\.dataset"):
        validate_config(cfg)


def test_field_of_view_needs_exactly_one_size() -> None:
    cfg = copy.deepcopy(tiny_config())
    cfg["projection"] = {"fields_of_view": [{"name": "a", "fov_arcsec": 225.0, "fov_kpc": 1000.0}]}
    with pytest.raises(ConfigError, match=r"projection\.fields_of_view\[0\]"):
        validate_config(cfg)
