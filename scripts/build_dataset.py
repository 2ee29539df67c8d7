"""Step 5: one fine-tuning set (verified, or the unverified ablation), its data card, and the set as a
Hugging Face dataset folder."""

from selfteach.card import write_card_from_files
from selfteach.dataset import build_dataset_files
from selfteach.hf_dataset import write_examples_dataset
from selfteach.logs import to_file

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
card = write_card_from_files(
    snakemake.output.card,
    snakemake.output.card_md,
    puzzles_path=snakemake.input.puzzles,
    puzzle_stats_path=snakemake.input.stats,
    dataset_stats=stats,
    examples=examples,
    generator=snakemake.wildcards.gen,
    variant=variant,
    config=snakemake.params.config,
    model=snakemake.params.model,
)
write_examples_dataset(snakemake.output.hf, examples, card)
