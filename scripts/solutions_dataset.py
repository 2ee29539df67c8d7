"""Step 4: the generated solutions with their verdicts as a Hugging Face dataset folder."""

from selfteach.hf_dataset import write_solutions_dataset
from selfteach.logs import to_file

to_file(snakemake.log[0])
write_solutions_dataset(
    snakemake.output[0],
    snakemake.input.solutions,
    snakemake.input.verdicts,
    generator=snakemake.wildcards.gen,
    model=snakemake.params.model,
    verify=snakemake.params.verify,
)
