# The study's tables and figures, rebuilt from every evaluation's pass@k and per-puzzle results.


rule report:
    input:
        per_puzzle=[f"{folder}/{PER_PUZZLE_CSV}" for folder in evaluations()],
        passk=[f"{folder}/{PASSK_CSV}" for folder in evaluations()],
        cards=data_cards(),
    output:
        tables=[
            report_table(name, fmt)
            for name in (LONG_TABLE, *TABLE_NAMES)
            for fmt in TABLE_FORMATS
        ],
        figures=[
            report_figure(name, fmt) for name in FIGURE_NAMES for fmt in FIGURE_FORMATS
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
