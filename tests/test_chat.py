"""Chat models: the prompts as messages, the code out of a reply, and both steps through a chat endpoint."""

from __future__ import annotations

import random
import threading

import pytest

from selfteach import config, p3
from selfteach.generate import generate_shard
from selfteach.io import read_jsonl, write_jsonl
from selfteach.prompts import generation_prompt, puzzle_from_completion, solution_from_completion, solution_prompt
from selfteach.puzzle_filter import filter_puzzles
from selfteach.sampling import SamplingParams, load_backend
from selfteach.sampling.base import finish
from selfteach.sampling.chat import (
    PUZZLE,
    SOLUTION,
    chat_messages,
    prompt_kind,
    reply_code,
    reply_continuation,
    template_renderer,
)
from selfteach.sampling.server import SamplingServer
from selfteach.solve import solve_shard

PUZZLE_F = "def f(x: int, n=3):\n    return x * n == 12"
PREFIX = "from typing import List\n\ndef f(s: str):\n    return s == 'a'\n\ndef g():\n    return 'a'\n\nassert f(g())"


def test_a_generation_prompt_becomes_a_system_message_then_the_puzzles_then_the_open_def():
    prompt = generation_prompt([PUZZLE_F, "def f(s: str):\n    return s == 'ab'"], 1000, len, random.Random(0))
    assert prompt_kind(prompt) == PUZZLE
    system, user = chat_messages(prompt)
    assert system["role"] == "system" and "puzzle" in system["content"]
    assert user["role"] == "user"
    assert user["content"].index("def f1(") < user["content"].index("def f2(") < user["content"].index("def f3(")
    assert user["content"].rstrip().endswith("def f3(\n```")


def test_a_solving_prompt_puts_the_examples_before_the_puzzle_and_its_header():
    prompt = solution_prompt(PREFIX, PUZZLE_F)
    assert prompt_kind(prompt) == SOLUTION
    system, user = chat_messages(prompt)
    assert "solve" in system["content"]
    text = user["content"]
    examples, puzzle, header = text.index("return 'a'"), text.index("x * n == 12"), text.index("def g(n=3):")
    assert examples < puzzle < header
    assert text.count("x * n == 12") == 1  # the puzzle is not repeated among the examples


@pytest.mark.parametrize(
    "reply",
    [
        "def g(n=3):\n    return 12 // n\n",
        "Here is g:\n```python\ndef g(n=3):\n    return 12 // n\n```\nIt returns 4.",
        "```\ndef f(x: int, n=3):\n    return x * n == 12\n\ndef g(n=3):\n    return 12 // n\n\nassert f(g())\n```",
        "```py\ndef g(n=3):\n    return 12 // n",  # the budget ran out before the closing fence
        "return 12 // n",  # a bare body
    ],
)
def test_a_solution_comes_out_of_a_bare_or_fenced_reply_and_is_cut_like_a_completion(reply):
    prompt = solution_prompt(PREFIX, PUZZLE_F)
    completion = finish(reply_continuation(reply, prompt), tokens=10, stop="dedent")
    assert solution_from_completion(PUZZLE_F, completion.text) == "def g(n=3):\n    return 12 // n"


PUZZLE_REPLIES = [
    "def f3(s: str):\n    return s.count('a') == 3 and len(s) == 5\n",
    "```python\ndef f3(s: str):\n    return s.count('a') == 3 and len(s) == 5\n```",
    "Sure!\n\n```python\ndef f(s: str):\n    return s.count('a') == 3 and len(s) == 5\n\nprint(f('aaabb'))\n```",
]


def test_a_puzzle_comes_out_of_a_bare_or_fenced_reply_and_passes_the_same_filter():
    prompt = generation_prompt([PUZZLE_F, "def f(s: str):\n    return s == 'ab'"], 1000, len, random.Random(0))
    puzzles = [
        {"id": str(i), "f": puzzle_from_completion(finish(reply_continuation(reply, prompt), 10, "dedent").text)}
        for i, reply in enumerate(PUZZLE_REPLIES)
    ]
    assert {p["f"] for p in puzzles} == {"def f(s: str):\n    return s.count('a') == 3 and len(s) == 5"}
    [kept] = filter_puzzles(puzzles[:1], skip_trivial_rate=0.0)  # the others are the same puzzle
    assert (kept["keep"], kept["reason"]) == (True, None)


def test_reply_code_prefers_a_python_block_to_other_languages():
    assert reply_code("```bash\npip install x\n```\n```python\nx = 1\n```") == "x = 1\n"
    assert reply_code("no code at all") == "no code at all"


@pytest.fixture(scope="module")
def chat_server(tiny_model_dir):
    """A real sampling server on loopback serving the tiny model with its (SmolLM2) chat template."""
    backend = load_backend(str(tiny_model_dir), {"backend": "hf", "device": "cpu"})
    server = SamplingServer(
        backend, "127.0.0.1", 0, model_name="tiny", chat_template=template_renderer(str(tiny_model_dir))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def chat_model(url: str) -> dict:
    return {"source": "openai", "base_url": url, "model": "tiny", "api": "chat"}


def test_generate_and_solve_both_run_through_a_chat_endpoint(chat_server, p3_dir, tmp_path):
    sampling = {**config.defaults("sampling"), "concurrency": 2}
    settings = {
        **config.defaults("generate"),
        "prompts": 2,
        "per_prompt": 2,
        "max_new_tokens": 12,
        "max_prompt_tokens": 300,
    }
    puzzles = tmp_path / "puzzles.jsonl"
    assert generate_shard(chat_model(chat_server), sampling, settings, p3_dir, puzzles, name="chat/r0/s0", seed=0) == 4
    assert all(record["f"].startswith("def f(") and record["tokens"] >= 1 for record in read_jsonl(puzzles))
    write_jsonl(tmp_path / "to_solve.jsonl", [{"id": "p0", "f": PUZZLE_F}])
    solve = {**config.defaults("solve"), "attempts": 3, "max_new_tokens": 12}
    prefix = p3.train_prefix(p3_dir)
    out = tmp_path / "solutions.jsonl"
    assert (
        solve_shard(
            chat_model(chat_server),
            sampling,
            solve,
            tmp_path / "to_solve.jsonl",
            prefix,
            out,
            shard=0,
            shards=1,
            seed=0,
        )
        == 3
    )
    assert [record["id"] for record in read_jsonl(out)] == ["p0/0", "p0/1", "p0/2"]


def test_a_chat_request_to_a_model_without_a_chat_template_is_refused_with_the_reason(tiny_model_dir):
    backend = load_backend(str(tiny_model_dir), {"backend": "hf", "device": "cpu"})
    server = SamplingServer(backend, "127.0.0.1", 0, model_name="tiny")  # no chat template
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = load_backend(chat_model(f"http://127.0.0.1:{server.server_address[1]}/v1"), {"max_retries": 0})
        with pytest.raises(ValueError, match=r"HTTP 400, request refused: this model has no chat template"):
            client.generate(
                ["def f(x: int):\n    return x > 3\n\ndef g():"], SamplingParams(n=1, temperature=0, max_new_tokens=4)
            )
    finally:
        server.shutdown()
        server.server_close()
