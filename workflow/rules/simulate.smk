# Synthetic simulations written in the real TNG / SIMBA on-disk formats (config: simulations.<name>.synthetic).


rule synthesize_simulation:
    output:
        sim=directory("results/simulations/{sim}"),
    log:
        "logs/simulate/{sim}.log",
    conda:
        "../../envs/darkclusters.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,  # a retry (profile `retries`) asks for more
        runtime=60,
    params:
        sim_cfg=lookup(within=config, dpath="simulations/{sim}"),
        seed=lookup(within=config, dpath="seed"),
    script:
        "../scripts/synthesize_simulation.py"
