"""Per-puzzle summaries of sample verdicts, the pass@k table, and the `evaluate` command."""

from __future__ import annotations

import pandas as pd
import pytest

from selfteach.cli import main
from selfteach.evaluate import (
    PASSK_COLUMNS,
    PER_PUZZLE_COLUMNS,
    passk_table,
    read_per_puzzle,
    summarise,
    write_evaluation,
)
from selfteach.io import write_jsonl

PUZZLES = ["A:0", "B:0", "C:0"]


def sample(puzzle: str, j: int) -> dict:
    return {
        "id": f"{puzzle}/{j}",
        "puzzle_id": puzzle,
        "sample": j,
        "f": "def f(x): ...",
        "g": "def g(): ...",
        "tokens": 7,
    }


def verdict(puzzle: str, j: int, status: str) -> dict:
    return {"id": f"{puzzle}/{j}", "ok": status == "pass", "status": status, "seconds": 0.01}


# A: 4 samples, passes at j=1 and j=3, written out of order; B: 4 samples, none pass; C: no samples.
STATUSES = {
    ("A:0", 3): "pass", ("A:0", 0): "fail", ("A:0", 1): "pass", ("A:0", 2): "timeout",
    ("B:0", 0): "error", ("B:0", 1): "wrong_type", ("B:0", 2): "rejected", ("B:0", 3): "resource",
}  # fmt: skip
SAMPLES = [sample(p, j) for p, j in STATUSES]
VERDICTS = [verdict(p, j, status) for (p, j), status in reversed(STATUSES.items())]


def test_summarise_counts_every_puzzle_and_status():
    table = summarise(PUZZLES, SAMPLES, VERDICTS)
    assert tuple(table.columns) == PER_PUZZLE_COLUMNS
    assert table["puzzle_id"].tolist() == PUZZLES
    rows = table.set_index("puzzle_id")
    assert rows.loc["A:0", ["attempts", "successes", "n_pass", "n_fail", "n_timeout"]].tolist() == [
        4,
        2,
        2,
        1,
        1,
    ]
    assert rows.loc["A:0", "first_success"] == 1  # the sample index, not the file position of the first pass
    counts = ["attempts", "successes", "n_error", "n_wrong_type", "n_rejected", "n_resource"]
    assert rows.loc["B:0", counts].tolist() == [4, 0, 1, 1, 1, 1]
    assert pd.isna(rows.loc["B:0", "first_success"])
    assert rows.loc["C:0", ["attempts", "successes"]].tolist() == [0, 0]
    assert pd.isna(rows.loc["C:0", "first_success"])


@pytest.mark.parametrize(
    "samples, verdicts, message",
    [
        (SAMPLES + [sample("Z:0", 0)], VERDICTS + [verdict("Z:0", 0, "fail")], "not a test puzzle"),
        (SAMPLES + [sample("C:0", 0)], VERDICTS, "has no verdict"),
        (SAMPLES + SAMPLES[:1], VERDICTS, "appears twice"),
        (SAMPLES, VERDICTS + [verdict("C:0", 9, "fail")], "match no sample"),
        (SAMPLES, VERDICTS[:-1] + [{**VERDICTS[-1], "status": "crashed"}], "unknown status"),
        (SAMPLES, VERDICTS[:-1] + [{**VERDICTS[-1], "ok": True, "status": "fail"}], "disagrees"),
        (
            SAMPLES[:-1] + [{k: v for k, v in SAMPLES[-1].items() if k != "sample"}],
            VERDICTS,
            "no 'sample' field",
        ),
    ],
)
def test_summarise_rejects_inconsistent_inputs(samples, verdicts, message):
    with pytest.raises(ValueError, match=message):
        summarise(PUZZLES, samples, verdicts)


def test_passk_table_by_hand():
    table = passk_table(summarise(PUZZLES, SAMPLES, VERDICTS))
    assert tuple(table.columns) == PASSK_COLUMNS
    assert table["k"].tolist() == [1, 2, 4]
    # A: c=2 of n=4, B: 0 of 4, C: no samples. pass@1 = (1/2)/3; pass@2 = (1 - C(2,2)/C(4,2))/3 = (5/6)/3.
    assert table["pass_at_k"].tolist() == pytest.approx([1 / 6, 5 / 18, 1 / 3])
    assert table["solved"].tolist() == pytest.approx([0.5, 5 / 6, 1.0])
    assert table["paper_pass_at_k"].tolist() == pytest.approx([0, 1 / 3, 1 / 3])  # A's first pass is sample 1
    assert (table["ci_low"] <= table["pass_at_k"]).all() and (table["pass_at_k"] <= table["ci_high"]).all()


def test_passk_table_needs_a_sample():
    with pytest.raises(ValueError, match="no puzzle has any sample"):
        passk_table(summarise(PUZZLES, [], []))


def test_write_evaluation_round_trips(tmp_path):
    per_puzzle = summarise(PUZZLES, SAMPLES, VERDICTS)
    table = write_evaluation(per_puzzle, tmp_path / "eval", seed=1)
    pd.testing.assert_frame_equal(read_per_puzzle(tmp_path / "eval" / "per_puzzle.csv"), per_puzzle)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "eval" / "passk.csv"), table)
    assert (tmp_path / "eval" / "per_puzzle.csv").read_text().splitlines()[3].startswith("C:0,0,0,,")


def test_evaluate_command(tmp_path, capsys):
    write_jsonl(tmp_path / "test.jsonl", [{"id": p, "f": "def f(x): ..."} for p in PUZZLES])
    write_jsonl(tmp_path / "samples.s0.jsonl", SAMPLES[:3])  # shards: the command reads them all
    write_jsonl(tmp_path / "samples.s1.jsonl", SAMPLES[3:])
    write_jsonl(tmp_path / "verdicts.jsonl", VERDICTS)
    shards = [str(tmp_path / f"samples.s{i}.jsonl") for i in range(2)]
    files = ["--puzzles", str(tmp_path / "test.jsonl"), "--samples", *shards]
    out = ["--out", str(tmp_path / "eval")]
    assert main(["evaluate", *files, "--verdicts", str(tmp_path / "verdicts.jsonl"), *out]) == 0
    assert pd.read_csv(tmp_path / "eval" / "per_puzzle.csv")["attempts"].tolist() == [4, 4, 0]
    assert pd.read_csv(tmp_path / "eval" / "passk.csv")["k"].tolist() == [1, 2, 4]

    write_jsonl(tmp_path / "few.jsonl", VERDICTS[1:])
    assert main(["evaluate", *files, "--verdicts", str(tmp_path / "few.jsonl"), *out]) == 2
    assert "has no verdict" in capsys.readouterr().err
