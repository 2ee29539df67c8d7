"""The names that several parts of the study must spell the same way, each defined once here.

The workflow (rules/*.smk), the steps (evaluate, verify, p3) and the report all import these, so a
change here reaches every user. The module imports only the standard library: loading the workflow
imports it, and must stay fast (no pandas, no matplotlib). The sandbox worker cannot import the package;
its own copies are pinned to these by a test.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------- names in paths

# A configured model's name (models, generators, students): it goes into paths and evaluation tags.
MODEL_NAME = r"[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*"

# The human-data control: a data source named in generate.generators like a model, but it is P3's train
# problems with their human-written reference solutions (selfteach.human_data), not a model's samples.
HUMAN_DATA = "p3-train"
HUMAN_DATA_SPEC = {"source": HUMAN_DATA, "data": "P3 train problems' reference solutions (human-written)"}

# ---------------------------------------------------------------- evaluation tags

# results/eval/<student>/<tag>/: the student itself ("base"), or the model it became after `epoch`
# fine-tuning epochs on round `round`'s `variant` data from `generator`:
# "<generator>-<variant>-r<round>-epoch<epoch>".
BASE = "base"
VERIFIED = "verified"  # trained on samples the verifier passed; rounds > 0 use only these
UNVERIFIED = "unverified"  # the ablation: every sample that parses
VARIANTS = (VERIFIED, UNVERIFIED)


def _tag_pattern(named: bool) -> str:
    def part(name: str, body: str) -> str:
        return f"(?P<{name}>{body})" if named else f"(?:{body})"

    number = r"\d+"
    generator, variant = part("generator", ".+"), part("variant", "|".join(VARIANTS))
    return f"{generator}-{variant}-r{part('round', number)}-epoch{part('epoch', number)}"


TAG = re.compile(_tag_pattern(named=True))
# The tag= wildcard constraint: the same language without named groups, which would clash with the
# workflow's own {round} wildcard in one path pattern.
TAG_WILDCARD = f"{BASE}|{_tag_pattern(named=False)}"
VARIANT_WILDCARD = "|".join(VARIANTS)


def format_tag(generator: str, variant: str, round: int, epoch: int) -> str:
    """The evaluation tag of a fine-tuned model; `parse_tag` inverts it."""
    if variant not in VARIANTS:
        raise ValueError(f"evaluation tag: variant {variant!r} is not one of {VARIANTS}")
    return f"{generator}-{variant}-r{round}-epoch{epoch}"


def parse_tag(tag: str) -> dict:
    """'base' or '<generator>-<variant>-r<round>-epoch<e>' -> generator, variant, round, epoch.

    The base model is variant 'base', trained for epoch 0, in no round (None) and from no generator (None).
    """
    if tag == BASE:
        return {"generator": None, "variant": BASE, "round": None, "epoch": 0}
    match = TAG.fullmatch(tag)
    if match is None:
        raise ValueError(
            f"evaluation tag {tag!r} is neither {BASE!r} nor '<generator>-<variant>-r<round>-epoch<e>'"
        )
    return {**match.groupdict(), "round": int(match["round"]), "epoch": int(match["epoch"])}


# ---------------------------------------------------------------- verdicts

# Every verdict has exactly one of these: pass (f(g()) is True), fail (it returned something else),
# wrong_type (f or g is not a function of the expected form), error (an exception), timeout, resource
# (a memory, output or process limit), rejected (the verifier refused to run it).
STATUSES = ("pass", "fail", "wrong_type", "error", "timeout", "resource", "rejected")
MAX_DETAIL_CHARS = 300  # a verdict's detail (an error message) is cut to this many characters

# ---------------------------------------------------------------- P3 data (resources/p3/)

P3_PUZZLES = "puzzles.json"
P3_SPLIT = "split.json"
P3_TEST = "test_228.json"
P3_PREFIX = "train_prefix.txt"
P3_FILES = (P3_PUZZLES, P3_SPLIT, P3_TEST, P3_PREFIX)

# ---------------------------------------------------------------- benchmarks (evaluate.benchmarks)

# Every evaluated model is measured on each configured benchmark: the P3 test puzzles (always), and
# HumanEval's 164 problems (selfteach.humaneval). Each has its own folder of evaluations under results/:
# results/<folder>/<student>/<tag>/, with the same files.
P3_BENCHMARK = "p3"
HUMANEVAL = "humaneval"
BENCHMARKS = (P3_BENCHMARK, HUMANEVAL)
BENCHMARK_FOLDERS = {P3_BENCHMARK: "eval", HUMANEVAL: "humaneval"}


def benchmark_folder(benchmark: str) -> str:
    """results/<this>/<student>/<tag>/: where the evaluations on `benchmark` go."""
    return f"results/{BENCHMARK_FOLDERS[benchmark]}"


def benchmark_of(folder_name: str) -> str:
    """The benchmark whose evaluations live in results/<folder_name>/; `benchmark_folder` inverts it."""
    for benchmark, name in BENCHMARK_FOLDERS.items():
        if name == folder_name:
            return benchmark
    raise ValueError(
        f"{folder_name!r} is no benchmark's evaluation folder (<folder>/<student>/<tag>, <folder> one of "
        f"{sorted(BENCHMARK_FOLDERS.values())})"
    )


# ---------------------------------------------------------------- evaluation folder files


def evaluation_keys(folder) -> dict:
    """results/<benchmark folder>/<student>/<tag> -> benchmark, student, generator, variant, round, epoch
    and the tag itself."""
    return {
        "benchmark": benchmark_of(folder.parent.parent.name), "student": folder.parent.name,
        **parse_tag(folder.name), "tag": folder.name,
    }  # fmt: skip


PER_PUZZLE_CSV = "per_puzzle.csv"
PASSK_CSV = "passk.csv"

# ---------------------------------------------------------------- report outputs

LONG_TABLE = "passk_long"  # every evaluation and k; the other tables are views of it
DATA_CARD_TABLE = "data_card"
GAIN_TABLE = "gain"  # each fine-tuned model's paired gain over its base model; the report opens with it
GAIN_FIGURE = "gain_by_k"  # its caption differs from the table's, so the name does too
TABLE_NAMES = (GAIN_TABLE, "passk_by_condition", "student_generator", "rounds", DATA_CARD_TABLE)
FIGURE_NAMES = (GAIN_FIGURE, "passk_curves", "student_generator_heatmap", "passk_by_round", "passk_by_epoch")
TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("png", "pdf")
# The one format of each that goes into Snakemake's HTML report.
REPORT_TABLE_FORMAT = "csv"
REPORT_FIGURE_FORMAT = "png"
