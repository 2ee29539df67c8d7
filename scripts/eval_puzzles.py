"""The evaluation puzzles of one split (the 228 test puzzles, or the validation puzzles) as JSONL {id, f}."""

from pathlib import Path

from selfteach.io import write_jsonl
from selfteach.logs import to_file
from selfteach.p3 import EVAL_SPLITS

to_file(snakemake.log[0])
puzzles = EVAL_SPLITS[snakemake.wildcards.split](Path(snakemake.input.puzzles).parent)
write_jsonl(snakemake.output[0], puzzles)
