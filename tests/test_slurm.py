"""The workflow through a real SLURM controller: the default DAG on tiny data, a GPU job and a two-GPU
training job (torchrun), via sbatch.

Needs ``sbatch`` (tests/conftest.py skips otherwise) and either a running controller (e.g. one started by
``tests/slurm/start_slurm.sh`` in CI) or root, in which case the session fixture starts the one-node test
cluster itself and stops it, by pid, at the end. Run with ``pytest -m slurm``; about 3.5 min on 2 cores.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from darkclusters.diffusion.data import write_shard
from darkclusters.diffusion.normalise import Normalisation
from darkclusters.diffusion.train import train_prior

from .conftest import ROOT, TINY_SYNTHETIC

pytestmark = pytest.mark.slurm

SLURM_DIR = ROOT / "tests" / "slurm"
PROFILE = SLURM_DIR / "profile"
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _controller_up() -> bool:
    try:
        done = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "UP" in done.stdout


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    """A SLURM controller for the session: the running one, or the test cluster started (and stopped) here."""
    if _controller_up():
        yield  # someone else's cluster (e.g. CI ran start_slurm.sh): use it, stop nothing
        return
    if os.geteuid() != 0:
        pytest.skip("no SLURM controller answers `scontrol ping`, and starting one needs root")
    started = subprocess.run(
        ["bash", str(SLURM_DIR / "start_slurm.sh")], capture_output=True, text=True, timeout=180, check=False
    )
    try:
        if started.returncode != 0:
            pytest.fail(f"start_slurm.sh failed ({started.returncode}):\n{started.stdout}\n{started.stderr}")
        yield
    finally:
        subprocess.run(["bash", str(SLURM_DIR / "stop_slurm.sh")], timeout=120, check=False)


def run_snakemake(args: list[str], cwd: Path, timeout_s: float) -> str:
    """Run ``snakemake`` (this venv's) with the test profile; return its log, failing the test on error.

    On a timeout Snakemake gets SIGTERM first, so that the SLURM plugin cancels the jobs it submitted.
    """
    cmd = [sys.executable, "-m", "snakemake", *args, "--profile", str(PROFILE), "--directory", str(cwd)]
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            pytest.fail(f"snakemake ran over {timeout_s} s: {' '.join(cmd)}\n{out[-6000:]}")
    if proc.returncode != 0:
        pytest.fail(f"snakemake exited {proc.returncode}: {' '.join(cmd)}\n{out[-6000:]}")
    return out


def submitted_jobs(log: str) -> dict[int, Path]:
    """SLURM job id → its log file, from the lines the executor plugin prints when sbatch returns."""
    return {int(job): Path(path) for job, path in SUBMITTED.findall(log)}


def scontrol_job(job_id: int) -> dict[str, str]:
    """``scontrol show job`` as key → value (finished jobs stay visible for MinJobAge = 600 s)."""
    done = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", str(job_id)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return dict(item.split("=", 1) for item in done.stdout.split() if "=" in item)


def test_default_dag_runs_through_sbatch(tmp_path: Path, slurm_cluster: None) -> None:
    """Synthesis → selection checkpoint → extraction of a tiny TNG run, every job submitted with sbatch."""
    configfile = tmp_path / "tiny.yaml"
    configfile.write_text(
        yaml.safe_dump(
            {
                "seed": 11,
                "simulations": {
                    "tng_tiny": {
                        "format": "tng",
                        "snapshots": [84],
                        "synthetic": {**TINY_SYNTHETIC, "n_clusters": 2},
                    }
                },
            }
        )
    )
    # Targets first: --configfile takes several values and would swallow a target written after it.
    log = run_snakemake(
        ["particles", "--snakefile", str(ROOT / "Snakefile"), "--configfile", str(configfile)],
        tmp_path,
        timeout_s=240,
    )

    jobs = submitted_jobs(log)
    catalog = pd.read_parquet(tmp_path / "results" / "catalog" / "tng_tiny.parquet")
    assert len(catalog) >= 1
    # One sbatch job per rule instance: synthesis, selection, one extraction per selected cluster.
    assert len(jobs) == 2 + len(catalog), log[-4000:]
    run_id = re.search(r"SLURM run ID: (\S+)", log)
    assert run_id is not None, log[-4000:]
    for job_id, job_log in jobs.items():
        assert job_log.is_file(), f"no SLURM log {job_log} for job {job_id}"
        assert job_log.is_relative_to(tmp_path / ".snakemake" / "slurm_logs")
        info = scontrol_job(job_id)
        assert info["JobState"] == "COMPLETED", info
        assert info["Partition"] == "cpu", info
        assert info["JobName"] == run_id.group(1), info
        assert Path(info["WorkDir"]) == tmp_path, info

    for snap, halo in zip(catalog["snapshot"], catalog["halo_id"], strict=True):
        path = tmp_path / "results" / "particles" / "tng_tiny" / f"{snap:03d}" / f"{halo}.h5"
        with h5py.File(path, "r") as f:
            assert int(f.attrs["halo_id"]) == halo
            assert f["dm/mass_msun"].shape[0] > 0
    assert (tmp_path / "logs" / "select" / "tng_tiny.log").is_file()


def test_gpu_job_gets_a_gpu_from_slurm(tmp_path: Path, slurm_cluster: None) -> None:
    """A rule with ``resources: gpu=1`` lands on the gpu partition and SLURM sets CUDA_VISIBLE_DEVICES."""
    log = run_snakemake(["--snakefile", str(SLURM_DIR / "Snakefile")], tmp_path, timeout_s=120)
    jobs = submitted_jobs(log)
    assert len(jobs) == 1, log[-4000:]
    (job_id,) = jobs
    lines = dict(
        line.split("=", 1) for line in (tmp_path / "gpu_check.txt").read_text().splitlines() if "=" in line
    )
    assert lines["SLURM_JOB_ID"] == str(job_id)
    # The one fake GPU of the test node is index 0; "unset" would mean SLURM gave the job no GPU.
    assert lines["CUDA_VISIBLE_DEVICES"] == "0"
    info = scontrol_job(job_id)
    assert info["JobState"] == "COMPLETED", info
    assert info["Partition"] == "gpu", info
    assert "gpu:1" in info.get("TresPerJob", ""), info


TINY_TRAINING = {
    "network": {"backbone": "ddpmpp", "model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1,
                "attn_resolutions": [8], "dropout": 0.0},
    "batch_size": 4, "lr": 2e-3, "lr_warmup_images": 0, "total_steps": 3, "checkpoint_every_steps": 3,
    "log_every_steps": 1, "grid_images": 0,
}  # fmt: skip


def write_tiny_shards(folder: Path) -> None:
    """train.h5 (8 images) and val.h5 (2) of one Σ channel and two photometry channels, 16² pixels."""
    rng = np.random.default_rng(3)
    target = rng.lognormal(20.0, 1.0, size=(10, 1, 16, 16))
    cond = rng.lognormal(-18.0, 1.0, size=(10, 2, 16, 16))
    channels = ["sigma_total", "F606W", "F814W"]
    norm = Normalisation.fit(np.concatenate([target[:8], cond[:8]], axis=1), channels)
    for split, rows in (("train", slice(0, 8)), ("val", slice(8, 10))):
        n = len(target[rows])
        write_shard(
            folder / f"{split}.h5",
            target=target[rows],
            condition=cond[rows],
            target_channels=channels[:1],
            condition_channels=channels[1:],
            target_units="Msun kpc^-2",
            condition_units=["Jy", "Jy"],
            cluster_id=[f"c{i // 2}" for i in range(n)],
            view=[i % 2 for i in range(n)],
            normalisation=norm,
        )


def test_two_gpu_training_job_runs_torchrun_under_slurm(tmp_path: Path, slurm_cluster: None) -> None:
    """A job asking for 2 GPUs gets both from SLURM; the train_prior adapter launches torchrun with 2 ranks,
    and the model equals the one trained in one process."""
    dataset = tmp_path / "results" / "datasets" / "tiny"
    dataset.mkdir(parents=True)
    write_tiny_shards(dataset)
    configfile = tmp_path / "training.yaml"
    configfile.write_text(yaml.safe_dump({"training": TINY_TRAINING}))
    log = run_snakemake(
        ["results/models/tiny/prior/model.pt", "--snakefile", str(SLURM_DIR / "Snakefile"),
         "--configfile", str(configfile)],
        tmp_path,
        timeout_s=240,
    )  # fmt: skip
    jobs = submitted_jobs(log)
    assert len(jobs) == 1, log[-4000:]
    (job_id,) = jobs
    info = scontrol_job(job_id)
    assert info["JobState"] == "COMPLETED", info
    assert info["Partition"] == "gpu", info
    assert "gpu:2" in info.get("TresPerJob", ""), info
    job_log = (tmp_path / "logs" / "ddp_train.log").read_text()
    assert "launching 2 ranks" in job_log, job_log[-3000:]
    assert "parameters, 2 ranks" in job_log, job_log[-3000:]
    single = train_prior(dataset, tmp_path / "single", train_cfg=TINY_TRAINING, seed=11, device="cpu")
    a = torch.load(single, weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "results/models/tiny/prior/model.pt", weights_only=True)["state_dict"]
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=1e-4, atol=1e-6, msg=key)
