"""Make a configured base model a Hugging Face folder (the embedded GGUF is converted once)."""

from selfteach.logs import to_file
from selfteach.models import prepare

to_file(snakemake.log[0], snakemake.threads)
prepare(snakemake.wildcards.model, snakemake.params.spec, snakemake.output[0])
