from darkclusters.baselines.predictions import predict_unet_file
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
predict_unet_file(
    snakemake.input.model,
    snakemake.input.maps,
    snakemake.input.observations,
    snakemake.output.prediction,
    fov=snakemake.params.fov,
)
