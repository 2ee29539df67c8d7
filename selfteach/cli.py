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

    # --- sampling and serve (owner: sampling) ---

    # --- filter-puzzles, dataset (owner: puzzles) ---

    # --- finetune (owner: finetune) ---

    # --- evaluate, report (owner: study) ---

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (ValueError, OSError) as err:  # bad input: one clear line, no traceback
        print(f"selfteach {args.command}: error: {err}", file=sys.stderr)
        return 2
