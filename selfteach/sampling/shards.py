"""Resumable sampling into a JSONL file: a killed job picks up where it stopped.

The requests are cut into fixed batches. Each finished batch is appended (one write, fsynced) to
`<out>.partial`; a rerun with the same parameters skips the batches already there and redoes a
batch that was cut short. Every sample is seeded from `params.seed` and its request id, and the
batches are the same on every run, so the final file is identical to an uninterrupted run's.
The final file appears, by atomic rename, only when every request has its samples.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from selfteach.io import append_jsonl, read_partial_jsonl, write_jsonl, write_text
from selfteach.sampling.base import Backend, SamplingParams

log = logging.getLogger(__name__)

PROMPTS_PER_BATCH = 8
# A resumable unit holds this many sampler batches' worth of rows: the sampler keeps its batch full
# across them (continuous batching) and idles behind a last long row only once per unit, while a
# killed job loses at most one unit.
BATCHES_PER_UNIT = 4


def prompts_per_unit(batch_size: int, n: int) -> int:
    """Prompts per resumable unit when each prompt gets `n` samples and the sampler runs `batch_size` rows."""
    return max(1, BATCHES_PER_UNIT * batch_size // n)


def check_requests(requests: list[dict]) -> None:
    seen = set()
    for number, request in enumerate(requests):
        if not isinstance(request.get("id"), str) or not isinstance(request.get("prompt"), str):
            raise ValueError(f"request {number}: needs a string 'id' and a string 'prompt'")
        if request["id"] in seen:
            raise ValueError(f"request {number}: duplicate id {request['id']!r}")
        seen.add(request["id"])


def _resume(partial: Path, stamp: Path, params_json: str, batches: list[list[dict]], n: int) -> list[dict]:
    """Return the records of the batches already complete, cutting everything else from the partial file."""
    if not stamp.exists() or stamp.read_text() != params_json:
        partial.unlink(missing_ok=True)  # no partial, or one sampled with other parameters: start over
        write_text(stamp, params_json)
        return []
    records = read_partial_jsonl(partial)
    by_id: dict[str, list[dict]] = {}
    for record in records:
        by_id.setdefault(record["id"], []).append(record)
    kept = [
        record
        for batch in batches
        if all(len(by_id.get(request["id"], ())) == n for request in batch)
        for request in batch
        for record in by_id[request["id"]]
    ]
    if len(kept) != len(records):
        write_jsonl(partial, kept)
    return kept


def sample_to_jsonl(
    backend: Backend,
    requests: list[dict],
    params: SamplingParams,
    out_path: str | os.PathLike,
    *,
    prompts_per_batch: int = PROMPTS_PER_BATCH,
    progress: bool = True,
) -> dict:
    """Sample `params.n` completions per request into `out_path`, one record per sample.

    Each record: the request's fields except "prompt", then "sample", "completion", "tokens",
    "finished". Returns (and logs) a summary of this run: samples, tokens, seconds, tokens/s.
    """
    check_requests(requests)
    if prompts_per_batch < 1:
        raise ValueError(f"prompts_per_batch must be at least 1, got {prompts_per_batch}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(f"{out_path}.partial")
    stamp = Path(f"{out_path}.partial.params.json")
    batches = [requests[i : i + prompts_per_batch] for i in range(0, len(requests), prompts_per_batch)]
    params_json = json.dumps(dataclasses.asdict(params), sort_keys=True)
    records = _resume(partial, stamp, params_json, batches, params.n)
    done_ids = {record["id"] for record in records}

    start = time.perf_counter()
    new_samples = new_tokens = 0
    bar = tqdm(
        total=len(requests) * params.n,
        initial=len(records),
        unit="sample",
        desc=out_path.name,
        disable=not (progress and sys.stderr.isatty()),
    )
    for batch in batches:
        if batch[0]["id"] in done_ids:
            continue
        completions = backend.generate([r["prompt"] for r in batch], params, keys=[r["id"] for r in batch])
        fresh = [
            {
                **{k: v for k, v in request.items() if k != "prompt"},
                "sample": j,
                "completion": completion.text,
                "tokens": completion.tokens,
                "finished": completion.finished,
            }
            for request, samples in zip(batch, completions)
            for j, completion in enumerate(samples)
        ]
        append_jsonl(partial, fresh)
        records.extend(fresh)
        new_samples += len(fresh)
        new_tokens += sum(record["tokens"] for record in fresh)
        rate = new_tokens / (time.perf_counter() - start)
        bar.update(len(fresh))
        bar.set_postfix(tokens_per_s=f"{rate:.1f}")
        if bar.disable:  # no progress bar (a log file): a line per batch instead
            log.info("%s: %d of %d samples, %.1f tokens/s", out_path.name, len(records), bar.total, rate)
    bar.close()

    order = {request["id"]: number for number, request in enumerate(requests)}
    records.sort(key=lambda record: (order[record["id"]], record["sample"]))
    write_jsonl(out_path, records)
    partial.unlink(missing_ok=True)
    stamp.unlink(missing_ok=True)

    seconds = time.perf_counter() - start
    summary = {
        "samples": len(records),
        "finished": sum(record["finished"] for record in records),
        "new_samples": new_samples,
        "tokens": new_tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(new_tokens / seconds, 2) if seconds > 0 else 0.0,
    }
    log.info(
        "sampled %s: %d samples (%d new, %d finished), %d tokens in %.1f s, %.1f tokens/s",
        out_path, summary["samples"], new_samples, summary["finished"], new_tokens, seconds, summary["tokens_per_s"],
    )
    return summary
