# The paper's tables and figures, and the HTML report. One rule per table and per figure, so that rerunning one
# (snakemake --forcerun table_methods results/tables/methods.csv) rebuilds only it.
rule table_methods:
    input:
        scores=lambda wildcards: score_files(eval_methods()),
    output:
        csv=report(
            "results/tables/methods.csv",
            caption="../report/table_methods.rst",
            category="Tables",
        ),
        md="results/tables/methods.md",
        tex="results/tables/methods.tex",
    log:
        "logs/tables/methods.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        name="methods",
        tables=lambda wildcards: table_config(config),
        seed=lambda wildcards: derive_seed(config["seed"], "tarp", config["evaluation"]["tarp_seed_offset"]),
    script:
        "../scripts/make_table.py"


rule table_ablation:
    input:
        scores=lambda wildcards: score_files(posterior_methods()),
    output:
        csv=report(
            "results/tables/ablation.csv",
            caption="../report/table_ablation.rst",
            category="Tables",
        ),
        md="results/tables/ablation.md",
        tex="results/tables/ablation.tex",
    log:
        "logs/tables/ablation.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        name="ablation",
        tables=lambda wildcards: table_config(config),
        seed=lambda wildcards: derive_seed(config["seed"], "tarp", config["evaluation"]["tarp_seed_offset"]),
    script:
        "../scripts/make_table.py"


rule table_redshifts:
    input:
        scores=lambda wildcards: score_files(eval_methods()),
    output:
        csv=report(
            "results/tables/redshifts.csv",
            caption="../report/table_redshifts.rst",
            category="Tables",
        ),
        md="results/tables/redshifts.md",
        tex="results/tables/redshifts.tex",
    log:
        "logs/tables/redshifts.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        name="redshifts",
        tables=lambda wildcards: table_config(config),
        seed=lambda wildcards: derive_seed(config["seed"], "tarp", config["evaluation"]["tarp_seed_offset"]),
    script:
        "../scripts/make_table.py"


rule table_light_traces_mass:
    input:
        scores=lambda wildcards: score_files(["LTM"]),
    output:
        csv=report(
            "results/tables/light_traces_mass.csv",
            caption="../report/table_light_traces_mass.rst",
            category="Tables",
        ),
        md="results/tables/light_traces_mass.md",
        tex="results/tables/light_traces_mass.tex",
    log:
        "logs/tables/light_traces_mass.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        name="light_traces_mass",
        tables=lambda wildcards: table_config(config),
        seed=lambda wildcards: derive_seed(config["seed"], "tarp", config["evaluation"]["tarp_seed_offset"]),
    script:
        "../scripts/make_table.py"


rule table_bias_correlation:
    input:
        scores=lambda wildcards: conditional_files("scores"),
    output:
        csv=report(
            "results/tables/bias_correlation.csv",
            caption="../report/table_bias_correlation.rst",
            category="Tables",
        ),
        md="results/tables/bias_correlation.md",
        tex="results/tables/bias_correlation.tex",
    log:
        "logs/tables/bias_correlation.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        name="bias_correlation",
        tables=lambda wildcards: table_config(config),
        seed=lambda wildcards: derive_seed(config["seed"], "tarp", config["evaluation"]["tarp_seed_offset"]),
    script:
        "../scripts/make_table.py"


rule table_calibration:
    input:
        scores=lambda wildcards: score_files(posterior_methods()) + conditional_files("scores"),
        samples=lambda wildcards: conditional_files("samples"),
        posteriors=posterior_files,
    output:
        csv=report(
            "results/tables/calibration.csv",
            caption="../report/table_calibration.rst",
            category="Tables",
        ),
        md="results/tables/calibration.md",
        tex="results/tables/calibration.tex",
    log:
        "logs/tables/calibration.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        name="calibration",
        tables=lambda wildcards: table_config(config),
        posterior_groups=lambda wildcards: posterior_tarp_groups(),
        fov=lookup(within=config, dpath="reconstruction/fov"),
        seed=lambda wildcards: derive_seed(config["seed"], "tarp", config["evaluation"]["tarp_seed_offset"]),
    script:
        "../scripts/make_table.py"


rule figure_posterior:
    input:
        unpack(example_files),
    output:
        png=report(
            "results/figures/posterior.png", caption="../report/figure_posterior.rst", category="Figures"
        ),
        pdf="results/figures/posterior.pdf",
    log:
        "logs/figures/posterior.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        figure="posterior",
        methods=lambda wildcards: eval_methods(),
        fov=lambda wildcards: config["datasets"][recon_dataset()]["fov"],
        evaluation=lookup(within=config, dpath="evaluation"),
    script:
        "../scripts/make_figure.py"


rule figure_methods:
    input:
        unpack(example_files),
    output:
        png=report("results/figures/methods.png", caption="../report/figure_methods.rst", category="Figures"),
        pdf="results/figures/methods.pdf",
    log:
        "logs/figures/methods.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        figure="methods",
        methods=lambda wildcards: eval_methods(),
        fov=lambda wildcards: config["datasets"][recon_dataset()]["fov"],
        evaluation=lookup(within=config, dpath="evaluation"),
    script:
        "../scripts/make_figure.py"


rule figure_calibration:
    input:
        unpack(calibration_files),
    output:
        png=report(
            "results/figures/calibration.png", caption="../report/figure_calibration.rst", category="Figures"
        ),
        pdf="results/figures/calibration.pdf",
    log:
        "logs/figures/calibration.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        figure="calibration",
        methods=lambda wildcards: posterior_methods(),
        fov=lambda wildcards: config["datasets"][recon_dataset()]["fov"],
        evaluation=lookup(within=config, dpath="evaluation"),
    script:
        "../scripts/make_figure.py"


rule figure_redshifts:
    input:
        scores=lambda wildcards: score_files(eval_methods()),
    output:
        png=report(
            "results/figures/redshifts.png", caption="../report/figure_redshifts.rst", category="Figures"
        ),
        pdf="results/figures/redshifts.pdf",
    log:
        "logs/figures/redshifts.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        figure="redshifts",
        evaluation=lookup(within=config, dpath="evaluation"),
    script:
        "../scripts/make_figure.py"


rule figure_tarp:
    input:
        samples=lambda wildcards: conditional_files("samples"),
        posteriors=posterior_files,
    output:
        png=report("results/figures/tarp.png", caption="../report/figure_tarp.rst", category="Figures"),
        pdf="results/figures/tarp.pdf",
    log:
        "logs/figures/tarp.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        figure="tarp",
        methods=lambda wildcards: posterior_methods(),
        posterior_groups=lambda wildcards: posterior_tarp_groups(),
        fov=lookup(within=config, dpath="reconstruction/fov"),
        conditional=lambda wildcards: conditional_dataset(),
        seed=lambda wildcards: derive_seed(config["seed"], "tarp", config["evaluation"]["tarp_seed_offset"]),
        evaluation=lookup(within=config, dpath="evaluation"),
    script:
        "../scripts/make_figure.py"


rule figure_spectra:
    input:
        samples=lambda wildcards: conditional_files("samples"),
    output:
        png=report("results/figures/spectra.png", caption="../report/figure_spectra.rst", category="Figures"),
        pdf="results/figures/spectra.pdf",
    log:
        "logs/figures/spectra.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        figure="spectra",
        evaluation=lookup(within=config, dpath="evaluation"),
    script:
        "../scripts/make_figure.py"


rule report:
    input:
        tables=lambda wildcards: [
            f"results/tables/{n}.{ext}" for n in table_names() for ext in ("csv", "md", "tex")
        ],
        figures=lambda wildcards: [
            f"results/figures/{n}.{ext}" for n in figure_names() for ext in ("png", "pdf")
        ],
    output:
        html="results/report.html",
    log:
        "logs/report.log",
    conda:
        "../../envs/darkclusters.yaml"
    params:
        snakefile=workflow.main_snakefile,
    script:
        "../scripts/make_report.py"
