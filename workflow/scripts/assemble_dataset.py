from darkclusters.datasets import assemble_dataset
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
p = snakemake.params
assemble_dataset(
    name=snakemake.wildcards.dataset,
    spec=p.spec,
    catalog_paths=p.catalogs,
    out_dir=snakemake.output.train.rsplit("/", 1)[0],
    seed=p.seed,
)
