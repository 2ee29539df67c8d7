"""Step 1: a shard of generated puzzles, sampled from few-shot prompts of the 155 train puzzles."""

from __future__ import annotations

import random
from pathlib import Path

from selfteach import p3
from selfteach.io import read_jsonl, write_jsonl
from selfteach.prompts import generation_prompt, puzzle_from_completion
from selfteach.sampling import SamplingParams, load_backend, prompts_per_unit, sample_to_jsonl


def generate_shard(
    model: str | dict,
    sampling: dict,
    settings: dict,
    p3_dir: str | Path,
    out: str | Path,
    *,
    name: str,
    seed: int,
) -> int:
    """Write the puzzles of one shard as {"id", "f", "prompt_id", "tokens"}; return how many.

    `name` ("<gen>/r<round>/s<shard>") prefixes every id and seeds the prompts' shuffles, so each
    shard draws different prompts and a rerun draws the same ones. The raw samples are kept beside
    the output (resumable if the job is killed).
    """
    backend = load_backend(model, sampling)
    budget = settings["max_prompt_tokens"] or backend.max_context - settings["max_new_tokens"]
    train = [puzzle["f"] for puzzle in p3.train_puzzles(p3_dir)]
    rng = random.Random(f"{seed}/{name}")
    requests = [
        {"id": f"{name}/p{i}", "prompt": generation_prompt(train, budget, backend.count_tokens, rng)}
        for i in range(settings["prompts"])
    ]
    params = SamplingParams.from_settings(settings, n=settings["per_prompt"], seed=seed)
    samples_path = Path(f"{out}.samples.jsonl")
    per_unit = prompts_per_unit(sampling["batch_size"], params.n)
    sample_to_jsonl(backend, requests, params, samples_path, prompts_per_batch=per_unit)
    puzzles = (
        {
            "id": f"{sample['id']}/{sample['sample']}",
            "f": puzzle_from_completion(sample["completion"]),
            "prompt_id": sample["id"],
            "tokens": sample["tokens"],
        }
        for sample in read_jsonl(samples_path)
    )
    return write_jsonl(out, puzzles)
