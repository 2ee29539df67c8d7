"""Step 7: per-puzzle results and the pass@k table of one evaluated model."""

from pathlib import Path

from selfteach.evaluate import evaluate_files
from selfteach.logs import to_file

to_file(snakemake.log[0])
evaluate_files(
    snakemake.input.puzzles,
    snakemake.input.solutions,
    snakemake.input.verdicts,
    Path(snakemake.output.passk).parent,
    resamples=snakemake.params.bootstrap,
    seed=snakemake.params.seed,
)
