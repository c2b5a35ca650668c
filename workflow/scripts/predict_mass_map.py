from darkclusters.baselines.shear_inversion import predict_mass_map_file
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
predict_mass_map_file(
    snakemake.input.observations,
    snakemake.input.calibration,
    snakemake.output.prediction,
    method=snakemake.params.method,
    fov=snakemake.params.fov,
    weak_regime=snakemake.params.weak_regime,
    z_ref=snakemake.params.z_ref,
    mm_cfg=snakemake.params.mass_mapping,
)
