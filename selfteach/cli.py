"""The `selfteach` command: one subcommand per pipeline step, each a thin call into the package.

Rules call the same functions through `scripts/`; the subcommands are for users and other tools.
"""

from __future__ import annotations

import argparse
import sys

from selfteach import __version__, config, models, p3
from selfteach.io import write_jsonl


def run_prepare_model(args) -> None:
    study = config.load(args.config)
    if args.name not in study["models"]:
        raise ValueError(f"{args.config}: no model {args.name!r} under models")
    models.prepare(args.name, study["models"][args.name], args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfteach", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"selfteach {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    # --- data and models (owner: lead) ---
    fetch = commands.add_parser("fetch-p3", help="copy or download one P3 file, sha256-checked")
    fetch.add_argument("file", choices=sorted(p3.FILES))
    fetch.add_argument("out")
    fetch.add_argument("--mirror", default="", help="local folder with the P3 files (empty: download)")
    fetch.set_defaults(run=lambda args: print(p3.fetch(args.file, args.out, args.mirror or None)))

    tests = commands.add_parser("test-puzzles", help="write the 228 test puzzles as JSONL {id, f}")
    tests.add_argument("p3_dir")
    tests.add_argument("out")
    tests.set_defaults(run=lambda args: write_jsonl(args.out, p3.test_puzzles(args.p3_dir)))

    prepare = commands.add_parser("prepare-model", help="write a configured model as a Hugging Face folder")
    prepare.add_argument("name", help="model name under `models` in the config")
    prepare.add_argument("out")
    prepare.add_argument("--config", default="config.yaml")
    prepare.set_defaults(run=run_prepare_model)

    # --- verify (owner: verifier) ---
    from selfteach import verify  # standard library only: cheap to import

    verify_cmd = commands.add_parser("verify", help="run f(g()) for each record in the sandbox")
    verify_cmd.add_argument("input", help="JSONL records {id, f, g}")
    verify_cmd.add_argument("output", help="JSONL verdicts {id, ok, status, seconds[, detail]}")
    verify_cmd.add_argument("--timeout", type=float, default=1.0, help="seconds per candidate")
    verify_cmd.add_argument("--workers", type=int, default=2)
    verify_cmd.add_argument("--imports", choices=verify.IMPORT_POLICIES, default="paper")
    verify_cmd.add_argument("--python", default="auto", help="the interpreter inside the sandbox")
    verify_cmd.add_argument("--no-sandbox", action="store_true", help="run unsandboxed (unsafe)")
    verify_cmd.set_defaults(run=verify.main)

    # --- sampling and serve (owner: sampling) ---
    def add_backend_args(command) -> None:
        command.add_argument("--model", required=True, help="a Hugging Face folder or hub id; with --base-url, the API's model name")
        command.add_argument("--base-url", help="an OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1): sample over HTTP")
        command.add_argument("--key-env", help="environment variable holding the endpoint's API key")
        command.add_argument("--backend", choices=["hf", "vllm"], default="hf")
        command.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
        command.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        command.add_argument("--batch-size", type=int, default=64, help="sequences decoded together")
        command.add_argument("--concurrency", type=int, default=4, help="requests in flight (HTTP)")
        command.add_argument("--max-retries", type=int, default=5, help="retries on HTTP 429/5xx")

    def backend_from(args):
        from selfteach.sampling import load_backend

        model = args.model
        if args.base_url:
            model = {"source": "openai", "base_url": args.base_url, "model": args.model, "key_env": args.key_env}
        return load_backend(model, {
            "backend": args.backend, "dtype": args.dtype, "device": args.device, "batch_size": args.batch_size,
            "concurrency": args.concurrency, "max_retries": args.max_retries,
        })  # fmt: skip

    def run_sample(args):
        from selfteach.io import read_jsonl
        from selfteach.sampling import SamplingParams, sample_to_jsonl

        params = SamplingParams(
            n=args.n, temperature=args.temperature, max_new_tokens=args.max_new_tokens, top_p=args.top_p,
            top_k=args.top_k, stop=None if args.stop == "none" else args.stop, seed=args.seed,
        )  # fmt: skip
        summary = sample_to_jsonl(
            backend_from(args), read_jsonl(args.requests), params, args.output, prompts_per_batch=args.prompts_per_batch
        )
        print(f"{summary['samples']:,} samples, {summary['tokens']:,} new tokens, {summary['tokens_per_s']} tokens/s")

    sample = commands.add_parser("sample", help="sample completions for JSONL requests {id, prompt}, resumably")
    sample.add_argument("requests", help='JSONL {"id", "prompt", ...}')
    sample.add_argument("output", help='JSONL, one record per sample: request fields but "prompt", "sample", "completion", "tokens", "finished"')
    add_backend_args(sample)
    sample.add_argument("--n", type=int, default=1, help="samples per prompt")
    sample.add_argument("--temperature", type=float, default=0.8)
    sample.add_argument("--max-new-tokens", type=int, default=150)
    sample.add_argument("--top-p", type=float, default=1.0)
    sample.add_argument("--top-k", type=int, default=0, help="0: off")
    sample.add_argument("--stop", choices=["dedent", "none"], default="dedent", help="dedent: end at the first non-indented line")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--prompts-per-batch", type=int, default=8, help="prompts per resumable batch")
    sample.set_defaults(run=run_sample)

    def run_serve(args):
        import logging

        from selfteach.sampling.server import serve

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        stop = None if args.stop == "none" else args.stop
        serve(backend_from(args), args.host, args.port, model_name=args.name or args.model, stop=stop)

    serve_cmd = commands.add_parser("serve", help="an OpenAI-compatible /v1/completions server in front of a backend")
    add_backend_args(serve_cmd)
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--name", help="the model name clients send (default: --model)")
    serve_cmd.add_argument("--stop", choices=["dedent", "none"], default="dedent", help="how every completion ends")
    serve_cmd.set_defaults(run=run_serve)

    # --- filter-puzzles, dataset (owner: puzzles) ---
    def run_filter_puzzles(args):
        from selfteach.puzzle_filter import filter_file

        counts = filter_file(args.input, args.output, skip_trivial_rate=args.skip_trivial_rate, seed=args.seed)
        print(f"kept {counts['kept']:,} of {counts['generated']:,} puzzles; rejected: {counts['rejected']}")

    filt = commands.add_parser("filter-puzzles", help="mark generated puzzles keep/reason (step 2)")
    filt.add_argument("input", metavar="IN.jsonl", help='generated puzzles, JSONL {"id", "f", ...}')
    filt.add_argument("output", metavar="OUT.jsonl", help='the same records plus "keep" and "reason"')
    filt.add_argument("--skip-trivial-rate", type=float, default=0.05, help="seeded share of puzzles that skip the answer rules")
    filt.add_argument("--seed", type=int, default=0)
    filt.set_defaults(run=run_filter_puzzles)

    def run_build_dataset(args):
        from selfteach.card import write_card_from_files
        from selfteach.dataset import build_dataset_files

        examples, stats = build_dataset_files(
            args.samples, args.verdicts, args.text, args.examples, verified=args.variant == "verified",
            max_per_puzzle=args.max_per_puzzle, max_examples=args.max_examples, seed=args.seed,
        )  # fmt: skip
        print(f"{stats['examples']:,} examples from {stats['samples']:,} samples")
        if args.card:
            if not all([args.card_md, args.puzzles, args.puzzle_stats, args.generator]):
                raise ValueError("--card needs --card-md, --puzzles, --puzzle-stats and --generator")
            write_card_from_files(
                args.card, args.card_md, puzzles_path=args.puzzles, puzzle_stats_path=args.puzzle_stats,
                dataset_stats=stats, examples=examples, generator=args.generator, variant=args.variant,
                config=config.load(args.config) if args.config else {},
            )  # fmt: skip

    build = commands.add_parser("build-dataset", help="the fine-tuning text and examples (step 5), and a data card")
    build.add_argument("--samples", nargs="+", required=True, help='solution samples, JSONL {"id", "puzzle_id", "f", "g"}')
    build.add_argument("--verdicts", nargs="+", help="their verdicts, same files order (needed for verified)")
    build.add_argument("--variant", choices=["verified", "unverified"], default="verified")
    build.add_argument("--text", required=True, help="the training text (train.txt)")
    build.add_argument("--examples", required=True, help="the examples with provenance (examples.jsonl)")
    build.add_argument("--max-per-puzzle", type=int, default=8, help="shortest distinct solutions kept per puzzle")
    build.add_argument("--max-examples", type=int, help="cap on examples (paper: 950511)")
    build.add_argument("--seed", type=int, default=0)
    card_args = build.add_argument_group("data card (all of --card, --card-md, --puzzles, --puzzle-stats, --generator)")
    card_args.add_argument("--card", help="card.json")
    card_args.add_argument("--card-md", help="card.md")
    card_args.add_argument("--puzzles", help="the gathered puzzles (puzzles.filtered.jsonl)")
    card_args.add_argument("--puzzle-stats", help="their counts (puzzles.stats.json)")
    card_args.add_argument("--generator", help="the generator's name in the config")
    card_args.add_argument("--config", help="the config (config.yaml) to record in the card")
    build.set_defaults(run=run_build_dataset)

    # --- finetune (owner: finetune) ---
    def run_finetune(args):
        from selfteach.finetune import run_command  # torch and transformers load for this command only

        return run_command(args)

    tune = commands.add_parser(
        "finetune", help="fine-tune a model on a training text: OUT_ROOT/epoch1..epochE, resumable"
    )
    tune.add_argument("--model", required=True, help="base model, a Hugging Face folder")
    tune.add_argument("--train", required=True, help="the fine-tuning text (train.txt)")
    tune.add_argument("--out-root", required=True, help="writes OUT_ROOT/epoch1 .. OUT_ROOT/epochE")
    tune.add_argument("--checkpoint-dir", required=True, help="resumable state; keep it outside the outputs")
    tune.add_argument("--log-csv", required=True, help="training curve CSV (loss, lr, tokens/s)")
    tune.add_argument("--summary", help="also write the run's summary JSON here")
    tune.add_argument("--config-json", help="FinetuneConfig fields: a JSON object, or a .json file of one")
    fields = tune.add_argument_group("FinetuneConfig fields (each overrides --config-json)")
    for flag, kind in [
        ("--epochs", int), ("--lr", float), ("--warmup-steps", int), ("--schedule", str), ("--block-size", int),
        ("--batch-size", int), ("--grad-accum", int), ("--max-grad-norm", float), ("--weight-decay", float),
        ("--mixed-precision", str), ("--seed", int), ("--log-every", int), ("--save-every-steps", int),
    ]:  # fmt: skip
        fields.add_argument(flag, type=kind)
    fields.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction)
    tune.set_defaults(run=run_finetune)

    # --- evaluate, report (owner: study) ---
    def run_evaluate(args):
        from selfteach.evaluate import evaluate_files  # pandas loads for this command only

        evaluate_files(args.puzzles, args.samples, args.verdicts, args.out, **bootstrap_options(args))

    def run_report(args):
        from selfteach.report import report_main  # matplotlib and seaborn load for this command only

        report_main(args.evals, args.out_tables, args.out_figures, args.cards, **bootstrap_options(args))

    def bootstrap_options(args) -> dict:
        return {"resamples": args.resamples, "level": args.level, "seed": args.seed}

    def add_bootstrap_options(command) -> None:
        command.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples over puzzles")
        command.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")
        command.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")

    evaluate = commands.add_parser("evaluate", help="per-puzzle results and the pass@k table of one evaluation")
    evaluate.add_argument("--puzzles", required=True, help="test puzzles, JSONL {id, f}")
    evaluate.add_argument(
        "--samples", nargs="+", required=True, help="solution samples, JSONL {id, puzzle_id, sample, ...}"
    )
    evaluate.add_argument("--verdicts", nargs="+", required=True, help="verdicts, JSONL {id, ok, status, seconds}")
    evaluate.add_argument("--out", required=True, help="folder for per_puzzle.csv and passk.csv")
    add_bootstrap_options(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    report = commands.add_parser("report", help="the study's tables and figures from evaluation folders")
    report.add_argument("--evals", nargs="+", required=True, help="folders results/eval/<student>/<tag>")
    report.add_argument("--cards", nargs="*", default=[], help="data cards (card.json) for the stage table")
    report.add_argument("--out-tables", required=True, help="folder for the tables (CSV, Markdown, LaTeX)")
    report.add_argument("--out-figures", required=True, help="folder for the figures (PNG, PDF)")
    add_bootstrap_options(report)
    report.set_defaults(run=run_report)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (ValueError, OSError) as err:  # bad input: one clear line, no traceback
        print(f"selfteach {args.command}: error: {err}", file=sys.stderr)
        return 2
