# Dataset shards per split (the unit of training) and the models trained on them (GPU jobs; with
# training.gpus_per_job > 1 a job runs torchrun with one DDP rank per GPU).


rule assemble_dataset:
    input:
        unpack(dataset_inputs),
    output:
        train="results/datasets/{dataset}/train.h5",
        val="results/datasets/{dataset}/val.h5",
        test="results/datasets/{dataset}/test.h5",
    log:
        "logs/dataset/{dataset}.log",
    conda:
        "../../envs/darkclusters.yaml"
    resources:
        mem_mb=assembly_mem_mb,
        runtime=120,
    params:
        spec=lookup(within=config, dpath="datasets/{dataset}"),
        catalogs=lambda wildcards: dataset_catalogs(wildcards.dataset),
        seed=lookup(within=config, dpath="seed"),
    script:
        "../scripts/assemble_dataset.py"


rule train_prior:
    input:
        train="results/datasets/{dataset}/train.h5",
        val="results/datasets/{dataset}/val.h5",
    output:
        model="results/models/{dataset}/prior/model.pt",
    log:
        "logs/train_prior/{dataset}.log",
    conda:
        "../../envs/darkclusters.yaml"
    threads: 2
    resources:
        gpu=lambda wildcards: config["training"]["gpus_per_job"],  # > 1: torchrun, one DDP rank per GPU
        mem_mb=lambda wildcards, attempt: 32000 * attempt,  # host memory; a retry after an OOM kill asks more
        runtime=2880,
    params:
        training=lookup(within=config, dpath="training"),
        seed=lambda wildcards: derive_seed(config["seed"], "train_prior", wildcards.dataset),
    script:
        "../scripts/train_prior.py"


rule train_unet:
    input:
        train="results/datasets/{dataset}/train.h5",
        val="results/datasets/{dataset}/val.h5",
    output:
        model="results/models/{dataset}/unet/model.pt",
    log:
        "logs/train_unet/{dataset}.log",
    conda:
        "../../envs/darkclusters.yaml"
    threads: 2
    resources:
        gpu=lambda wildcards: config["training"]["gpus_per_job"],
        mem_mb=lambda wildcards, attempt: 32000 * attempt,
        runtime=1440,
    params:
        training=lookup(within=config, dpath="training"),
        seed=lambda wildcards: derive_seed(config["seed"], "train_unet", wildcards.dataset),
    script:
        "../scripts/train_unet.py"
