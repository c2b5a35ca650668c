from darkclusters.evaluation.cluster import evaluate_conditional
from darkclusters.io import provenance, write_parquet
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
ev = snakemake.params.evaluation
scores = evaluate_conditional(
    samples_path=snakemake.input.samples,
    maps_path=snakemake.input.maps,
    method=f"{snakemake.wildcards.dataset} prior",
    mass_split_msun=ev["sz_xray"]["mass_split_msun"],
    k_split_hmpc=ev["k_split_hmpc"],
    rmse_sigma_bins=ev["rmse_sigma_bins"],
)
write_parquet(
    scores, snakemake.output.scores, metadata=provenance(cfg=ev, seed=None, inputs=list(snakemake.input))
)
