"""The two prompts of the paper and the cuts of their completions back into `f` and `g` sources.

Puzzle generation (step 1): the train puzzles, shuffled anew for every prompt, renamed `f1`, `f2`, ...,
joined by blank lines, as many as fit in the prompt budget, then an open `def f{k+1}(`; the model's
continuation is the new puzzle. Solution sampling (step 3): the few-shot `train_prefix.txt`, a blank
line, the puzzle, a blank line, `def g(<f's defaulted args>):`; the continuation is g's body. Both
joins follow the paper's code (ICLR2023/src/gen.py: `gen_from_puzzles`, `solve_puzzles`).
"""

from __future__ import annotations

import ast
import io
import random
import re
from typing import Callable, Sequence

SEPARATOR = "\n\n"  # between puzzles, and between the prefix, the puzzle and g's header
PUZZLE_HEAD = "def f("
_DEF_F = re.compile(r"^def f\(", re.M)
_TRAILING_SPACES = re.compile(r" +$", re.M)


def numbered(puzzle: str, number: int) -> str:
    """`def f(` -> `def f{number}(`; the paper renames each prompt puzzle so that the names differ."""
    return _DEF_F.sub(f"def f{number}(", puzzle.strip(), count=1)


def generation_prompt(
    puzzles: Sequence[str],
    max_prompt_tokens: int,
    count_tokens: Callable[[str], int],
    rng: random.Random,
) -> str:
    """A puzzle-generation prompt: a fresh shuffle of `puzzles`, as many as fit, then `def f{k+1}(`.

    As in the paper, puzzles are added one at a time and the last prompt whose token count is still
    below `max_prompt_tokens` (the context minus the generation budget) is kept.
    """
    order = list(puzzles)
    rng.shuffle(order)
    prompt = None
    for k in range(len(order) + 1):
        candidate = SEPARATOR.join([numbered(p, i + 1) for i, p in enumerate(order[:k])] + [f"def f{k + 1}("])
        if count_tokens(candidate) >= max_prompt_tokens:
            break
        prompt = candidate
    if prompt is None:
        raise ValueError(f"max_prompt_tokens={max_prompt_tokens} leaves no room for a prompt")
    return prompt


def puzzle_from_completion(completion: str) -> str:
    """The generated puzzle: `def f(` + the completion, which the sampler already cut at its first
    non-indented line (SamplingParams.stop="dedent", the one place the cut runs)."""
    return PUZZLE_HEAD + completion


def defaulted_args(f_source: str) -> str:
    """The text of f's parameters after the answer, as written (`"n=3, s='ab'"`), for g's header.

    The paper cut this text out of f's first line after the first top-level comma; reading it from
    the syntax tree gives the same text for one-line signatures and also handles multi-line ones.
    """
    func = ast.parse(f_source).body[0]
    params = func.args.posonlyargs + func.args.args
    if len(params) < 2:
        return ""
    lines = io.StringIO(f_source).readlines()  # split at "\n" only, as the tokenizer does
    last = func.args.defaults[-1]
    return f_source[
        _offset(lines, params[1].lineno, params[1].col_offset) : _offset(
            lines, last.end_lineno, last.end_col_offset
        )
    ]


def _offset(lines: list[str], lineno: int, col_offset: int) -> int:
    """The string index of an ast position (1-based line, UTF-8 byte column)."""
    line = lines[lineno - 1]
    return sum(map(len, lines[: lineno - 1])) + len(line.encode()[:col_offset].decode())


def solution_header(f_source: str) -> str:
    return f"def g({defaulted_args(f_source)}):"


def solution_prompt(prefix: str, f_source: str) -> str:
    """`train_prefix.txt` + puzzle + `def g(...):`, each part separated by one blank line.

    The paper strips the prefix and the trailing spaces on its lines, and strips the puzzle.
    """
    clean_prefix = _TRAILING_SPACES.sub("", prefix.strip())
    return SEPARATOR.join([clean_prefix, f_source.strip(), solution_header(f_source)])


def solution_from_completion(f_source: str, completion: str) -> str | None:
    """The full `def g(...)` source: header + completion, already cut at its first non-indented line by
    the sampler (as `puzzle_from_completion`'s).

    None when the result does not parse (the paper drops those before verification).
    """
    g = solution_header(f_source) + completion
    try:
        ast.parse(g)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return g
