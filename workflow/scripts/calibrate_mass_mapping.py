from darkclusters.baselines.shear_inversion import calibrate_mass_mapping_files
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
calibrate_mass_mapping_files(
    list(zip(snakemake.input.maps, snakemake.input.observations, strict=True)),
    snakemake.output.calibration,
    fov=snakemake.params.fov,
    z_ref=snakemake.params.z_ref,
    mm_cfg=snakemake.params.mass_mapping,
)
