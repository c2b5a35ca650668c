# Posterior mass maps of the observed clusters: the trained prior of a dataset, optionally guided by lensing.
# {method} is an input combination written with '-' for '+' (P, P-SL, P-WL, P-SL-WL).


rule reconstruct:
    input:
        model="results/models/{dataset}/prior/model.pt",
        observations="results/observations/{sim}/{snap}/{halo}.h5",
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
        mem_mb=16000,
        runtime=240,
    params:
        reconstruction=lookup(within=config, dpath="reconstruction"),
        seed=lambda wildcards: cluster_seed(wildcards, f"reconstruct/{wildcards.method}"),
    script:
        "../scripts/reconstruct.py"
