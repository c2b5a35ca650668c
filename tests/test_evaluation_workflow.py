"""Workflow-side evaluation code: calibration scores from mean/std, named tables, TARP from sample files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from darkclusters.baselines.predictions import write_prediction
from darkclusters.evaluation.cluster import _split, data_range_from_shard, std_scores
from darkclusters.evaluation.collect import build_named_table, tarp_from_files


def test_std_scores_calibrated_and_overconfident() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(64, 64))
    std = np.full_like(truth, 0.5)
    mean = truth + rng.normal(size=truth.shape) * std
    good = std_scores(mean, std, truth, n_bins=10)
    assert good["frac_within_1sigma"] == pytest.approx(0.683, abs=0.03)
    assert good["z_std"] == pytest.approx(1.0, abs=0.05)
    over = std_scores(mean, std / 3, truth, n_bins=10)  # σ three times too small
    assert over["frac_within_1sigma"] < 0.35


def test_methods_table_reproduces_hand_median() -> None:
    rows = []
    for method, vals in {"LTM": [1.0, 3.0, 10.0], "P-SL": [2.0, 4.0, 4.0]}.items():
        for i, v in enumerate(vals):
            rows.append({"method": method.replace("-", "+") if method.startswith("P") else method,
                         "inputs": "", "simulation": "TNG", "sim": "t", "snapshot": 84, "redshift": 0.2,
                         "cluster_id": f"c{i}", "view": 0, "metric": "pcc", "value": v})  # fmt: skip
    table = build_named_table("methods", pd.DataFrame(rows), methods=["LTM", "P-SL"])
    assert table.values.loc["LTM", ("PCC", "TNG")] == 3.0  # median of 1, 3, 10
    assert table.values.loc["P+SL", ("PCC", "TNG")] == 4.0
    with pytest.raises(ValueError, match="unknown table"):
        build_named_table("nonsense", pd.DataFrame(rows), methods=["LTM"])


def _gaussian_file(path: Path, rng: np.random.Generator, scale: float) -> None:
    """θ ~ N(0, 1), x = θ + N(0, 1): the exact posterior is N(x/2, 1/2); scale multiplies its width."""
    theta = rng.normal(size=(20, 1, 3, 3))
    x = theta + rng.normal(size=theta.shape)
    samples = x[:, None] / 2 + scale * np.sqrt(0.5) * rng.normal(size=(20, 50, 1, 3, 3))
    with h5py.File(path, "w") as f:
        f["samples"] = samples
        f["truth"] = theta


def test_tarp_from_files_calibrated_vs_overconfident(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for i in range(5):
        _gaussian_file(tmp_path / f"good{i}.h5", rng, 1.0)
        _gaussian_file(tmp_path / f"bad{i}.h5", rng, 0.2)
    good = tarp_from_files(sorted(tmp_path.glob("good*.h5")), seed=0, log_transform=False)
    bad = tarp_from_files(sorted(tmp_path.glob("bad*.h5")), seed=0, log_transform=False)
    assert good is not None
    assert bad is not None
    dev_good = np.max(np.abs(good[0] - good[1]))
    dev_bad = np.max(np.abs(bad[0] - bad[1]))
    assert dev_good < 0.15
    assert dev_bad > 0.3


def test_write_prediction_rejects_non_finite(tmp_path: Path) -> None:
    bad = np.ones((2, 4, 4))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        write_prediction(tmp_path / "p.h5", bad, attrs={"method": "LTM"})
    path = write_prediction(tmp_path / "q.h5", np.ones((2, 4, 4)), attrs={"method": "LTM"})
    with h5py.File(path) as f:
        assert f["mean"].shape == (2, 4, 4)
        assert f.attrs["method"] == "LTM"


def test_data_range_from_shard_is_train_max_minus_min(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    target = rng.uniform(1e6, 1e9, size=(70, 2, 8, 8))  # two channels: only the first (Σ) counts
    target[3, 1] = 1e12
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f["target"] = target
        f.attrs["target_channels"] = ["sigma:total", "sigma:gas"]
    out = tmp_path / "range.json"
    value = data_range_from_shard(tmp_path / "train.h5", out)
    assert value == pytest.approx(target[:, 0].max() - target[:, 0].min())
    assert json.loads(out.read_text())["channel"] == "sigma:total"


def test_scale_split_is_nan_without_large_scale_bins() -> None:
    k = np.array([3.0, 6.0, 12.0])
    small, large = _split(k, np.array([1.0, 0.5, np.nan]), 2.0)
    assert small == pytest.approx(0.75)
    assert np.isnan(large)
    small, large = _split(k, np.array([1.0, 0.5, 0.2]), 5.0)
    assert (small, large) == (pytest.approx(0.35), 1.0)


def _ltm_files(
    tmp_path: Path, name: str, rng: np.random.Generator, upsilon: float, z: float
) -> tuple[Path, Path]:
    """An observation file (F814W: Gaussian galaxies + noise) and a truth file whose Σ is the LTM map of the
    same image for mass-to-light ``upsilon``, on a 48² grid of 2 kpc pixels."""
    from darkclusters.baselines.light_traces_mass import ltm_sigma_map

    n, pix_kpc, d_l = 48, 2.0, 1000.0 * (1 + z)
    yy, xx = np.mgrid[:n, :n]
    images = np.zeros((2, 3, n, n))
    for v in range(2):
        for x0, y0, amp in rng.uniform([6, 6, 1e-6], [42, 42, 5e-6], size=(6, 3)):
            images[v, 2] += amp * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 2.0)
        images[v, 2] += rng.normal(0, 1e-8, size=(n, n))
    obs, maps = tmp_path / f"{name}_obs.h5", tmp_path / f"{name}_maps.h5"
    with h5py.File(obs, "w") as f:
        f.attrs.update({"luminosity_distance_mpc": d_l, "redshift": z})
        g = f.create_group("photometry/fovX")
        g.attrs.update({"pixel_arcsec": 0.5, "pixel_kpc": pix_kpc})
        g["images"] = images
        g["images"].attrs["bands"] = ["F125W", "F606W", "F814W"]
    sigma = np.zeros((2, 5, n, n))
    for v in range(2):
        sigma[v, 0] = ltm_sigma_map(
            images[v, 2], pixel_kpc=pix_kpc, mass_to_light=upsilon, luminosity_scale=d_l**2 / (1 + z)
        )
    with h5py.File(maps, "w") as f:
        f["fovX/sigma"] = sigma
        f["fovX/sigma"].attrs.update(
            {"channels": ["total", "dm", "gas", "stars", "bh"], "units": "Msun kpc^-2"}
        )
    return maps, obs


def test_ltm_calibration_recovers_mass_to_light_and_carries_to_other_redshift(tmp_path: Path) -> None:
    from darkclusters.baselines.predictions import calibrate_ltm_files, predict_ltm_file

    rng = np.random.default_rng(7)
    upsilon = 3.0e10
    train = [_ltm_files(tmp_path, f"t{i}", rng, upsilon, z=0.2) for i in range(2)]
    cal = tmp_path / "cal.json"
    fitted = calibrate_ltm_files(train, cal, fov="fovX", ltm_cfg={})
    assert fitted == pytest.approx(upsilon, rel=1e-6)
    maps, obs = _ltm_files(tmp_path, "test", rng, upsilon, z=1.0)
    pred = predict_ltm_file(obs, cal, tmp_path / "pred.h5", fov="fovX", ltm_cfg={})
    with h5py.File(pred) as f, h5py.File(maps) as m:
        np.testing.assert_allclose(f["mean"][()], m["fovX/sigma"][:, 0], rtol=1e-6, atol=1e-3)
    with pytest.raises(ValueError, match="calibrated on"):
        predict_ltm_file(obs, cal, tmp_path / "p2.h5", fov="fovX", ltm_cfg={"band": "F606W"})


def _conditional_files(tmp_path: Path, samples: np.ndarray, truth: np.ndarray) -> tuple[Path, Path]:
    """A map file with the cluster attributes and a conditional-sample file (V, S, C, H, W) of one cluster."""
    maps = tmp_path / "maps.h5"
    with h5py.File(maps, "w") as f:
        f.attrs.update({"format": "tng", "sim": "t", "snapshot": 84, "redshift": 0.2, "cluster_id": "t-084-0",
                        "halo_id": 0, "m200c_msun": 3e14, "hubble_h": 0.6774})  # fmt: skip
    out = tmp_path / "samples.h5"
    with h5py.File(out, "w") as f:
        f["samples"], f["truth"] = samples, truth
        f["mean"], f["std"] = samples.mean(axis=1), samples.std(axis=1) + 1e-12
        f.attrs["channels"] = json.dumps(["sigma:gas", "sigma:dm"])
        f.attrs["pixel_kpc"] = 100.0
    return out, maps


def test_conditional_bias_and_correlation_of_exact_and_noisy_samples(tmp_path: Path) -> None:
    """Samples equal to the truth give b = r = 1 at every scale (seed 002's definition); added white noise
    keeps r < 1 on small scales. One truth is scored against S samples (the shapes differ)."""
    from darkclusters.evaluation.cluster import evaluate_conditional

    rng = np.random.default_rng(3)
    truth = np.exp(rng.normal(size=(2, 2, 32, 32)))  # (V, C, H, W)
    exact = np.repeat(truth[:, None], 3, axis=1)  # (V, S, C, H, W)
    kw = {"method": "cond", "mass_split_msun": 2e14, "k_split_hmpc": 2.0}
    s, m = _conditional_files(tmp_path, exact, truth)
    scores = evaluate_conditional(samples_path=s, maps_path=m, **kw).set_index(["view", "map", "metric"])
    for name in ("gas", "DM"):
        assert scores.loc[(0, name, "b_small"), "value"] == pytest.approx(1.0)
        assert scores.loc[(1, name, "r_small"), "value"] == pytest.approx(1.0)
    noisy = exact + rng.normal(scale=1.0, size=exact.shape)
    (tmp_path / "n").mkdir()
    s, m = _conditional_files(tmp_path / "n", noisy, truth)
    scores = evaluate_conditional(samples_path=s, maps_path=m, **kw).set_index(["view", "map", "metric"])
    assert scores.loc[(0, "gas", "r_small"), "value"] < 0.9
