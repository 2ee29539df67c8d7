# The study's tables and figures, rebuilt from every evaluation's per-puzzle results.

from selfteach.report import FIGURE_NAMES, LONG_TABLE, TABLE_NAMES


def report_table(name, fmt):
    path = f"results/tables/{name}.{fmt}"
    if fmt != "csv":
        return path
    return report(
        path, caption=f"../report/{name}.rst", category="Tables", labels={"table": name}
    )


def report_figure(name, fmt):
    path = f"results/figures/{name}.{fmt}"
    if fmt != "png":
        return path
    return report(
        path,
        caption=f"../report/{name}.rst",
        category="Figures",
        labels={"figure": name},
    )


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
