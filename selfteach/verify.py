"""Verification (paper step 4): does f(g()) return True, with the answer of f's annotated type?

Candidates are model-written code, so they run inside bubblewrap sandboxes (selfteach.sandbox), in
long-lived workers (selfteach.sandbox_worker) that run each candidate step in a limited child. This
module owns the pool of workers: it feeds them candidates, enforces a wall-clock limit from outside,
replaces a worker that dies or hangs (its candidate still gets a verdict), and keeps input order.
Every request carries a fresh random token, and a verdict is taken only from a reply that carries it,
with nothing before or after it: any other byte from a worker means something else wrote to its
pipe, so the worker is killed and replaced and its candidate gets `error` (never a shifted verdict).

A record is a puzzle and its solution, {"id", "f", "g"}, or a whole program, {"id", "program"}: a
HumanEval problem with its completion and tests (selfteach.humaneval), which passes when it runs to its
end without an exception; the import policy applies to puzzles and solutions only. A verdict is
{"id", "ok", "status", "seconds"} plus "detail" for some statuses; `ok` is true exactly when the status
is "pass".
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

from selfteach.io import atomic_path
from selfteach.sandbox import FIX_BWRAP, SCRATCH, Launcher, Limits, SandboxError
from selfteach.terms import MAX_DETAIL_CHARS, STATUSES

IMPORT_POLICIES = ("paper", "any")  # paper: only the paper's import list; any: the sandbox alone
# The schema's verify section, copied: the verifier runs under a bare interpreter (no yaml, no
# jsonschema), so it cannot read the schema; tests/test_defaults.py fails when the two disagree.
DEFAULTS = {"timeout": 1.0, "workers": 2, "imports": "paper", "python": "auto", "sandbox": True}
# How long past the candidate's own limits a worker may stay silent before it is killed from outside
# (the worker kills its child at the limit itself; this only catches a worker that is stuck).
WORKER_GRACE_S = 5.0
# the solve step (run again in a fresh child if it hit a resource limit in a lane) and, for a claimed
# pass, the check step: a limit each
STEPS_PER_CANDIDATE = 3
STARTUP_TIMEOUT_S = 30.0
MAX_REPLY_BYTES = 1 << 20
# Verdicts held back to keep input order, per worker: bounds memory when one candidate is slow.
WINDOW_PER_WORKER = 256
READ_CHUNK = 1 << 16
TOKEN_BYTES = 16  # sent as 32 hex digits (sandbox_worker.TOKEN_CHARS)
REQUEST_HEADER = struct.Struct("<Q")  # the length of a request's JSON, before its token
# Why a worker gave no verdict -> (the candidate's status, what its detail says)
LOST = {
    "late": ("timeout", "the sandbox worker hung and was killed"),
    "ended": ("error", "the sandbox worker died"),
    "forged": (
        "error",
        "the sandbox worker's reply channel carried bytes that are not its reply to this request (a forged "
        "verdict?): the worker was killed and replaced",
    ),
}


@dataclass(frozen=True)
class Unreadable:
    """An input line that is not a usable record; it gets an "error" verdict under `id`."""

    id: str
    reason: str


def record_problem(record) -> str | None:
    """Why a record cannot be verified, or None."""
    if isinstance(record, Unreadable):
        return record.reason
    if not isinstance(record, dict):
        return f"a record must be a JSON object, not {type(record).__name__}"
    for key in ("id", *request_of(record)):
        if not isinstance(record.get(key), str):
            return f"the record has no string {key!r}"
    return None


def request_of(record: dict) -> dict:
    """What the worker is sent for a record: its program, or its f and g."""
    keys = ("program",) if "program" in record else ("f", "g")
    return {key: record.get(key) for key in keys}


def record_id(record, index: int) -> str:
    if isinstance(record, Unreadable):
        return record.id
    if isinstance(record, dict) and isinstance(record.get("id"), str):
        return record["id"]
    return f"record {index}"


def make_verdict(id_: str, status: str, seconds: float, detail: str | None = None) -> dict:
    verdict = {"id": id_, "ok": status == "pass", "status": status, "seconds": round(seconds, 6)}
    if detail:
        verdict["detail"] = detail[:MAX_DETAIL_CHARS]
    return verdict


class _Worker:
    """One sandboxed worker process and the candidate it holds."""

    def __init__(self, launcher: Launcher, env: dict, cwd: str):
        self.launcher = launcher
        self.stderr = tempfile.TemporaryFile()
        self.proc = launcher.popen(
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            cwd=cwd,
            start_new_session=True,  # so a kill from outside takes bwrap's whole process group
            bufsize=0,
        )
        self.fd = self.proc.stdout.fileno()
        self.buffer = bytearray()
        self.token = b""  # of the request in hand
        self.job: tuple[int, str, float] | None = None  # (index, id, sent at)

    def wait_ready(self, timeout: float) -> None:
        reply = self.read_reply(time.monotonic() + timeout) if self.request({"hello": True}) else None
        if not (isinstance(reply, dict) and reply.get("ready")):
            self.kill()
            raise SandboxError(f"the sandbox worker did not start ({self.last_words()}): {FIX_BWRAP}")
        try:
            self.launcher.check_ready(reply)
        except SandboxError:
            self.kill()
            raise

    def send(self, index: int, record: dict) -> bool:
        self.job = (index, record["id"], time.monotonic())
        return self.request(request_of(record))

    def request(self, message: dict) -> bool:
        """Send `message` under a fresh token; False when the worker cannot take it."""
        self.token = secrets.token_hex(TOKEN_BYTES).encode()
        body = json.dumps(message).encode()
        try:
            self.proc.stdin.write(REQUEST_HEADER.pack(len(body)) + self.token + body)
            return True
        except (BrokenPipeError, OSError):
            return False

    def spoken_out_of_turn(self) -> bool:
        """Whether the idle worker's pipe holds bytes (or its end): nothing may come before a request."""
        return bool(self.buffer) or bool(select.select([self.fd], [], [], 0)[0])

    def read_reply(self, deadline: float) -> dict | str:
        """The reply to the request in hand, or why there is none: "late", "ended" (the worker closed its
        pipe) or "forged" (anything but one line that starts with the token, a JSON object after it)."""
        prefix = self.token + b" "
        while b"\n" not in self.buffer:
            if not prefix.startswith(bytes(self.buffer[: len(prefix)])):
                return "forged"
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                return "late"
            chunk = os.read(self.fd, READ_CHUNK)
            if not chunk:
                return "ended"
            self.buffer += chunk
            if len(self.buffer) > MAX_REPLY_BYTES:
                return "forged"
        line, _, rest = bytes(self.buffer).partition(b"\n")
        if rest or not line.startswith(prefix):
            return "forged"
        self.buffer.clear()
        try:
            reply = json.loads(line[len(prefix) :])
        except ValueError:
            return "forged"
        return reply if isinstance(reply, dict) else "forged"

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            stream.close()

    def last_words(self) -> str:
        """How the worker ended: exit status and the last line it wrote to stderr."""
        self.stderr.seek(0)
        lines = self.stderr.read()[-4096:].decode(errors="replace").strip().splitlines()
        code = self.proc.poll()
        said = f": {lines[-1]}" if lines else ""
        return f"exit status {code}{said}"

    def close(self) -> None:
        self.kill()
        self.stderr.close()


class Verifier:
    """A pool of sandboxed workers, reusable across many `run` calls; use it as a context manager."""

    def __init__(
        self,
        timeout: float = DEFAULTS["timeout"],
        workers: int = DEFAULTS["workers"],
        imports: str = DEFAULTS["imports"],
        python: str = DEFAULTS["python"],
        sandbox: bool = DEFAULTS["sandbox"],
        limits: Limits = Limits(),
        grace: float = WORKER_GRACE_S,
        lanes: bool = True,
    ):
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if imports not in IMPORT_POLICIES:
            raise ValueError(f"imports must be one of {IMPORT_POLICIES}, got {imports!r}")
        self.timeout, self.n_workers, self.imports = timeout, workers, imports
        self.python, self.sandbox, self.limits, self.grace = python, sandbox, limits, grace
        self.lanes = lanes  # screened steps share long-lived children; False: a fresh child per step
        self._workers: list[_Worker] = []
        self._launcher: Launcher | None = None
        self._scratch: str | None = None

    def __enter__(self) -> Verifier:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        if self._workers:
            return
        if self.sandbox:
            scratch = SCRATCH
        else:
            print(
                "selfteach verify: WARNING: running model-written code WITHOUT a sandbox "
                "(sandbox=False / --no-sandbox): it can read, change and delete this machine's files",
                file=sys.stderr,
            )
            scratch = self._scratch = tempfile.mkdtemp(prefix="selfteach-verify-")
        config = {
            "timeout": self.timeout,
            "imports": self.imports,
            "limits": asdict(self.limits),
            "sandboxed": self.sandbox,
            "scratch": scratch,
            "lanes": self.lanes,
        }
        self._launcher = Launcher(config, self.python, self.sandbox)
        self._workers = [self._spawn() for _ in range(self.n_workers)]

    def _spawn(self) -> _Worker:
        cwd = "/" if self.sandbox else self._scratch
        worker = _Worker(self._launcher, {"PYTHONHASHSEED": "0"}, cwd)
        worker.wait_ready(STARTUP_TIMEOUT_S)
        return worker

    def _replace(self, worker: _Worker) -> _Worker:
        worker.close()
        fresh = self._spawn()
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def run(self, records: list[dict]) -> list[dict]:
        """One verdict per record, in the same order."""
        return list(self.imap(records))

    def imap(self, records: Iterable) -> Iterator[dict]:
        """Verdicts in input order, streaming: at most a bounded window of records is held."""
        self.start()
        source = enumerate(records)
        done: dict[int, dict] = {}
        busy: dict[int, _Worker] = {}  # reply fd -> worker
        idle = list(self._workers)
        window = WINDOW_PER_WORKER * self.n_workers
        next_out, exhausted = 0, False
        try:
            while True:
                while idle and not exhausted and len(done) + len(busy) < window:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        break
                    index, record = item
                    problem = record_problem(record)
                    if problem:
                        done[index] = make_verdict(record_id(record, index), "error", 0.0, problem)
                        continue
                    worker = idle.pop()
                    if worker.spoken_out_of_turn():  # no candidate is in hand: replace it before one is
                        worker = self._replace(worker)
                    if worker.send(index, record):
                        busy[worker.fd] = worker
                    else:
                        idle.append(self._lost(worker, "ended", done))
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
                if not busy:
                    if exhausted:
                        return
                    continue
                for worker in self._wait(busy):
                    del busy[worker.fd]
                    idle.append(self._settle(worker, done))
        finally:
            for worker in busy.values():  # abandoned mid-run: their replies would be stale
                self._replace(worker)

    def _wait(self, busy: dict[int, _Worker]) -> list[_Worker]:
        """Workers with a reply, a death or an overdue deadline to settle."""
        limit = self._worker_limit()
        now = time.monotonic()
        first_deadline = min(worker.job[2] for worker in busy.values()) + limit
        fds = select.select(list(busy), [], [], max(0.0, first_deadline - now))[0]
        ready = [busy[fd] for fd in fds]
        now = time.monotonic()
        overdue = [w for w in busy.values() if w not in ready and now - w.job[2] >= limit]
        return ready + overdue

    def _worker_limit(self) -> float:
        return STEPS_PER_CANDIDATE * self.timeout + self.grace

    def _settle(self, worker: _Worker, done: dict) -> _Worker:
        """Record the verdict the worker holds; return the worker (or its replacement) to use next."""
        index, id_, sent = worker.job
        deadline = sent + self._worker_limit()
        reply = worker.read_reply(deadline)  # it has started replying, or it is overdue
        if isinstance(reply, str):
            return self._lost(worker, reply, done)
        if not (reply.get("status") in STATUSES and isinstance(reply.get("seconds"), (int, float))):
            return self._lost(worker, "forged", done)
        done[index] = make_verdict(id_, reply["status"], reply["seconds"], reply.get("detail"))
        worker.job = None
        return worker

    def _lost(self, worker: _Worker, why: str, done: dict) -> _Worker:
        """The worker hung, died or was found compromised (`why`, a key of LOST) holding a candidate:
        that candidate gets LOST's status, the worker is replaced."""
        index, id_, sent = worker.job
        worker.kill()
        status, detail = LOST[why]
        if why == "ended":
            detail += f" ({worker.last_words()})"
        done[index] = make_verdict(id_, status, time.monotonic() - sent, detail)
        return self._replace(worker)


def verify_records(records: Iterable[dict], **kwargs) -> list[dict]:
    """One-shot convenience: start a pool, verify, stop it."""
    with Verifier(**kwargs) as verifier:
        return verifier.run(list(records))


def read_records(path: str | os.PathLike) -> Iterator:
    """The records of a JSONL file; a line that is not a JSON object with a string id is `Unreadable`."""
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                yield Unreadable(f"line {number}", f"{path}: line {number} is not JSON ({err})")
                continue
            if not (isinstance(record, dict) and isinstance(record.get("id"), str)):
                yield Unreadable(f"line {number}", f"{path}: line {number} is not an object with a string id")
                continue
            yield record


def verify_file(in_path: str | os.PathLike, out_path: str | os.PathLike, **kwargs) -> dict:
    """JSONL records in, one verdict line per record out (written atomically); counts per status."""
    if not Path(in_path).is_file():
        raise FileNotFoundError(f"no input file {in_path}")
    counts = dict.fromkeys(STATUSES, 0)
    with Verifier(**kwargs) as verifier, atomic_path(out_path) as tmp, open(tmp, "w") as out:
        for verdict in verifier.imap(read_records(in_path)):
            out.write(json.dumps(verdict) + "\n")
            counts[verdict["status"]] += 1
    return counts


def main(args) -> int:
    """The `selfteach verify` subcommand."""
    try:
        counts = verify_file(
            args.input,
            args.output,
            timeout=args.timeout,
            workers=args.workers,
            imports=args.imports,
            python=args.python,
            sandbox=not args.no_sandbox,
        )
    except SandboxError as err:
        print(f"selfteach verify: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(counts))
    return 0
