from darkclusters.logs import log_to_file
from darkclusters.observations import assemble_observations

log_to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
assemble_observations(
    particles_path=i.particles,
    maps_path=i.maps,
    lensing_path=i.lensing,
    out_path=snakemake.output.observations,
    photometry_cfg=p.photometry,
    seed=p.seed,
)
