# Targets and input functions of the evaluation stage (evaluate.smk, report.smk): the test clusters of every
# simulation and snapshot (common.smk: test_clusters), baselines, score files, tables, figures and the report.
from darkclusters.evaluation.collect import table_config

BASELINES = ("LTM", "UNet", "KS", "Wiener")


def recon_dataset():
    return config["reconstruction"]["dataset"]


def eval_methods():
    """Baselines, then posterior inputs ('-' spelling): the rows of the tables."""
    ev, rc = config["evaluation"], config["reconstruction"]
    models = config["datasets"].get(rc["dataset"], {}).get("models", [])
    baselines = [b for b in ev["baselines"] if b != "UNet" or "unet" in models]
    return baselines + [m.replace("+", "-") for m in rc["methods"]]


def conditional_dataset():
    """The dataset sampled for b(k)/r(k) (evaluation.sz_xray.dataset), or None when absent/not trained."""
    name = config["evaluation"]["sz_xray"]["dataset"]
    if name is None or name not in config["datasets"] or "prior" not in config["datasets"][name]["models"]:
        return None
    return name


def dataset_test_clusters(dataset):
    """(sim, snap, halo) of the test clusters of one dataset's own simulations and snapshots."""
    spec = config["datasets"][dataset]
    return [
        c
        for c in test_clusters()
        if c[0] in spec["simulations"] and (spec["snapshots"] is None or int(c[1]) in spec["snapshots"])
    ]


def example_cluster():
    """The test cluster drawn in the figures: the first one at the reconstruction dataset's own snapshots."""
    own = dataset_test_clusters(recon_dataset())
    return (own or test_clusters())[0]


def score_files(methods):
    return [
        f"results/metrics/{m}/{recon_dataset()}/{sim}/{snap}/{halo}.parquet"
        for m in methods
        for sim, snap, halo in test_clusters()
    ]


def posterior_methods():
    return [m for m in eval_methods() if m not in BASELINES]


def posterior_tarp_groups():
    """[method ('+' spelling), simulation label, [[posterior, maps, observations], ...]] per method and
    simulation, for the TARP column of the calibration table (posteriors need reconstruction.save_samples)."""
    labels = {"tng": "TNG", "simba": "SIMBA"}
    groups = {}
    for m in posterior_methods():
        for sim, snap, halo in test_clusters():
            key = (m.replace("-", "+"), labels[config["simulations"][sim]["format"]])
            groups.setdefault(key, []).append(
                [
                    f"results/posteriors/{m}/{recon_dataset()}/{sim}/{snap}/{halo}.h5",
                    f"results/maps/{sim}/{snap}/{halo}.h5",
                    f"results/observations/{sim}/{snap}/{halo}.h5",
                ]
            )
    return [[method, label, triples] for (method, label), triples in groups.items()]


def conditional_files(kind):
    ds = conditional_dataset()
    if ds is None:
        return []
    if kind == "samples":
        return [
            f"results/conditional/{ds}/{sim}/{snap}/{halo}.h5"
            for sim, snap, halo in dataset_test_clusters(ds)
        ]
    return [
        f"results/metrics/conditional/{ds}/{sim}/{snap}/{halo}.parquet"
        for sim, snap, halo in dataset_test_clusters(ds)
    ]


def prediction_file(wildcards):
    if wildcards.method in BASELINES:
        return f"results/baselines/{wildcards.method}/{wildcards.dataset}/{wildcards.sim}/{wildcards.snap}/{wildcards.halo}.h5"
    return f"results/posteriors/{wildcards.method}/{wildcards.dataset}/{wildcards.sim}/{wildcards.snap}/{wildcards.halo}.h5"


def training_pairs(wildcards):
    """Truth maps and observations of the training clusters of a dataset (the LTM calibration set)."""
    spec = config["datasets"][wildcards.dataset]
    files = {"maps": [], "observations": []}
    for sim in spec["simulations"]:
        catalog = pd.read_parquet(checkpoints.select_clusters.get(sim=sim).output.catalog)
        train = catalog[catalog["split"] == "train"]
        for snap, halo in zip(train["snapshot"].astype(int), train["halo_id"].astype(int)):
            if spec["snapshots"] is None or snap in spec["snapshots"]:
                files["maps"].append(f"results/maps/{sim}/{snap:03d}/{halo}.h5")
                files["observations"].append(f"results/observations/{sim}/{snap:03d}/{halo}.h5")
    return files


TABLE_NAMES = ["methods", "ablation", "redshifts", "light_traces_mass", "calibration"]
FIGURE_NAMES = ["posterior", "calibration", "methods", "redshifts", "tarp"]


def table_names():
    return TABLE_NAMES + (["bias_correlation"] if conditional_dataset() else [])


def figure_names():
    return FIGURE_NAMES + (["spectra"] if conditional_dataset() else [])


def evaluation_targets():
    """Every table (CSV, Markdown, LaTeX), every figure (PNG, PDF) and the report."""
    if recon_dataset() not in config["datasets"]:
        return []
    tables = [f"results/tables/{n}.{ext}" for n in table_names() for ext in ("csv", "md", "tex")]
    figures = [f"results/figures/{n}.{ext}" for n in figure_names() for ext in ("png", "pdf")]
    return tables + figures + ["results/report.html"]


def example_files(wildcards):
    sim, snap, halo = example_cluster()
    ds = recon_dataset()
    methods = eval_methods()
    return {
        "maps": f"results/maps/{sim}/{snap}/{halo}.h5",
        "observations": f"results/observations/{sim}/{snap}/{halo}.h5",
        "predictions": [
            (
                f"results/baselines/{m}/{ds}/{sim}/{snap}/{halo}.h5"
                if m in BASELINES
                else f"results/posteriors/{m}/{ds}/{sim}/{snap}/{halo}.h5"
            )
            for m in methods
        ],
    }


def calibration_files(wildcards):
    ds = recon_dataset()
    own = dataset_test_clusters(ds)
    return {
        "posteriors": [
            f"results/posteriors/{m}/{ds}/{sim}/{snap}/{halo}.h5"
            for m in posterior_methods()
            for sim, snap, halo in own
        ],
        "maps": [f"results/maps/{sim}/{snap}/{halo}.h5" for sim, snap, halo in own],
        "observations": [f"results/observations/{sim}/{snap}/{halo}.h5" for sim, snap, halo in own],
    }
