import json
from pathlib import Path

from darkclusters.evaluation.cluster import evaluate_prediction
from darkclusters.io import provenance, write_parquet
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
ev = snakemake.params.evaluation
method = snakemake.wildcards.method
scores = evaluate_prediction(
    prediction_path=snakemake.input.prediction,
    maps_path=snakemake.input.maps,
    obs_path=snakemake.input.observations,
    method=method.replace("-", "+") if method.startswith("P") else method,
    fov=snakemake.params.fov,
    data_range=json.loads(Path(snakemake.input.data_range).read_text())["data_range"],
    heldout=ev["heldout"],
    k_split_hmpc=ev["k_split_hmpc"],
    rmse_sigma_bins=ev["rmse_sigma_bins"],
)
write_parquet(
    scores, snakemake.output.scores, metadata=provenance(cfg=ev, seed=None, inputs=list(snakemake.input))
)
