from darkclusters.logs import log_to_file
from darkclusters.plots.quicklook import quicklook_observations

log_to_file(snakemake.log[0])
quicklook_observations(snakemake.input.observations, snakemake.input.maps, snakemake.output.png)
