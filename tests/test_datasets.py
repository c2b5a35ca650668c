"""Dataset assembly: channels by name, samples in their cluster's split, normalisation from train only."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from darkclusters.datasets import assemble_dataset, read_channels
from darkclusters.diffusion.data import ShardWriter, read_normalisation
from darkclusters.diffusion.normalise import Normalisation

SPLIT_OF = {0: "train", 1: "train", 2: "val", 3: "test"}


def _write_cluster(root: Path, halo: int, value: float) -> None:
    """Fake maps/observations files: 2 views of 8² pixels whose Σ_total is `value` + view index."""
    rel = Path("sim") / "084" / f"{halo}.h5"
    (root / "maps" / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / "observations" / rel).parent.mkdir(parents=True, exist_ok=True)
    sigma = np.zeros((2, 5, 8, 8), np.float32)
    for v in range(2):
        sigma[v, 0] = value + v  # total
        sigma[v, 1] = 10 * (value + v)  # dm, to tell channels apart
    with h5py.File(root / "maps" / rel, "w") as f:
        ds = f.create_dataset("fov225/sigma", data=sigma)
        ds.attrs["channels"] = ["total", "dm", "gas", "stars", "bh"]
        ds.attrs["units"] = "Msun kpc^-2"
    with h5py.File(root / "observations" / rel, "w") as f:
        ds = f.create_dataset(
            "photometry/fov225/images", data=np.full((2, 3, 8, 8), value * 1e-6, np.float32)
        )
        ds.attrs["bands"] = ["F125W", "F606W", "F814W"]
        ds.attrs["units"] = "Jy per pixel"


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for halo in SPLIT_OF:
        _write_cluster(root, halo, value=1.0 + 100 * halo)
    catalog = pd.DataFrame(
        {
            "sim": "sim",
            "snapshot": 84,
            "halo_id": list(SPLIT_OF),
            "cluster_id": [f"c{h}" for h in SPLIT_OF],
            "split": list(SPLIT_OF.values()),
            "m200c_msun": 1e14,
        }
    )
    catalog.to_parquet(tmp_path / "sim.parquet")
    return root


SPEC = {
    "simulations": ["sim"],
    "snapshots": None,
    "fov": "fov225",
    "target": ["sigma:total"],
    "condition": ["image:F814W", "sigma:dm"],
    "offset_quantile": 0.01,
}


def test_assemble_dataset_splits_and_normalisation(results: Path, tmp_path: Path) -> None:
    counts = assemble_dataset(
        name="d",
        spec=SPEC,
        catalog_paths={"sim": tmp_path / "sim.parquet"},
        out_dir=tmp_path / "d",
        results_dir=results,
        seed=1,
    )
    assert counts == {"train": 4, "val": 2, "test": 2}  # 2 views per cluster
    with h5py.File(tmp_path / "d" / "test.h5") as f:
        target, condition = f["target"][()], f["condition"][()]
        ids = f["cluster_id"].asstr()[()]
    assert set(ids) == {"c3@084"}
    np.testing.assert_allclose(target[:, 0, 0, 0], [301.0, 302.0])  # halo 3's Σ_total, views 0 and 1
    np.testing.assert_allclose(condition[:, 1, 0, 0], [3010.0, 3020.0])  # the dm channel, not total
    norm = read_normalisation(tmp_path / "d" / "train.h5")
    # Statistics come from the training clusters (Σ_total ≤ 102) only: Σ = 102 maps to +1, 301 lies beyond.
    forward = norm.select(["sigma:total"]).forward(np.array([[[[102.0]]], [[[301.0]]]]))
    assert forward[0].item() == pytest.approx(1.0, abs=1e-6)
    assert forward[1].item() > 1.1


def test_unknown_channel_is_named(results: Path) -> None:
    kw = {"maps_path": results / "maps/sim/084/0.h5", "obs_path": results / "observations/sim/084/0.h5"}
    with pytest.raises(KeyError, match="band 'F999W'"):
        read_channels(["image:F999W"], fov="fov225", **kw)
    with pytest.raises(ValueError, match="unknown channel spec 'kappa'"):
        read_channels(["kappa"], fov="fov225", **kw)
    with pytest.raises(KeyError, match="no field of view 'fov450'"):
        read_channels(["sigma:total"], fov="fov450", **kw)


def test_failed_assembly_leaves_no_shard(results: Path, tmp_path: Path) -> None:
    """A bad cluster met late (NaN in the test cluster's Σ) aborts the whole dataset: no split file, no
    temporary file, although the training and validation images were already written."""
    with h5py.File(results / "maps/sim/084/3.h5", "a") as f:
        f["fov225/sigma"][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        assemble_dataset(
            name="d",
            spec=SPEC,
            catalog_paths={"sim": tmp_path / "sim.parquet"},
            out_dir=tmp_path / "d",
            results_dir=results,
        )
    assert not (tmp_path / "d").exists() or list((tmp_path / "d").iterdir()) == []


def test_shard_writer_checks_blocks_and_completion(tmp_path: Path) -> None:
    norm = Normalisation(channels=("t", "c"), offset=(1.0, 1.0), shift=(0.0, 0.0), scale=(1.0, 1.0))
    kw = {"n_images": 3, "image_shape": (4, 4), "target_channels": ["t"], "condition_channels": ["c"]}
    kw |= {"target_units": "u", "condition_units": "v"}
    block = np.ones((2, 1, 4, 4))

    def write(name: str, blocks: list[np.ndarray], finish: bool) -> None:
        with ShardWriter(tmp_path / name, **kw) as w:
            for b in blocks:
                w.append(b, b, ["x"] * len(b), list(range(len(b))))
            if finish:
                w.finish(norm)

    with pytest.raises(RuntimeError, match="before finish"):
        write("a.h5", [block], finish=False)
    with pytest.raises(ValueError, match="1 of the announced 3"):
        write("b.h5", [block[:1]], finish=True)
    with pytest.raises(ValueError, match=r"target block \(2, 1, 4, 5\)"):
        write("c.h5", [np.ones((2, 1, 4, 5))], finish=True)
    with pytest.raises(ValueError, match="more than the announced 3"):
        write("d.h5", [block, block], finish=True)
    assert list(tmp_path.iterdir()) == []  # no file, complete-looking or temporary, after any failure
    with ShardWriter(tmp_path / "e.h5", **kw) as w:  # two blocks, read back before finish, then complete
        w.append(block, 2 * block, ["x", "x"], [0, 1])
        w.append(3 * block[:1], 4 * block[:1], ["y"], [0])
        np.testing.assert_array_equal(w.target[:, 0, 0, 0], [1, 1, 3])
        w.finish(norm, {"split": "train"})
    with h5py.File(tmp_path / "e.h5") as f:
        np.testing.assert_array_equal(f["condition"][:, 0, 0, 0], [2, 2, 4])
        assert list(f["cluster_id"].asstr()[()]) == ["x", "x", "y"]
        assert f.attrs["n_images"] == 3
        assert f.attrs["split"] == "train"
    assert read_normalisation(tmp_path / "e.h5") == norm
