"""Chat models: the paper's completion prompts as chat messages, and the reply's code back as a completion.

A chat endpoint (`models.<name>.api: chat`) is given the same prompts as a completions endpoint, turned
into messages: a system message saying what to write, then one user message with the few-shot examples
followed by the open `def f{k}(` (write a new puzzle) or by the puzzle and its `def g(...):` (solve it).
The reply's code is read from its fenced block, or from the bare reply when it has none, and turned back
into the continuation of the prompt's open line. So the cut at the first non-indented line, the puzzle
filter and the verifier treat a chat reply exactly as they treat a completion.
"""

from __future__ import annotations

import re
from typing import Callable

from selfteach.prompts import SEPARATOR

PUZZLE, SOLUTION, CODE = "puzzle", "solution", "code"  # what a prompt asks for, read from its open line
_PUZZLE_HEAD = re.compile(r"def f\d*\($")
_SOLUTION_HEAD = re.compile(r"def g\(.*\):$")
_PUZZLE_DEF = re.compile(r"^def f\w*\(", re.M)
_SOLUTION_DEF = re.compile(r"^def g\(.*\n?", re.M)  # the header line; the continuation starts after it
_LAST_PUZZLE = re.compile(r"^def f\(", re.M)
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[ \t]*\n(.*?)(?:^[ \t]*```|\Z)", re.M | re.S)
INDENT = "    "

PUZZLE_RULES = (
    "A puzzle is a Python function f whose first argument is the answer and whose other arguments, if any, "
    "have default values; f returns True exactly when the answer solves the puzzle."
)
SYSTEM = {
    PUZZLE: (
        f"You write new Python programming puzzles. {PUZZLE_RULES} Reply with the code of one new puzzle, "
        "different from the examples, starting with the line the user gives. No explanation."
    ),
    SOLUTION: (
        f"You solve Python programming puzzles. {PUZZLE_RULES} Reply with the code of a function g, starting "
        "with the line the user gives, that returns an answer x such that f(x) returns True. No explanation."
    ),
    CODE: "Continue the user's Python code. Reply with code only.",
}


def prompt_kind(prompt: str) -> str:
    """PUZZLE for a generation prompt (ends with `def f{k}(`), SOLUTION for a solving prompt (ends with
    `def g(...):`), CODE for any other text."""
    head = prompt.rpartition("\n")[2]
    if _PUZZLE_HEAD.fullmatch(head):
        return PUZZLE
    if _SOLUTION_HEAD.fullmatch(head):
        return SOLUTION
    return CODE


def _fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def chat_messages(prompt: str) -> list[dict]:
    """The messages for a completion prompt (`prompts.generation_prompt` or `prompts.solution_prompt`)."""
    kind = prompt_kind(prompt)
    context, _, head = prompt.rpartition(SEPARATOR)
    if kind == PUZZLE:
        task = [
            f"Example puzzles:\n{_fenced(context)}" if context else "",
            f"Write a new puzzle. Start with:\n{_fenced(head)}",
        ]
    elif kind == SOLUTION:
        starts = [m.start() for m in _LAST_PUZZLE.finditer(context)]
        split = starts[-1] if starts else 0
        examples, puzzle = context[:split], context[split:]
        task = [
            f"Example puzzles with their solutions:\n{_fenced(examples)}" if examples.strip() else "",
            f"Solve this puzzle:\n{_fenced(puzzle)}",
            f"Start with:\n{_fenced(head)}",
        ]
    else:
        task = [_fenced(prompt)]
    user = "\n\n".join(part for part in task if part)
    return [{"role": "system", "content": SYSTEM[kind]}, {"role": "user", "content": user}]


def reply_code(reply: str) -> str:
    """The code of a chat reply: its first fenced block marked as Python (or unmarked), else the bare reply.

    A block the token budget cut before its closing fence counts up to the end of the reply."""
    for language, body in _FENCE.findall(reply):
        if language.lower() in ("", "python", "py", "python3"):
            return body
    return reply


def reply_continuation(reply: str, prompt: str) -> str:
    """The reply as the continuation of the prompt's open line, for the usual cut at the first dedent.

    Puzzle: the text after the reply's first `def f...(`. Solution: the lines after its `def g(...)`
    header (our header, with f's defaulted arguments, comes from the prompt); a bare body is indented
    under it. Other prompts: the code as it is."""
    code = reply_code(reply)
    kind = prompt_kind(prompt)
    if kind == PUZZLE:
        match = _PUZZLE_DEF.search(code)
        return code[match.end() :] if match else code
    if kind == SOLUTION:
        match = _SOLUTION_DEF.search(code)
        body = code[match.end() :] if match else code.strip("\n")
        if not match and body and not body[0].isspace():  # a bare, unindented body
            body = "\n".join(INDENT + line if line.strip() else line for line in body.split("\n"))
        return "\n" + body.lstrip("\n")
    return code


def template_renderer(model_path: str) -> Callable[[list[dict]], str] | None:
    """messages -> the prompt text by the model folder's chat template; None when it has no template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if not tokenizer.chat_template:
        return None
    return lambda messages: tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
