# darkclusters: galaxy-cluster mass maps from simulation snapshots to published tables.
# The embedded default (config/config.yaml) runs on a laptop CPU; see README.md for real data and SLURM.
from snakemake.utils import min_version

min_version("9.19")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/extract.smk"


rule all:
    default_target: True
    input:
        catalogs=catalog_files(),
        particles=per_cluster("results/particles/{sim}/{snap}/{halo}.h5"),
