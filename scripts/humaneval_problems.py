"""HumanEval's 164 problems as JSONL {id, prompt, entry_point, test, canonical_solution}."""

from selfteach.humaneval import write_problems
from selfteach.logs import to_file

to_file(snakemake.log[0])
write_problems(snakemake.output[0])
