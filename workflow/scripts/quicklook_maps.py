from darkclusters.logs import log_to_file
from darkclusters.plots.quicklook import quicklook_maps

log_to_file(snakemake.log[0])
quicklook_maps(snakemake.input.maps, snakemake.output.png)
