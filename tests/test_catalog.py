"""Selection and splits: thresholds, caps, cluster identity across snapshots, disjoint and deterministic
splits."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from darkclusters.simulations.catalog import assign_splits, select_clusters


def _select(cfg: dict[str, Any], name: str, base: Path, **selection: Any):
    sel = {**copy.deepcopy(cfg["selection"]), **selection}
    return select_clusters(name, cfg["simulations"][name], base, sel, cfg["seed"])


def test_threshold_cap_and_order(tng_base: Path, tiny_cfg: dict[str, Any]) -> None:
    cat = _select(tiny_cfg, "tng_tiny", tng_base)
    assert (cat["m200c_msun"] >= 1e14).all()
    assert set(cat["snapshot"]) == {84, 50}
    at_ref = cat[cat["snapshot"] == 84]
    assert len(at_ref) == 3  # the three clusters; the field halo (< 6e13) is left out
    assert np.all(np.diff(at_ref["m200c_msun"].to_numpy()) <= 0)  # most massive first
    capped = _select(tiny_cfg, "tng_tiny", tng_base, max_clusters=1)
    assert capped.groupby("snapshot").size().max() == 1
    assert capped.iloc[0]["halo_id"] == at_ref.iloc[0]["halo_id"]
    for col in ("sim", "snapshot", "redshift", "halo_id", "cluster_id", "m200c_msun", "r200c_kpc", "split"):
        assert col in cat.columns


def test_cluster_identity_follows_the_truth_across_snapshots(
    tng_base: Path, tiny_cfg: dict[str, Any], tng_truth: dict[str, Any]
) -> None:
    cat = _select(tiny_cfg, "tng_tiny", tng_base, m200c_min_msun=1e13)
    ids_ref = tng_truth["snapshots"]["84"]["halo_id"]
    ids_50 = tng_truth["snapshots"]["50"]["halo_id"]
    for i in range(len(ids_ref)):  # input halo i is halo ids_ref[i] at z=0.2 and ids_50[i] at z=1
        a = cat[(cat["snapshot"] == 84) & (cat["halo_id"] == ids_ref[i])]["cluster_id"]
        b = cat[(cat["snapshot"] == 50) & (cat["halo_id"] == ids_50[i])]["cluster_id"]
        if len(a) and len(b):
            assert a.iloc[0] == b.iloc[0] == f"tng_tiny-084-{ids_ref[i]}"


def test_splits_are_by_cluster_and_deterministic(tng_base: Path, tiny_cfg: dict[str, Any]) -> None:
    cat = _select(tiny_cfg, "tng_tiny", tng_base, m200c_min_msun=1e13)
    assert (cat.groupby("cluster_id")["split"].nunique() == 1).all()  # one split per cluster
    again = _select(tiny_cfg, "tng_tiny", tng_base, m200c_min_msun=1e13)
    assert cat["split"].tolist() == again["split"].tolist()


def test_assign_splits_counts_disjointness_and_stability() -> None:
    ids = [f"c{i}" for i in range(100)]
    frac = {"train": 0.7, "val": 0.15, "test": 0.15}
    s = assign_splits(ids, frac, seed=1)
    counts = {k: sum(v == k for v in s.values()) for k in frac}
    assert counts == {"train": 70, "val": 15, "test": 15}
    assert s == assign_splits(list(reversed(ids)) + ids[:10], frac, seed=1)  # order and repeats do not matter
    assert s != assign_splits(ids, frac, seed=2)
    small = assign_splits(["a", "b", "c"], frac, seed=1)
    assert sorted(small.values()) == ["test", "train", "val"]  # every split gets one when possible
    only = assign_splits(["a", "b"], {"train": 1.0, "val": 0.0, "test": 0.0}, seed=1)
    assert set(only.values()) == {"train"}


def test_simba_selection(simba_dir: Path, tiny_cfg: dict[str, Any]) -> None:
    cat = _select(tiny_cfg, "simba_tiny", simba_dir)
    assert len(cat) == 3
    assert set(cat["format"]) == {"simba"}
    assert cat["redshift"].iloc[0] == pytest.approx(0.49)
    assert cat["cluster_id"].str.startswith("simba_tiny-125-").all()


def test_per_simulation_selection_overrides_the_top_level(tng_base: Path, tiny_cfg: dict[str, Any]) -> None:
    """The paper's SIMBA set: its own cap and every cluster in the test split; other keys inherit."""
    cfg = copy.deepcopy(tiny_cfg)
    sim = cfg["simulations"]["tng_tiny"]
    sim["selection"] = {"max_clusters": 2, "split_fractions": {"train": 0.0, "val": 0.0, "test": 1.0}}
    cat = _select(cfg, "tng_tiny", tng_base)
    assert cat.groupby("snapshot").size().max() == 2
    assert set(cat["split"]) == {"test"}
    assert (cat["m200c_msun"] >= cfg["selection"]["m200c_min_msun"]).all()  # inherited threshold
    sim["selection"] = {"m200c_min_msun": 1e13}
    assert len(_select(cfg, "tng_tiny", tng_base)) > len(_select(tiny_cfg, "tng_tiny", tng_base))


def test_per_simulation_split_fractions_must_sum_to_one() -> None:
    from darkclusters.config import ConfigError, validate_config

    cfg = {
        "seed": 1,
        "simulations": {
            "s": {
                "format": "tng",
                "snapshots": [84],
                "synthetic": {},
                "selection": {"split_fractions": {"train": 0.5, "val": 0.0, "test": 0.2}},
            }
        },
    }
    with pytest.raises(ConfigError, match=r"simulations\.s\.selection\.split_fractions"):
        validate_config(cfg)
