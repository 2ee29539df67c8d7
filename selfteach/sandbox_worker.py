"""The verifier's worker: one long-lived process per worker slot, the sandbox's pid 1.

It is handed to a bare interpreter as source (`python -c`, see selfteach.sandbox.bootstrap) with its
sibling modules sandbox_screen, sandbox_steps and sandbox_lanes, and needs nothing but the standard
library: nothing of the project is visible in the sandbox. Starting an interpreter costs ~10-25 ms,
forking one ~1 ms plus the copy-on-write faults of whatever the child touches, so the worker imports
everything once and runs every candidate step in a child of its own (sandbox_lanes); it never runs
candidate code itself.

Guarantees:
- No process but the worker holds the host's request and reply pipes (bwrap runs it as pid 1, so no
  reaper holds them; children get none of its descriptors), and the worker is not dumpable: code
  running as the same user can neither open /proc/1/fd nor ptrace it (the seccomp filter denies
  ptrace besides), and signals from inside the sandbox reach it only for handled ones: none.
- Every reply carries its request's token. The token is read straight into memory that forked
  children do not get (MADV_DONTFORK) and written to the reply from there, so no child ever holds the
  token of the request it works on: the host can tell the worker's reply from anything else.
- A solution's pass only ever comes from the check step (sandbox_steps), a program's from its
  program step in a fresh child; every status is one of STATUSES.

Protocol. Requests on stdin: an 8-byte little-endian length n, TOKEN_CHARS token bytes, then n bytes
of JSON. Replies on stdout, one line each: the request's token, a space, a JSON object. The first
request is {"hello": true}, answered with {"ready": true, "python", "pid", "seccomp"}; each later
request {"f": str, "g": str} (a puzzle and its solution) or {"program": str} (a whole program, run to
its end in a fresh child under no import policy) is answered with {"status": str, "seconds": float,
"detail"?: str}.
The configuration is sys.argv[1] (JSON).
"""

import ctypes
import gc
import json
import mmap
import os
import signal
import stat
import sys
import time

from selfteach.sandbox_lanes import FRAME, Lane, close_all_but, loaded_caches, read_exactly, run_step
from selfteach.sandbox_screen import Refused, analyse_f, analyse_g, analyse_program
from selfteach.sandbox_steps import MAX_DETAIL_CHARS, SOLVE_FAILURES, check, program, solve

TOKEN_CHARS = 32
PR_SET_DUMPABLE = 4


def judge(request, config, lanes):
    """One candidate's verdict: a whole program's, or a puzzle and solution's."""
    start = time.monotonic()
    try:
        if "program" in request:
            return judge_program(analyse_program(request["program"]), start, config, lanes)
        return judge_solution(request, start, config, lanes)
    except Refused as err:
        return {"status": err.status, "seconds": 0.0, "detail": str(err)[:MAX_DETAIL_CHARS]}


def judge_program(code, start, config, lanes):
    """The program step, in a fresh child: it never shares a lane, whatever the code."""
    kind, payload = run(program, (code,), start + config["timeout"], config, lanes, screened=False)
    if kind == "A":  # the program step reports a status only: an answer is something else's bytes
        payload = {"status": "error", "detail": "the program step claimed an answer"}
    return finished(payload, start)


def judge_solution(request, start, config, lanes):
    """Static checks, the solve step, and for a claimed pass the check step."""
    depth, base_name, f_code, f_shareable = analyse_f(request["f"], config["imports"])
    g_code, g_shareable = analyse_g(request["g"], config["imports"])
    deadline = start + config["timeout"]
    solve_args = (f_code, g_code, depth, base_name)
    kind, payload = run(solve, solve_args, deadline, config, lanes, f_shareable and g_shareable)
    if kind == "S" and payload["status"] not in SOLVE_FAILURES:  # only the check step can pass
        kind, payload = "S", {"status": "error", "detail": "the solve step claimed a verdict"}
    if kind == "A":
        deadline = time.monotonic() + config["timeout"]
        kind, payload = run(check, (f_code, payload, depth, base_name), deadline, config, lanes, f_shareable)
    return finished(payload, start)


def finished(payload, start):
    """The verdict: the step's status message, with the seconds since `start`."""
    verdict = dict(payload)
    verdict["seconds"] = round(time.monotonic() - start, 6)
    return verdict


def run(step, args, deadline, config, lanes, screened):
    """Run a step of screened code in the step's lane (when lanes are on), any other in a fresh child
    of its own, stopping every lane first: none outlives an unscreened step. A lane step that hits a
    resource limit is run again in a fresh child, with a fresh limit: a lane's history must not decide
    a verdict."""
    if screened and config["lanes"]:
        kind, payload = lanes[step.__name__].run(step, args, deadline)
        if kind == "A" or payload["status"] != "resource":
            return kind, payload
        deadline = time.monotonic() + config["timeout"]
    for each in lanes.values():
        each.stop()
    return run_step(step, args, deadline, config)


class Channel:
    """The host's pipes, and the token of the request in hand, kept where no child can read it."""

    def __init__(self, requests, replies):
        self.requests, self.replies = requests, replies
        self.memory = mmap.mmap(-1, mmap.PAGESIZE)
        self.memory.madvise(mmap.MADV_DONTFORK)
        self.token = memoryview(self.memory)[:TOKEN_CHARS]

    def receive(self):
        """The next request, its token now held; None when the host has closed the pipe."""
        header = read_exactly(self.requests, FRAME.size)
        if header is None or not read_into(self.requests, self.token):
            return None
        body = read_exactly(self.requests, FRAME.unpack(header)[0])
        return None if body is None else json.loads(body)

    def reply(self, message):
        write_parts(self.replies, [self.token, b" " + json.dumps(message).encode() + b"\n"])


def read_into(fd, view):
    """Fill `view` from `fd` with no copy in between; False at the pipe's end."""
    while view:
        size = os.readv(fd, [view])
        if not size:
            return False
        view = view[size:]
    return True


def write_parts(fd, parts):
    parts = [memoryview(part) for part in parts]
    while parts:
        written = os.writev(fd, parts)
        while parts and written >= len(parts[0]):
            written -= len(parts.pop(0))
        if parts:
            parts[0] = parts[0][written:]


def make_undumpable():
    """Children run as the same user; without this they could open /proc/<worker>/fd or ptrace it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def seccomp_mode():
    """This process's seccomp mode as the kernel reports it (2: a filter is installed)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return 0


def main():
    config = json.loads(sys.argv[1])
    sys.set_int_max_str_digits(0)
    # As pid 1 the worker gets, from inside the sandbox, only the signals it handles: let it handle
    # none (Python handles SIGINT unless told otherwise).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = Channel(os.dup(0), os.dup(1))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    close_all_but([channel.requests, channel.replies])
    make_undumpable()
    os.chdir(config["scratch"])
    config["scratch_mode"] = stat.S_IMODE(os.stat(config["scratch"]).st_mode)
    caches = loaded_caches()
    gc.freeze()  # children's collections then skip the worker's objects: fewer copy-on-write faults
    lanes = {"solve": Lane(config, caches), "check": Lane(config, caches)}
    if channel.receive() != {"hello": True}:
        return
    channel.reply({"ready": True, "python": sys.version.split()[0], "pid": os.getpid(), "seccomp": seccomp_mode()})
    while (request := channel.receive()) is not None:
        channel.reply(judge(request, config, lanes))
