"""OpenAI-compatible HTTP backend (the `/v1/completions` endpoint), for API models and `selfteach serve`.

One request per prompt asks for its `n` samples; at most `concurrency` requests are in flight.
A 429 or 5xx answer (or a dropped connection) is retried with exponential backoff, honouring a
`Retry-After` header. The dedent rule cannot be written as OpenAI stop strings, so completions
are cut here; a `selfteach serve` server already stops each one at its dedent and says so in the
extra per-choice fields `tokens` and `finished`, which other servers simply do not send.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from selfteach import config
from selfteach.sampling.base import Completion, SamplingParams, finish, prompt_keys, row_seed

DEFAULTS = config.defaults("sampling")

RETRY_STATUSES = {429, 500, 502, 503, 504}
BACKOFF_BASE_S = 0.5  # first retry waits this long, then doubles
BACKOFF_MAX_S = 30.0
REQUEST_TIMEOUT_S = 600.0
DEFAULT_CONTEXT = 8192  # the API does not say its context length; packing uses this unless configured
CHARS_PER_TOKEN = 4  # without the server's tokenizer, token counts are estimated from characters


class OpenAIBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = DEFAULTS["concurrency"],
        max_retries: int = DEFAULTS["max_retries"],
        max_context: int = DEFAULT_CONTEXT,
    ):
        if concurrency < 1:
            raise ValueError(f"sampling.concurrency must be at least 1, got {concurrency}")
        self.url = base_url.rstrip("/") + "/completions"
        self.model, self.api_key = model, api_key
        self.concurrency, self.max_retries, self.max_context = concurrency, max_retries, max_context

    @classmethod
    def from_config(cls, model: dict, sampling: dict) -> "OpenAIBackend":
        for key in ("base_url", "model"):
            if not model.get(key):
                raise ValueError(f"model (source: openai): missing key {key!r}")
        api_key = None
        if model.get("key_env"):
            api_key = os.environ.get(model["key_env"])
            if not api_key:
                raise ValueError(f"model (source: openai): environment variable {model['key_env']} is not set")
        return cls(
            model["base_url"],
            model["model"],
            api_key=api_key,
            concurrency=int(sampling.get("concurrency", DEFAULTS["concurrency"])),
            max_retries=int(sampling.get("max_retries", DEFAULTS["max_retries"])),
            max_context=int(model.get("max_context", DEFAULT_CONTEXT)),
        )

    def count_tokens(self, text: str) -> int:
        return -(-len(text) // CHARS_PER_TOKEN)

    def generate(
        self, prompts: list[str], params: SamplingParams, *, keys: list[str] | None = None
    ) -> list[list[Completion]]:
        keys = prompt_keys(prompts, keys)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda pk: self._complete(pk[0], pk[1], params), zip(prompts, keys)))

    def _complete(self, prompt: str, key: str, params: SamplingParams) -> list[Completion]:
        body = {
            "model": self.model,
            "prompt": prompt,
            "n": params.n,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": row_seed(params.seed, key, 0) >> 32,  # the key's samples are reproducible where the server allows
        }
        if params.top_k:
            body["top_k"] = params.top_k  # not OpenAI's own API, but vLLM and `selfteach serve` take it
        answer = self._post(body)
        choices = sorted(answer.get("choices", []), key=lambda choice: choice.get("index", 0))
        if len(choices) != params.n:
            raise ValueError(f"{self.url}: asked for {params.n} choices, got {len(choices)}")
        spent = answer.get("usage", {}).get("completion_tokens")
        completions = []
        for choice in choices:
            raw = choice.get("text", "")
            tokens = choice.get("tokens")
            if tokens is None:  # a plain OpenAI server: share the usage out by length, else estimate
                total_chars = sum(len(c.get("text", "")) for c in choices) or 1
                tokens = round(spent * len(raw) / total_chars) if spent else self.count_tokens(raw)
            completion = finish(raw, int(tokens), params.stop, ended=choice.get("finish_reason") == "stop")
            if "finished" in choice:
                completion = Completion(completion.text, completion.tokens, bool(choice["finished"]))
            completions.append(completion)
        return completions

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        attempt = 0
        while True:
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as err:
                if err.code not in RETRY_STATUSES or attempt == self.max_retries:
                    detail = err.read().decode(errors="replace")[:300]
                    raise ValueError(f"{self.url}: HTTP {err.code}: {detail}") from None
                wait = _retry_after(err.headers.get("Retry-After"))
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                if attempt == self.max_retries:
                    raise ValueError(f"{self.url}: {err}") from None
                wait = None
            time.sleep(wait if wait is not None else min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))
            attempt += 1

def _retry_after(header: str | None) -> float | None:
    try:
        return min(BACKOFF_MAX_S, float(header)) if header else None
    except ValueError:
        return None
