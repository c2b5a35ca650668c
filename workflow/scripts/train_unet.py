from pathlib import Path

from darkclusters.diffusion.regression import train_unet_baseline
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
train_unet_baseline(
    Path(snakemake.input.train).parent, Path(snakemake.output.model).parent, train_cfg=p.training, seed=p.seed
)
