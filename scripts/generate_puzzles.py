"""Step 1: sample one shard of puzzles."""

from pathlib import Path

from selfteach.generate import generate_shard
from selfteach.logs import to_file

to_file(snakemake.log[0], snakemake.threads)
wildcards = snakemake.wildcards
generate_shard(
    snakemake.params.model,
    snakemake.params.sampling,
    snakemake.params.settings,
    Path(snakemake.input.puzzles).parent,
    snakemake.output[0],
    name=f"{wildcards.gen}/r{wildcards.round}/s{wildcards.shard}",
    seed=snakemake.params.seed,
)
