"""End to end: the whole loop through Snakemake on a tiny random model and tiny budgets."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import yaml

from conftest import tiny_study
from workflow import REPO, dry_run, job_counts, job_resources, planned_jobs, run_snakemake, write_config

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_declared_output_is_well_formed(study_dir):
    tables = study_dir / "results" / "tables"
    long = pd.read_csv(tables / "passk_long.csv")
    tags = {"base", *(f"tiny-{v}-r0-epoch{e}" for v in ("verified", "unverified") for e in (1, 2))}
    assert set(long["tag"]) == tags
    assert set(long["k"]) == {1, 2}
    for figure in (study_dir / "results" / "figures").glob("*.png"):
        assert figure.read_bytes()[:8] == PNG_MAGIC
    assert len(list((study_dir / "results" / "figures").glob("*.pdf"))) == 5

    gain = pd.read_csv(tables / "gain.csv")
    assert len(gain) == 4 * 2  # four fine-tuned evaluations, k = 1 and 2
    assert (gain["puzzles"] == 228).all()
    assert (gain["95% CI low"] <= gain["gain (points)"]).all() and (gain["gain (points)"] <= gain["95% CI high"]).all()

    for tag in tags:
        per_puzzle = pd.read_csv(study_dir / "results" / "eval" / "tiny" / tag / "per_puzzle.csv")
        assert len(per_puzzle) == 228
        assert (per_puzzle["attempts"] == 2).all()

    data = study_dir / "results" / "data" / "tiny" / "r0"
    generated = sum(1 for _ in open(data / "shards" / "puzzles.s0.jsonl"))
    assert generated == 2 * 2
    stats = json.loads((data / "puzzles.stats.json").read_text())
    assert stats["generated"] == 2 * 2 * 2
    for variant in ("verified", "unverified"):
        card = json.loads((data / variant / "card.json").read_text())
        assert card["variant"] == variant
        assert (data / variant / "card.md").read_text().startswith("# Data card")
        assert (data / variant / "train.txt").exists()

    for epoch in (1, 2):
        folder = study_dir / "results" / "models" / "tiny" / "tiny-verified-r0" / f"epoch{epoch}"
        assert (folder / "config.json").exists() and (folder / "tokenizer.json").exists()


def test_second_run_does_nothing(study_dir):
    assert planned_jobs(study_dir) == {}


def test_evaluation_key_reruns_only_evaluation_and_report(study_dir, tiny_model_dir, p3_dir):
    study = tiny_study(tiny_model_dir, p3_dir)
    changed = copy.deepcopy(study)
    changed["evaluate"]["attempts"] = 3
    write_config(study_dir, changed)
    try:
        jobs = planned_jobs(study_dir)
    finally:
        write_config(study_dir, study)
    assert set(jobs) == {"sample_tests", "verify_solutions", "evaluate", "report", "all"}
    assert jobs["evaluate"] == 5 and jobs["sample_tests"] == 5


def test_rounds_add_self_improvement_jobs(study_dir, tiny_model_dir, p3_dir):
    study = tiny_study(tiny_model_dir, p3_dir)
    more = copy.deepcopy(study)
    more["rounds"] = 3
    write_config(study_dir, more)
    try:
        jobs = planned_jobs(study_dir)
    finally:
        write_config(study_dir, study)
    assert jobs["generate_puzzles"] == 2 * 2  # rounds 1 and 2, two shards each
    assert jobs["finetune"] == 2  # tiny-verified-r1 and -r2 (round 0 is done)
    assert jobs["evaluate"] == 2 * 2  # two epochs of each new round


def test_paper_config_dry_run_shows_job_counts(tmp_path):
    write_config(tmp_path, yaml.safe_load((REPO / "config.paper.yaml").read_text()))
    output = dry_run(tmp_path)
    jobs = job_counts(output)
    assert jobs["generate_puzzles"] == 4 * 100 + 4 * 100  # 4 generators, then 4 more rounds of one
    assert jobs["finetune"] == 3 * 4 * 2 + 4  # students x generators x variants, then the rounds
    assert jobs["prepare_model"] == 3 and jobs["report"] == 1
    # the GPUs that fine-tuning (accelerate, data parallel) and sampling ask the scheduler for
    assert {job["gpu"] for job in job_resources(output, "finetune")} == {"4"}
    assert {job["gpu"] for job in job_resources(output, "solve_puzzles")} == {"1"}


def test_lint_is_clean(tmp_path):
    write_config(tmp_path, yaml.safe_load((REPO / "config.yaml").read_text()))
    result = run_snakemake(tmp_path, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_html_report_collects_tables_and_figures(study_dir):
    run_snakemake(study_dir, "--report", "results/report.html")
    html = (study_dir / "results" / "report.html").read_text(errors="replace")
    assert "passk_curves.png" in html and "passk_by_condition.csv" in html
    assert "Gain over the base model" in html and "p (one-sided)" in html  # the opening text holds the table


def test_no_test_puzzle_reaches_a_fine_tuning_set(study_dir, p3_dir):
    """Generation prompts use train puzzles only, and the filter drops any puzzle equal to a test one."""
    from selfteach.dedup import dedup_key
    from selfteach.io import read_jsonl
    from selfteach.p3 import test_puzzles, train_puzzles

    held_out = {dedup_key(puzzle["f"]) for puzzle in test_puzzles(p3_dir)}
    assert not held_out & {dedup_key(puzzle["f"]) for puzzle in train_puzzles(p3_dir)}
    sets = list((study_dir / "results" / "data").glob("*/r*/*/examples.jsonl"))
    assert len(sets) == 2  # verified and unverified
    for path in sets:
        for example in read_jsonl(path):
            assert dedup_key(example["f"]) not in held_out, path
    kept = read_jsonl(study_dir / "results" / "data" / "tiny" / "r0" / "puzzles.filtered.jsonl")
    assert not held_out & {dedup_key(puzzle["f"]) for puzzle in kept}


def test_human_data_control_is_verified_and_built_like_generated_data(tmp_path, tiny_model_dir, p3_dir):
    """generate.generators: [..., p3-train]: the train problems' reference solutions go through the
    verifier and the dataset step, and the students are fine-tuned and evaluated on them too."""
    from selfteach.dedup import dedup_key
    from selfteach.io import read_jsonl
    from selfteach.p3 import load_split, test_puzzles, validation_puzzles
    from selfteach.terms import HUMAN_DATA, VARIANTS

    study = tiny_study(tiny_model_dir, p3_dir)
    study["generate"]["generators"] = ["tiny", HUMAN_DATA]
    write_config(tmp_path, study)
    jobs = planned_jobs(tmp_path)
    assert jobs["human_data"] == 1 and jobs["generate_puzzles"] == 2  # the control samples no model
    assert jobs["finetune"] == 2 * 2 and jobs["evaluate"] == 1 + 2 * 2 * 2  # (tiny, p3-train) x variants x epochs

    sets = f"results/data/{HUMAN_DATA}/r0"
    run_snakemake(tmp_path, "--cores", "2", *(f"{sets}/{variant}/card.json" for variant in VARIANTS))
    data = tmp_path / sets
    card = json.loads((data / "verified" / "card.json").read_text())
    counts = {stage["stage"]: stage["count"] for stage in card["stages"]}
    assert counts["puzzles generated"] == 599  # every train-problem instance with a reference solution
    assert card["puzzle_rejections"] == {"test_puzzle": 105}  # the validation puzzles among them
    assert counts["solution samples"] == 502  # the solutions of the 494 kept instances
    statuses = card["sample_statuses"]
    assert statuses["rejected"] == 32  # they import modules outside the paper's policy
    assert statuses["pass"] + statuses["rejected"] + statuses.get("timeout", 0) == 502
    assert counts["examples after the cap"] == statuses["pass"]  # short and distinct: each one is kept
    unverified = json.loads((data / "unverified" / "card.json").read_text())
    assert {s["stage"]: s["count"] for s in unverified["stages"]}["examples after the cap"] == 502

    held_out = {dedup_key(p["f"]) for p in test_puzzles(p3_dir) + validation_puzzles(p3_dir)}
    train = set(load_split(p3_dir)["train"])
    for variant in VARIANTS:
        for example in read_jsonl(data / variant / "examples.jsonl"):
            assert dedup_key(example["f"]) not in held_out
            assert example["puzzle_id"].split("/")[3].rsplit(":", 1)[0] in train
            assert example["generator"] == HUMAN_DATA



def test_humaneval_evaluation_of_the_base_model(tmp_path, tiny_model_dir, p3_dir):
    """evaluate.benchmarks: [p3, humaneval]: the base model's 164 HumanEval programs sampled, run in the
    sandbox and tabulated like the test puzzles."""
    from selfteach.evaluate import COUNT_COLUMNS
    from selfteach.humaneval import PROBLEMS, program
    from selfteach.io import read_jsonl

    study = tiny_study(tiny_model_dir, p3_dir)
    study["evaluate"] |= {"benchmarks": ["p3", "humaneval"], "attempts": 1, "max_new_tokens": 16}
    write_config(tmp_path, study)
    folder = tmp_path / "results" / "humaneval" / "tiny" / "base"
    run_snakemake(tmp_path, "--cores", "2", str(folder.relative_to(tmp_path) / "passk.csv"))
    solutions = read_jsonl(folder / "shards" / "solutions.s0.jsonl")
    verdicts = read_jsonl(folder / "shards" / "verdicts.s0.jsonl")
    assert len(solutions) == len(verdicts) == PROBLEMS
    problems = {p["id"]: p for p in read_jsonl(tmp_path / "resources" / "humaneval" / "problems.jsonl")}
    assert all(s["program"] == program(problems[s["puzzle_id"]], s["completion"]) for s in solutions)
    per_puzzle = pd.read_csv(folder / "per_puzzle.csv")
    assert len(per_puzzle) == PROBLEMS and per_puzzle["attempts"].eq(1).all()
    assert per_puzzle[list(COUNT_COLUMNS)].to_numpy().sum() == PROBLEMS  # a verdict per program
    assert list(pd.read_csv(folder / "passk.csv")["k"]) == [1]
