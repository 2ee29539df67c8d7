"""The generation and solution prompts against exact strings, and the cuts of their completions."""

import random

import pytest

from selfteach import p3
from selfteach.prompts import (
    defaulted_args,
    generation_prompt,
    puzzle_from_completion,
    solution_from_completion,
    solution_prompt,
)
from selfteach.sampling.base import finish

A = "def f(x: int):\n    return x == 1"
B = "def f(s: str, n=2):\n    return len(s) == n"
C = "def f(li: List[int]):\n    return sum(li) == 3"


def count_chars(text: str) -> int:
    return len(text)


def sampled(raw: str) -> str:
    """A raw continuation as the sampler returns it: cut at its dedent, the one place the cut runs."""
    return finish(raw, tokens=0, stop="dedent").text


def test_generation_prompt_exact_string():
    prompt = generation_prompt([A, B, C], 10_000, count_chars, random.Random(0))
    assert prompt == (  # random.Random(0) shuffles [A, B, C] into [A, C, B]
        "def f1(x: int):\n    return x == 1\n\n"
        "def f2(li: List[int]):\n    return sum(li) == 3\n\n"
        "def f3(s: str, n=2):\n    return len(s) == n\n\n"
        "def f4("
    )


def test_generation_prompt_packs_below_the_budget():
    full = generation_prompt([A, B, C], 10_000, count_chars, random.Random(0))
    two = full[: full.index("def f3(")] + "def f3("
    # exactly the two-puzzle prompt's length is not enough: the prompt must stay strictly below
    assert generation_prompt([A, B, C], len(two) + 1, count_chars, random.Random(0)) == two
    assert generation_prompt([A, B, C], len(two), count_chars, random.Random(0)).endswith("def f2(")
    with pytest.raises(ValueError, match="no room"):
        generation_prompt([A], len("def f1("), count_chars, random.Random(0))


def test_generation_prompts_are_reshuffled_and_seeded():
    rng1, rng2 = random.Random(7), random.Random(7)
    first = [generation_prompt([A, B, C], 10_000, count_chars, rng1) for _ in range(6)]
    again = [generation_prompt([A, B, C], 10_000, count_chars, rng2) for _ in range(6)]
    assert first == again
    assert len(set(first)) > 1


def test_generation_prompt_from_the_train_puzzles(p3_dir):
    train = [p["f"] for p in p3.train_puzzles(p3_dir)]
    prompt = generation_prompt(train, 4000, count_chars, random.Random(1))
    k = prompt.count("\n\ndef f")  # puzzles before the open header
    assert prompt.endswith(f"\n\ndef f{k + 1}(") and f"def f{k}(" in prompt and f"def f{k + 2}(" not in prompt
    assert len(prompt) < 4000


def test_puzzle_from_completion():
    completion = "x: int, n=3):\n    y = x + 1\n\n    return y == n\n\nassert f(2)\ndef f5("
    assert puzzle_from_completion(sampled(completion)) == "def f(x: int, n=3):\n    y = x + 1\n\n    return y == n"
    unfinished = "s: str):\n    return s.count('a') =="
    assert puzzle_from_completion(sampled(unfinished)) == "def f(s: str):\n    return s.count('a') =="


def test_defaulted_args_as_written():
    assert defaulted_args(A) == ""
    assert defaulted_args(B) == "n=2"
    assert (
        defaulted_args("def f(x: Dict[int, str], a = [1, 2], b='é,x'):\n    return 1")
        == "a = [1, 2], b='é,x'"
    )
    assert defaulted_args("def f(x: int,\n      n=3,\n      m=4):\n    return x") == "n=3,\n      m=4"


def test_solution_prompt_exact_string(p3_dir):
    prefix = p3.train_prefix(p3_dir)
    assert prefix.endswith("assert f(g())")
    puzzle = "def f(s: str, n=2):\n    return len(s) == n\n"
    assert solution_prompt(prefix, puzzle) == prefix + "\n\n" + (
        "def f(s: str, n=2):\n    return len(s) == n\n\ndef g(n=2):"
    )
    assert solution_prompt(prefix + "\n  \n", A).endswith(
        'return int(int("123456789" + "0"*9) ** 0.5) + 1\n\nassert f(g())\n\n'
        "def f(x: int):\n    return x == 1\n\ndef g():"
    )


def test_solution_prompt_of_a_test_puzzle(p3_dir):
    puzzle = next(p for p in p3.test_puzzles(p3_dir) if p["f"].startswith("def f(li: List[int], n=100)"))
    prompt = solution_prompt(p3.train_prefix(p3_dir), puzzle["f"])
    assert prompt.endswith(
        "\n\nassert f(g())\n\ndef f(li: List[int], n=100):\n"
        + puzzle["f"].split("\n", 1)[1]
        + "\n\ndef g(n=100):"
    )


def test_solution_from_completion():
    completion = "\n    return 'ab'\n\nassert f(g())\n\ndef f(x"
    assert solution_from_completion(B, sampled(completion)) == "def g(n=2):\n    return 'ab'"
    assert solution_from_completion(B, sampled(" return 'a' * n\nprint(1)")) == "def g(n=2): return 'a' * n"
    assert solution_from_completion(B, sampled("\n    return [1,\n")) is None  # cut short: does not parse
    assert solution_from_completion(A, sampled("\n    return (1 +\n2)")) is None  # the cut leaves `(1 +`
