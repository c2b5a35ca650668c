from darkclusters.logs import log_to_file
from darkclusters.simulations.catalog import write_catalog

log_to_file(snakemake.log[0])
p = snakemake.params
write_catalog(
    snakemake.wildcards.sim,
    p.sim_cfg,
    p.base_path,
    p.selection,
    seed=p.seed,
    out_path=snakemake.output.catalog,
)
