# Config checks and the input functions that map wildcards to files; rules refer to them by name.

import sys

from snakemake.utils import min_version

sys.path.insert(
    0, workflow.basedir
)  # the selfteach package beside this workflow, installed or not

from selfteach import config as study_config
from selfteach import models as study_models
from selfteach.finetune_config import study_settings
from selfteach.p3 import EVAL_SPLITS
from selfteach.terms import (
    BASE,
    BENCHMARKS,
    FIGURE_FORMATS,
    FIGURE_NAMES,
    HUMAN_DATA,
    HUMAN_DATA_SPEC,
    HUMANEVAL,
    BENCHMARK_FOLDERS,
    LONG_TABLE,
    MODEL_NAME,
    P3_FILES,
    P3_PREFIX,
    P3_PUZZLES,
    P3_SPLIT,
    PER_PUZZLE_CSV,
    PASSK_CSV,
    REPORT_FIGURE_FORMAT,
    REPORT_TABLE_FORMAT,
    TABLE_FORMATS,
    TABLE_NAMES,
    TAG_WILDCARD,
    VERIFIED,
    VARIANT_WILDCARD,
    benchmark_folder,
    benchmark_of,
    format_tag,
    parse_tag,
)

min_version("9.0")

config.update(study_config.validate(config, source="config"))

MODELS = config["models"]
LAST_EPOCH = config["finetune"]["epochs"]
MODEL_THREADS = (
    8  # CPU threads of a sampling or training job; capped by --cores, or --max-threads
)
SELF_IMPROVERS = config["self_improvers"] or [
    m for m in config["finetune"]["students"] if m in config["generate"]["generators"]
]

if config["rounds"] > 1 and not SELF_IMPROVERS:
    raise ValueError(
        "config: rounds > 1 needs a model that is both in generate.generators and finetune.students"
    )
if config["rounds"] > 1 and VERIFIED not in config["dataset"]["variants"]:
    raise ValueError(f"config: rounds > 1 needs {VERIFIED!r} in dataset.variants")


# Seconds of work each: run them beside Snakemake rather than queueing them on a cluster.
localrules:
    fetch_p3,
    eval_puzzles,
    gather_puzzles,
    gather_solutions,
    human_data,
    humaneval_problems,
    report,


wildcard_constraints:
    split="|".join(EVAL_SPLITS),
    model=MODEL_NAME,
    gen=MODEL_NAME,
    student=MODEL_NAME,
    variant=VARIANT_WILDCARD,
    round=r"\d+",
    shard=r"\d+",
    epoch=r"\d+",
    tag=TAG_WILDCARD,
    bench="|".join(BENCHMARK_FOLDERS.values()),


def eval_puzzles(split):
    """The puzzles an evaluation samples: the 228 test puzzles, or the validation ones (evaluate.split)."""
    return f"resources/p3/{split}_puzzles.jsonl"


def p3(name):
    return f"resources/p3/{name}"


def p3_files(wildcards):
    return {name.split(".")[0]: p3(name) for name in P3_FILES}


def model_folder(name):
    """The Hugging Face folder of a configured model; None for an API model."""
    return study_models.local_path(name, MODELS[name])


def finetuned_folder(student, gen, variant, round, epoch):
    return f"results/models/{student}/{gen}-{variant}-r{round}/epoch{epoch}"


def generator_folder(wildcards):
    """Round 0 samples the configured generator; round r the model it fine-tuned in round r-1. The
    human-data control samples no model (None)."""
    round = int(wildcards.round)
    if wildcards.gen == HUMAN_DATA:
        return None
    if round == 0:
        return model_folder(wildcards.gen)
    return finetuned_folder(
        wildcards.gen, wildcards.gen, VERIFIED, round - 1, LAST_EPOCH
    )


def generator_input(wildcards):
    folder = generator_folder(wildcards)
    return [folder] if folder else []


def generator_model(wildcards):
    """What the sampling backend loads: a folder, or the endpoint spec of an API model; what made the
    human-data control's solutions, for its cards."""
    if wildcards.gen == HUMAN_DATA:
        return HUMAN_DATA_SPEC
    return generator_folder(wildcards) or MODELS[wildcards.gen]


def evaluated_folder(wildcards):
    """The model behind an evaluation tag: the student itself ('base') or one of its epochs."""
    tag = parse_tag(wildcards.tag)
    if tag["variant"] == "base":
        return model_folder(wildcards.student)
    return finetuned_folder(
        wildcards.student, tag["generator"], tag["variant"], tag["round"], tag["epoch"]
    )


def training_texts(wildcards):
    """Each round fine-tunes on the data of all rounds so far (docs/design.md section 1, step 8)."""
    return [
        f"results/data/{wildcards.gen}/r{r}/{wildcards.variant}/train.txt"
        for r in range(int(wildcards.round) + 1)
    ]


def training_init(wildcards):
    """finetune.init: every round starts from the base model, or from the previous round's."""
    round = int(wildcards.round)
    if config["finetune"]["init"] == "previous" and round > 0:
        return finetuned_folder(
            wildcards.student, wildcards.gen, wildcards.variant, round - 1, LAST_EPOCH
        )
    return model_folder(wildcards.student)


def eval_epochs():
    return (
        [LAST_EPOCH]
        if config["evaluate"]["epochs"] == "last"
        else range(1, LAST_EPOCH + 1)
    )


def eval_tags(student):
    """The study grid: baseline, every generator x variant at round 0, then self-improvement rounds."""
    tags = [BASE]
    for gen in config["generate"]["generators"]:
        for variant in config["dataset"]["variants"]:
            tags += [format_tag(gen, variant, 0, e) for e in eval_epochs()]
    if student in SELF_IMPROVERS:
        for round in range(1, config["rounds"]):
            tags += [format_tag(student, VERIFIED, round, e) for e in eval_epochs()]
    return tags


def evaluations():
    """Every evaluation folder: each evaluated model on each benchmark (evaluate.benchmarks)."""
    return [
        f"{benchmark_folder(benchmark)}/{student}/{tag}"
        for benchmark in BENCHMARKS
        if benchmark in config["evaluate"]["benchmarks"]
        for student in config["finetune"]["students"]
        for tag in eval_tags(student)
    ]


def eval_settings():
    """The evaluate section as the sampling jobs get it: without `benchmarks`, so that adding a benchmark
    leaves every other benchmark's sampling job as it was."""
    return {k: v for k, v in config["evaluate"].items() if k != "benchmarks"}


def humaneval_problems():
    return "resources/humaneval/problems.jsonl"


def benchmark_problems(wildcards):
    """What an evaluation in results/<bench>/ sampled: the P3 puzzles of evaluate.split, or HumanEval's."""
    if benchmark_of(wildcards.bench) == HUMANEVAL:
        return humaneval_problems()
    return eval_puzzles(config["evaluate"]["split"])


def data_rounds():
    """(generator, round) pairs whose generated data the study needs."""
    pairs = [(gen, 0) for gen in config["generate"]["generators"]]
    pairs += [(m, r) for m in SELF_IMPROVERS for r in range(1, config["rounds"])]
    return pairs


def data_cards():
    return [
        f"results/data/{gen}/r{round}/{variant}/card.json"
        for gen, round in data_rounds()
        for variant in config["dataset"]["variants"]
    ]


def data_config():
    """The config sections that make a generated set: recorded in its data card, and the only ones
    whose change rebuilds it (an evaluation key leaves the data and the models alone).
    """
    made_by = (
        "seed",
        "p3",
        "models",
        "sampling",
        "generate",
        "filter",
        "solve",
        "verify",
        "dataset",
    )
    return {section: config[section] for section in made_by}


def shards(section):
    return range(config[section]["shards"])


def finetune_settings():
    """FinetuneConfig's fields (selfteach.finetune_config): the finetune section's training keys, the seed."""
    return study_settings(config)


def accelerate_config(wildcards):
    """The accelerate config for this student on several GPUs; None trains in-process."""
    return study_config.accelerate_config(config["finetune"], wildcards.student)


def study_outputs():
    """What `snakemake` builds by default: the report, hence every evaluation and data card."""
    return rules.report.output


def report_table(name, fmt):
    path = f"results/tables/{name}.{fmt}"
    if fmt != REPORT_TABLE_FORMAT:
        return path
    return report(
        path, caption=f"../report/{name}.rst", category="Tables", labels={"table": name}
    )


def report_figure(name, fmt):
    path = f"results/figures/{name}.{fmt}"
    if fmt != REPORT_FIGURE_FORMAT:
        return path
    return report(
        path,
        caption=f"../report/{name}.rst",
        category="Figures",
        labels={"figure": name},
    )
