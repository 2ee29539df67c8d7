"""Fine-tuning (docs/design.md section 1, step 6): causal-LM training on the verified examples, packed into blocks.

`train` reads top to bottom in the order things happen, like nanoGPT's train.py: setup, data, model and
optimizer, resume, the loop (micro-steps, clip, step, log, checkpoint), one saved model per epoch. It runs
the same on this CPU and under `accelerate launch` on several GPUs (configs in `accelerate/`).

Two folders per run, on purpose:
- the epoch folders (`out_dirs`, one per epoch) are the pipeline's declared outputs, plain Hugging Face
  folders (`save_pretrained` + tokenizer) that any tool loads;
- `checkpoint_dir` lives outside the declared outputs, where Snakemake does not delete it when a job
  fails. It keeps the latest training state (model, optimizer, scheduler, RNG, data position) and each
  finished epoch's model, so a rerun resumes mid-epoch and re-publishes epoch folders that Snakemake
  removed. Epoch folders are hard links to those copies where the file system allows, so they cost no
  extra disk.

`method: lora` trains peft's low-rank adapters on the frozen base weights. Each epoch folder is still a
plain Hugging Face model that every backend loads: the base with the adapter merged in
(`merge_and_unload`), with the adapter itself in its `lora_adapter/` for tools that apply adapters.
`log_with: tensorboard` also sends each CSV row's loss, learning rate and tokens/s to TensorBoard through
accelerate's tracker, under `tensorboard/` beside the CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.logging import get_logger
from accelerate.utils import parse_flag_from_env, set_seed
from transformers import AutoModelForCausalLM, AutoTokenizer, get_scheduler

from selfteach.dataset import ASSERTION
from selfteach.finetune_config import SCHEDULES, FinetuneConfig
from selfteach.io import atomic_path, write_json

logger = get_logger(__name__)

# Every example of the fine-tuning set (selfteach.dataset) ends with its assertion line, at column 0 where
# no line of f or g can be; EOS goes after it. A text without that line is one example.
EXAMPLE_END = re.compile("^" + re.escape(ASSERTION.rstrip("\n")) + "\n", re.MULTILINE)
CSV_COLUMNS = ("step", "epoch", "loss", "lr", "tokens", "tokens_per_s", "elapsed_s")
TOKENIZE_CHUNK = 1024  # examples per tokenizer call: bounds the Python lists held at once at paper scale
PROGRESS_FILE = "progress.json"  # written last into a checkpoint: its presence marks the checkpoint complete
CHECKPOINT_PREFIX = "step-"
EPOCH_MODELS = "epoch-models"  # inside checkpoint_dir: each finished epoch's model, the source of out_dirs
RUN_CONFIG_FILE = "finetune.json"  # the training config and position, saved beside each epoch's weights
ADAPTER_DIR = "lora_adapter"  # inside a LoRA run's epoch folder: the adapter that the merged weights include
TRACKING_DIR = "tensorboard"  # beside the CSV log: accelerate's trackers write here (log_with: tensorboard)
TRACKING_RUN = "train"  # the run's folder name inside TRACKING_DIR
# Changing these does not change the trained weights, so a checkpoint made under other values still fits.
NOT_IN_FINGERPRINT = ("log_every", "save_every_steps", "log_with")
LORA_FIELDS = ("lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules")  # unused by method: full


# --- data: examples -> token ids -> packed blocks ---------------------------------------------------------


def split_examples(text: str) -> list[str]:
    """Cut the fine-tuning text into examples, each ending with its `assert f(g())` line.

    Whitespace between examples is dropped (EOS separates them instead); a text that is only whitespace
    has no examples.
    """
    pieces = EXAMPLE_END.split(text)
    examples = [piece.lstrip("\n") + ASSERTION.rstrip("\n") + "\n" for piece in pieces[:-1]]
    if pieces[-1].strip():  # text after the last assert line, or a text in another format: one example
        examples.append(pieces[-1].strip("\n") + "\n")
    return examples


def tokenize_examples(tokenizer, examples: list[str]) -> np.ndarray:
    """All examples' token ids in order, each followed by EOS so the model learns where an example ends."""
    eos = tokenizer.eos_token_id
    chunks = []
    for start in range(0, len(examples), TOKENIZE_CHUNK):
        batch = tokenizer(examples[start : start + TOKENIZE_CHUNK], add_special_tokens=False)["input_ids"]
        chunks.append(np.fromiter((t for ids in batch for t in (*ids, eos)), dtype=np.int32))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)


def pack_blocks(ids: np.ndarray, block_size: int) -> torch.Tensor:
    """Cut the token stream into `block_size` blocks (run_clm's group_texts), keeping the tail: when the
    stream does not end on a block boundary, the last block is its last `block_size` tokens (overlapping
    the block before). run_clm drops the tail, which costs nothing at a million examples but can cost a
    small set a whole round's data (a later round's examples come last). Every block stays full, so the
    loss of a batch is the same mean however the batch is split over processes.
    A stream shorter than one block becomes one shorter block of all of it.

    Returns (n_blocks, block_size) int32, or (1, len(ids)) for a short stream.
    """
    if len(ids) < block_size:
        return torch.from_numpy(ids.astype(np.int32)).view(1, -1)
    n_full = len(ids) // block_size
    blocks = [ids[: n_full * block_size].reshape(n_full, block_size)]
    if len(ids) % block_size:
        blocks.append(ids[-block_size:].reshape(1, block_size))
    return torch.from_numpy(np.concatenate(blocks).astype(np.int32))


class PackedBlocks(torch.utils.data.Dataset):
    def __init__(self, blocks: torch.Tensor):
        self.blocks = blocks  # (N, T) int32: half the memory of int64 at paper scale

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.blocks[index]


def collate_blocks(rows: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Labels are the inputs: the model shifts them by one position itself."""
    input_ids = torch.stack(rows).long()  # (B, T)
    return {"input_ids": input_ids, "labels": input_ids}


class EpochShuffle(torch.utils.data.Sampler):
    """A fresh order of the blocks every epoch, a pure function of (seed, epoch).

    Because the order depends on nothing else, a resumed run replays the interrupted epoch's order exactly
    and only has to skip the batches it already trained on.
    """

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist())


# --- folders: checkpoints, publishing epochs -------------------------------------------------


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def publish(src: Path, dst: Path, link: bool) -> None:
    """Make `dst` a complete copy of the model folder `src`, of hard links where `link` and possible.

    Link only files that nobody rewrites in place: ours are always written anew and renamed."""
    with atomic_path(dst, folder=True) as tmp:
        shutil.copytree(src, tmp, copy_function=_link_or_copy if link else shutil.copy2, dirs_exist_ok=True)


def run_fingerprint(config: FinetuneConfig, model_path: Path, text: str, num_processes: int) -> str:
    """What a checkpoint must match to be resumed: the config (less logging knobs), base model, data, and
    the process count (it decides which blocks a batch index means)."""
    ignored = NOT_IN_FINGERPRINT + (LORA_FIELDS if config.method == "full" else ())
    recipe = {k: v for k, v in dataclasses.asdict(config).items() if k not in ignored}
    data = hashlib.sha256(text.encode()).hexdigest()
    key = json.dumps([recipe, str(model_path.resolve()), data, num_processes])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def our_checkpoint_files(checkpoint_dir: Path) -> list[Path]:
    """Everything this module writes in `checkpoint_dir` (complete or half-written), and nothing else."""
    return [
        *checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*"),
        *checkpoint_dir.glob(f".{CHECKPOINT_PREFIX}*.tmp"),
        *checkpoint_dir.glob(EPOCH_MODELS),
    ]


def latest_checkpoint(checkpoint_dir: Path, fingerprint: str) -> tuple[Path, dict] | None:
    """The newest complete checkpoint of this run, or None. A checkpoint of another run (the config, base
    model or data changed since) is stale: it and its epoch models are deleted, and training starts fresh."""
    done = sorted(checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*/{PROGRESS_FILE}"))
    if not done:
        return None
    progress = json.loads(done[-1].read_text())
    if progress["fingerprint"] != fingerprint:
        logger.warning(f"{checkpoint_dir}: a checkpoint of another config, model or data; starting fresh")
        if PartialState().is_main_process:
            for path in our_checkpoint_files(checkpoint_dir):
                shutil.rmtree(path)
        PartialState().wait_for_everyone()
        return None
    return done[-1].parent, progress


def save_checkpoint(accelerator: Accelerator, checkpoint_dir: Path, progress: dict) -> None:
    """Save the whole training state, then drop older checkpoints: only the latest is ever resumed."""
    final = checkpoint_dir / f"{CHECKPOINT_PREFIX}{progress['step']:09d}"
    tmp = final.with_name(f".{final.name}.tmp")
    accelerator.save_state(tmp)  # every process writes its part (its RNG state; its shard under FSDP)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / PROGRESS_FILE, progress)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in our_checkpoint_files(checkpoint_dir):
            if old not in (
                final,
                checkpoint_dir / EPOCH_MODELS,
            ):  # older ones, and any a kill left half-written
                shutil.rmtree(old)
    accelerator.wait_for_everyone()


def lora_model(model, config: FinetuneConfig):
    """The base model wrapped with fresh LoRA adapters (peft); only the adapters train."""
    from peft import LoraConfig, get_peft_model

    adapters = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_targets(),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, adapters)


def merged_model(base_path: Path, adapter_dir: Path):
    """The base model with the adapter folded into its weights: a plain transformers model again."""
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()


def keep_trainable_weights(models: list, weights: list[dict], output_dir) -> None:
    """accelerate's save_state hook for LoRA: checkpoint the adapters, not the frozen base (the base folder's
    weights, unchanged), so a checkpoint of an 8B model takes megabytes instead of tens of gigabytes."""
    for model, state in zip(models, weights):
        trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
        for name in [name for name in state if name not in trainable]:
            del state[name]


def save_epoch_model(
    accelerator: Accelerator, model, tokenizer, folder: Path, run_config: dict, lora_base: Path | None = None
) -> None:
    """`save_pretrained` + tokenizer + the run's config; under FSDP every process helps gather the weights.

    With `lora_base` (a LoRA run's base model), the folder holds the base merged with the adapter, and the
    adapter in ADAPTER_DIR: the training model itself stays unmerged."""
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        with atomic_path(folder, folder=True) as tmp:
            if lora_base is None:
                accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state_dict)
            else:
                accelerator.unwrap_model(model).save_pretrained(tmp / ADAPTER_DIR, state_dict=state_dict)
                merged_model(lora_base, tmp / ADAPTER_DIR).save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_json(tmp / RUN_CONFIG_FILE, run_config)
    accelerator.wait_for_everyone()


def publish_finished_epochs(checkpoint_dir: Path, out_dirs: list[Path], epochs_done: int) -> None:
    """Recreate missing epoch folders of finished epochs (Snakemake deletes the outputs of a failed job)."""
    if not PartialState().is_main_process:
        return
    for epoch, out_dir in enumerate(out_dirs[:epochs_done], 1):
        if not out_dir.exists():
            publish(checkpoint_dir / EPOCH_MODELS / f"epoch{epoch}", out_dir, link=True)


class CsvLog:
    """The training curve, one row per `log_every` optimizer steps, flushed as written.

    A resumed run first drops the rows its killed predecessor wrote after the checkpoint it resumes from,
    so the curve has each step once."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        kept = []
        if resume_step and path.exists():
            with open(path, newline="") as old:
                kept = [row for row in csv.DictReader(old) if int(row["step"]) <= resume_step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as out:
            writer = csv.DictWriter(out, CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(kept)

    def write(self, **row) -> None:
        with open(self.path, "a", newline="") as out:
            csv.DictWriter(out, CSV_COLUMNS).writerow(row)


def resolve_mixed_precision(setting: str) -> str:
    """ "auto" -> bf16 or fp16 on a GPU, "no" on CPU. Decided before the Accelerator exists, from what it
    will see (`accelerate launch` with use_cpu sets ACCELERATE_USE_CPU): asking accelerate's PartialState
    here would fix its distributed setup too early."""
    if setting != "auto":
        return setting
    if not torch.cuda.is_available() or parse_flag_from_env("ACCELERATE_USE_CPU"):
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


# --- the training run ---------------------------------------------------------------------------------------


def train(
    config: FinetuneConfig,
    model_path: str | os.PathLike,
    train_text: str | os.PathLike,
    out_dirs: list[str | os.PathLike],
    checkpoint_dir: str | os.PathLike,
    log_csv: str | os.PathLike,
) -> dict:
    """Fine-tune the model folder `model_path` on the text `train_text`; epoch e's model -> out_dirs[e-1].

    Resumes from the latest checkpoint in `checkpoint_dir` when one of the same run exists, skipping the
    batches already trained on; the result (steps, weights) is the same as an uninterrupted run's.

    Small sets, so that the pipeline always gets its epoch models:
    - a set with fewer tokens than one block trains on one shorter block of all of it (a warning says so);
    - an empty set (no examples: a small model may verify no puzzle) trains nothing: every epoch folder is a
      copy of the base model, and the warning and the summary's `note` say so. Evaluating such an "epoch"
      measures the base model, which is what fine-tuning on nothing gives.

    Returns a summary: steps, the step it resumed from (0 when fresh), data sizes, tokens/s, final loss.
    """
    # --- setup ---
    model_path, checkpoint_dir, log_csv = Path(model_path), Path(checkpoint_dir), Path(log_csv)
    out_dirs = [Path(d) for d in out_dirs]
    if len(out_dirs) != config.epochs:
        raise ValueError(f"finetune: {len(out_dirs)} epoch folders given for {config.epochs} epochs")
    if not (model_path / "config.json").exists():
        raise FileNotFoundError(f"finetune: no Hugging Face model folder at {model_path} (config.json missing)")
    text = Path(train_text).read_text()
    tracking = (
        {} if config.log_with == "csv" else {"log_with": config.log_with, "project_dir": log_csv.parent / TRACKING_DIR}
    )
    accelerator = Accelerator(
        mixed_precision=resolve_mixed_precision(config.mixed_precision),
        gradient_accumulation_steps=config.grad_accum,
        **tracking,
    )
    set_seed(config.seed)
    fingerprint = run_fingerprint(config, model_path, text, accelerator.num_processes)
    run_config = {
        "config": dataclasses.asdict(config),
        "base_model": str(model_path),
        "train_text": str(train_text),
    }

    # --- data ---
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    examples = split_examples(text)
    if not examples:
        return _copy_base_model(model_path, train_text, out_dirs, log_csv)
    ids = tokenize_examples(tokenizer, examples)
    blocks = pack_blocks(ids, config.block_size)  # (N, T)
    note = None
    if len(ids) < config.block_size:
        note = f"{train_text}: {len(ids)} tokens, fewer than one block of {config.block_size}; trains on them"
        logger.warning(note)
    sampler = EpochShuffle(len(blocks), config.seed)
    dataloader = torch.utils.data.DataLoader(
        PackedBlocks(blocks), batch_size=config.batch_size, sampler=sampler, collate_fn=collate_blocks
    )

    # --- model and optimizer ---
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)  # fp32 master weights
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.method == "lora":
        model = lora_model(model, config)  # freezes the base: only the adapters require grad
    trainable = [p for p in model.parameters() if p.requires_grad]
    matrices = [p for p in trainable if p.ndim >= 2]
    vectors = [p for p in trainable if p.ndim < 2]  # norms and biases: no weight decay
    optimizer = torch.optim.AdamW(
        [{"params": matrices, "weight_decay": config.weight_decay}, {"params": vectors, "weight_decay": 0.0}],
        lr=config.lr,
        fused=True,  # one kernel for all tensors: 4 ms instead of 22 ms per step of the tiny test model here
    )
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    # Step counts come from the prepared loader: under data parallelism each process sees a share.
    steps_per_epoch = math.ceil(len(dataloader) / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    if config.warmup_steps >= total_steps:
        logger.warning(
            f"finetune.warmup_steps {config.warmup_steps} >= the run's {total_steps} optimizer steps: the learning "
            "rate never reaches finetune.lr (the first step runs at lr 0); lower warmup_steps for a small set"
        )
    scheduler = get_scheduler(
        SCHEDULES[config.schedule],
        optimizer,
        num_warmup_steps=config.warmup_steps,
        num_training_steps=total_steps,
    )
    accelerator.register_for_checkpointing(scheduler)  # stepped by hand below, so not prepared: save it ourselves
    if config.method == "lora":
        accelerator.register_save_state_pre_hook(keep_trainable_weights)
    effective_batch = config.batch_size * config.grad_accum * accelerator.num_processes
    logger.info(
        f"{len(examples)} examples, {len(ids)} tokens, {len(blocks)} blocks of {blocks.shape[1]}; effective "
        f"batch {effective_batch} blocks; {total_steps} optimizer steps over {config.epochs} epoch(s); mixed "
        f"precision {accelerator.mixed_precision}"
    )

    # --- resume or start fresh ---
    progress = {"step": 0, "epoch": 0, "batches_done": 0, "tokens": 0, "elapsed_s": 0.0}
    found = latest_checkpoint(checkpoint_dir, fingerprint)
    if found:
        # a LoRA checkpoint holds the adapters only; the frozen base is already loaded from model_path
        accelerator.load_state(found[0], strict=config.method == "full")
        progress = {key: found[1][key] for key in progress}
        logger.info(f"resuming from {found[0]}: step {progress['step']}, epoch {progress['epoch'] + 1}")
    start_step = progress["step"]
    publish_finished_epochs(checkpoint_dir, out_dirs, progress["epoch"])
    csv_log = CsvLog(log_csv, start_step) if accelerator.is_main_process else None
    if config.log_with != "csv":  # the recipe as the run's hyperparameters; every value is a scalar
        accelerator.init_trackers(TRACKING_RUN, config=dataclasses.asdict(config))

    # --- the loop ---
    record = {"fingerprint": fingerprint, **run_config}  # stored with every checkpoint, beside its progress
    elapsed_before, tokens_before = progress["elapsed_s"], progress["tokens"]
    run_start = window_start = time.perf_counter()
    window_loss = torch.zeros((), device=accelerator.device)  # summed where computed: no sync per step
    window_batches = window_tokens = 0
    save_seconds = 0.0
    logged_loss = None
    for epoch in range(progress["epoch"], config.epochs):
        sampler.set_epoch(epoch)
        batches = accelerator.skip_first_batches(dataloader, progress["batches_done"])
        model.train()
        for batch in batches:
            with accelerator.accumulate(model):
                loss = model(**batch, use_cache=False).loss  # a training forward has no use for a KV cache
                accelerator.backward(loss)  # scaled by 1/grad_accum inside accumulate
                if accelerator.sync_gradients:  # the last micro-step of an accumulation: one optimizer step
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
                    if not accelerator.optimizer_step_was_skipped:  # fp16 skips steps with inf gradients
                        scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
            progress["batches_done"] += 1
            tokens = batch["input_ids"].numel() * accelerator.num_processes  # even batches on every process
            progress["tokens"] += tokens
            window_tokens += tokens
            window_loss += loss.detach()
            window_batches += 1
            if not accelerator.sync_gradients:
                continue
            progress["step"] += 1
            end_of_epoch = progress["batches_done"] == len(dataloader)
            if progress["step"] % config.log_every == 0 or end_of_epoch:
                now = time.perf_counter()
                logged_loss = accelerator.reduce(window_loss / window_batches, "mean").item()
                lr, tokens_per_s = scheduler.get_last_lr()[0], round(window_tokens / (now - window_start), 1)
                if csv_log:
                    csv_log.write(
                        step=progress["step"],
                        epoch=epoch + 1,
                        loss=round(logged_loss, 6),
                        lr=lr,
                        tokens=progress["tokens"],
                        tokens_per_s=tokens_per_s,
                        elapsed_s=round(elapsed_before + now - run_start, 3),
                    )
                if config.log_with != "csv":
                    accelerator.log(
                        {"loss": logged_loss, "lr": lr, "tokens_per_s": tokens_per_s}, step=progress["step"]
                    )
                window_loss.zero_()
                window_batches, window_tokens, window_start = 0, 0, now
            if progress["step"] % config.save_every_steps == 0 and not end_of_epoch:
                saved_at = time.perf_counter()
                progress["elapsed_s"] = elapsed_before + saved_at - run_start
                save_checkpoint(accelerator, checkpoint_dir, {**progress, **record})
                save_seconds += time.perf_counter() - saved_at

        # --- end of epoch: its model, then a checkpoint that records the epoch as done ---
        saved_at = time.perf_counter()
        progress["epoch"], progress["batches_done"] = epoch + 1, 0
        epoch_model = checkpoint_dir / EPOCH_MODELS / f"epoch{epoch + 1}"
        lora_base = model_path if config.method == "lora" else None
        save_epoch_model(accelerator, model, tokenizer, epoch_model, {**run_config, **progress}, lora_base)
        if accelerator.is_main_process:
            publish(epoch_model, out_dirs[epoch], link=True)
        progress["elapsed_s"] = elapsed_before + saved_at - run_start
        save_checkpoint(accelerator, checkpoint_dir, {**progress, **record})
        save_seconds += time.perf_counter() - saved_at

    # --- summary ---
    accelerator.end_training()  # flushes and closes the trackers' event files
    train_seconds = time.perf_counter() - run_start - save_seconds
    tokens_this_run = progress["tokens"] - tokens_before
    return {
        "status": "trained",
        "note": note,
        "steps": progress["step"],
        "resumed_from_step": start_step,
        "epochs": config.epochs,
        "examples": len(examples),
        "tokens": int(len(ids)),
        "blocks": len(blocks),
        "block_size": int(blocks.shape[1]),
        "dropped_tokens": int(len(ids) - blocks.numel()),
        "train_tokens": tokens_this_run,
        "train_seconds": round(train_seconds, 3),
        "train_tokens_per_s": round(tokens_this_run / train_seconds, 1) if train_seconds > 0 else None,
        "final_loss": logged_loss,
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "out_dirs": [str(d) for d in out_dirs],
    }


def _copy_base_model(model_path: Path, train_text, out_dirs: list[Path], log_csv: Path) -> dict:
    """The outcome of an empty fine-tuning set: each epoch's model is the base model, the curve is empty."""
    note = f"{train_text}: no training examples; every epoch folder is a copy of the base model {model_path}"
    logger.warning(note)
    if PartialState().is_main_process:
        for out_dir in out_dirs:
            publish(model_path, out_dir, link=False)  # a copy: the base model is shared with other runs
        CsvLog(log_csv, resume_step=0)  # the header alone: the report finds the file and plots no points
    PartialState().wait_for_everyone()
    return {
        "status": "empty",
        "note": note,
        "steps": 0,
        "resumed_from_step": 0,
        "epochs": len(out_dirs),
        "examples": 0,
        "tokens": 0,
        "out_dirs": [str(d) for d in out_dirs],
    }
