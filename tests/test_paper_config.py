"""config/paper.yaml plans the paper-scale DAG on a stand-in with the real TNG300-1 and SIMBA file layout.

A tiny synthetic TNG300-1 (``output/snapdir_084/snap_084.{i}.hdf5``, ``output/groups_084/
fof_subhalo_tab_084.{i}.hdf5``, ``postprocessing/offsets/offsets_084.hdf5``) and SIMBA (``snapshot_file`` /
``caesar_file`` of paper.yaml) are written by the synthetic writers; a site overlay points paper.yaml's base
paths at them, exactly as a user's ``--configfile config/paper.yaml site.yaml`` would. The checks: the dry run
plans the selection checkpoint of both simulations and nothing of the embedded default (no synthetic
simulation leaks in); after the real selection ran on the stand-in, the dry run plans one extraction,
projection and observation per selected cluster and snapshot, the paper's datasets and models, and a
reconstruction per method and test cluster.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from darkclusters.config import validate_config
from darkclusters.simulations.synthetic.universe import synthesize_simulation

from .conftest import ROOT, TINY_SYNTHETIC

PAPER = ROOT / "config" / "paper.yaml"
TNG, SIMBA = "TNG300-1", "SIMBA-m100n1024"
JOB_ROW = re.compile(r"^(\w+)\s+(\d+)$")


def paper_config() -> dict[str, Any]:
    return yaml.safe_load(PAPER.read_text())


def snakemake(workdir: Path, *args: str, timeout_s: float = 240) -> str:
    """``snakemake ARGS --configfile config/paper.yaml site.yaml`` in ``workdir``: its output."""
    cmd = [
        *(sys.executable, "-m", "snakemake", *args),
        *("--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2"),
        *("--configfile", str(PAPER), str(workdir / "site.yaml")),  # last: --configfile swallows what follows
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=workdir)
    out = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"exit {done.returncode}: {' '.join(cmd)}\n{out[-6000:]}")
    return out


def planned_resources(out: str) -> dict[str, dict[str, str]]:
    """Rule → the resources of (the last of) its planned jobs, from the job blocks of a dry run."""
    found, rule = {}, None
    for line in out.splitlines():
        if m := re.match(r"^(?:rule|checkpoint) (\w+):$", line):
            rule = m[1]
        elif rule and line.strip().startswith("resources:"):
            found[rule] = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(", "))
    return found


def planned_jobs(out: str) -> Counter[str]:
    """Rule → job count from the "Job stats" table of a dry run."""
    table = out[out.index("Job stats:") :]
    return Counter({m[1]: int(m[2]) for line in table.splitlines() if (m := JOB_ROW.match(line.strip()))})


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory with the stand-in data under data/ and site.yaml pointing paper.yaml at them."""
    root = tmp_path_factory.mktemp("paper")
    paper = paper_config()
    sims = copy.deepcopy(paper["simulations"])
    for sim in sims.values():
        sim["base_path"] = None  # the writers' config: synthetic, written to out_dir below
    # clusters of >= 3e14 Msun at z = 0.2 stay above the 1e14 cut at z = 1 (mass growth): all snapshots count
    tng = {**TINY_SYNTHETIC, "n_clusters": 3, "n_field_halos": 1, "m200c_min_msun": 3.0e14}
    sims[TNG]["synthetic"] = tng
    sims[SIMBA]["synthetic"] = {
        **TINY_SYNTHETIC,
        "n_clusters": 1,
        "n_field_halos": 1,
        "redshifts": {"125": 0.49},
    }
    cfg = validate_config({"seed": 5, "simulations": sims})
    synthesize_simulation(TNG, cfg["simulations"][TNG], seed=5, out_dir=root / "data" / "TNG300-1")
    synthesize_simulation(SIMBA, cfg["simulations"][SIMBA], seed=5, out_dir=root / "data" / "m100n1024")
    site = {
        "simulations": {
            TNG: {"base_path": str(root / "data" / "TNG300-1" / "output")},
            SIMBA: {"base_path": str(root / "data" / "m100n1024")},
        },
        # three clusters cannot fill paper.yaml's 90/6/4 % split: one TNG300-1 cluster per split instead
        "selection": {"split_fractions": {"train": 0.34, "val": 0.33, "test": 0.33}},
    }
    (root / "site.yaml").write_text(yaml.safe_dump(site))
    # the embedded default where a user's checkout has it: it must NOT be merged under --configfile paper.yaml
    (root / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", root / "config" / "config.yaml")
    return root


def test_standin_has_the_real_directory_layout(standin: Path) -> None:
    tng, simba = standin / "data" / "TNG300-1", standin / "data" / "m100n1024"
    paper = paper_config()["simulations"][SIMBA]
    for snap in (84, 67, 50):
        assert (tng / "output" / f"snapdir_{snap:03d}" / f"snap_{snap:03d}.0.hdf5").is_file()
        assert (tng / "output" / f"snapdir_{snap:03d}" / f"snap_{snap:03d}.1.hdf5").is_file()
        assert (tng / "output" / f"groups_{snap:03d}" / f"fof_subhalo_tab_{snap:03d}.0.hdf5").is_file()
        assert (tng / "postprocessing" / "offsets" / f"offsets_{snap:03d}.hdf5").is_file()
    assert (simba / paper["snapshot_file"].format(snap=125)).is_file()
    assert (simba / paper["caesar_file"].format(snap=125)).is_file()


def test_paper_config_is_complete_and_validates() -> None:
    cfg = validate_config(paper_config())
    assert list(cfg["simulations"]) == [TNG, SIMBA]  # nothing synthetic
    assert all(sim["synthetic"] is None for sim in cfg["simulations"].values())
    assert cfg["projection"]["n_views"] == 25
    assert [(f["name"], f["npix"]) for f in cfg["projection"]["fields_of_view"]] == [
        ("fov225", 512),
        ("fov450", 512),
        ("fov12800kpc", 128),
    ]
    assert cfg["projection"]["fields_of_view"][2]["fov_kpc"] / 128 == 100.0  # Hsu et al.: 100 kpc pixels
    assert cfg["datasets"]["tng_photometry"]["snapshots"] == [84]  # training at one lens redshift
    assert cfg["training"]["network"]["backbone"] == "adm"
    daps = cfg["reconstruction"]["daps"]
    assert (cfg["reconstruction"]["n_samples"], daps["annealing_steps"], daps["ode_steps"]) == (20, 200, 5)
    assert daps["langevin_steps"] == 100


def test_paper_dry_run_plans_the_selection_and_nothing_of_the_default(standin: Path) -> None:
    out = snakemake(standin, "all", "-n")
    jobs = planned_jobs(out)
    assert jobs["select_clusters"] == 2, out[-3000:]  # one checkpoint per simulation
    assert "synthesize_simulation" not in jobs, out[-3000:]  # real data are read in place
    assert "tng_synth" not in out
    assert "simba_synth" not in out  # the embedded default's simulations do not leak in


def test_paper_dry_run_after_selection_plans_every_cluster(standin: Path) -> None:
    catalogs = [f"results/catalog/{sim}.parquet" for sim in (TNG, SIMBA)]
    snakemake(standin, *catalogs)  # the real selection checkpoint on the stand-in
    tng = pd.read_parquet(standin / catalogs[0])
    simba = pd.read_parquet(standin / catalogs[1])
    assert set(tng["snapshot"]) == {84, 67, 50}
    assert set(simba["snapshot"]) == {125}
    assert set(simba["split"]) == {"test"}  # the paper's SIMBA set is a test set only (paper.yaml override)
    assert (tng["split"] == "test").sum() == 3  # one cluster at three snapshots
    n_cluster_snaps = len(tng) + len(simba)
    test = pd.concat([tng, simba]).query("split == 'test'")
    # planned as a SLURM run with the shipped profile: every GPU rule on the gpu partition
    out = snakemake(standin, "all", "-n", "--profile", str(ROOT / "profiles" / "slurm"))
    jobs, resources = planned_jobs(out), planned_resources(out)
    assert "select_clusters" not in jobs
    for rule in ("extract_cluster", "project_cluster", "observe_photometry", "observe_lensing"):
        assert jobs[rule] == n_cluster_snaps, (rule, jobs)
    assert jobs["assemble_dataset"] == 3  # tng_photometry, sz_xray, stellar_dm
    assert jobs["train_prior"] == 3
    assert jobs["train_unet"] == 1  # the UNet baseline of the main paper only
    assert jobs["reconstruct"] == 4 * len(test)  # P, P+SL, P+WL, P+SL+WL per test cluster and snapshot
    for rule in ("predict_ltm", "predict_unet", "predict_ks", "predict_wiener"):
        assert jobs[rule] == len(test), (rule, jobs)
    assert jobs["calibrate_mass_mapping"] == 1  # the reconstruction dataset's S(k) and mass-sheet constant
    assert jobs["evaluate_cluster"] == 8 * len(test)  # 4 posteriors + LTM, UNet, KS, Wiener
    for rule, cpus in (("train_prior", "8"), ("train_unet", "8"), ("reconstruct", "4")):
        res = resources[rule]
        assert (res["gpu"], res["slurm_partition"], res["cpus_per_gpu"]) == ("1", "gpu", cpus), (rule, res)
    assert resources["extract_cluster"]["slurm_partition"] == "cpu"
    assert resources["extract_cluster"]["mem_mb"] == "8000"  # attempt 1; a retry asks for 16000
    assert resources["extract_cluster"]["runtime"] == "120"  # the profile's paper-scale time limit
