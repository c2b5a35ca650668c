from darkclusters.baselines.predictions import calibrate_ltm_files
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
calibrate_ltm_files(
    list(zip(snakemake.input.maps, snakemake.input.observations, strict=True)),
    snakemake.output.calibration,
    fov=snakemake.params.fov,
    ltm_cfg=snakemake.params.ltm,
)
