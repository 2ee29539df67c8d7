"""Step 2: apply the puzzle filter to one shard (trivial answers are tried in the sandbox)."""

from selfteach.logs import to_file
from selfteach.puzzle_filter import filter_file
from selfteach.verify import Verifier

to_file(snakemake.log[0])
settings = snakemake.params.verify
with Verifier(
    timeout=settings["timeout"],
    workers=snakemake.threads,
    imports=settings["imports"],
    python=settings["python"],
    sandbox=settings["sandbox"],
) as verifier:
    filter_file(
        snakemake.input.puzzles,
        snakemake.output[0],
        snakemake.input.held_out,
        skip_trivial_rate=snakemake.params.skip_trivial_rate,
        seed=snakemake.params.seed,
        verifier=verifier,
    )
