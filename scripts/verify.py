"""Step 4: verify one shard of sampled solutions in the sandbox."""

from selfteach.logs import to_file
from selfteach.verify import verify_file

to_file(snakemake.log[0])
settings = snakemake.params.verify
verify_file(
    snakemake.input[0],
    snakemake.output[0],
    timeout=settings["timeout"],
    workers=snakemake.threads,
    imports=settings["imports"],
    python=settings["python"],
    sandbox=settings["sandbox"],
)
