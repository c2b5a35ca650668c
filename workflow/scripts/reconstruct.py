from darkclusters.logs import log_to_file
from darkclusters.reconstruct import inputs_from_path, reconstruct_cluster_file

log_to_file(snakemake.log[0])
p = snakemake.params
tuning = snakemake.input.get("tuning")  # absent (an empty list) for P or with tuning disabled
reconstruct_cluster_file(
    model_pt=snakemake.input.model,
    observations_path=snakemake.input.observations,
    out_path=snakemake.output.posterior,
    inputs=inputs_from_path(snakemake.wildcards.method),
    fov=p.reconstruction["fov"],
    weak_regime=p.reconstruction["weak_regime"],
    recon_cfg=p.reconstruction,
    seed=p.seed,
    tuning_path=str(tuning) if tuning else None,
)
