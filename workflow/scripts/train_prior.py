from pathlib import Path

from darkclusters.diffusion.launch import launch_training
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
# Checkpoints, metrics.csv and sample grids live beside model.pt but are not declared outputs, so that a job
# killed or failed midway resumes from its last checkpoint when rerun. More than one GPU (the rule's `gpu`
# resource): torchrun, one DDP rank per GPU; else in this process.
launch_training(
    "prior",
    Path(snakemake.input.train).parent,
    Path(snakemake.output.model).parent,
    train_cfg=p.training,
    seed=p.seed,
    gpus=snakemake.resources.gpu,
)
