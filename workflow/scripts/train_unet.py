from pathlib import Path

from darkclusters.diffusion.launch import launch_training
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
# More than one GPU (the rule's `gpu` resource): torchrun, one DDP rank per GPU; else in this process.
launch_training(
    "unet",
    Path(snakemake.input.train).parent,
    Path(snakemake.output.model).parent,
    train_cfg=p.training,
    seed=p.seed,
    gpus=snakemake.resources.gpu,
)
