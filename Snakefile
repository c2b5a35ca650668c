# darkclusters: galaxy-cluster mass maps from simulation snapshots to published tables.
# The embedded default (config/config.yaml) runs on a laptop CPU; see README.md for real data and SLURM.
from snakemake.utils import min_version

min_version("9.19")


report: "workflow/report/workflow.rst"


# The embedded default is loaded only when no --configfile is given: a config passed on the command line (e.g.
# config/paper.yaml) is complete on its own (schema defaults fill the rest) and is not deep-merged over the
# default's synthetic simulations and datasets. `--config key=value` still applies on top of either.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/project.smk"
include: "workflow/rules/observe.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/reconstruct.smk"
include: "workflow/rules/evaluate_common.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    particles,
    observations,
    report,


# Named stages, so that a run can stop after one: `snakemake particles`, `snakemake observations`.
rule particles:
    input:
        catalogs=catalog_files(),
        particles=per_cluster("results/particles/{sim}/{snap}/{halo}.h5"),


rule observations:
    input:
        maps=per_cluster("results/maps/{sim}/{snap}/{halo}.h5"),
        observations=per_cluster("results/observations/{sim}/{snap}/{halo}.h5"),
        quicklook_maps=per_cluster("results/quicklook/maps/{sim}/{snap}/{halo}.png"),
        quicklook_observations=per_cluster("results/quicklook/observations/{sim}/{snap}/{halo}.png"),


rule all:
    default_target: True
    input:
        catalogs=catalog_files(),
        particles=per_cluster("results/particles/{sim}/{snap}/{halo}.h5"),
        maps=per_cluster("results/maps/{sim}/{snap}/{halo}.h5"),
        observations=per_cluster("results/observations/{sim}/{snap}/{halo}.h5"),
        quicklook_maps=per_cluster("results/quicklook/maps/{sim}/{snap}/{halo}.png"),
        quicklook_observations=per_cluster("results/quicklook/observations/{sim}/{snap}/{halo}.png"),
        models=model_files(),
        posteriors=posterior_files,
        evaluation=lambda wildcards: evaluation_targets(),
