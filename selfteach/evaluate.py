"""Evaluation (docs/design.md section 1, step 7): test-puzzle sample verdicts, per puzzle and as pass@k.

The per-puzzle table is the evaluation's ground truth: the report recomputes every pass@k and interval
from it, so one evaluation folder is enough to rebuild any figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from selfteach.io import atomic_path, read_jsonl
from selfteach.metrics import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    bootstrap_ci,
    first_success_pass_at_k,
    ks_for,
    pass_at_k,
)
from selfteach.terms import PASSK_CSV, PER_PUZZLE_CSV, STATUSES

COUNT_COLUMNS = tuple(f"n_{status}" for status in STATUSES)
PER_PUZZLE_COLUMNS = ("puzzle_id", "attempts", "successes", "first_success", *COUNT_COLUMNS)
PASSK_COLUMNS = ("k", "pass_at_k", "solved", "paper_pass_at_k", "ci_low", "ci_high")


def summarise(puzzle_ids: list[str], samples: list[dict], verdicts: list[dict]) -> pd.DataFrame:
    """One row per test puzzle, in `puzzle_ids` order: attempts, successes, first success, verdict counts.

    Every test puzzle gets a row, also one with no samples, so a puzzle the sampler skipped counts as
    unsolved instead of vanishing from the denominator. `first_success` is the smallest sample index `j`
    whose verdict passed (NA when none did): the sampling order, not the file order, which shards mix.
    """
    if len(set(puzzle_ids)) != len(puzzle_ids):
        raise ValueError("the test puzzle ids are not unique")
    by_id = {}
    for verdict in verdicts:
        verdict_id, status, ok = (_field(verdict, key, "verdict") for key in ("id", "status", "ok"))
        if status not in STATUSES:
            raise ValueError(f"verdict {verdict_id!r}: unknown status {status!r}")
        if bool(ok) != (status == "pass"):
            raise ValueError(f"verdict {verdict_id!r}: ok={ok!r} disagrees with status {status!r}")
        by_id[verdict_id] = status

    rows = {pid: dict.fromkeys(PER_PUZZLE_COLUMNS[1:], 0) | {"first_success": None} for pid in puzzle_ids}
    seen = set()
    for sample in samples:
        sample_id, puzzle_id, j = (_field(sample, key, "sample") for key in ("id", "puzzle_id", "sample"))
        if puzzle_id not in rows:
            raise ValueError(f"sample {sample_id!r}: puzzle {puzzle_id!r} is not a test puzzle")
        if sample_id in seen:
            raise ValueError(f"sample {sample_id!r} appears twice")
        seen.add(sample_id)
        if sample_id not in by_id:
            raise ValueError(f"sample {sample_id!r} has no verdict")
        status = by_id[sample_id]
        row = rows[puzzle_id]
        row["attempts"] += 1
        row[f"n_{status}"] += 1
        if status == "pass":
            row["successes"] += 1
            first = row["first_success"]
            row["first_success"] = int(j) if first is None else min(int(j), first)
    unmatched = by_id.keys() - seen
    if unmatched:
        raise ValueError(f"{len(unmatched)} verdicts match no sample, e.g. {sorted(unmatched)[0]!r}")

    table = pd.DataFrame([{"puzzle_id": pid, **row} for pid, row in rows.items()], columns=PER_PUZZLE_COLUMNS)
    table["first_success"] = table["first_success"].astype("Int64")
    return table


def _field(record: dict, key: str, what: str):
    if key not in record:
        raise ValueError(f"{what} {record.get('id', record)!r}: no {key!r} field")
    return record[key]


def passk_table(
    per_puzzle: pd.DataFrame,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per k in ks_for(most attempts): mean unbiased pass@k, solved, paper measure, bootstrap CI.

    `solved` is the mean times the number of puzzles, the paper's "22.2 of 228". The interval is over
    puzzles for the unbiased estimate; every k uses the same seed, hence the same resampled puzzle sets.
    """
    if per_puzzle.empty:
        raise ValueError("no puzzles to tabulate")
    most = int(per_puzzle["attempts"].max())
    if most < 1:
        raise ValueError("no puzzle has any sample: nothing to tabulate")
    attempts = per_puzzle["attempts"].astype(int).tolist()
    successes = per_puzzle["successes"].astype(int).tolist()
    firsts = [None if pd.isna(first) else int(first) for first in per_puzzle["first_success"]]
    rows = []
    for k in ks_for(most):
        unbiased = np.array([pass_at_k(n, c, k) for n, c in zip(attempts, successes)])
        paper = np.array([first_success_pass_at_k(first, k) for first in firsts])
        low, high = bootstrap_ci(unbiased, resamples=resamples, level=level, seed=seed)
        mean = float(unbiased.mean())
        rows.append((k, mean, mean * len(unbiased), float(paper.mean()), low, high))
    return pd.DataFrame(rows, columns=PASSK_COLUMNS)


def read_per_puzzle(path: str | Path) -> pd.DataFrame:
    """Read a per_puzzle.csv back with its types (first_success stays a nullable integer)."""
    table = pd.read_csv(path, dtype={"puzzle_id": str, "first_success": "Int64"})
    missing = set(PER_PUZZLE_COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return table


def write_evaluation(per_puzzle: pd.DataFrame, out_dir: str | Path, **bootstrap) -> pd.DataFrame:
    """Write per_puzzle.csv and passk.csv into `out_dir`, each atomically; return the pass@k table.

    `bootstrap` passes resamples, level and seed on to passk_table.
    """
    out_dir = Path(out_dir)
    table = passk_table(per_puzzle, **bootstrap)
    for name, frame in ((PER_PUZZLE_CSV, per_puzzle), (PASSK_CSV, table)):
        with atomic_path(out_dir / name) as tmp:
            frame.to_csv(tmp, index=False)
    return table


def _read_shards(paths: str | Path | Iterable[str | Path]) -> list[dict]:
    """The records of one JSONL file, or of several shard files one after another."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return [record for path in paths for record in read_jsonl(path)]


def evaluate_files(
    puzzles: str | Path,
    samples: str | Path | Iterable[str | Path],
    verdicts: str | Path | Iterable[str | Path],
    out_dir: str | Path,
    **bootstrap,
) -> pd.DataFrame:
    """The `evaluate` step on files: test puzzles, samples and verdicts (JSONL, each one file or shards)."""
    puzzle_ids = [_field(record, "id", f"{puzzles}: puzzle") for record in read_jsonl(puzzles)]
    per_puzzle = summarise(puzzle_ids, _read_shards(samples), _read_shards(verdicts))
    return write_evaluation(per_puzzle, out_dir, **bootstrap)
