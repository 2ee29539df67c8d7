"""Steps 3 and 7: sample solutions for one shard of puzzles."""

from pathlib import Path

from selfteach.logs import to_file
from selfteach.solve import solve_shard

to_file(snakemake.log[0], snakemake.threads)
solve_shard(
    snakemake.params.model,
    snakemake.params.sampling,
    snakemake.params.settings,
    snakemake.input.puzzles,
    Path(snakemake.input.prefix).read_text(),
    snakemake.output[0],
    shard=int(snakemake.wildcards.shard),
    shards=snakemake.params.shards,
    seed=snakemake.params.seed,
)
