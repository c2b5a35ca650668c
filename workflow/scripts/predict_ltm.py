from darkclusters.baselines.predictions import predict_ltm_file
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
predict_ltm_file(
    snakemake.input.observations,
    snakemake.input.calibration,
    snakemake.output.prediction,
    fov=snakemake.params.fov,
    ltm_cfg=snakemake.params.ltm,
)
