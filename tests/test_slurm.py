"""The workflow through a real one-node SLURM (profiles/slurm): jobs go through sbatch, results match."""

from __future__ import annotations

import copy
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import tiny_study
from workflow import REPO, run_snakemake, write_config

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


@pytest.fixture(scope="session")
def slurm():
    if shutil.which("sbatch") is None or shutil.which("slurmctld") is None:
        pytest.skip("SLURM is not installed (apt-get install slurm-wlm munge)")
    started = subprocess.run(["bash", str(REPO / ".ci" / "start-slurm")], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.skip(f"could not start a one-node SLURM: {started.stderr.strip()}")


def test_slurm_run_matches_local_run(slurm, study_dir, tiny_model_dir, p3_dir, tmp_path):
    study = copy.deepcopy(tiny_study(tiny_model_dir, p3_dir))
    study["dataset"]["variants"] = ["verified"]  # fewer jobs; what it builds is built as locally
    write_config(tmp_path, study)
    result = run_snakemake(
        tmp_path, "--profile", str(REPO / "profiles" / "slurm"), "--max-threads", "2", timeout=2400
    )
    output = result.stdout + result.stderr
    submitted = [line for line in output.splitlines() if "has been submitted with SLURM jobid" in line]
    rules = {line.split("rule_")[1].split("/")[0] for line in submitted}
    assert {"generate_puzzles", "solve_puzzles", "verify_solutions", "finetune", "sample_tests"} <= rules
    assert "fetch_p3" not in rules  # a local rule

    for tag in ("base", "tiny-verified-r0-epoch1", "tiny-verified-r0-epoch2"):
        for table in ("per_puzzle.csv", "passk.csv"):
            ours = pd.read_csv(tmp_path / "results" / "eval" / "tiny" / tag / table)
            local = pd.read_csv(study_dir / "results" / "eval" / "tiny" / tag / table)
            pd.testing.assert_frame_equal(ours, local)
    for shard in ("puzzles.s0.jsonl", "puzzles.s1.jsonl", "solutions.s0.jsonl"):
        path = f"results/data/tiny/r0/shards/{shard}"
        assert (tmp_path / path).read_text() == (study_dir / path).read_text()
