"""The study's tables (CSV, Markdown, LaTeX) and figures (PNG, PDF)."""

from selfteach.logs import to_file
from selfteach.report import report_main

to_file(snakemake.log[0])
report_main(
    snakemake.params.evals,
    "results/tables",
    "results/figures",
    snakemake.input.cards,
    resamples=snakemake.params.bootstrap,
    seed=snakemake.params.seed,
)
