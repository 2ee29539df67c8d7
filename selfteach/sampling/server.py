"""`selfteach serve`: an OpenAI-compatible server (`/v1/completions`, `/v1/chat/completions`,
`/v1/models`) in front of any backend.

One sampling server can feed many jobs (and the HTTP backend's tests talk to it). Requests that
arrive while the model is busy are queued; the worker then runs all queued requests that ask for
the same sampling parameters (the seed aside: it keys each prompt's own random stream) as one
`generate` call, so they share the batch and the cached prompt prefix. A seed therefore reproduces a
completion exactly only when its request is batched the same way: other batch shapes change the
floating-point sums (in bf16 enough to change sampled tokens), as in vLLM. Completions end by the server's
stop rule (`--stop dedent`, the default: at the first non-indented line; `--stop none`: the full
budget); each choice carries two extra fields,
`tokens` and `finished`, that the HTTP backend reads and other clients ignore. A chat request's
messages become one prompt through the model's chat template, and its reply runs to EOS (or the
budget): the client cuts the code out of it. As OpenAI's API and vLLM do, a request naming another
model than the served one gets 404 `model_not_found`, and with `api_key` set, a request without that
bearer key gets 401 `invalid_api_key`.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from selfteach.sampling.base import Backend, SamplingParams

log = logging.getLogger(__name__)

MAX_PROMPTS_PER_CALL = 64  # most queued prompts one generate call takes
OPENAI_DEFAULTS = {"n": 1, "max_tokens": 16, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "seed": 0}


COMPLETIONS, CHAT = "completions", "chat"
ROUTES = {
    "/v1/completions": COMPLETIONS,
    "/completions": COMPLETIONS,
    "/v1/chat/completions": CHAT,
    "/chat/completions": CHAT,
}


def chat_prompt(body: dict, render: Callable[[list[dict]], str] | None) -> str:
    """The one prompt of a chat request: its messages through the chat template."""
    if render is None:
        raise ValueError("this model has no chat template: use /v1/completions")
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        )
    ):
        raise ValueError("'messages' must be a non-empty list of {role, content} with string contents")
    return render([{"role": m["role"], "content": m["content"]} for m in messages])


def parse_request(body: dict, stop: str | None, prompt=None) -> tuple[list[str], SamplingParams]:
    """The prompts and sampling parameters of a completions request (or of a chat request, whose one
    rendered `prompt` is given); ValueError names a bad field."""
    prompt = body.get("prompt") if prompt is None else prompt
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("'prompt' must be a string or a non-empty list of strings")
    if body.get("stop"):
        raise ValueError("'stop' strings are not supported: this server ends completions by its --stop rule")
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        body = {**body, "max_tokens": body["max_completion_tokens"]}  # the newer name of OpenAI's chat API
    fields = {key: body.get(key) if body.get(key) is not None else default for key, default in OPENAI_DEFAULTS.items()}
    try:
        params = SamplingParams(
            n=int(fields["n"]),
            temperature=float(fields["temperature"]),
            max_new_tokens=int(fields["max_tokens"]),
            top_p=float(fields["top_p"]),
            top_k=int(fields["top_k"]),
            stop=stop,
            seed=int(fields["seed"]),
        )
    except (TypeError, ValueError) as err:
        raise ValueError(str(err)) from None
    return prompts, params


class _Batcher:
    """One worker thread that owns the backend and runs queued requests with equal parameters together."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.pending: queue.Queue = queue.Queue()
        self.worker = threading.Thread(target=self._run, name="sampling-worker", daemon=True)
        self.worker.start()

    def submit(self, prompts: list[str], params: SamplingParams) -> Future:
        future: Future = Future()
        self.pending.put((prompts, params, future))
        return future

    def close(self) -> None:
        self.pending.put(None)
        self.worker.join()

    def _run(self) -> None:
        waiting = []
        while True:
            if not waiting:
                waiting.append(self.pending.get())
            while True:  # take everything queued meanwhile
                try:
                    waiting.append(self.pending.get_nowait())
                except queue.Empty:
                    break
            if waiting[0] is None:
                return
            # requests differ in their seeds; the seed goes into each prompt's key instead, so they can share a call
            shared = dataclasses.replace(waiting[0][1], seed=0)
            group, count = [], 0
            limit = max(MAX_PROMPTS_PER_CALL, len(waiting[0][0]))
            for item in waiting:
                if (
                    item is not None
                    and dataclasses.replace(item[1], seed=0) == shared
                    and count + len(item[0]) <= limit
                ):
                    group.append(item)
                    count += len(item[0])
            waiting = [item for item in waiting if item not in group]
            prompts = [prompt for item in group for prompt in item[0]]
            keys = [f"{item[1].seed}:{prompt}" for item in group for prompt in item[0]]
            try:
                results = self.backend.generate(prompts, shared, keys=keys)
            except Exception as err:  # hand the error to every waiting client
                for _, _, future in group:
                    future.set_exception(err)
                continue
            for item_prompts, _, future in group:
                future.set_result(results[: len(item_prompts)])
                results = results[len(item_prompts) :]


class _Handler(BaseHTTPRequestHandler):
    server: "SamplingServer"

    def log_message(self, format, *args):  # route the access log through logging, not stderr
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None, param: str | None = None) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        self._reply(status, {"error": {"message": message, "type": kind, "param": param, "code": code}})

    def _authorized(self) -> bool:
        """True when no key is set or the request bears it; else answers 401 and returns False."""
        if self.server.api_key is None:
            return True
        given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), self.server.api_key.encode()):
            return True
        self._error(401, "Incorrect API key provided.", code="invalid_api_key")
        return False

    def do_GET(self):
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            if self._authorized():
                model = {
                    "id": self.server.model_name,
                    "object": "model",
                    "created": self.server.created,
                    "owned_by": "selfteach",
                }
                self._reply(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self):
        route = ROUTES.get(self.path.rstrip("/"))
        if route is None:
            self._error(404, f"no route {self.path}")
            return
        if not self._authorized():
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
        except (ValueError, json.JSONDecodeError) as err:
            self._error(400, str(err))
            return
        if body.get("model") not in (None, self.server.model_name):
            self._error(
                404, f"The model `{body['model']}` does not exist; this server serves `{self.server.model_name}`.",
                code="model_not_found", param="model",
            )  # fmt: skip
            return
        try:
            if route == CHAT:  # the reply runs to EOS: the client reads the code out of it
                prompts, params = parse_request(body, None, chat_prompt(body, self.server.chat_template))
            else:
                prompts, params = parse_request(body, self.server.stop)
        except ValueError as err:
            self._error(400, str(err))
            return
        try:
            results = self.server.batcher.submit(prompts, params).result()
        except ValueError as err:  # e.g. a prompt longer than the context
            self._error(400, str(err))
            return
        except Exception as err:
            log.exception("sampling failed")
            self._error(500, f"sampling failed: {err}")
            return
        flat = [completion for completions in results for completion in completions]
        if route == CHAT:
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": completion.text},
                    "logprobs": None,
                    "finish_reason": "stop" if completion.finished else "length",
                }
                for i, completion in enumerate(flat)
            ]
        else:
            choices = [
                {
                    "index": i,
                    "text": completion.text,
                    "logprobs": None,
                    "finish_reason": "stop" if completion.finished else "length",
                    "tokens": completion.tokens,
                    "finished": completion.finished,
                }
                for i, completion in enumerate(flat)
            ]
        prompt_tokens = sum(self.server.backend.count_tokens(p) for p in prompts)
        completion_tokens = sum(completion.tokens for completion in flat)
        self._reply(
            200,
            {
                "id": f"{'chatcmpl' if route == CHAT else 'cmpl'}-{uuid.uuid4().hex}",
                "object": "chat.completion" if route == CHAT else "text_completion",
                "created": int(time.time()),
                "model": self.server.model_name,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )


class SamplingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        backend: Backend,
        host: str,
        port: int,
        *,
        model_name: str,
        stop: str | None = "dedent",
        chat_template: Callable[[list[dict]], str] | None = None,
        api_key: str | None = None,
    ):
        """`chat_template`: messages -> prompt (`chat.template_renderer`); None answers chat requests 400.
        `api_key`: the bearer key every request must bear; None serves everyone."""
        super().__init__((host, port), _Handler)
        self.backend, self.model_name, self.stop = backend, model_name, stop
        self.chat_template, self.api_key = chat_template, api_key
        self.created = int(time.time())
        self.batcher = _Batcher(backend)

    def server_close(self) -> None:
        super().server_close()
        self.batcher.close()


def serve(backend: Backend, host: str, port: int, **options) -> None:
    """Serve until interrupted; `options` are SamplingServer's."""
    server = SamplingServer(backend, host, port, **options)
    chat = "and chat/completions " if server.chat_template else ""
    log.info("serving %s on http://%s:%d/v1/completions %s", server.model_name, host, server.server_address[1], chat)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
