"""Steps 3 and 7: sample solutions `g` for a shard of puzzles (generated ones, or the test set)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

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

    def solution(sample: dict) -> dict:
        return {"f": sample["f"], "g": solution_from_completion(sample["f"], sample["completion"])}

    return sample_attempts(model, sampling, settings, requests, out, solution, seed=seed)


def sample_attempts(
    model: str | dict,
    sampling: dict,
    settings: dict,
    requests: list[dict],
    out: str | Path,
    fields: Callable[[dict], dict],
    *,
    seed: int,
) -> int:
    """Sample settings["attempts"] completions per request ({"id", "prompt", ...}) into `out`.

    Each record is {"id": "<request id>/<j>", "puzzle_id", "sample", **fields(sample), "tokens",
    "finished"}, `sample` being the sampler's record (the request's fields, "sample", "completion");
    returns the count. The raw samples stay beside `out` (`<out>.samples.jsonl`).
    """
    params = SamplingParams.from_settings(settings, n=settings["attempts"], seed=seed)
    samples_path = Path(f"{out}.samples.jsonl")
    backend = load_backend(model, sampling)
    per_unit = prompts_per_unit(sampling["batch_size"], params.n)
    sample_to_jsonl(backend, requests, params, samples_path, prompts_per_batch=per_unit)
    records = (
        {
            "id": f"{sample['id']}/{sample['sample']}",
            "puzzle_id": sample["id"],
            "sample": sample["sample"],
            **fields(sample),
            "tokens": sample["tokens"],
            "finished": sample["finished"],
        }
        for sample in read_jsonl(samples_path)
    )
    return write_jsonl(out, records)
