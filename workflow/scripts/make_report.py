import os

from darkclusters.evaluation.report import build_report

build_report(
    snakemake.output.html,
    snakefile=snakemake.params.snakefile,
    workdir=os.getcwd(),
    config=snakemake.config,
    targets=list(snakemake.input.tables) + list(snakemake.input.figures),
    log=snakemake.log[0],
)
