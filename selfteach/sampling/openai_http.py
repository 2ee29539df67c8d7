"""OpenAI-compatible HTTP backend (`/v1/completions`, or `/v1/chat/completions` for chat models), for API
models and `selfteach serve`.

One request per prompt asks for its `n` samples; at most `concurrency` requests are in flight.
A 429 or 5xx answer (or a dropped connection) is retried with exponential backoff, honouring a
`Retry-After` header; any other error (a bad key, a model the endpoint does not serve, a refused
request) ends the run with one line naming the endpoint, the model and the server's message. The
dedent rule cannot be written as OpenAI stop strings, so completions are cut here; a `selfteach
serve` server already stops each one at its dedent and says so in the extra per-choice fields
`tokens` and `finished`, which other servers simply do not send. A chat model (`api: chat`) gets the
prompt as messages and its reply's code becomes the completion (`sampling.chat`).
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
from selfteach.sampling.chat import chat_messages, reply_continuation

DEFAULTS = config.defaults("sampling")

RETRY_STATUSES = {429, 500, 502, 503, 504}
BACKOFF_BASE_S = 0.5  # first retry waits this long, then doubles
BACKOFF_MAX_S = 30.0
REQUEST_TIMEOUT_S = 600.0
MODEL_DEFAULTS = config.model_defaults()
CHARS_PER_TOKEN = 4  # without the server's tokenizer, token counts are estimated from characters
APIS = {"completions": "/completions", "chat": "/chat/completions"}  # models.<name>.api -> endpoint path


class OpenAIBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = DEFAULTS["concurrency"],
        max_retries: int = DEFAULTS["max_retries"],
        max_context: int = MODEL_DEFAULTS["max_context"],
        api: str = MODEL_DEFAULTS["api"],
        key_env: str | None = None,
    ):
        if concurrency < 1:
            raise ValueError(f"sampling.concurrency must be at least 1, got {concurrency}")
        if api not in APIS:
            raise ValueError(f"model (source: openai): api must be one of {sorted(APIS)}, got {api!r}")
        self.url = base_url.rstrip("/") + APIS[api]
        self.api, self.model, self.api_key, self.key_env = api, model, api_key, key_env
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
            max_context=int(model.get("max_context", MODEL_DEFAULTS["max_context"])),
            api=model.get("api", MODEL_DEFAULTS["api"]),
            key_env=model.get("key_env"),
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
            **({"messages": chat_messages(prompt)} if self.api == "chat" else {"prompt": prompt}),
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
        texts = [self._choice_text(choice) for choice in choices]
        total_chars = sum(map(len, texts)) or 1
        for choice, raw in zip(choices, texts):
            tokens = choice.get("tokens")
            if tokens is None:  # a plain OpenAI server: share the usage out by length, else estimate
                tokens = round(spent * len(raw) / total_chars) if spent else self.count_tokens(raw)
            ended = choice.get("finish_reason") == "stop"
            if self.api == "chat":
                raw = reply_continuation(raw, prompt)
            completion = finish(raw, int(tokens), params.stop, ended=ended)
            if "finished" in choice:
                completion = Completion(completion.text, completion.tokens, bool(choice["finished"]))
            elif self.api == "chat" and ended:  # the reply is whole: its code ends where the reply does
                completion = Completion(completion.text, completion.tokens, True)
            completions.append(completion)
        return completions

    def _choice_text(self, choice: dict) -> str:
        if self.api == "chat":
            return (choice.get("message") or {}).get("content") or ""
        return choice.get("text", "")

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
                    raise ValueError(self._refusal(err.code, err.read())) from None
                wait = _retry_after(err.headers.get("Retry-After"))
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                if attempt == self.max_retries:
                    raise ValueError(f"{self.url}: {err}") from None
                wait = None
            time.sleep(wait if wait is not None else min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))
            attempt += 1

    def _refusal(self, code: int, body: bytes) -> str:
        """One line saying why the endpoint refused: a bad key, a model it does not serve, or its own reason."""
        try:
            error = json.loads(body).get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
        except (ValueError, AttributeError):
            error, message = {}, None
        message = " ".join((message or body.decode(errors="replace")).split())[:300]
        where = f"{self.url} (model {self.model!r})"
        if code in (401, 403):
            key = (
                f"the key in ${self.key_env}" if self.key_env and self.api_key else "no API key (models.<name>.key_env)"
            )
            return f"{where}: HTTP {code}, the endpoint refused {key}: {message}"
        if code == 404 and isinstance(error, dict) and error.get("code") == "model_not_found":
            return f"{where}: HTTP 404, the endpoint does not serve this model (see its /v1/models): {message}"
        return f"{where}: HTTP {code}, request refused: {message}"


def _retry_after(header: str | None) -> float | None:
    try:
        return min(BACKOFF_MAX_S, float(header)) if header else None
    except ValueError:
        return None
