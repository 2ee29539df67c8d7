"""Fine-tuning on the tiny random Llama: packing, the loop, epoch folders, the CSV, resume, small sets."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from selfteach import finetune
from selfteach.cli import build_parser, launch_command
from selfteach.dataset import example_text
from selfteach.finetune import FinetuneConfig, pack_blocks, split_examples, train

REPO = Path(__file__).resolve().parents[1]
BLOCK = 64
# lr high enough that a few steps visibly lower the loss of a random model
CONFIG = dict(lr=2e-3, warmup_steps=2, block_size=BLOCK, batch_size=4, log_every=1, save_every_steps=100)


def p3_style_text(n_examples: int, seed: int = 0) -> str:
    """A fine-tuning text in the format of docs/design.md section 2, written as selfteach.dataset writes it."""
    rng = random.Random(seed)
    pairs = [(rng.randint(1, 99), rng.randint(1, 99)) for _ in range(n_examples)]
    return "".join(
        example_text(
            f"def f(x: int, a={a}, b={b}):\n    return x + a == b", f"def g(a={a}, b={b}):\n    return b - a"
        )
        for a, b in pairs
    )


def run_train(tmp: Path, model_dir: Path, text: str, epochs: int = 2, **overrides) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    train_text = tmp / "train.txt"
    train_text.write_text(text)
    config = FinetuneConfig(epochs=epochs, **{**CONFIG, **overrides})
    out_dirs = [tmp / "out" / f"epoch{e}" for e in range(1, epochs + 1)]
    return train(config, model_dir, train_text, out_dirs, tmp / "ckpt", tmp / "log.csv")


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """One two-epoch run shared by the tests that read its outputs (one deletes and restores them)."""
    tmp = tmp_path_factory.mktemp("trained")
    summary = run_train(tmp, tiny_model_dir, p3_style_text(24))
    return tmp, summary


# --- data ---


def test_split_examples_keeps_each_assert_line_and_drops_the_gaps():
    text = p3_style_text(3)
    examples = split_examples(text)
    assert len(examples) == 3
    assert all(e.startswith("def f(") and e.endswith("\n\nassert f(g())\n") for e in examples)
    assert split_examples("  \n\n") == []
    assert split_examples("some other text\n") == ["some other text\n"]  # no assert line: one example


def test_tokenized_examples_are_separated_by_eos(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = split_examples(p3_style_text(2))
    ids = finetune.tokenize_examples(tokenizer, examples)
    first = tokenizer(examples[0], add_special_tokens=False)["input_ids"]
    assert ids[len(first)] == tokenizer.eos_token_id and ids[-1] == tokenizer.eos_token_id
    assert list(ids[: len(first)]) == first
    assert (ids == tokenizer.eos_token_id).sum() == 2


def test_pack_blocks_cuts_the_stream_and_keeps_the_tail():
    ids = np.arange(10, dtype=np.int32)
    blocks = pack_blocks(ids, 4)
    assert blocks.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]  # the tail: the last full block's worth
    assert pack_blocks(ids[:8], 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert pack_blocks(ids, 16).tolist() == [list(range(10))]  # shorter than a block: one short block
    batch = finetune.collate_blocks([blocks[0], blocks[1]])
    assert batch["input_ids"].dtype == torch.long and torch.equal(batch["labels"], batch["input_ids"])
    # the study's round 1: 566 tokens of round 0's examples, then round 1's; none may fall off the end
    stream = np.arange(731, dtype=np.int32)
    assert set(pack_blocks(stream, 512).flatten().tolist()) == set(stream.tolist())


def test_epoch_order_is_a_seeded_permutation_that_changes_per_epoch():
    sampler = finetune.EpochShuffle(50, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(finetune.EpochShuffle(50, seed=4)) != first


def test_config_rejects_unknown_keys_bad_values_and_wrong_types():
    with pytest.raises(ValueError, match="unknown key.*'learning_rate'"):
        FinetuneConfig.from_dict({"learning_rate": 1e-5})
    with pytest.raises(ValueError, match="schedule"):
        FinetuneConfig(schedule="exponential")
    with pytest.raises(ValueError, match="lr: expected float"):
        FinetuneConfig.from_dict({"lr": "5e-6"})  # what YAML makes of 5e-6
    with pytest.raises(ValueError, match="block_size must be at least 1"):
        FinetuneConfig(block_size=0)
    assert FinetuneConfig.from_dict({"lr": 1}).lr == 1.0


# --- training ---


def test_training_lowers_the_loss_and_logs_a_well_formed_csv(trained):
    tmp, summary = trained
    with open(tmp / "log.csv", newline="") as log:
        reader = csv.DictReader(log)
        rows = list(reader)
    assert tuple(reader.fieldnames) == finetune.CSV_COLUMNS
    assert [int(r["step"]) for r in rows] == list(range(1, summary["steps"] + 1))
    assert {int(r["epoch"]) for r in rows} == {1, 2}
    losses = [float(r["loss"]) for r in rows]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    assert all(float(r["tokens_per_s"]) > 0 and float(r["lr"]) >= 0 for r in rows)
    assert int(rows[-1]["tokens"]) == summary["train_tokens"] == 2 * summary["blocks"] * BLOCK
    assert summary["resumed_from_step"] == 0 and summary["status"] == "trained"


def test_each_epoch_folder_reloads_with_auto_classes(trained):
    tmp, summary = trained
    for epoch in (1, 2):
        folder = tmp / "out" / f"epoch{epoch}"
        model = AutoModelForCausalLM.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ids = tokenizer("def f(x: int):", return_tensors="pt")["input_ids"]
        assert model(ids).logits.shape[-1] == len(tokenizer)
        assert json.loads((folder / finetune.RUN_CONFIG_FILE).read_text())["epoch"] == epoch
    assert not same_weights(tmp / "out" / "epoch1", tmp / "out" / "epoch2")


def test_rerun_of_a_finished_run_trains_nothing_and_restores_deleted_epochs(trained, tiny_model_dir):
    tmp, summary = trained
    before = weights(tmp / "out" / "epoch2")
    for folder in (tmp / "out").iterdir():  # what Snakemake does to the outputs of a failed job
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    again = run_train(tmp, tiny_model_dir, p3_style_text(24))
    assert again["resumed_from_step"] == again["steps"] == summary["steps"]
    assert again["train_tokens"] == 0
    assert all(torch.equal(before[k], v) for k, v in weights(tmp / "out" / "epoch2").items())
    assert (tmp / "out" / "epoch1" / "config.json").exists()


def test_same_seed_gives_the_same_weights(tiny_model_dir, tmp_path):
    for run in ("a", "b"):
        run_train(tmp_path / run, tiny_model_dir, p3_style_text(8), epochs=1)
    assert same_weights(tmp_path / "a" / "out" / "epoch1", tmp_path / "b" / "out" / "epoch1")


def test_a_changed_config_discards_the_old_checkpoint(tiny_model_dir, tmp_path):
    first = run_train(tmp_path, tiny_model_dir, p3_style_text(4), epochs=1)
    second = run_train(tmp_path, tiny_model_dir, p3_style_text(4), epochs=1, lr=5e-4)
    assert second["resumed_from_step"] == 0 and second["steps"] == first["steps"]


def test_an_empty_set_copies_the_base_model_into_every_epoch(tiny_model_dir, tmp_path):
    summary = run_train(tmp_path, tiny_model_dir, "\n")
    assert summary["status"] == "empty" and "no training examples" in summary["note"]
    for epoch in (1, 2):
        assert same_weights(tiny_model_dir, tmp_path / "out" / f"epoch{epoch}")
        AutoTokenizer.from_pretrained(tmp_path / "out" / f"epoch{epoch}")
    assert (tmp_path / "log.csv").read_text().strip() == ",".join(finetune.CSV_COLUMNS)


def test_a_set_shorter_than_one_block_trains_on_one_short_block(tiny_model_dir, tmp_path):
    summary = run_train(tmp_path, tiny_model_dir, p3_style_text(1), block_size=1024)
    assert summary["blocks"] == 1 and summary["block_size"] == summary["tokens"] < 1024
    assert summary["steps"] == 2  # one step per epoch
    assert "fewer than one block" in summary["note"]
    assert not same_weights(tiny_model_dir, tmp_path / "out" / "epoch2")


def test_missing_inputs_are_named(tiny_model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        train(
            FinetuneConfig(),
            tiny_model_dir,
            tmp_path / "nothere.txt",
            [tmp_path / "e1"],
            tmp_path / "c",
            tmp_path / "l.csv",
        )
    (tmp_path / "t.txt").write_text("x\n")
    with pytest.raises(FileNotFoundError, match="no Hugging Face model folder"):
        train(
            FinetuneConfig(),
            tmp_path,
            tmp_path / "t.txt",
            [tmp_path / "e1"],
            tmp_path / "c",
            tmp_path / "l.csv",
        )
    with pytest.raises(ValueError, match="1 epoch folders given for 2 epochs"):
        train(
            FinetuneConfig(epochs=2),
            tiny_model_dir,
            tmp_path / "t.txt",
            [tmp_path / "e1"],
            tmp_path / "c",
            tmp_path / "l.csv",
        )


# --- resume after a kill ---


def finetune_command(
    model_dir: Path, train_text: Path, root: Path, epochs: int, launcher=(sys.executable,), **overrides
) -> list[str]:
    config = json.dumps({**CONFIG, "save_every_steps": 2, **overrides})
    return [
        *launcher, "-m", "selfteach", "finetune", "--model", str(model_dir), "--train", str(train_text),
        "--out-root", str(root / "out"), "--epochs", str(epochs), "--checkpoint-dir", str(root / "ckpt"),
        "--log-csv", str(root / "log.csv"), "--summary", str(root / "summary.json"), "--config-json", config,
    ]  # fmt: skip


def newest_checkpoint_step(checkpoint_dir: Path) -> int:
    steps = [
        json.loads(p.read_text())["step"] for p in checkpoint_dir.glob(f"step-*/{finetune.PROGRESS_FILE}")
    ]
    return max(steps, default=0)


def kill_midway_and_resume(command: list[str], root: Path, epochs: int, *, after_step: int = 3) -> dict:
    """Run the fine-tuning `command`, SIGKILL it once a checkpoint past `after_step` exists, run it again.

    The killed run must not have published its last epoch; the rerun must resume from the checkpoint,
    not start over. Returns the rerun's summary.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (
        newest_checkpoint_step(root / "ckpt") < after_step
        and process.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed midway"
    assert not (root / "out" / f"epoch{epochs}").exists()
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((root / "summary.json").read_text())
    assert summary["resumed_from_step"] >= after_step
    return summary


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_like_an_uninterrupted_one(tiny_model_dir, tmp_path):
    epochs, text = 2, p3_style_text(30)
    (tmp_path / "train.txt").write_text(text)
    killed = tmp_path / "killed"
    command = finetune_command(tiny_model_dir, tmp_path / "train.txt", killed, epochs)
    summary = kill_midway_and_resume(command, killed, epochs)

    reference = run_train(tmp_path / "reference", tiny_model_dir, text, epochs=epochs)
    assert summary["steps"] == reference["steps"] > summary["resumed_from_step"]
    with open(killed / "log.csv", newline="") as log:
        assert [int(row["step"]) for row in csv.DictReader(log)] == list(range(1, reference["steps"] + 1))
    for epoch in range(1, epochs + 1):
        assert same_weights(
            killed / "out" / f"epoch{epoch}", tmp_path / "reference" / "out" / f"epoch{epoch}"
        )


# --- data parallel ---


def blocks_in(text: str, model_dir: Path) -> int:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return len(pack_blocks(finetune.tokenize_examples(tokenizer, split_examples(text)), BLOCK))


@pytest.mark.slow
def test_two_data_parallel_processes_train_like_one_with_their_joint_batch(tiny_model_dir, tmp_path):
    """The multi-GPU path on CPU: torchrun starts two processes that join a gloo process group, as DDP
    on GPUs joins an NCCL one. Each trains on its half of every batch and their gradients are averaged,
    so the weights match one process that sees the whole batch; checkpoints are saved by both."""
    text = next(t for n in range(20, 60) if blocks_in(t := p3_style_text(n), tiny_model_dir) % 4 == 0)
    (tmp_path / "train.txt").write_text(text)
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    command = finetune_command(tiny_model_dir, tmp_path / "train.txt", tmp_path / "ddp", 1, torchrun, batch_size=2)
    env = {**os.environ, "PYTHONPATH": str(REPO), "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())

    single = run_train(tmp_path / "single", tiny_model_dir, text, epochs=1, batch_size=4)
    assert summary["num_processes"] == 2 and summary["steps"] == single["steps"] >= 2
    assert summary["train_tokens"] == single["train_tokens"]  # both processes' tokens are counted
    parallel, whole = weights(tmp_path / "ddp" / "out" / "epoch1"), weights(tmp_path / "single" / "out" / "epoch1")
    assert not all(torch.equal(parallel[k], weights(tiny_model_dir)[k]) for k in parallel)  # it trained
    for name in whole:
        torch.testing.assert_close(parallel[name], whole[name], rtol=1e-4, atol=1e-5)


def test_the_multi_device_command_survives_accelerates_parser(tmp_path):
    """argparse takes a prefix of one of its own flags for that flag, even after the script name."""
    from accelerate.commands.launch import launch_command_parser

    command = launch_command(
        "accelerate/fsdp.yaml", 4, "m", "t.txt", "out", "ckpt", "log.csv", {"lr": 5e-6, "epochs": 2}
    )
    args = launch_command_parser().parse_args(command[3:])
    assert (args.config_file, args.num_processes, args.module) == ("accelerate/fsdp.yaml", 4, True)
    assert [args.training_script, *args.training_script_args] == command[command.index("selfteach") :]
    ours = build_parser().parse_args(args.training_script_args)
    assert (ours.log_csv, ours.out_root, json.loads(ours.config_json)["epochs"]) == ("log.csv", "out", 2)
