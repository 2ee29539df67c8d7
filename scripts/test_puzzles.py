"""The 228 held-out test puzzles as JSONL {id, f}."""

from pathlib import Path

from selfteach.io import write_jsonl
from selfteach.logs import to_file
from selfteach.p3 import test_puzzles

to_file(snakemake.log[0])
write_jsonl(snakemake.output[0], test_puzzles(Path(snakemake.input.puzzles).parent))
