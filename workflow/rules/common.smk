# Helpers shared by every stage: config validation, wildcard constraints, targets and input functions.
import pandas as pd

from darkclusters.config import simulation_base_path, validate_config
from darkclusters.seeding import derive_seed

validate_config(config)  # fills defaults; a wrong type or unknown key stops here, naming the key path


wildcard_constraints:
    sim="[A-Za-z0-9][A-Za-z0-9_-]*",
    snap=r"\d{3}",
    halo=r"\d+",


def is_synthetic(sim):
    return config["simulations"][sim]["synthetic"] is not None


def base_path_of(wildcards):
    """Where the simulation's files are (the TNG basePath or the SIMBA folder)."""
    return simulation_base_path(config, wildcards.sim)


def simulation_files(wildcards):
    """A synthetic simulation is built by a rule; real data are read in place (checked by the loaders)."""
    if is_synthetic(wildcards.sim):
        return rules.synthesize_simulation.output.sim.format(sim=wildcards.sim)
    return []


def selected_clusters(sim):
    """(snapshot, halo id) of every cluster the selection checkpoint chose for ``sim``."""
    catalog = pd.read_parquet(checkpoints.select_clusters.get(sim=sim).output.catalog)
    return list(zip(catalog["snapshot"].astype(int), catalog["halo_id"].astype(int)))


def per_cluster(pattern):
    """An input function: ``pattern`` (with {sim}, {snap}, {halo}) for every selected cluster of every simulation."""

    def files(wildcards):
        return [
            pattern.format(sim=sim, snap=f"{snap:03d}", halo=halo)
            for sim in config["simulations"]
            for snap, halo in selected_clusters(sim)
        ]

    return files


def catalog_files():
    return expand("results/catalog/{sim}.parquet", sim=list(config["simulations"]))


def cluster_seed(wildcards, stage):
    """The seed of one stage of one cluster: the config seed combined with the cluster's ids and the stage."""
    return derive_seed(config["seed"], wildcards.sim, int(wildcards.snap), int(wildcards.halo), stage)


def dataset_catalogs(dataset):
    """{sim: catalog path} of a dataset's simulations."""
    return {sim: f"results/catalog/{sim}.parquet" for sim in config["datasets"][dataset]["simulations"]}


def dataset_inputs(wildcards):
    """Catalogs, truth maps and observations of every cluster (and snapshot) a dataset uses."""
    spec = config["datasets"][wildcards.dataset]
    files = {"catalogs": list(dataset_catalogs(wildcards.dataset).values()), "maps": [], "observations": []}
    for sim in spec["simulations"]:
        for snap, halo in selected_clusters(sim):
            if spec["snapshots"] is None or snap in spec["snapshots"]:
                files["maps"].append(f"results/maps/{sim}/{snap:03d}/{halo}.h5")
                files["observations"].append(f"results/observations/{sim}/{snap:03d}/{halo}.h5")
    return files


def assembly_mem_mb(wildcards, input, attempt):
    """Memory of assemble_dataset [MB]: it streams one cluster at a time (3 copies of its views × channels ×
    npix² float32) and fits the normalisation on a sample of 256 images in float64 (2 copies), plus ~1 GB for
    the interpreter and libraries, at least 4 GB; × attempt after an out-of-memory kill. Independent of the
    number of clusters (measured: benchmarks/assemble.py; docs/scaling.md).
    """
    spec = config["datasets"][wildcards.dataset]
    fov = {f["name"]: f for f in config["projection"]["fields_of_view"]}[spec["fov"]]
    channels = len(spec["target"]) + len(spec["condition"])
    pixels = channels * fov["npix"] ** 2
    cluster = 3 * config["projection"]["n_views"] * pixels * 4
    return attempt * max(4000, 1000 + int((cluster + 2 * 256 * pixels * 8) / 1e6))


def model_files():
    """Every model the config asks for: results/models/{dataset}/{prior,unet}/model.pt."""
    return [
        f"results/models/{name}/{model}/model.pt"
        for name, spec in config["datasets"].items()
        for model in spec["models"]
    ]


def test_clusters():
    """(sim, snap, halo) of every test-split cluster of every simulation and snapshot in the config: the paper
    trains at one redshift of one simulation and tests at every redshift and on the other simulation."""
    out = []
    for sim in config["simulations"]:
        catalog = pd.read_parquet(checkpoints.select_clusters.get(sim=sim).output.catalog)
        test = catalog[catalog["split"] == "test"]
        out += [
            (sim, f"{snap:03d}", halo)
            for snap, halo in zip(test["snapshot"].astype(int), test["halo_id"].astype(int))
        ]
    return out


def posterior_files(wildcards):
    """results/posteriors/{method}/{dataset}/{sim}/{snap}/{halo}.h5 for every reconstruction method and every
    test-split cluster of every simulation and snapshot (not only the reconstruction dataset's own ones)."""
    rc = config["reconstruction"]
    if rc["dataset"] not in config["datasets"]:  # no datasets configured: nothing to reconstruct
        return []
    return [
        f"results/posteriors/{m.replace('+', '-')}/{rc['dataset']}/{sim}/{snap}/{halo}.h5"
        for sim, snap, halo in test_clusters()
        for m in rc["methods"]
    ]
