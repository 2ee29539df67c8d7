"""LoRA fine-tuning (finetune.method: lora) on the tiny random Llama: it changes the outputs, leaves the
base weights alone, writes merged models that load as plain ones with the adapter beside, and resumes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from selfteach.finetune import ADAPTER_DIR, FinetuneConfig
from selfteach.sampling import SamplingParams, load_backend
from test_finetune import (
    finetune_command,
    kill_midway_and_resume,
    p3_style_text,
    run_train,
    same_weights,
    weights,
)

LORA = dict(method="lora", lora_rank=4, lora_alpha=8, lora_dropout=0.0, lora_target_modules="q_proj,v_proj", lr=2e-2)


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    before = folder_digest(tiny_model_dir)
    tmp = tmp_path_factory.mktemp("lora")
    summary = run_train(tmp, tiny_model_dir, p3_style_text(24), **LORA)
    return tmp, summary, before


def test_lora_trains_only_the_targeted_weights_and_leaves_the_base_folder_untouched(lora_run, tiny_model_dir):
    tmp, summary, before = lora_run
    assert summary["status"] == "trained" and summary["steps"] > 0
    assert folder_digest(tiny_model_dir) == before
    base, merged = weights(tiny_model_dir), weights(tmp / "out" / "epoch2")
    assert merged.keys() == base.keys()  # a plain model: no adapter names, nothing missing
    changed = {name for name in base if not torch.equal(base[name], merged[name])}
    assert changed and all(name.endswith(("q_proj.weight", "v_proj.weight")) for name in changed)


def test_a_lora_checkpoint_holds_the_adapters_only(lora_run):
    tmp, _, _ = lora_run
    [checkpoint] = (tmp / "ckpt").glob("step-*/model.safetensors")
    names = load_file(checkpoint).keys()
    assert names and all("lora_" in name for name in names)


def test_each_epoch_folder_is_a_merged_model_with_its_adapter_beside_it(lora_run, tiny_model_dir):
    tmp, _, _ = lora_run
    for epoch in (1, 2):
        folder = tmp / "out" / f"epoch{epoch}"
        adapter = json.loads((folder / ADAPTER_DIR / "adapter_config.json").read_text())
        assert adapter["r"] == 4 and sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]
        assert json.loads((folder / "finetune.json").read_text())["config"]["method"] == "lora"
    assert not same_weights(tmp / "out" / "epoch1", tmp / "out" / "epoch2")


def test_the_merged_model_changes_the_outputs_and_samples_like_any_model(lora_run, tiny_model_dir):
    tmp, _, _ = lora_run
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        before = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(ids).logits
        after = AutoModelForCausalLM.from_pretrained(tmp / "out" / "epoch2")(ids).logits
    assert not torch.allclose(before, after, atol=1e-4)
    backend = load_backend(str(tmp / "out" / "epoch2"), {"backend": "hf", "device": "cpu"})
    [[completion]] = backend.generate(["def f(x: int):"], SamplingParams(n=1, temperature=0, max_new_tokens=4))
    assert completion.tokens >= 1


def test_lora_settings_are_checked():
    with pytest.raises(ValueError, match="finetune method 'qlora'"):
        FinetuneConfig(method="qlora")
    with pytest.raises(ValueError, match="lora_dropout"):
        FinetuneConfig(lora_dropout=1.0)
    with pytest.raises(ValueError, match="lora_rank must be at least 1"):
        FinetuneConfig(lora_rank=0)
    assert FinetuneConfig(lora_target_modules="q_proj, v_proj").lora_targets() == ["q_proj", "v_proj"]


@pytest.mark.slow
def test_a_killed_lora_run_resumes_and_ends_like_an_uninterrupted_one(tiny_model_dir, tmp_path):
    epochs, text = 2, p3_style_text(30)
    (tmp_path / "train.txt").write_text(text)
    killed = tmp_path / "killed"
    command = finetune_command(tiny_model_dir, tmp_path / "train.txt", killed, epochs, **LORA)
    summary = kill_midway_and_resume(command, killed, epochs)
    reference = run_train(tmp_path / "reference", tiny_model_dir, text, epochs=epochs, **LORA)
    assert summary["steps"] == reference["steps"] > summary["resumed_from_step"]
    for epoch in range(1, epochs + 1):
        assert same_weights(killed / "out" / f"epoch{epoch}", tmp_path / "reference" / "out" / f"epoch{epoch}")
