"""Step 2: merge the filtered shards into one deduplicated set of kept puzzles, with the counts."""

from selfteach.logs import to_file
from selfteach.puzzle_filter import gather_filtered

to_file(snakemake.log[0])
gather_filtered(snakemake.input, snakemake.output.puzzles, snakemake.output.stats)
