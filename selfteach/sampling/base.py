"""The one sampling interface every step uses: parameters, completions, the backend protocol.

A backend turns prompts into `params.n` completions each. All backends return the same records,
so puzzle generation, solving and evaluation never care whether a local model, vLLM or an HTTP
endpoint did the work.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from selfteach import config as study_config
from selfteach.cuts import cut_at_dedent

STOP_RULES = ("dedent", None)
BACKENDS = ("hf", "vllm", "openai")


@dataclass(frozen=True)
class SamplingParams:
    n: int  # samples per prompt
    temperature: float  # 0 = greedy (argmax)
    max_new_tokens: int
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    stop: str | None = "dedent"  # "dedent": cut at the first non-indented line; None: full budget
    seed: int = 0

    @classmethod
    def from_settings(cls, settings: dict, *, n: int, seed: int) -> "SamplingParams":
        """From a config step section (temperature, top_p, max_new_tokens), stopping at the dedent."""
        return cls(
            n=n,
            temperature=settings["temperature"],
            top_p=settings["top_p"],
            max_new_tokens=settings["max_new_tokens"],
            seed=seed,
        )

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be at least 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"SamplingParams.top_k must be >= 0, got {self.top_k}")
        if self.stop not in STOP_RULES:
            raise ValueError(f"SamplingParams.stop must be one of {STOP_RULES}, got {self.stop!r}")


@dataclass(frozen=True)
class Completion:
    text: str  # the continuation only, already cut when stop="dedent"
    tokens: int  # generated tokens spent on it, up to the stop
    finished: bool  # the stop rule fired (False: budget ran out, or EOS came first)


class Backend(Protocol):
    max_context: int  # context length in tokens, for prompt packing

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self, prompts: list[str], params: SamplingParams, *, keys: list[str] | None = None
    ) -> list[list[Completion]]:
        """Return `params.n` completions per prompt.

        `keys` (one string per prompt, e.g. the request id) seed each prompt's samples, so a
        prompt's samples do not depend on which other prompts share its call; by default the
        prompt text is the key.
        """
        ...


def prompt_keys(prompts: list[str], keys: list[str] | None) -> list[str]:
    """The strings that seed each prompt's samples: the given keys, else the prompts themselves."""
    keys = list(prompts) if keys is None else list(keys)
    if len(keys) != len(prompts):
        raise ValueError(f"generate: {len(keys)} keys for {len(prompts)} prompts")
    return keys


def row_seed(seed: int, key: str, sample: int) -> int:
    """A 63-bit seed for one sample, stable across processes (unlike `hash`)."""
    digest = hashlib.sha256(f"{seed}\0{key}\0{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def finish(
    raw: str, tokens: int, stop: str | None, ended: bool = False, cut: tuple[str, bool] | None = None
) -> Completion:
    """Build the Completion for raw generated text; `ended`: the model emitted EOS (stop=None only).

    `cut` is `cut_at_dedent(raw)` when the caller has already made it (the HF sampler does, at every
    step, to see whether a row has stopped), so that the cut runs once per text.
    """
    if stop == "dedent":
        text, finished = cut or cut_at_dedent(raw)
        return Completion(text=text, tokens=tokens, finished=finished)
    return Completion(text=raw, tokens=tokens, finished=ended)


def load_backend(model: str | dict, sampling: dict) -> Backend:
    """Build the backend the config's `sampling` section names for `model`.

    `model` is a Hugging Face folder or hub id, or `{"source": "openai", "base_url", "model", "key_env"}`.
    A key `sampling` leaves out takes the config schema's default.
    """
    sampling = {**study_config.defaults("sampling"), **(sampling or {})}
    if isinstance(model, dict):
        if model.get("source") != "openai":
            raise ValueError(f"model: a dict model must have source: openai, got {model.get('source')!r}")
        from selfteach.sampling.openai_http import OpenAIBackend

        return OpenAIBackend.from_config(model, sampling)
    kind = sampling["backend"]
    if kind == "hf":
        from selfteach.sampling.hf import HFBackend

        return HFBackend(
            str(model), dtype=sampling["dtype"], device=sampling["device"], batch_size=int(sampling["batch_size"])
        )
    if kind == "vllm":
        from selfteach.sampling.vllm_backend import VLLMBackend

        return VLLMBackend(str(model), dtype=sampling["dtype"])
    if kind == "openai":
        raise ValueError("sampling.backend: openai needs a model of source: openai (base_url, model, key_env)")
    raise ValueError(f"sampling.backend must be one of {BACKENDS}, got {kind!r}")
