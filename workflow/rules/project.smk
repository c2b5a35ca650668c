# Truth maps per cluster: Σ (total, DM, gas, stars, BH), stellar mass, tSZ y and X-ray along many views.


rule project_cluster:
    input:
        particles="results/particles/{sim}/{snap}/{halo}.h5",
    output:
        maps="results/maps/{sim}/{snap}/{halo}.h5",
    log:
        "logs/project/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    threads: 2
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=60,
    params:
        projection=lookup(within=config, dpath="projection"),
        seed=lambda wildcards: cluster_seed(wildcards, "project"),
    script:
        "../scripts/project_cluster.py"


rule quicklook_maps:
    input:
        maps="results/maps/{sim}/{snap}/{halo}.h5",
    output:
        png="results/quicklook/maps/{sim}/{snap}/{halo}.png",
    log:
        "logs/quicklook/maps/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=10,
    script:
        "../scripts/quicklook_maps.py"
