from darkclusters.evaluation.collect import write_named_table
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
write_named_table(
    p.name,
    scores=list(snakemake.input.scores),
    samples=list(snakemake.input.get("samples", [])),
    outputs=snakemake.output,
    tables=p.tables,
    seed=p.seed,
    posterior_groups=p.get("posterior_groups"),
    fov=p.get("fov"),
)
