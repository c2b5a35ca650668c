"""Normalisation, dataset shards, augmentation and the training loop: exact inverse, statistics from the
training split only, aligned augmentation, bit-identical resume after a kill, DDP under torchrun equal to one
process, clear errors for corrupt or mismatched checkpoints, and a ``model.pt`` that loads with
weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from darkclusters.diffusion.data import (
    ShardDataset,
    augment_pair,
    augmentation_code,
    read_normalisation,
    read_shard_info,
    write_shard,
)
from darkclusters.diffusion.edm import EDMPrecond
from darkclusters.diffusion.launch import launch_training
from darkclusters.diffusion.normalise import PAPER_CONSTANTS, Normalisation, paper_normalisation
from darkclusters.diffusion.regression import load_unet_baseline, train_unet_baseline
from darkclusters.diffusion.train import CheckpointError, load_denoiser, load_model_info, train_prior
from darkclusters.diffusion.train_state import resolve_training_config

CHANNELS = ["sigma_total", "F606W", "F814W"]
TINY_CFG: dict[str, Any] = {
    "network": {
        "backbone": "ddpmpp",
        "model_channels": 8,
        "channel_mult": [1, 2],
        "num_blocks": 1,
        "attn_resolutions": [8],
        "dropout": 0.1,
    },
    "batch_size": 4,
    "grad_accum_steps": 2,
    "lr": 2e-3,
    "lr_warmup_images": 8,
    "total_steps": 6,
    "checkpoint_every_steps": 2,
    "log_every_steps": 1,
    "grid_images": 1,
    "grid_sampler_steps": 2,
    "grad_clip_norm": 1.0,
    "unet_baseline": {"batch_size": 4, "lr": 2e-3, "lr_warmup_images": 0, "total_steps": 4},
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread for the whole module, set before the module-scoped training run: tiny convolutions run
    fastest so, and float sums depend on the thread count, which must not change between compared runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _maps(n: int, seed: int, res: int = 16, sigma_peak: float = 1e9) -> tuple[np.ndarray, np.ndarray]:
    """Cluster-like blobs: Σ [Msun kpc⁻²] and two photometry bands tracing it with scatter; (n, C, H, W)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:res, 0:res] + 0.5
    target = np.empty((n, 1, res, res))
    cond = np.empty((n, 2, res, res))
    for i in range(n):
        cx, cy = rng.uniform(4, res - 4, 2)
        g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * rng.uniform(1.5, 3.5) ** 2))
        target[i, 0] = 1e7 + sigma_peak * g * rng.uniform(0.5, 2.0)
        cond[i, 0] = 1e-9 + 1e-6 * g**1.5 * rng.lognormal(0, 0.3, g.shape)
        cond[i, 1] = 2e-9 + 5e-7 * g * rng.lognormal(0, 0.3, g.shape)
    return target, cond


def _write(folder: Path, split: str, target: np.ndarray, cond: np.ndarray, norm: Normalisation) -> Path:
    path = folder / f"{split}.h5"
    write_shard(
        path,
        target=target,
        condition=cond,
        target_channels=CHANNELS[:1],
        condition_channels=CHANNELS[1:],
        target_units="Msun kpc^-2",
        condition_units=["Jy", "Jy"],
        cluster_id=[f"tng_84_{i // 4}" for i in range(len(target))],
        view=[i % 4 for i in range(len(target))],
        normalisation=norm,
        attrs={"seed": "7"},
    )
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train.h5 (16 images) and val.h5 (4 images, brighter) normalised with the TRAINING statistics."""
    folder = tmp_path_factory.mktemp("dataset")
    t_train, c_train = _maps(16, seed=0)
    t_val, c_val = _maps(4, seed=1, sigma_peak=5e9)
    norm = Normalisation.fit(np.concatenate([t_train, c_train], axis=1), CHANNELS)
    _write(folder, "train", t_train, c_train, norm)
    _write(folder, "val", t_val, c_val, norm)
    return folder


@pytest.fixture(scope="module")
def trained(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted tiny training run (6 steps, checkpoints every 2)."""
    out = tmp_path_factory.mktemp("run_full")
    train_prior(shards, out, train_cfg=TINY_CFG, seed=11, device="cpu")
    return out


# --- normalisation ---------------------------------------------------------------------------------------


def test_normalisation_is_an_exact_inverse_and_round_trips_as_a_dict() -> None:
    rng = np.random.default_rng(0)
    x = rng.lognormal(17.0, 2.0, size=(5, 3, 8, 8))
    x[:, 1:] *= 1e-15
    x[0, 2, 0, 0] = 0.0  # empty pixels are fine: offset > 0
    norm = Normalisation.fit(x, CHANNELS)
    y = norm.forward(x)
    assert y.min() == pytest.approx(-1.0)  # the training range maps onto [−1, 1]
    assert y.max() == pytest.approx(1.0)
    offset = np.asarray(norm.offset)[:, None, None]
    assert (np.abs(norm.inverse(y) - x) / (x + offset)).max() < 1e-13  # exact up to float64 rounding
    yt = norm.forward(torch.from_numpy(x))
    assert isinstance(yt, torch.Tensor)
    np.testing.assert_allclose(yt.numpy(), y, rtol=1e-14)
    back = norm.inverse(yt).numpy()
    assert (np.abs(back - x) / (x + offset)).max() < 1e-13
    assert Normalisation.from_dict(norm.to_dict()) == norm
    assert norm.select(["F814W", "sigma_total"]).channels == ("F814W", "sigma_total")
    paper = paper_normalisation(["sigma_total"], ["F606W", "F814W"])
    assert paper.to_dict()["shift"] == [-5.3, -20.73, -20.73]
    assert PAPER_CONSTANTS["mass"]["scale"] == 7.25


def test_normalisation_handles_noise_and_rejects_values_below_the_offset() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, size=(4, 1, 8, 8))  # noisy photometry: negative pixels
    norm = Normalisation.fit(x, ["F814W"], offset_quantile=0.01)
    assert norm.offset[0] > -x.min()
    assert np.isfinite(norm.forward(x)).all()
    with pytest.raises(ValueError, match="F814W"):
        norm.forward(np.full((1, 1, 2, 2), -2.0 * norm.offset[0]))
    with pytest.raises(ValueError, match="expected"):
        norm.forward(np.ones((1, 2, 2, 2)))


def test_shards_store_training_statistics_only(shards: Path) -> None:
    t_train, c_train = _maps(16, seed=0)
    t_val, c_val = _maps(4, seed=1, sigma_peak=5e9)
    fitted_train = Normalisation.fit(np.concatenate([t_train, c_train], axis=1), CHANNELS)
    fitted_val = Normalisation.fit(np.concatenate([t_val, c_val], axis=1), CHANNELS)
    assert fitted_val != fitted_train
    assert read_normalisation(shards / "train.h5") == fitted_train
    assert read_normalisation(shards / "val.h5") == fitted_train  # not the validation split's own statistics
    val = ShardDataset(shards / "val.h5")
    assert max(float(val[i][0].max()) for i in range(len(val))) > 1.0  # brighter than any training map
    info = read_shard_info(shards / "train.h5")
    assert info["n_images"] == 16
    assert info["target_units"] == ["Msun kpc^-2"]
    with h5py.File(shards / "train.h5") as f:
        assert f["cluster_id"].asstr()[3] == "tng_84_0"
        assert f["target"].dtype == np.float32
        assert f["normalisation/F606W"].attrs["offset"] == fitted_train.offset[1]
        assert f["target"].attrs["units"][0] == "Msun kpc^-2"


def test_write_shard_rejects_bad_input(tmp_path: Path) -> None:
    t, c = _maps(2, seed=0)
    norm = Normalisation.fit(np.concatenate([t, c], axis=1), CHANNELS)
    t[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _write(tmp_path, "train", t, c, norm)
    with pytest.raises(ValueError, match="does not match"):
        _write(tmp_path, "train", t[:, :, :8], c, norm)
    assert not (tmp_path / "train.h5").exists()


# --- augmentation ----------------------------------------------------------------------------------------


def test_augmentation_keeps_target_and_condition_aligned(shards: Path) -> None:
    wide = np.arange(24, dtype=float).reshape(1, 4, 6)
    square = np.arange(25, dtype=float).reshape(1, 5, 5)
    seen = set()
    for code in range(8):
        t, c = augment_pair(square, 10 * square + 1, code)
        np.testing.assert_array_equal(c, 10 * t + 1)  # the same transform on both
        seen.add(t.tobytes())
    assert len(seen) == 8  # the whole dihedral group
    assert augment_pair(wide, wide, 6)[0].shape == wide.shape  # half turn + flip keeps a non-square shape
    ds = ShardDataset(shards / "train.h5", augment=True, seed=5)
    plain = ShardDataset(shards / "train.h5")
    codes = set()
    for i in range(len(ds)):
        t, c = ds.sample(i, epoch=3)
        code = augmentation_code(5, 3, i)
        codes.add(code)
        t0, c0 = plain[i]
        t_ref, c_ref = augment_pair(t0.numpy(), c0.numpy(), code)
        np.testing.assert_array_equal(t.numpy(), t_ref)
        np.testing.assert_array_equal(c.numpy(), c_ref)
        # light still lies on the mass after the transform: high pixel correlation of Σ and photometry
        assert np.corrcoef(t[0].numpy().ravel(), c[1].numpy().ravel())[0, 1] > 0.9
    assert len(codes) > 3
    torch.testing.assert_close(ds.sample(2, epoch=3)[0], ds.sample(2, epoch=3)[0])  # seeded


# --- training loop ---------------------------------------------------------------------------------------


def _state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_tree(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_killed_and_resumed_run_equals_the_uninterrupted_run(
    shards: Path, trained: Path, tmp_path: Path
) -> None:
    def kill_at_5(step: int, metrics: dict[str, float]) -> None:
        if step == 5:  # after the step-4 checkpoint: step 5 is lost and redone
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_prior(shards, tmp_path, train_cfg=TINY_CFG, seed=11, device="cpu", step_callback=kill_at_5)
    assert not (tmp_path / "model.pt").exists()
    assert (
        train_prior(shards, tmp_path, train_cfg=TINY_CFG, seed=11, device="cpu", stop_after_steps=3) is None
    )
    final = train_prior(shards, tmp_path, train_cfg=TINY_CFG, seed=11, device="cpu")
    assert final == tmp_path / "model.pt"
    full, resumed = (
        _state(trained / "checkpoints" / "step_00000006.pt"),
        _state(final.parent / "checkpoints" / "step_00000006.pt"),
    )
    for key in ("model", "ema", "optimizer", "scheduler", "state", "data_order", "rng"):
        _assert_same_tree(full[key], resumed[key], key)
    _assert_same_tree(_state(trained / "model.pt")["state_dict"], _state(final)["state_dict"], "model.pt")
    assert (trained / "metrics.csv").read_text() == (tmp_path / "metrics.csv").read_text()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 6
    assert (tmp_path / "samples" / "step_00000006.png").stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_00000004.pt",
        "step_00000006.pt",
    ]


def test_torchrun_with_two_processes_matches_one_process(shards: Path, tmp_path: Path) -> None:
    """The multi-GPU path of the train_prior rule: the real torchrun (2 CPU ranks, gloo) through the module
    entry point equals training in this process, within float tolerance."""
    cfg = {**TINY_CFG, "network": {**TINY_CFG["network"], "dropout": 0.0}, "grad_accum_steps": 1}
    cfg.update(total_steps=3, checkpoint_every_steps=3, grid_images=0)
    single = launch_training(
        "prior", shards, tmp_path / "single", train_cfg=cfg, seed=11, gpus=1, device="cpu"
    )
    log = tmp_path / "torchrun.log"
    with log.open("w") as out:
        ddp = launch_training(
            "prior", shards, tmp_path / "ddp", train_cfg=cfg, seed=11, gpus=2, device="cpu", output=out
        )
    text = log.read_text()
    assert "rank 0 INFO" in text, text[-3000:]  # two ranks really ran, in one process group
    assert "rank 1 INFO" in text, text[-3000:]
    assert "parameters, 2 ranks, cpu" in text, text[-3000:]
    a, b = _state(single), _state(ddp)
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-4, atol=1e-6, msg=key)
    la = np.loadtxt(tmp_path / "single" / "metrics.csv", delimiter=",", skiprows=1)
    lb = np.loadtxt(tmp_path / "ddp" / "metrics.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(lb, la, rtol=1e-5)  # same global batches, noise and losses
    assert (
        len(_state(tmp_path / "ddp" / "checkpoints" / "step_00000003.pt")["rng"]) == 2
    )  # one state per rank


def test_launch_reports_bad_requests(shards: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        launch_training("vae", shards, tmp_path, train_cfg=TINY_CFG, seed=1)
    with pytest.raises(ValueError, match="gpus"):
        launch_training("prior", shards, tmp_path, train_cfg=TINY_CFG, seed=1, gpus=0)
    with pytest.raises(
        ValueError, match=r"training\.unet_baseline\.batch_size = 4 does not split over 3 GPUs"
    ):
        launch_training("unet", shards, tmp_path, train_cfg=TINY_CFG, seed=1, gpus=3, device="cpu")
    with (tmp_path / "log").open("w") as out, pytest.raises(RuntimeError, match="exit status 1"):
        launch_training("prior", tmp_path / "missing", tmp_path / "out", train_cfg=TINY_CFG, seed=1, gpus=2,
                        device="cpu", output=out)  # fmt: skip
    assert "missing: shard not found" in (tmp_path / "log").read_text()  # the ranks' traceback is in the log


def test_corrupt_checkpoint_is_reported_with_its_file(trained: Path, tmp_path: Path, shards: Path) -> None:
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    ckpt = out / "checkpoints" / "step_00000004.pt"
    data = (trained / "checkpoints" / "step_00000004.pt").read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # a truncated file
    with pytest.raises(CheckpointError, match=r"step_00000004\.pt.*truncated or corrupt"):
        train_prior(shards, out, train_cfg=TINY_CFG, seed=11, device="cpu")
    model_pt = tmp_path / "model.pt"
    model_pt.write_bytes((trained / "model.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model\.pt.*truncated or corrupt"):
        load_denoiser(model_pt)


def test_mismatched_checkpoint_is_reported_with_its_file(trained: Path, tmp_path: Path, shards: Path) -> None:
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "step_00000004.pt").write_bytes(
        (trained / "checkpoints" / "step_00000004.pt").read_bytes()
    )
    wider = {**TINY_CFG, "network": {**TINY_CFG["network"], "model_channels": 16}}
    with pytest.raises(CheckpointError, match=r"step_00000004\.pt.*model_channels: file 8 != expected 16"):
        train_prior(shards, out, train_cfg=wider, seed=11, device="cpu")
    payload = _state(trained / "model.pt")
    payload["config"]["model"]["backbone_kwargs"]["model_channels"] = 16  # weights of another network size
    torch.save(payload, tmp_path / "model.pt")
    fit = r"model\.pt: model weights do not fit.*size mismatch: backbone\.\S+: "
    fit += r"file \(32, 8\) vs network \(64, 16\)"
    with pytest.raises(CheckpointError, match=fit):
        load_denoiser(tmp_path / "model.pt")


def test_model_pt_loads_with_weights_only(trained: Path, shards: Path) -> None:
    payload = torch.load(trained / "model.pt", map_location="cpu", weights_only=True)
    assert payload["format"] == "darkclusters-model"
    assert payload["kind"] == "prior"
    assert payload["step"] == 6
    assert payload["config"]["model"]["condition_channels"] == CHANNELS[1:]
    assert Normalisation.from_dict(payload["normalisation"]) == read_normalisation(shards / "train.h5")
    assert load_model_info(trained / "model.pt")["normalisation"].channels == tuple(CHANNELS)
    denoiser = load_denoiser(trained / "model.pt")
    assert isinstance(denoiser, EDMPrecond)
    assert not denoiser.training
    x = torch.zeros(1, 1, 16, 16, requires_grad=True)
    out = denoiser(x, 0.5, torch.zeros(1, 2, 16, 16))
    out.sum().backward()  # gradients reach the input (DPS), not the frozen weights
    assert x.grad is not None
    with pytest.raises(TypeError):
        denoiser(x, 0.5)
    with pytest.raises(CheckpointError, match="not the UNet baseline"):
        load_unet_baseline(trained / "model.pt")


def test_unet_baseline_trains_and_loads(shards: Path, tmp_path: Path) -> None:
    cfg = {**TINY_CFG, "grid_images": 0, "checkpoint_every_steps": 4}
    model_pt = train_unet_baseline(shards, tmp_path, train_cfg=cfg, seed=3, device="cpu")
    model = load_unet_baseline(model_pt)
    cond = ShardDataset(shards / "val.h5")[0][1][None]
    assert model(cond).shape == (1, 1, 16, 16)
    assert _state(model_pt)["kind"] == "unet_baseline"
    with pytest.raises(CheckpointError, match="not a diffusion prior"):
        load_denoiser(model_pt)


def test_training_config_defaults_are_the_papers_and_unknown_keys_fail() -> None:
    cfg = resolve_training_config({})
    assert cfg["network"] == {
        "backbone": "adm",
        "model_channels": 128,
        "channel_mult": [1, 1, 2, 2, 4, 4],
        "num_blocks": 2,
        "attn_resolutions": [32, 16],
        "dropout": 0.13,
    }
    assert (cfg["lr"], cfg["batch_size"], cfg["ema_halflife_images"], cfg["total_steps"]) == (
        1e-4,
        1,
        209600,
        180000,
    )
    with pytest.raises(ValueError, match=r"'training\.network'.*'dropuot' was unexpected"):
        resolve_training_config({"network": {"dropuot": 0.1}})
    with pytest.raises(ValueError, match=r"'training\.batch_size'"):
        resolve_training_config({"batch_size": 0})
