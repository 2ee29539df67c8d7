"""Step 2: merge the filtered shards into one deduplicated set of kept puzzles, with the counts, also as a
Hugging Face dataset folder."""

from selfteach.hf_dataset import write_puzzles_dataset
from selfteach.logs import to_file
from selfteach.puzzle_filter import gather_filtered

to_file(snakemake.log[0])
gather_filtered(snakemake.input, snakemake.output.puzzles, snakemake.output.stats)
write_puzzles_dataset(
    snakemake.output.hf,
    snakemake.output.puzzles,
    snakemake.output.stats,
    generator=snakemake.wildcards.gen,
    model=snakemake.params.model,
    verify=snakemake.params.verify,
)
