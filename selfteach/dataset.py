"""Step 5: the fine-tuning set from sampled solutions, and the unverified ablation from the same samples.

As in the paper (ICLR2023/src/preprocess.py): per puzzle, the distinct solutions sorted by length,
the shortest 8 kept; each becomes `f + "\n\n" + g + "\n\n" + "assert f(g())\n\n"`; the examples are
deduplicated, shuffled with a seed and capped. The verified set takes only samples that the verifier
passed; the unverified ablation takes every sample that parses. Distinct and duplicate mean equal
normalised syntax trees (`dedup`), where the paper compared exact strings.

The builder reads the samples once, in a stream (paper scale: about 25M samples), keeping per puzzle
only its current shortest few.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from itertools import zip_longest
from pathlib import Path
from typing import Iterable, Iterator

from selfteach import config, dedup
from selfteach.io import atomic_path, write_jsonl

DEFAULTS = config.defaults("dataset")  # the schema is the one home of every default
ASSERTION = "assert f(g())\n\n"
_PUZZLE_ID = re.compile(r"^(?P<generator>.+?)/r(?P<round>\d+)/s(?P<shard>\d+)/")


def example_text(f: str, g: str) -> str:
    return f.strip() + "\n\n" + g.strip() + "\n\n" + ASSERTION


def provenance(puzzle_id: str) -> dict:
    """{"generator", "round", "shard"} from a generated puzzle's id `<generator>/r<round>/s<shard>/...`."""
    match = _PUZZLE_ID.match(puzzle_id)
    if match is None:
        raise ValueError(f"puzzle id {puzzle_id!r} is not of the form '<generator>/r<round>/s<shard>/...'")
    return {"generator": match["generator"], "round": int(match["round"]), "shard": int(match["shard"])}


class ShortestDistinct:
    """The `limit` shortest distinct solutions of one puzzle, fed one at a time.

    Rank = (length, arrival); each class of equal normalised g keeps its best-ranked member. A class
    pushed out of the top `limit` can never return with a member ranked worse than the one it lost
    (the cut-off only moves down), so dropping it loses nothing. Building a syntax tree is the costly
    step, so it is skipped for a candidate ranked below a full top `limit` and for a repeat of the
    exact text of a kept solution (sampling repeats itself a lot).
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.best: dict[str, tuple[int, int, dict]] = {}  # key -> (length, arrival, sample)

    def add(self, sample: dict, arrival: int) -> None:
        g = sample["g"]
        rank = (len(g), arrival)
        if len(self.best) >= self.limit and rank > max(entry[:2] for entry in self.best.values()):
            return
        if any(entry[2]["g"] == g for entry in self.best.values()):
            return  # the same text arrived earlier, so it ranks better
        key = dedup.dedup_key(g)
        if key in self.best and self.best[key][:2] <= rank:
            return
        self.best[key] = (*rank, sample)
        if len(self.best) > self.limit:
            worst = max(self.best, key=lambda k: self.best[k][:2])
            del self.best[worst]

    def chosen(self) -> list[tuple[str, dict]]:
        """(key of g, sample), shortest first."""
        ranked = sorted(self.best.items(), key=lambda item: item[1][:2])
        return [(key, sample) for key, (*_, sample) in ranked]


def with_verdicts(
    samples: Iterable[dict], verdicts: Iterable[dict] | None
) -> Iterator[tuple[dict, dict | None]]:
    """Pair each sample with its verdict; the verifier writes them in the samples' order."""
    if verdicts is None:
        yield from ((sample, None) for sample in samples)
        return
    missing = object()
    for number, (sample, verdict) in enumerate(zip_longest(samples, verdicts, fillvalue=missing)):
        if sample is missing or verdict is missing:
            raise ValueError(f"samples and verdicts differ in length (from record {number})")
        if sample["id"] != verdict["id"]:
            raise ValueError(f"record {number}: sample id {sample['id']!r} but verdict id {verdict['id']!r}")
        yield sample, verdict


def build_dataset(
    samples: Iterable[dict],
    verdicts: Iterable[dict] | None,
    *,
    verified: bool = True,
    max_per_puzzle: int = DEFAULTS["max_solutions_per_puzzle"],
    max_examples: int | None = DEFAULTS["max_examples"],
    seed: int = config.defaults()["seed"],
) -> tuple[list[dict], dict]:
    """The examples (shuffled, capped) and the counts of every stage.

    `samples`: {"id", "puzzle_id", "f", "g" (None when it did not parse), ...}; `verdicts`: the
    verifier's {"id", "ok", "status"} in the same order, or None. `verified=False` builds the
    unverified ablation (verdicts, when given, are only counted). Each example: {"puzzle_id",
    "sample_id", "generator", "round", "shard", "f", "g", "verified"} ("verified": the sample's
    verdict, None when unknown).
    """
    if verified and verdicts is None:
        raise ValueError("the verified set needs verdicts")
    statuses: Counter = Counter()
    per_puzzle: dict[str, ShortestDistinct] = {}
    solved: set[str] = set()
    count = unparsable = 0
    for count, (sample, verdict) in enumerate(with_verdicts(samples, verdicts), 1):
        puzzle = per_puzzle.setdefault(sample["puzzle_id"], ShortestDistinct(max_per_puzzle))
        if verdict is not None:
            statuses[verdict["status"]] += 1
            if verdict["ok"]:
                solved.add(sample["puzzle_id"])
        if sample["g"] is None:
            unparsable += 1
        elif not verified or verdict["ok"]:
            puzzle.add(dict(sample, verified=None if verdict is None else verdict["ok"]), count)

    selected = []  # (key of f + key of g, sample): the global dedup compares both
    for puzzle in per_puzzle.values():
        chosen = puzzle.chosen()
        if chosen:
            f_key = dedup.dedup_key(chosen[0][1]["f"])
            selected += [(f_key + g_key, sample) for g_key, sample in chosen]
    distinct = [sample for _, sample in dedup.first_occurrences(selected, key=lambda pair: pair[0])]
    random.Random(seed).shuffle(distinct)
    examples = [_example(sample) for sample in distinct[:max_examples]]
    stats = {
        "verified": verified,
        "samples": count,
        "unparsable": unparsable,
        "statuses": dict(statuses.most_common()) if verdicts is not None else None,
        "puzzles_attempted": len(per_puzzle),
        "puzzles_solved": len(solved) if verdicts is not None else None,
        "selected": len(selected),
        "distinct": len(distinct),
        "examples": len(examples),
    }
    return examples, stats


def _example(sample: dict) -> dict:
    return {
        "puzzle_id": sample["puzzle_id"],
        "sample_id": sample["id"],
        **provenance(sample["puzzle_id"]),
        "f": sample["f"],
        "g": sample["g"],
        "verified": sample["verified"],
    }


def stream_jsonl(paths: Iterable[str | Path]) -> Iterator[dict]:
    """The records of several JSONL files in turn, one line in memory at a time."""
    for path in paths:
        with open(path) as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None


def write_dataset(examples: list[dict], text_path: str | Path, examples_path: str | Path) -> None:
    """The training text (the examples concatenated) and the examples with their provenance."""
    with atomic_path(text_path) as tmp, open(tmp, "w") as out:
        for example in examples:
            out.write(example_text(example["f"], example["g"]))
    write_jsonl(examples_path, examples)


def build_dataset_files(
    samples_paths: Iterable[str | Path],
    verdicts_paths: Iterable[str | Path] | None,
    text_path: str | Path,
    examples_path: str | Path,
    **kwargs,
) -> tuple[list[dict], dict]:
    """`build_dataset` over JSONL files (several rounds or shards in turn), written by `write_dataset`."""
    verdicts = None if verdicts_paths is None else stream_jsonl(verdicts_paths)
    examples, stats = build_dataset(stream_jsonl(samples_paths), verdicts, **kwargs)
    write_dataset(examples, text_path, examples_path)
    return examples, stats
