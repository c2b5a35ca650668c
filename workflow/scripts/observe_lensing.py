from darkclusters.lensing.observe import observe_lensing_file
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
observe_lensing_file(snakemake.input.maps, snakemake.output.lensing, lensing_cfg=p.lensing, seed=p.seed)
