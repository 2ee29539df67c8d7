"""Step 5: one fine-tuning set (verified, or the unverified ablation) and its data card."""

import json
from pathlib import Path

from selfteach.card import data_card, write_card
from selfteach.dataset import build_dataset_files
from selfteach.io import read_jsonl
from selfteach.logs import to_file
from selfteach.provenance import versions

to_file(snakemake.log[0])
settings = snakemake.params.settings
variant = snakemake.wildcards.variant
examples, stats = build_dataset_files(
    [snakemake.input.solutions],
    [snakemake.input.verdicts],  # the unverified set only counts them
    snakemake.output.text,
    snakemake.output.examples,
    verified=variant == "verified",
    max_per_puzzle=settings["max_solutions_per_puzzle"],
    max_examples=settings["max_examples"],
    seed=snakemake.params.seed,
)
card = data_card(
    generator=snakemake.wildcards.gen,
    model=snakemake.params.model,
    variant=variant,
    config=snakemake.params.config,
    puzzle_counts=json.loads(Path(snakemake.input.stats).read_text()),
    puzzles=read_jsonl(snakemake.input.puzzles),
    dataset_stats=stats,
    examples=examples,
)
write_card({**card, "versions": versions()}, snakemake.output.card, snakemake.output.card_md)
