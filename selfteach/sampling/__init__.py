"""One sampling interface for every model call: `load_backend(...).generate(prompts, params)`.

Backends: Hugging Face transformers (`hf`), vLLM (`vllm`, optional) and OpenAI-compatible HTTP
(`openai`); `sample_to_jsonl` runs any of them resumably into a JSONL file.
"""

from selfteach.sampling.base import Backend, Completion, SamplingParams, load_backend
from selfteach.sampling.shards import prompts_per_unit, sample_to_jsonl

__all__ = ["Backend", "Completion", "SamplingParams", "load_backend", "prompts_per_unit", "sample_to_jsonl"]
