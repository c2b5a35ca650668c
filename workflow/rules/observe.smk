# Mock observations per cluster: strong and weak lensing from the truth maps, then HST-like images with arcs.


rule observe_lensing:
    input:
        maps="results/maps/{sim}/{snap}/{halo}.h5",
    output:
        lensing="results/lensing/{sim}/{snap}/{halo}.h5",
    log:
        "logs/observe_lensing/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=60,
    params:
        lensing=lookup(within=config, dpath="lensing"),
        seed=lambda wildcards: cluster_seed(wildcards, "lensing"),
    script:
        "../scripts/observe_lensing.py"


rule observe_photometry:
    input:
        particles="results/particles/{sim}/{snap}/{halo}.h5",
        maps="results/maps/{sim}/{snap}/{halo}.h5",
        lensing="results/lensing/{sim}/{snap}/{halo}.h5",
    output:
        observations="results/observations/{sim}/{snap}/{halo}.h5",
    log:
        "logs/observe_photometry/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=60,
    params:
        photometry=lookup(within=config, dpath="photometry"),
        seed=lambda wildcards: cluster_seed(wildcards, "photometry"),
    script:
        "../scripts/observe_photometry.py"


rule quicklook_observations:
    input:
        observations="results/observations/{sim}/{snap}/{halo}.h5",
        maps="results/maps/{sim}/{snap}/{halo}.h5",
    output:
        png="results/quicklook/observations/{sim}/{snap}/{halo}.png",
    log:
        "logs/quicklook/observations/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=10,
    script:
        "../scripts/quicklook_observations.py"
