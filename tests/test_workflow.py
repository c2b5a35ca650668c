"""The Snakemake DAG through the Snakemake API: default dry run, a tiny end-to-end run, a config error."""

from __future__ import annotations

import filecmp
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

from darkclusters.simulations.synthetic.universe import synthesize_simulation

from .conftest import ROOT, TINY_SYNTHETIC, tiny_config
from .test_report_render import CHROMEDRIVER, CHROMIUM, assert_renders


def run_workflow(
    workdir: Path, configfile: Path, *, dryrun: bool, targets: tuple[str, ...] = ("all",)
) -> None:
    with SnakemakeApi(OutputSettings(dryrun=dryrun, quiet={"all"} if dryrun else None)) as api:
        workflow = api.workflow(
            snakefile=ROOT / "Snakefile",
            workdir=workdir,
            config_settings=ConfigSettings(configfiles=[configfile]),
            resource_settings=ResourceSettings(cores=2),
        )
        dag = workflow.dag(DAGSettings(targets=targets))
        dag.execute_workflow(executor="dryrun" if dryrun else "local")


TINY_STAGES = {
    "projection": {"n_views": 2, "fields_of_view": [{"name": "fov225", "fov_arcsec": 225.0, "npix": 32}]},
    "lensing": {"z_ref": 2.0},
    "datasets": {"tiny": {"simulations": ["tng_tiny"], "fov": "fov225", "models": ["prior", "unet"]}},
    "reconstruction": {"dataset": "tiny", "n_samples": 2, "methods": ["P", "P+SL+WL"], "conditional_steps": 3,
                       "save_samples": True,
                       "daps": {"annealing_steps": 3, "ode_steps": 1, "langevin_steps": 2}},
    "training": {
        "network": {"backbone": "ddpmpp", "model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1,
                    "attn_resolutions": [8]},
        "batch_size": 2, "total_steps": 3, "checkpoint_every_steps": 2, "log_every_steps": 1,
        "grid_images": 1, "grid_sampler_steps": 2, "unet_baseline": {"batch_size": 2, "total_steps": 2},
    },
}  # fmt: skip


def tiny_configfile(path: Path) -> Path:
    cfg = {
        "seed": 11,
        "simulations": {
            "tng_tiny": {"format": "tng", "snapshots": [84, 67], "synthetic": dict(TINY_SYNTHETIC)},
            "simba_tiny": {
                "format": "simba",
                "snapshots": [125],
                "synthetic": {**TINY_SYNTHETIC, "n_clusters": 2, "redshifts": {"125": 0.49}},
            },
        },
        **TINY_STAGES,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_default_config_dry_run(tmp_path: Path) -> None:
    run_workflow(tmp_path, ROOT / "config" / "config.yaml", dryrun=True)


def test_tiny_dag_end_to_end(tmp_path: Path) -> None:
    configfile = tiny_configfile(tmp_path / "tiny.yaml")
    run_workflow(tmp_path, configfile, dryrun=False)
    n_files = 0
    for sim in ("tng_tiny", "simba_tiny"):
        catalog = pd.read_parquet(tmp_path / "results" / "catalog" / f"{sim}.parquet")
        assert len(catalog) > 0
        for snap, halo in zip(catalog["snapshot"], catalog["halo_id"], strict=True):
            path = tmp_path / "results" / "particles" / sim / f"{snap:03d}" / f"{halo}.h5"
            with h5py.File(path) as f:
                assert f.attrs["sim"] == sim
                assert int(f.attrs["halo_id"]) == halo
                assert f["dm/mass_msun"].shape[0] > 0
            n_files += 1
        assert (tmp_path / "logs" / "select" / f"{sim}.log").exists()
    assert n_files >= 5
    with h5py.File(tmp_path / "results" / "observations" / "tng_tiny" / "084" / "0.h5") as f:
        assert f["photometry/fov225/images"].shape == (2, 3, 32, 32)
        assert "x_arcsec" in f["lensing/fov225/view_000/weak_conventional"]
    with h5py.File(tmp_path / "results" / "maps" / "tng_tiny" / "084" / "0.h5") as f:
        assert f["fov225/sigma"].shape[:2] == (2, 5)
    for model in ("prior", "unet"):
        assert (tmp_path / "results" / "models" / "tiny" / model / "model.pt").stat().st_size > 0
    posteriors = sorted((tmp_path / "results" / "posteriors").rglob("*.h5"))
    assert {p.relative_to(tmp_path / "results" / "posteriors").parts[0] for p in posteriors} == {
        "P",
        "P-SL-WL",
    }
    with h5py.File(posteriors[0]) as f:
        assert f["mean"].shape == (2, 32, 32)
        assert f["std"].attrs["units"].startswith("Msun")
    assert (tmp_path / "results" / "quicklook" / "observations" / "tng_tiny" / "084" / "0.png").is_file()
    tables = tmp_path / "results" / "tables"
    methods = pd.read_csv(tables / "methods.csv", index_col=0)
    assert {"LTM", "UNet", "KS", "Wiener", "P", "P+SL+WL"} <= set(methods.index)
    assert methods.filter(like="PCC").notna().any().any()
    assert methods.filter(like="PCC").stack().between(-1, 1).all()
    for name in ("ablation", "redshifts", "light_traces_mass", "calibration"):
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    assert "tabular" in (tables / "methods.tex").read_text()
    tarp = pd.read_csv(tables / "calibration.csv").set_index("method").filter(like="TARP").iloc[:, 0]
    assert tarp.loc[["P+SL+WL"]].between(0, 1).all(), tarp  # pooled from the stored posterior samples
    for name in ("posterior", "calibration", "methods", "redshifts", "tarp"):
        assert (tmp_path / "results" / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / "results" / "figures" / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    html = (tmp_path / "results" / "report.html").read_text()
    assert len(html) > 10_000
    assert "synthetic data" in html.lower()
    if CHROMIUM and CHROMEDRIVER:
        assert_renders(tmp_path / "results" / "report.html", tmp_path)
    leftovers = list((tmp_path / "results").rglob(".*tmp*"))
    assert leftovers == []


def test_misspelt_key_stops_the_run(tmp_path: Path) -> None:
    configfile = tiny_configfile(tmp_path / "tiny.yaml")
    cfg = yaml.safe_load(configfile.read_text())
    cfg["selection"] = {"m200c_min_mass": 1.0e14}
    configfile.write_text(yaml.safe_dump(cfg))
    with pytest.raises(Exception, match=r"m200c_min_mass"):
        run_workflow(tmp_path, configfile, dryrun=True)


def test_same_config_gives_identical_files(tmp_path: Path) -> None:
    cfg = tiny_config()
    for name in ("simba_tiny", "tng_tiny"):
        for run in ("a", "b"):
            synthesize_simulation(
                name, cfg["simulations"][name], seed=cfg["seed"], out_dir=tmp_path / run / name
            )
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) >= 12
    for rel in files:
        assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
