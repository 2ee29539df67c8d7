"""The `selfteach` command: one subcommand per pipeline step, each a thin call into the package.

Rules call the same functions through `scripts/`; the subcommands are for users and other tools.
"""

from __future__ import annotations

import argparse
import sys

from selfteach import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfteach", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"selfteach {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    # --- data and models (owner: lead) ---

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
    except (ValueError, FileNotFoundError) as err:  # bad input: one clear line, no traceback
        print(f"selfteach {args.command}: error: {err}", file=sys.stderr)
        return 2
