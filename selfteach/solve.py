"""Steps 3 and 7: sample solutions `g` for a shard of puzzles (generated ones, or the test set)."""

from __future__ import annotations

from pathlib import Path

from selfteach.io import read_jsonl, write_jsonl
from selfteach.prompts import solution_from_completion, solution_prompt
from selfteach.sampling import SamplingParams, load_backend, prompts_per_unit, sample_to_jsonl


def solve_shard(
    model: str | dict,
    sampling: dict,
    settings: dict,
    puzzles_path: str | Path,
    prefix: str,
    out: str | Path,
    *,
    shard: int,
    shards: int,
    seed: int,
) -> int:
    """Sample settings["attempts"] solutions for every `shards`-th puzzle starting at `shard`.

    Writes {"id": "<puzzle id>/<j>", "puzzle_id", "sample", "f", "g", "tokens", "finished"}, g being
    the full `def g(...)` source (or null when the completion does not parse); returns the count.
    """
    puzzles = read_jsonl(puzzles_path)[shard::shards]
    requests = [
        {"id": puzzle["id"], "f": puzzle["f"], "prompt": solution_prompt(prefix, puzzle["f"])}
        for puzzle in puzzles
    ]
    params = SamplingParams.from_settings(settings, n=settings["attempts"], seed=seed)
    samples_path = Path(f"{out}.samples.jsonl")
    backend = load_backend(model, sampling)
    per_unit = prompts_per_unit(sampling["batch_size"], params.n)
    sample_to_jsonl(backend, requests, params, samples_path, prompts_per_batch=per_unit)
    solutions = (
        {
            "id": f"{sample['id']}/{sample['sample']}",
            "puzzle_id": sample["id"],
            "sample": sample["sample"],
            "f": sample["f"],
            "g": solution_from_completion(sample["f"], sample["completion"]),
            "tokens": sample["tokens"],
            "finished": sample["finished"],
        }
        for sample in read_jsonl(samples_path)
    )
    return write_jsonl(out, solutions)
