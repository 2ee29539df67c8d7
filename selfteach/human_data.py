"""The human-data control: P3's train problems with their human-written solutions, as a data source.

The source `p3-train` (terms.HUMAN_DATA) stands where a generator's data stands, so the control goes
through the same steps as the self-taught data from step 4 on: every instance of the 155 train problems
that has a reference solution is a "generated" puzzle, each of its solutions a "sampled" solution, in
the formats the filter and the solver write (docs/design.md section 2). The verifier then checks each
solution; the dataset step dedups, keeps the shortest 8 per puzzle, caps and writes the card.

An instance equal to a held-out evaluation puzzle (the validation split's `:1` instances; no test
problem is a train problem) is rejected as "test_puzzle", exactly as the filter rejects a generated
one; its solutions are not written. No test problem can reach the set: only train problems are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from selfteach import dedup
from selfteach.io import read_jsonl, write_json, write_jsonl
from selfteach.p3 import load_instances, load_split, sat_to_f, sol_to_g
from selfteach.puzzle_filter import filter_counts
from selfteach.terms import HUMAN_DATA

HELD_OUT = "test_puzzle"  # the filter's reason for a puzzle equal to an evaluation puzzle
PREFIX = f"{HUMAN_DATA}/r0/s0"  # the id prefix every generated puzzle has: <generator>/r<round>/s<shard>


def train_instances(p3_dir: str | Path) -> list[dict]:
    """Every instance of a train problem that has a reference solution, as {"id", "f", "solutions"}."""
    train = set(load_split(p3_dir)["train"])
    return [
        {
            "id": instance["name"],
            "f": sat_to_f(instance["sat"]),
            "solutions": [sol_to_g(instance["sol_header"], body) for body in instance["sol_bodies"]],
        }
        for instance in load_instances(p3_dir)
        if instance["name"].rsplit(":", 1)[0] in train and instance["sol_bodies"]
    ]


def human_records(instances: Iterable[dict], held_out: Iterable[str]) -> tuple[list[dict], list[dict]]:
    """(puzzle records as the filter writes them, solution records as the solver writes them)."""
    held_out_keys = {dedup.dedup_key(source) for source in held_out}
    puzzles, solutions = [], []
    for instance in instances:
        puzzle_id = f"{PREFIX}/{instance['id']}"
        kept = dedup.dedup_key(instance["f"]) not in held_out_keys
        puzzles.append(
            {"id": puzzle_id, "f": instance["f"], "prompt_id": None, "tokens": None, "keep": kept,
             "reason": None if kept else HELD_OUT}
        )
        if kept:
            solutions += [
                {"id": f"{puzzle_id}/{i}", "puzzle_id": puzzle_id, "sample": i, "f": instance["f"], "g": g,
                 "tokens": None, "finished": True}
                for i, g in enumerate(instance["solutions"])
            ]
    return puzzles, solutions


def write_human_data(
    p3_dir: str | Path,
    held_out_paths: Iterable[str | Path],
    puzzles_out: str | Path,
    stats_out: str | Path,
    solution_shards: list[str | Path],
) -> dict:
    """The kept puzzles and their counts (as `puzzle_filter.gather_filtered` writes them), and the
    solutions dealt round-robin into `solution_shards` (so verification runs as sharded as the solver's).
    Returns the counts."""
    held_out = [record["f"] for path in held_out_paths for record in read_jsonl(path)]
    puzzles, solutions = human_records(train_instances(p3_dir), held_out)
    write_jsonl(puzzles_out, (p for p in puzzles if p["keep"]))
    stats = filter_counts(puzzles)
    write_json(stats_out, stats)
    for shard, path in enumerate(solution_shards):
        write_jsonl(path, solutions[shard :: len(solution_shards)])
    return stats
