from darkclusters.evaluation.conditional import sample_prior_file
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
sample_prior_file(
    model_pt=snakemake.input.model,
    maps_path=snakemake.input.maps,
    obs_path=snakemake.input.observations,
    out_path=snakemake.output.samples,
    fov=p.fov,
    n_samples=p.sampling["n_samples"],
    steps=p.sampling["steps"],
    seed=p.seed,
)
