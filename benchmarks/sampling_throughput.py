"""Sampling throughput against this machine's matmul roofline, and against transformers' own samplers.

In one run: the machine's matmul rate at the model's shapes (fp32 and bf16, `--batch-size` rows,
the model's own linear maps of one decoding step) and the roofline it implies (tokens/s if a step
cost only its matmuls); then two workloads:
- solve: `train_prefix.txt` + a test puzzle + `def g(...):`, the first `--puzzles` test puzzles
  (all 228 by default: with fewer, the batch runs part-empty much of the time, as the last rows drain;
  or, `--split validation`, of the validation instances of train problems: the base model solves a
  few of them, none of the first 64 test puzzles, so they compare the verified rates of fp32 and bf16),
  `--samples` samples each, T=0.8, at most 150 new tokens, stopped at the dedent;
- generate: puzzle-generation prompts (shuffles of the 155 train puzzles, ~1,800 tokens),
  `--gen-prompts` prompts, `--gen-samples` samples each, T=0.9, at most 200 new tokens.
On each: naive `model.generate` per prompt (num_return_sequences, full budget) and transformers'
continuous batching (`model.generate_batch`, `paged|sdpa`, full budget: it has no dedent stop),
both on the first `--subset` prompts (they are slow); ours (`HFBackend`) in fp32 and in bf16 on all,
with how full its batch ran (rows per decoding step over `--batch-size`).
Useful tokens are those of each completion cut at its first non-indented line; the fraction of
the roofline compares generated tokens/s with the roofline of the run's dtype. On the solve
workload every sampler's solutions also go through the real verifier (sandboxed), so the verified
rates of fp32 and bf16 can be compared (with their standard errors). The last line is the ratio of
our best useful tokens/s to `generate_batch`'s on the solve workload.

    python benchmarks/sampling_throughput.py [--model HF_FOLDER]          # the issue's sizes
    python benchmarks/sampling_throughput.py --workloads solve --subset 2   # ~20 min on 2 idle cores
    python benchmarks/sampling_throughput.py --workloads solve --skip naive generate_batch --split validation --puzzles 109
        # verified rates of fp32 and bf16 samples on the same puzzles
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from selfteach import models, p3
from selfteach import prompts as prompts_lib
from selfteach.cuts import cut_at_dedent
from selfteach.sampling.base import SamplingParams
from selfteach.sampling.hf import DEFAULTS, HFBackend
from selfteach.verify import verify_records

REPO = Path(__file__).resolve().parents[1]
CACHED_MODEL = Path("/tmp/selfteach-bench/smollm2-135m")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def embedded_model(out: Path = CACHED_MODEL) -> Path:
    """Convert the embedded GGUF to a plain HF folder once (~35 s); later runs reuse it."""
    if not (out / "config.json").exists():
        models.prepare("smollm2-135m", {"source": "embedded"}, out)
    return out


# --- the roofline ---


def linear_maps(folder: Path, dtype: torch.dtype) -> list[torch.nn.Linear]:
    """The model's own linear maps, in the order a forward uses them (the LM head last)."""
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return [module for module in model.modules() if isinstance(module, torch.nn.Linear)]


def flops_per_token(linears: list[torch.nn.Linear]) -> float:
    return 2 * sum(linear.weight.numel() for linear in linears)


def matmul_rate(linears: list[torch.nn.Linear], rows: int, seconds: float = 3.0) -> float:
    """GFLOP/s of one decoding step's linear maps at `rows` tokens, timed as a whole step.

    The model's own weights, each read from memory once per step as in decoding: one layer's weights
    reused for every layer stay in the CPU's cache, which overstated the rate by 20-35% (measured).
    """
    generator = torch.Generator().manual_seed(0)
    dtype = linears[0].weight.dtype
    inputs = {n: torch.randn(rows, n, generator=generator).to(dtype) for n in {linear.in_features for linear in linears}}

    def step():
        for linear in linears:
            linear(inputs[linear.in_features])

    with torch.inference_mode():
        step()  # warm-up
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step()
            steps += 1
        elapsed = time.perf_counter() - start
    return steps * rows * flops_per_token(linears) / elapsed / 1e9


# --- the samplers: each returns (seconds, generated tokens, [completion per sample, prompt-major]) ---


def run_naive(model, tokenizer, prompts, work) -> tuple[float, int, list[str]]:
    torch.manual_seed(0)
    texts, generated, start = [], 0, time.perf_counter()
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=work.temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=work.max_new_tokens,
                num_return_sequences=work.n,
                pad_token_id=tokenizer.eos_token_id,
            )
            new = out[:, ids.shape[1] :]
            generated += int((new != tokenizer.eos_token_id).sum())
            texts += tokenizer.batch_decode(new, skip_special_tokens=True)
    return time.perf_counter() - start, generated, texts


def run_generate_batch(model, tokenizer, prompts, work) -> tuple[float, int, list[str]]:
    torch.manual_seed(0)
    config = GenerationConfig(
        do_sample=True,
        temperature=work.temperature,
        top_k=0,
        top_p=1.0,
        max_new_tokens=work.max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    inputs = [tokenizer(prompt).input_ids for prompt in prompts for _ in range(work.n)]
    start = time.perf_counter()
    with torch.inference_mode():
        outputs = model.generate_batch(inputs=inputs, generation_config=config, progress_bar=False)
    seconds = time.perf_counter() - start
    ordered = list(outputs.values())  # in the order of the inputs
    generated = sum(len(output.generated_tokens) for output in ordered)
    texts = [tokenizer.decode(output.generated_tokens, skip_special_tokens=True) for output in ordered]
    return seconds, generated, texts


def run_ours(model, tokenizer, prompts, work, batch_size: int) -> tuple[float, int, list[str], float]:
    """Also: the batch's mean fill, rows per decoding step over `batch_size`."""
    backend = HFBackend.from_model(model, tokenizer, batch_size=batch_size)
    start = time.perf_counter()
    results = backend.generate(prompts, work)
    seconds = time.perf_counter() - start
    fill = backend.steps["rows"] / backend.steps["steps"] / batch_size
    return seconds, sum(c.tokens for samples in results for c in samples), [c.text for s in results for c in s], fill


def verified(puzzles: list[str], texts: list[str], n: int) -> tuple[int, int]:
    """(verified, samples): each cut completion as `g`, checked against its puzzle by the real verifier."""
    records = []
    for index, text in enumerate(texts):
        f = puzzles[index // n]
        g = prompts_lib.solution_from_completion(f, text)
        if g is not None:
            records.append({"id": str(index), "f": f, "g": g})
    return sum(verdict["ok"] for verdict in verify_records(records)), len(texts)


# --- the run ---


def workloads(args, tokenizer) -> dict[str, tuple[list[str], list[str] | None, SamplingParams]]:
    """name -> (prompts, their puzzles when solving, sampling parameters)."""
    split = p3.test_puzzles if args.split == "test" else p3.validation_puzzles
    puzzles = [puzzle["f"] for puzzle in split(args.p3)[: args.puzzles]]
    prefix = p3.train_prefix(args.p3)
    solve = [prompts_lib.solution_prompt(prefix, f) for f in puzzles]
    train = [puzzle["f"] for puzzle in p3.train_puzzles(args.p3)]
    rng = random.Random(0)
    count = lambda text: len(tokenizer(text).input_ids)  # noqa: E731
    generate = [prompts_lib.generation_prompt(train, 1848, count, rng) for _ in range(args.gen_prompts)]
    return {
        "solve": (solve, puzzles, SamplingParams(n=args.samples, temperature=0.8, max_new_tokens=150)),
        "generate": (generate, None, SamplingParams(n=args.gen_samples, temperature=0.9, max_new_tokens=200)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="HF folder (default: the embedded SmolLM2-135M, converted once)")
    parser.add_argument("--p3", type=Path, default=REPO.parent / "shared" / "data" / "p3")
    parser.add_argument("--puzzles", type=int, default=228, help="solve workload: puzzles of --split (default: every test puzzle)")
    parser.add_argument("--split", choices=["test", "validation"], default="test",
                        help="solve workload: test puzzles, or the validation instances of train problems")
    parser.add_argument("--samples", type=int, default=8, help="solve workload: samples per puzzle")
    parser.add_argument("--gen-prompts", type=int, default=8, help="generate workload: prompts")
    parser.add_argument("--gen-samples", type=int, default=16, help="generate workload: samples per prompt")
    parser.add_argument("--subset", type=int, default=4, help="prompts the two transformers baselines sample")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="our batch (default: sampling.batch_size's)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["naive", "generate_batch"], help="baselines to leave out")
    parser.add_argument("--workloads", nargs="*", default=["solve", "generate"], choices=["solve", "generate"])
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = args.model or embedded_model()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    roofline = {}
    for name, dtype in DTYPES.items():
        linears = linear_maps(folder, dtype)
        if name == "fp32":
            print(f"{torch.get_num_threads()} torch threads; {flops_per_token(linears) / 1e9:.3f} GFLOP per token (linear maps)")
        rate = matmul_rate(linears, args.batch_size)
        roofline[name] = rate * 1e9 / flops_per_token(linears)
        print(f"matmul {name} at {args.batch_size} rows: {rate:.1f} GFLOP/s -> roofline {roofline[name]:.0f} tokens/s")

    samplers = [("naive generate", "fp32", True), ("generate_batch", "fp32", True), ("ours", "fp32", False), ("ours", "bf16", False)]
    useful_rates: dict[tuple[str, str], float] = {}
    for work_name, (prompts, puzzles, work) in workloads(args, tokenizer).items():
        if work_name not in args.workloads:
            continue
        print(f"\n{work_name}: {len(prompts)} prompts x {work.n} samples, "
              f"~{sum(len(tokenizer(p).input_ids) for p in prompts) // len(prompts)} prompt tokens, "
              f"{work.max_new_tokens} new tokens max, T={work.temperature}", flush=True)
        for sampler, dtype_name, subset in samplers:
            if sampler.split()[0] in args.skip:
                continue
            chosen = prompts[: args.subset] if subset else prompts
            attention = {"attn_implementation": "paged|sdpa"} if sampler == "generate_batch" else {}
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=DTYPES[dtype_name], **attention).eval()
            fill = None
            if sampler == "naive generate":
                seconds, generated, texts = run_naive(model, tokenizer, chosen, work)
            elif sampler == "generate_batch":
                seconds, generated, texts = run_generate_batch(model, tokenizer, chosen, work)
            else:
                seconds, generated, texts, fill = run_ours(model, tokenizer, chosen, work, args.batch_size)
            texts = [cut_at_dedent(text)[0] for text in texts]
            useful = sum(len(tokenizer(text, add_special_tokens=False).input_ids) for text in texts)
            useful_rates[work_name, f"{sampler} {dtype_name}"] = useful / seconds
            line = (f"  {sampler} {dtype_name} ({len(chosen)} prompts): {seconds:.1f} s, {useful / seconds:.1f} useful tokens/s, "
                    f"{generated / seconds:.1f} generated tokens/s, {generated / seconds / roofline[dtype_name]:.1%} of roofline")
            if fill is not None:
                line += f", batch {fill:.0%} full"
            if puzzles is not None:
                ok, total = verified(puzzles, texts, work.n)
                rate = ok / total
                line += f"; verified {ok}/{total} = {rate:.3f} +- {math.sqrt(rate * (1 - rate) / total):.3f}"
            print(line, flush=True)

    if ("solve", "generate_batch fp32") in useful_rates:
        best = max(useful_rates["solve", "ours fp32"], useful_rates["solve", "ours bf16"])
        print(f"\nratio our best / generate_batch (solve, useful tokens/s): {best / useful_rates['solve', 'generate_batch fp32']:.2f}")


if __name__ == "__main__":
    main()
