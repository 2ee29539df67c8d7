"""Training throughput: the plain `transformers.Trainer` with default settings vs `selfteach.finetune.train`.

Both train the same randomly initialised model (SmolLM2-135M's architecture; fewer layers by flag) on the
same packed blocks of P3-style examples for the same number of optimizer steps, at the same learning rate
and batch size. Each run has a fresh interpreter of its own (no allocator state or leftover tensors from
the run before), and runs alternate (baseline, ours, ours, baseline, ...) so that load from other
processes on a shared machine hits both alike; the median of each is reported.

Measured, in training tokens per second: each optimizer step's (a Trainer callback's clock; our CSV log at
`log_every=1`), whose median over all runs gives the ratio printed last, and the whole training loop's
(the Trainer's own `train_runtime`; our summary's `train_seconds`, which leaves out the epoch model and
checkpoint saves, as the baseline saves nothing). End-to-end wall time of each run is printed too.

    python benchmarks/finetune_throughput.py                # 30 layers, the full 135M architecture
    python benchmarks/finetune_throughput.py --layers 8     # a quicker look
"""

from __future__ import annotations

import argparse
import csv
import logging
import multiprocessing
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from selfteach import finetune, models
from selfteach.dataset import example_text

# SmolLM2-135M's architecture (its config.json), randomly initialised: the weights do not change the speed.
SMOLLM2_135M = dict(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=8192,
    tie_word_embeddings=True,
)
LEARNING_RATE = 5e-6  # the paper's; the same for both


def make_inputs(folder: Path, layers: int, n_blocks: int, block_size: int) -> tuple[Path, Path, torch.Tensor]:
    """A random model folder, a fine-tuning text that fills `n_blocks` blocks (ours also trains on its tail's
    block: the loops are compared by rate), and the `n_blocks` blocks."""
    tokenizer = AutoTokenizer.from_pretrained(models.embedded_folder(), gguf_file=models.EMBEDDED_GGUF)
    config = LlamaConfig(
        **SMOLLM2_135M,
        num_hidden_layers=layers,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model_dir = folder / "model"
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    # P3-style examples until they fill the blocks; the packed tail, under one example, is under one block
    rng, examples, n_tokens = random.Random(0), [], 0
    while n_tokens < n_blocks * block_size:
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        examples.append(
            example_text(
                f"def f(x: int, a={a}):\n    return x + a == {b}", f"def g(a={a}):\n    return {b} - a"
            )
        )
        n_tokens += len(finetune.tokenize_examples(tokenizer, finetune.split_examples(examples[-1])))
    text = "".join(examples)
    train_text = folder / "train.txt"
    train_text.write_text(text)
    blocks = finetune.pack_blocks(
        finetune.tokenize_examples(tokenizer, finetune.split_examples(text)), block_size
    )
    assert len(blocks) in (n_blocks, n_blocks + 1), (len(blocks), n_blocks)  # + the tail's block
    blocks = blocks[:n_blocks]
    return model_dir, train_text, blocks


def quietly(function, *args):
    """Run in a spawned process: keep the runs' own log lines out of the report."""
    logging.disable(logging.WARNING)
    return function(*args)


def in_fresh_process(function, *args):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(quietly, (function, *args))


class StepClock(TrainerCallback):
    """Instrumentation only (no setting changes): the wall time at the end of each optimizer step."""

    def __init__(self):
        self.times = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def run_baseline(model_dir: Path, blocks: torch.Tensor, batch_size: int, steps: int, out: Path) -> dict:
    """Plain Trainer, default settings."""
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    dataset = [{"input_ids": row.long(), "labels": row.long()} for row in blocks]
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=LEARNING_RATE,
        report_to="none",
        save_strategy="no",
    )
    clock = StepClock()
    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[clock])
    runtime = trainer.train().metrics["train_runtime"]
    step_tokens = batch_size * blocks.shape[1]
    return {
        "loop": steps * step_tokens / runtime,
        "per_step": [step_tokens / (b - a) for a, b in zip(clock.times, clock.times[1:])],
        "wall": time.perf_counter() - start,
    }


def run_ours(model_dir: Path, train_text: Path, batch_size: int, block_size: int, out: Path) -> dict:
    start = time.perf_counter()
    config = finetune.FinetuneConfig(
        epochs=1,
        lr=LEARNING_RATE,
        warmup_steps=0,  # the Trainer's default
        block_size=block_size,
        batch_size=batch_size,
        log_every=1,  # a CSV row per step: its tokens_per_s is the step's
        save_every_steps=10_000,
    )
    summary = finetune.train(config, model_dir, train_text, [out / "epoch1"], out / "ckpt", out / "log.csv")
    with open(out / "log.csv", newline="") as log:
        per_step = [float(row["tokens_per_s"]) for row in csv.DictReader(log)]
    return {"loop": summary["train_tokens_per_s"], "per_step": per_step, "wall": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30, help="decoder layers (SmolLM2-135M has 30)")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each way, alternating")
    args = parser.parse_args()
    cpu = f"CPU, {torch.get_num_threads()} threads"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu
    print(f"device: {device}; model: SmolLM2-135M architecture, {args.layers} layers, random weights")
    print(f"data: {args.steps} steps of {args.batch_size} block(s) of {args.block_size} tokens per run")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir, train_text, blocks = make_inputs(
            tmp, args.layers, args.steps * args.batch_size, args.block_size
        )
        runs = {"baseline": [], "ours": []}
        for round_ in range(args.rounds):
            for way in ("baseline", "ours") if round_ % 2 == 0 else ("ours", "baseline"):
                out = tmp / f"{way}{round_}"
                if way == "baseline":
                    run = in_fresh_process(run_baseline, model_dir, blocks, args.batch_size, args.steps, out)
                else:
                    run = in_fresh_process(
                        run_ours, model_dir, train_text, args.batch_size, args.block_size, out
                    )
                assert len(run["per_step"]) == args.steps, run
                runs[way].append(run)
                steps = " ".join(f"{x:.1f}" for x in run["per_step"])
                print(
                    f"round {round_ + 1} {way:8s}: loop {run['loop']:7.1f} tokens/s; per step [{steps}]; "
                    f"{run['wall']:.0f} s end to end"
                )

    # The median step is what a long run sees; it is also robust to other processes' bursts of load.
    median_step = {
        way: statistics.median(x for run in rs for x in run["per_step"]) for way, rs in runs.items()
    }
    median_loop = {way: statistics.median(run["loop"] for run in rs) for way, rs in runs.items()}
    for way, name in (("baseline", "transformers.Trainer, defaults"), ("ours", "selfteach.finetune.train")):
        print(
            f"{way} ({name}): median step {median_step[way]:.1f} tokens/s, "
            f"whole loop {median_loop[way]:.1f} tokens/s"
        )
    print(f"whole-loop ratio ours/baseline: {median_loop['ours'] / median_loop['baseline']:.2f}")
    print(f"ratio ours/baseline (median step tokens/s): {median_step['ours'] / median_step['baseline']:.2f}")


if __name__ == "__main__":
    main()
