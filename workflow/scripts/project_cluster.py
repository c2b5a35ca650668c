from darkclusters.logs import log_to_file
from darkclusters.projection.maps import project_cluster_file

log_to_file(snakemake.log[0])
p = snakemake.params
project_cluster_file(
    snakemake.input.particles, snakemake.output.maps, projection_cfg=p.projection, seed=p.seed
)
