"""Step 7 on HumanEval: sample completions, each with the program that tests it, for one shard of problems."""

from selfteach.humaneval import sample_shard
from selfteach.logs import to_file

to_file(snakemake.log[0], snakemake.threads)
sample_shard(
    snakemake.params.model,
    snakemake.params.sampling,
    snakemake.params.settings,
    snakemake.input.problems,
    snakemake.output[0],
    shard=int(snakemake.wildcards.shard),
    shards=snakemake.params.shards,
    seed=snakemake.params.seed,
)
