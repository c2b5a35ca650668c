from darkclusters.logs import log_to_file
from darkclusters.reconstruct import inputs_from_path
from darkclusters.tuning import clusters_from_paths, tune_sampler

log_to_file(snakemake.log[0])
tune_sampler(
    model_pt=snakemake.input.model,
    clusters=clusters_from_paths(snakemake.input.maps, snakemake.input.observations),
    out_path=snakemake.output.tuning,
    dataset=snakemake.wildcards.dataset,
    inputs=inputs_from_path(snakemake.wildcards.method),
    recon_cfg=snakemake.params.reconstruction,
    seed=snakemake.params.seed,
)
