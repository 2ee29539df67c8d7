# The study's tables and figures, rebuilt from every evaluation's per-puzzle results.


rule report:
    input:
        evals=[f"{folder}/per_puzzle.csv" for folder in evaluations()],
        cards=data_cards(),
    output:
        tables=[
            report_table(name, fmt)
            for name in (LONG_TABLE, *TABLE_NAMES)
            for fmt in ("csv", "md", "tex")
        ],
        figures=[
            report_figure(name, fmt) for name in FIGURE_NAMES for fmt in ("png", "pdf")
        ],
    log:
        "logs/report.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        evals=evaluations(),
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/report.py"
