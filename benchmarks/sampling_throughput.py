"""Sampling throughput on the paper's solving workload: naive `generate` against our HF backend.

Workload: `train_prefix.txt` + a test puzzle + `def g(<f's defaulted args>):`, the first
`--puzzles` test puzzles, `--samples` samples each at temperature 0.8, at most 150 new tokens.
Baseline: one `model.generate` per prompt with its samples batched (num_return_sequences), the full
budget, no reuse of the prefix. Ours: `HFBackend.generate` on all prompts at once. Both count
useful tokens: those of the completion cut at its first non-indented line. The ratio is printed last.

    python benchmarks/sampling_throughput.py [--model HF_FOLDER]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selfteach import models, p3
from selfteach import prompts as prompts_lib
from selfteach.cuts import cut_at_dedent
from selfteach.sampling.base import SamplingParams
from selfteach.sampling.hf import HFBackend

REPO = Path(__file__).resolve().parents[1]
CACHED_MODEL = Path("/tmp/selfteach-bench/smollm2-135m")


def embedded_model(out: Path = CACHED_MODEL) -> Path:
    """Convert the embedded GGUF to a plain HF folder once (~35 s); later runs reuse it."""
    if not (out / "config.json").exists():
        models.prepare("smollm2-135m", {"source": "embedded"}, out)
    return out


def useful_tokens(tokenizer, texts: list[str]) -> int:
    return sum(len(tokenizer(text, add_special_tokens=False).input_ids) for text in texts)


def run_baseline(model, tokenizer, prompts, args) -> tuple[float, list[tuple[str, bool]]]:
    """(seconds, [(completion cut at its dedent, whether a dedent ended it)])."""
    torch.manual_seed(args.seed)
    texts, start = [], time.perf_counter()
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=args.temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=args.max_new_tokens,
                num_return_sequences=args.samples,
                pad_token_id=tokenizer.eos_token_id,
            )
            texts += tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
    return time.perf_counter() - start, [cut_at_dedent(text) for text in texts]


def run_ours(model, tokenizer, prompts, args) -> tuple[float, list[tuple[str, bool]]]:
    backend = HFBackend.from_model(model, tokenizer, batch_size=args.batch_size)
    params = SamplingParams(
        n=args.samples, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    start = time.perf_counter()
    results = backend.generate(prompts, params)
    return time.perf_counter() - start, [(c.text, c.finished) for samples in results for c in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="HF folder (default: the embedded SmolLM2-135M, converted once)")
    parser.add_argument("--p3", type=Path, default=REPO.parent / "shared" / "data" / "p3")
    parser.add_argument("--puzzles", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=150)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    folder = args.model or embedded_model()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prefix = p3.train_prefix(args.p3)
    prompts = [prompts_lib.solution_prompt(prefix, puzzle["f"]) for puzzle in p3.test_puzzles(args.p3)[: args.puzzles]]
    print(f"{len(prompts)} puzzles x {args.samples} samples, {args.max_new_tokens} new tokens max, "
          f"T={args.temperature}, {torch.get_num_threads()} threads")

    rates = {}
    for name, run in (("baseline", run_baseline), ("ours", run_ours)):
        model = AutoModelForCausalLM.from_pretrained(folder).eval()  # ours switches attention: no sharing
        seconds, completions = run(model, tokenizer, prompts, args)
        texts = [text for text, _ in completions]
        useful = useful_tokens(tokenizer, texts)
        finished = sum(done for _, done in completions)
        rates[name] = useful / seconds
        print(f"{name}: {seconds:.1f} s, {useful} useful tokens, {finished}/{len(texts)} finished, "
              f"{rates[name]:.1f} useful tokens/s", flush=True)
    print(f"ratio ours/baseline: {rates['ours'] / rates['baseline']:.2f}")


if __name__ == "__main__":
    main()
