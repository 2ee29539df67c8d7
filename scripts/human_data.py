"""The human-data control: P3's train problems and their reference solutions, in the formats steps 2
and 3 write, so that steps 4 and 5 treat them as a generator's data."""

from pathlib import Path

from selfteach.human_data import write_human_data
from selfteach.logs import to_file

to_file(snakemake.log[0])
write_human_data(
    Path(snakemake.input.puzzles).parent,
    snakemake.input.held_out,
    snakemake.output.puzzles,
    snakemake.output.stats,
    snakemake.output.solutions,
)
