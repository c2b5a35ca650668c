from pathlib import Path

from darkclusters.diffusion.train import train_prior
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
# Checkpoints, metrics.csv and sample grids live beside model.pt but are not declared outputs, so that a job
# killed or failed midway resumes from its last checkpoint when rerun.
train_prior(
    Path(snakemake.input.train).parent, Path(snakemake.output.model).parent, train_cfg=p.training, seed=p.seed
)
