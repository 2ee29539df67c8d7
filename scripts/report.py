"""The study's tables (CSV, Markdown, LaTeX) and figures (PNG, PDF), into the rule's output folders."""

from pathlib import Path

from selfteach.logs import to_file
from selfteach.report import report_main

to_file(snakemake.log[0])
report_main(
    snakemake.params.evals,
    Path(snakemake.output.tables[0]).parent,
    Path(snakemake.output.figures[0]).parent,
    snakemake.input.cards,
    resamples=snakemake.params.bootstrap,
    seed=snakemake.params.seed,
)
