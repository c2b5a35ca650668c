from darkclusters.logs import log_to_file
from darkclusters.plots.figures import make_named_figure

log_to_file(snakemake.log[0])
make_named_figure(
    snakemake.params.figure,
    inputs=dict(snakemake.input.items()),
    png=snakemake.output.png,
    pdf=snakemake.output.pdf,
    params=dict(snakemake.params.items()),
)
