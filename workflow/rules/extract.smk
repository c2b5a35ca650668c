# Cluster selection (a checkpoint: the job list depends on it) and per-cluster particle extraction.


checkpoint select_clusters:
    input:
        simulation_files,
    output:
        catalog="results/catalog/{sim}.parquet",
    log:
        "logs/select/{sim}.log",
    conda:
        "../../envs/darkclusters.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,  # group catalogs of a whole snapshot
        runtime=30,
    params:
        sim_cfg=lookup(within=config, dpath="simulations/{sim}"),
        base_path=base_path_of,
        selection=lookup(within=config, dpath="selection"),
        seed=lookup(within=config, dpath="seed"),
    script:
        "../scripts/select_clusters.py"


rule extract_cluster:
    input:
        simulation_files,
        catalog="results/catalog/{sim}.parquet",
    output:
        particles="results/particles/{sim}/{snap}/{halo}.h5",
    log:
        "logs/extract/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,  # a retry after an out-of-memory kill asks for more
        runtime=60,
    params:
        sim_cfg=lookup(within=config, dpath="simulations/{sim}"),
        base_path=base_path_of,
        extraction=lookup(within=config, dpath="extraction"),
    script:
        "../scripts/extract_cluster.py"
