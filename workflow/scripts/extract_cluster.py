from darkclusters.logs import log_to_file
from darkclusters.simulations.extract import extract_cluster_file

log_to_file(snakemake.log[0])
p, w = snakemake.params, snakemake.wildcards
extract_cluster_file(
    sim_cfg=p.sim_cfg,
    base_path=p.base_path,
    extraction=p.extraction,
    catalog_path=snakemake.input.catalog,
    snap=int(w.snap),
    halo_id=int(w.halo),
    out_path=snakemake.output.particles,
)
