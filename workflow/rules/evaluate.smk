# Baselines and per-cluster scores (darkclusters.evaluation, .baselines); targets and input functions are in
# evaluate_common.smk. {method} of a score file: LTM, UNet, KS, Wiener or a posterior input combination written
# with '-'.


rule data_range:
    input:
        shard="results/datasets/{dataset}/train.h5",
    output:
        data_range="results/evaluation/{dataset}/data_range.json",
    log:
        "logs/evaluate/data_range/{dataset}.log",
    conda:
        "../../envs/darkclusters.yaml"
    script:
        "../scripts/data_range.py"


rule calibrate_ltm:
    input:
        unpack(training_pairs),
    output:
        calibration="results/baselines/LTM/{dataset}/calibration.json",
    log:
        "logs/baselines/calibrate_ltm/{dataset}.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        fov=lookup(within=config, dpath="datasets/{dataset}/fov"),
        ltm=lookup(within=config, dpath="evaluation/ltm"),
    script:
        "../scripts/calibrate_ltm.py"


rule predict_ltm:
    input:
        calibration="results/baselines/LTM/{dataset}/calibration.json",
        observations="results/observations/{sim}/{snap}/{halo}.h5",
    output:
        prediction="results/baselines/LTM/{dataset}/{sim}/{snap}/{halo}.h5",
    log:
        "logs/baselines/LTM/{dataset}/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        fov=lookup(within=config, dpath="datasets/{dataset}/fov"),
        ltm=lookup(within=config, dpath="evaluation/ltm"),
    script:
        "../scripts/predict_ltm.py"


rule predict_unet:
    input:
        model="results/models/{dataset}/unet/model.pt",
        maps="results/maps/{sim}/{snap}/{halo}.h5",
        observations="results/observations/{sim}/{snap}/{halo}.h5",
    output:
        prediction="results/baselines/UNet/{dataset}/{sim}/{snap}/{halo}.h5",
    log:
        "logs/baselines/UNet/{dataset}/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        fov=lookup(within=config, dpath="datasets/{dataset}/fov"),
    script:
        "../scripts/predict_unet.py"


rule calibrate_mass_mapping:
    input:
        unpack(training_pairs),
    output:
        calibration="results/baselines/mass_mapping/{dataset}/calibration.json",
    log:
        "logs/baselines/calibrate_mass_mapping/{dataset}.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        fov=lookup(within=config, dpath="datasets/{dataset}/fov"),
        z_ref=lookup(within=config, dpath="lensing/z_ref"),
        mass_mapping=lookup(within=config, dpath="evaluation/mass_mapping"),
    script:
        "../scripts/calibrate_mass_mapping.py"


rule predict_ks:
    input:
        calibration="results/baselines/mass_mapping/{dataset}/calibration.json",
        observations="results/observations/{sim}/{snap}/{halo}.h5",
    output:
        prediction="results/baselines/KS/{dataset}/{sim}/{snap}/{halo}.h5",
    log:
        "logs/baselines/KS/{dataset}/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        method="KS",
        fov=lookup(within=config, dpath="datasets/{dataset}/fov"),
        weak_regime=lookup(within=config, dpath="reconstruction/weak_regime"),
        z_ref=lookup(within=config, dpath="lensing/z_ref"),
        mass_mapping=lookup(within=config, dpath="evaluation/mass_mapping"),
    script:
        "../scripts/predict_mass_map.py"


rule predict_wiener:
    input:
        calibration="results/baselines/mass_mapping/{dataset}/calibration.json",
        observations="results/observations/{sim}/{snap}/{halo}.h5",
    output:
        prediction="results/baselines/Wiener/{dataset}/{sim}/{snap}/{halo}.h5",
    log:
        "logs/baselines/Wiener/{dataset}/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        method="Wiener",
        fov=lookup(within=config, dpath="datasets/{dataset}/fov"),
        weak_regime=lookup(within=config, dpath="reconstruction/weak_regime"),
        z_ref=lookup(within=config, dpath="lensing/z_ref"),
        mass_mapping=lookup(within=config, dpath="evaluation/mass_mapping"),
    script:
        "../scripts/predict_mass_map.py"


rule evaluate_cluster:
    input:
        prediction=prediction_file,
        maps="results/maps/{sim}/{snap}/{halo}.h5",
        observations="results/observations/{sim}/{snap}/{halo}.h5",
        data_range="results/evaluation/{dataset}/data_range.json",
    output:
        scores="results/metrics/{method}/{dataset}/{sim}/{snap}/{halo}.parquet",
    log:
        "logs/evaluate/{method}/{dataset}/{sim}/{snap}/{halo}.log",
    wildcard_constraints:
        method="LTM|UNet|KS|Wiener|P(-SL)?(-WL)?",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        fov=lookup(within=config, dpath="datasets/{dataset}/fov"),
        evaluation=lookup(within=config, dpath="evaluation"),
    script:
        "../scripts/evaluate_cluster.py"


rule sample_conditional:
    input:
        model="results/models/{dataset}/prior/model.pt",
        maps="results/maps/{sim}/{snap}/{halo}.h5",
        observations="results/observations/{sim}/{snap}/{halo}.h5",
    output:
        samples="results/conditional/{dataset}/{sim}/{snap}/{halo}.h5",
    log:
        "logs/conditional/{dataset}/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        fov=lookup(within=config, dpath="datasets/{dataset}/fov"),
        sampling=lookup(within=config, dpath="evaluation/sz_xray"),
        seed=lambda wildcards: cluster_seed(wildcards, f"conditional/{wildcards.dataset}"),
    script:
        "../scripts/sample_conditional.py"


rule evaluate_conditional:
    input:
        samples="results/conditional/{dataset}/{sim}/{snap}/{halo}.h5",
        maps="results/maps/{sim}/{snap}/{halo}.h5",
    output:
        scores="results/metrics/conditional/{dataset}/{sim}/{snap}/{halo}.parquet",
    log:
        "logs/evaluate/conditional/{dataset}/{sim}/{snap}/{halo}.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        evaluation=lookup(within=config, dpath="evaluation"),
    script:
        "../scripts/evaluate_conditional.py"
