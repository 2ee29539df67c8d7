"""Base models become Hugging Face folders: the embedded GGUF once converted, hub ids as given."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selfteach import models


def test_hub_source_accepts_a_local_folder(tiny_model_dir, tmp_path):
    out = tmp_path / "resources" / "models" / "tiny"
    models.prepare("tiny", {"source": "hub", "id": str(tiny_model_dir)}, out)
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for (name, a), (_, b) in zip(original.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert AutoTokenizer.from_pretrained(out).pad_token is not None
    assert json.loads((out / "selfteach_source.json").read_text())["model"] == "tiny"
    assert not list(out.parent.glob(".*tmp"))


def test_local_and_api_models_need_no_folder():
    assert models.local_path("m", {"source": "local", "path": "/data/m"}) == "/data/m"
    assert models.local_path("m", {"source": "openai", "base_url": "x"}) is None
    assert models.local_path("m", {"source": "embedded"}) == "resources/models/m"


def test_api_model_cannot_be_prepared(tmp_path):
    with pytest.raises(ValueError, match="models.api: source openai"):
        models.prepare("api", {"source": "openai", "base_url": "x"}, tmp_path / "api")


@pytest.mark.slow
def test_embedded_model_converts_and_reloads(embedded_model_dir):
    out = embedded_model_dir
    assert json.loads((out / "selfteach_source.json").read_text())["origin"].endswith(".gguf")
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "llama"
    assert 134_000_000 < model.num_parameters() < 135_000_000
    prompt = tokenizer("def f(x: int):\n    return x ==", return_tensors="pt")
    with torch.no_grad():
        logits = model(**prompt).logits
    assert torch.isfinite(logits).all()
