# Posterior mass maps of the observed clusters: the trained prior of a dataset, optionally guided by lensing.
# {method} is an input combination written with '-' for '+' (P, P-SL, P-WL, P-SL-WL). Methods with a lensing
# likelihood read the sampler settings that tune_sampler chose on the validation split.
from darkclusters.tuning import tuning_file, validation_inputs


rule tune_sampler:
    input:
        unpack(
            lambda wildcards: validation_inputs(
                wildcards.dataset,
                {
                    sim: checkpoints.select_clusters.get(sim=sim).output.catalog
                    for sim in config["datasets"][wildcards.dataset]["simulations"]
                },
                config,
            )
        ),
    output:
        tuning="results/tuning/{dataset}/{method}.yaml",
    log:
        "logs/tune_sampler/{dataset}/{method}.log",
    wildcard_constraints:
        method="P(-SL-WL|-SL|-WL)",
    conda:
        "../../envs/darkclusters.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 16000 * 2 ** (attempt - 1),  # doubled on every retry
        runtime=240,
    params:
        reconstruction=lookup(within=config, dpath="reconstruction"),
        seed=lambda wildcards: derive_seed(
            config["seed"], "tune_sampler", wildcards.dataset, wildcards.method
        ),
    script:
        "../scripts/tune_sampler.py"


rule reconstruct:
    input:
        model="results/models/{dataset}/prior/model.pt",
        observations="results/observations/{sim}/{snap}/{halo}.h5",
        tuning=lambda wildcards: tuning_file(wildcards.dataset, wildcards.method, config),
    output:
        posterior="results/posteriors/{method}/{dataset}/{sim}/{snap}/{halo}.h5",
    log:
        "logs/reconstruct/{method}/{dataset}/{sim}/{snap}/{halo}.log",
    wildcard_constraints:
        method="P(-SL)?(-WL)?",
    conda:
        "../../envs/darkclusters.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 16000 * 2 ** (attempt - 1),  # doubled on every retry
        runtime=240,
    params:
        reconstruction=lookup(within=config, dpath="reconstruction"),
        seed=lambda wildcards: cluster_seed(wildcards, f"reconstruct/{wildcards.method}"),
    script:
        "../scripts/reconstruct.py"
