"""The HTTP backend against a real `selfteach serve` on loopback, and its retries."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from selfteach.sampling import SamplingParams, load_backend
from selfteach.sampling import openai_http
from selfteach.sampling.server import SamplingServer

PROMPTS = ["def f(x: int):\n    return x > 3\n\ndef g():", "def f(s: str):\n    return s == 'a'\n\ndef g():"]
SERVER_START_S = 180  # importing torch on a loaded 2-core machine is slow
KEY_ENV, KEY = "SELFTEACH_SERVE_TEST_KEY", "sk-local-test"  # the served model needs this bearer key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    """`selfteach serve` in a subprocess, as a user would start it, asking for a key; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "selfteach", "serve", "--model", str(tiny_model_dir), "--device", "cpu",
         "--dtype", "float32", "--port", str(port), "--name", "tiny", "--api-key-env", KEY_ENV],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, KEY_ENV: KEY},
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            request = urllib.request.Request(base_url + "/models", headers={"Authorization": f"Bearer {KEY}"})
            urllib.request.urlopen(request, timeout=5).read()
            break
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"selfteach serve did not start: {process.stderr.read()[-2000:]}")
            time.sleep(0.5)
    yield base_url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def test_http_backend_through_selfteach_serve(served, keyed, tiny_model_dir):
    endpoint = {"source": "openai", "base_url": served, "model": "tiny", "key_env": KEY_ENV}
    client = load_backend(endpoint, {"concurrency": 2})
    local = load_backend(str(tiny_model_dir), {"backend": "hf", "device": "cpu", "dtype": "float32"})
    params = SamplingParams(n=2, temperature=0, max_new_tokens=8)
    over_http = client.generate(PROMPTS, params)
    assert over_http == local.generate(PROMPTS, params)  # same texts, token counts and finished flags
    # Concurrent requests may share a batch or not, and a seed reproduces a sample only on the same
    # batch shapes (the server's docstring): the repeat goes one request at a time, as the first did.
    one_by_one = load_backend(endpoint, {"concurrency": 1})
    seeded = SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=5)
    sampled = one_by_one.generate(PROMPTS, seeded)
    assert [len(samples) for samples in sampled] == [3, 3]
    assert one_by_one.generate(PROMPTS, seeded) == sampled


def test_serve_rejects_what_it_cannot_do(served):
    request = urllib.request.Request(
        served + "/completions",
        data=json.dumps({"model": "tiny", "prompt": "x", "stop": ["\n"]}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 400
    assert "stop" in json.loads(err.value.read())["error"]["message"]


def test_the_official_openai_client_completes_chats_and_lists_the_model(served, tiny_model_dir):
    import openai

    client = openai.OpenAI(base_url=served, api_key=KEY, max_retries=0)
    assert [model.id for model in client.models.list()] == ["tiny"]
    completion = client.completions.create(model="tiny", prompt=PROMPTS[0], max_tokens=8, n=2, temperature=0)
    local = load_backend(str(tiny_model_dir), {"backend": "hf", "device": "cpu"})
    [expected] = local.generate(PROMPTS[:1], SamplingParams(n=2, temperature=0, max_new_tokens=8))
    assert [choice.text for choice in completion.choices] == [c.text for c in expected]
    assert completion.usage.completion_tokens == sum(c.tokens for c in expected)
    chat = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "Write def f."}],
        max_completion_tokens=6,
        n=2,
        temperature=1.0,
        seed=1,
    )
    assert chat.object == "chat.completion" and len(chat.choices) == 2 and chat.usage.completion_tokens <= 2 * 6
    assert all(c.message.role == "assistant" and isinstance(c.message.content, str) for c in chat.choices)
    assert {c.finish_reason for c in chat.choices} <= {"stop", "length"} and chat.usage.completion_tokens >= 1


def test_the_official_client_gets_openais_errors_for_an_unknown_model_and_a_bad_key(served):
    import openai

    client = openai.OpenAI(base_url=served, api_key=KEY, max_retries=0)
    for call in (
        lambda: client.completions.create(model="gpt-4o", prompt="x", max_tokens=2),
        lambda: client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}]),
    ):
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert err.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError) as err:
        openai.OpenAI(base_url=served, api_key="sk-wrong", max_retries=0).models.list()
    assert err.value.code == "invalid_api_key"


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_http_backend_names_a_bad_key_and_a_model_the_endpoint_does_not_serve(served, monkeypatch, api):
    params = SamplingParams(n=1, temperature=0, max_new_tokens=4)
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    client = load_backend({"source": "openai", "base_url": served, "model": "tiny", "key_env": KEY_ENV, "api": api}, {})
    with pytest.raises(ValueError, match=rf"model 'tiny'\): HTTP 401, the endpoint refused the key in \${KEY_ENV}"):
        client.generate(PROMPTS[:1], params)
    monkeypatch.setenv(KEY_ENV, KEY)
    client = load_backend({"source": "openai", "base_url": served, "model": "nope", "key_env": KEY_ENV, "api": api}, {})
    with pytest.raises(ValueError, match=r"model 'nope'\): HTTP 404, the endpoint does not serve this model"):
        client.generate(PROMPTS[:1], params)


class Flaky(BaseHTTPRequestHandler):
    """Answers 429 to the first request, then one well-formed completion per choice."""

    seen: list[int] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Flaky.seen.append(body["n"])
        if len(Flaky.seen) == 1:
            self.send_response(429)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        choices = [
            {"index": i, "text": f"\n    return {i}\n\nassert f(g())", "finish_reason": "length"}
            for i in range(body["n"])
        ]
        data = json.dumps({"choices": choices, "usage": {"completion_tokens": 10 * body["n"]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_http_backend_retries_429_then_cuts(monkeypatch):
    monkeypatch.setattr(openai_http, "BACKOFF_BASE_S", 0.01)
    monkeypatch.setenv("SELFTEACH_TEST_KEY", "secret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        model = {"source": "openai", "base_url": f"http://127.0.0.1:{server.server_address[1]}/v1",
                 "model": "m", "key_env": "SELFTEACH_TEST_KEY"}  # fmt: skip
        client = load_backend(model, {"concurrency": 1, "max_retries": 2})
        [samples] = client.generate(
            ["def f(x: int):\n    return x\n\ndef g():"], SamplingParams(n=2, temperature=1.0, max_new_tokens=20)
        )
    finally:
        server.shutdown()
        server.server_close()
    assert Flaky.seen == [2, 2]  # the 429 was retried
    assert [(c.text, c.tokens, c.finished) for c in samples] == [
        ("\n    return 0", 10, True),
        ("\n    return 1", 10, True),
    ]


def test_http_backend_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("SELFTEACH_ABSENT_KEY", raising=False)
    with pytest.raises(ValueError, match="SELFTEACH_ABSENT_KEY is not set"):
        load_backend(
            {"source": "openai", "base_url": "http://x/v1", "model": "m", "key_env": "SELFTEACH_ABSENT_KEY"}, {}
        )


def test_server_batches_concurrent_requests(tiny_model_dir):
    """Requests queued while the model is busy run together in one generate call."""
    calls = []

    class Recording:
        max_context = 100

        def count_tokens(self, text):
            return len(text)

        def generate(self, prompts, params, *, keys=None):
            calls.append(len(prompts))
            time.sleep(0.2)
            return [[openai_http.Completion(p[-3:], 1, True)] * params.n for p in prompts]

    server = SamplingServer(Recording(), "127.0.0.1", 0, model_name="rec")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = openai_http.OpenAIBackend(f"http://127.0.0.1:{server.server_address[1]}/v1", "rec", concurrency=4)
        results = client.generate([f"p{i}" for i in range(4)], SamplingParams(n=2, temperature=0, max_new_tokens=4))
    finally:
        server.shutdown()
        server.server_close()
    assert [[c.text for c in samples] for samples in results] == [[f"p{i}"] * 2 for i in range(4)]
    assert sum(calls) == 4 and len(calls) < 4
