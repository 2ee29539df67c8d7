"""The verifier's worker, the code that runs inside the sandbox: one long-lived process per worker slot.

It is handed to a bare interpreter as source (`python -c`) and must need only the standard library:
nothing of the project is visible in the sandbox. Starting an interpreter costs ~10-25 ms, forking one
~1 ms plus the copy-on-write faults of whatever the child touches, so the worker imports everything
once and runs candidate steps in children of its own.

Each candidate runs in one child, and a passing one in a second, so a solution can never forge a pass:
  1. the *solve* child runs f's and g's code in one namespace (g may call f, as in the paper), calls
     g(), checks the answer's type against f's annotation, encodes it as JSON data and then calls f on
     it there, as P3 does. Anything but True ends the candidate here with that child's status: a
     candidate that lies about its own failure only hurts itself, and most candidates fail;
  2. a claimed pass goes to the *check* child, which never ran any g: it decodes the answer, checks
     its type, runs f's code afresh and calls f(answer); only its True is a pass.
Whatever the solve child does (tamper with builtins, lie in __eq__, write to any descriptor it has),
all that reaches the check is data. The time limit holds for the solve child (f(g()) as in the
paper); the check, a re-run of f alone, has a limit of its own. f's code is compiled once per
distinct source in the worker, g's in the worker too (it parses g anyway), so children only run code.

Which child: code that passes a static screen (`shareable`: a few pure modules, no name or attribute
that reaches shared objects, no attribute stores, no classes) can leave nothing behind that a later
step could see, so it runs in a *lane*, a child that serves one screened step after another (one lane
for solve steps, another for checks); a screened step costs a pipe round trip instead of a fork. Any
other code gets a fresh child of its own, and no lane outlives such a step. A lane step that hits a
resource limit is re-run in a fresh child, so a lane's history never decides a verdict.
The worker hides its own descriptors from children (they close them, and the worker is not dumpable,
so /proc/<worker>/fd is closed to them too).

Protocol on the worker's stdin/stdout, one JSON object per line: first the worker writes
{"ready": true}, then for each request {"f": str, "g": str} it answers
{"status": str, "seconds": float, "detail"?: str}. The configuration is sys.argv[1] (JSON).
"""

import ast
import builtins
import copy
import ctypes
import errno
import functools
import gc
import hashlib
import heapq
import itertools
import json
import marshal
import math
import os
import random
import re
import resource
import select
import signal
import string
import struct
import sys
import time
import types
import typing
from collections import Counter, OrderedDict, defaultdict, deque

# The paper accepted only code whose imports are all in this list.
PAPER_ALLOWED_IMPORTS = frozenset(
    {"collections", "copy", "hashlib", "math", "random", "re", "string", "typing"}
)
BASE_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
LIST_NAMES = ("List", "list")
# What the solve step may report: anything else would be candidate code forging a verdict.
SOLVE_FAILURES = frozenset({"fail", "wrong_type", "error", "timeout", "resource"})
RESULT_SEED = 0  # the random module is reseeded with this in every child: results must not vary
MAX_DETAIL_CHARS = 200
PR_SET_DUMPABLE = 4
RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.EFBIG, errno.ENOSPC, errno.ENOMEM}
RESOURCE_SIGNALS = {signal.SIGSEGV: "stack or memory", signal.SIGBUS: "memory", signal.SIGXFSZ: "file size"}
# Captured before any candidate runs: a candidate that replaces os._exit must not keep a child alive
# inside the worker's loop.
_exit = os._exit
_write = os.write


class Refused(Exception):
    """A candidate turned away before running; `status` is "rejected" or "error"."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status


# --- static checks (in the worker, before anything runs) ---


def parse(source, name):
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        raise Refused("error", f"{name} does not parse: {type(err).__name__}: {err}") from None
    if not any(isinstance(node, ast.FunctionDef) and node.name == name for node in tree.body):
        raise Refused("error", f"the {name} source defines no top-level function {name}")
    return tree


def banned_imports(tree):
    """Names the paper's policy refuses: imports outside its list, relative imports, __import__."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in PAPER_ALLOWED_IMPORTS:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "").split(".")[0] not in PAPER_ALLOWED_IMPORTS:
                yield "." * node.level + (node.module or "")
        elif isinstance(node, ast.Name) and node.id == "__import__":
            yield "__import__"
        elif isinstance(node, ast.Attribute) and node.attr == "__import__":
            yield "__import__"


def answer_type(tree):
    """(list depth, base type name) of f's first argument, from annotations like List[List[int]]."""
    f = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "f"][-1]
    positional = f.args.posonlyargs + f.args.args
    if not positional:
        raise Refused("error", "f takes no answer argument")
    node, depth = positional[0].annotation, 0
    while (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id in LIST_NAMES
    ):
        node, depth = node.slice, depth + 1
    if isinstance(node, ast.Name) and node.id in BASE_TYPES:
        return depth, node.id
    shown = ast.unparse(positional[0].annotation) if positional[0].annotation else "none"
    raise Refused("rejected", f"f's answer annotation ({shown}) is not int, float, str, bool or List[...]")


_f_cache = {}


def analyse_f(source, imports):
    """(list depth, base type name, code, shareable) of f, worked out once per distinct source (a puzzle
    is checked against many solutions)."""
    key = (source, imports)
    if key not in _f_cache:
        try:
            tree = parse(source, "f")
            check_imports(tree, "f", imports)
            _f_cache[key] = (*answer_type(tree), compile_tree(tree, "<f>"), shareable(tree))
        except Refused as err:
            _f_cache[key] = err
        if len(_f_cache) > 1024:
            _f_cache.pop(next(iter(_f_cache)))
    found = _f_cache[key]
    if isinstance(found, Refused):
        raise found
    return found


def analyse_g(source, imports):
    """(code, shareable) of g."""
    tree = parse(source, "g")
    check_imports(tree, "g", imports)
    return compile_tree(tree, "<g>"), shareable(tree)


def compile_tree(tree, filename):
    """Compiling an already parsed tree is bounded (CPython folds only small constants), so it is safe
    in the worker; a tree the compiler still refuses is the candidate's error."""
    try:
        return compile(tree, filename, "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        raise Refused("error", f"{filename} does not compile: {type(err).__name__}: {err}") from None


def check_imports(tree, name, imports):
    if imports == "paper":
        banned = sorted(set(banned_imports(tree)))
        if banned:
            raise Refused("rejected", f"{name} imports {', '.join(banned)} (outside the paper's list)")


# --- the screen: which code may share a child with other candidates ---

# Modules screened code may import, and the names of each it may use (None: every public function,
# class and constant, but no module or mutable container). All are imported above, once, so that
# children get them for free. random's state is reseeded before every step; re and typing keep
# caches that do not change results.
SHAREABLE_MODULES = {
    "collections": {"ChainMap", "Counter", "OrderedDict", "defaultdict", "deque", "namedtuple"},
    "copy": {"copy", "deepcopy"},
    # not wraps/update_wrapper/total_ordering: they set attributes on the object they are given
    "functools": {"cache", "cmp_to_key", "lru_cache", "partial", "reduce"},
    "hashlib": {"blake2b", "blake2s", "md5", "new", "sha1", "sha224", "sha256", "sha384", "sha512"},
    "heapq": None,
    "itertools": None,
    "math": None,
    "random": None,
    "re": None,
    "string": None,
    # not get_type_hints or ForwardRef: they evaluate strings as code
    "typing": {"Any", "Callable", "Dict", "FrozenSet", "Iterable", "Iterator", "List", "Optional", "Sequence",
               "Set", "Tuple", "Union"},
}
# Built-ins that reach objects by a computed name, run strings as code, read input and files, or
# make classes (type(int) is type: a class could carry a finalizer into a cache and out of its step).
UNSHAREABLE_BUILTINS = frozenset(
    {"breakpoint", "compile", "delattr", "eval", "exec", "getattr", "globals", "help", "input", "locals", "open",
     "setattr", "type", "vars"}
)
IMMUTABLE = (bool, int, float, complex, str, bytes, type(None))


def module_names(name):
    """The names screened code may take from a shareable module."""
    allowed = SHAREABLE_MODULES[name]
    if allowed is not None:
        return frozenset(allowed)
    return frozenset(
        key
        for key, value in vars(sys.modules[name]).items()
        if not key.startswith("_")
        and not isinstance(value, types.ModuleType)
        and (callable(value) or isinstance(value, IMMUTABLE))
    )


def value_attributes():
    """Public attribute names of the values screened code makes: methods of str, list, dict, Counter..."""
    values = (0, 0.0, 0j, "", b"", bytearray(), [], (), {}, set(), frozenset(), range(0), slice(0), deque(),
              Counter(), OrderedDict(), defaultdict(), re.compile(""), re.match("", ""), hashlib.sha256(),
              itertools.chain())
    return {name for value in values for name in dir(value) if not name.startswith("_")}


SHAREABLE_NAMES = {name: module_names(name) for name in SHAREABLE_MODULES}
# Attribute names are checked whatever object they are read from: none of these reaches a shared
# mutable object, and screened code cannot store an attribute at all.
SHAREABLE_ATTRIBUTES = frozenset(value_attributes().union(*SHAREABLE_NAMES.values()))


def shareable(tree):
    """True when the code can reach no object that outlives its step but immutable ones (and the
    reseeded random module), so a later step cannot tell it ran: then it may share a child.

    Conservative on purpose: anything unusual (classes, type, dunder names, attribute stores, getattr,
    other modules) is unscreened and simply gets a fresh child; the screen decides speed, not verdicts."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.Match)):
            return False
        if isinstance(node, ast.Name) and (node.id.startswith("__") or node.id in UNSHAREABLE_BUILTINS):
            return False
        if isinstance(node, ast.Attribute) and not (
            isinstance(node.ctx, ast.Load) and node.attr in SHAREABLE_ATTRIBUTES
        ):
            return False
        if isinstance(node, ast.Import) and not all(alias.name in SHAREABLE_NAMES for alias in node.names):
            return False
        if isinstance(node, ast.ImportFrom) and not (
            node.level == 0
            and node.module in SHAREABLE_NAMES
            and all(alias.name in SHAREABLE_NAMES[node.module] for alias in node.names)
        ):
            return False
    return True


# --- inside a child ---


def fresh_namespace():
    return {"__name__": "__main__", "__builtins__": builtins, "List": typing.List}


def describe(err):
    try:
        text = f"{type(err).__name__}: {err}"
    except BaseException:  # a hostile exception whose str() raises
        text = "an exception that cannot be printed"
    return text[:MAX_DETAIL_CHARS]


def failure(err):
    """The status for an exception raised by candidate code: a limit hit, or an error."""
    if isinstance(err, MemoryError):
        return "resource", describe(err)
    if isinstance(err, OSError) and err.errno in RESOURCE_ERRNOS:
        return "resource", describe(err)
    if isinstance(err, RuntimeError) and "can't start new thread" in str(err):
        return "resource", describe(err)
    return "error", describe(err)


def status_message(status, detail=None):
    message = {"status": status}
    if detail:
        message["detail"] = detail
    return b"S" + json.dumps(message).encode()


def matches(value, depth, base):
    """P3's type check: exact types (a bool is not an int), lists nested to the annotated depth."""
    if depth == 0:
        return type(value) is base
    return type(value) is list and all(matches(item, depth - 1, base) for item in value)


def hex_ints(value, depth):
    """Ints travel as hex strings: decimal conversion is quadratic in the digits, hex is linear."""
    return hex(value) if depth == 0 else [hex_ints(item, depth - 1) for item in value]


def unhex_ints(value, depth):
    if depth == 0:
        if type(value) is not str:
            raise ValueError("an int leaf that is not a hex string")
        return int(value, 16)
    if type(value) is not list:
        raise ValueError("a list level that is not a list")
    return [unhex_ints(item, depth - 1) for item in value]


def solve(f_code, g_code, depth, base_name):
    """The solve step, f(g()) as P3 runs it: b"A" + the answer as JSON when f returned True (a claim
    for the check step to confirm), else b"S" + the failure status."""
    namespace = fresh_namespace()
    try:
        exec(f_code, namespace)
        exec(g_code, namespace)
        answer = namespace["g"]()
        if not matches(answer, depth, BASE_TYPES[base_name]):
            return status_message("wrong_type", f"g returned a {type(answer).__name__}")
        # encoded before f runs: f may change the answer in place, the check must see g's
        encoded = json.dumps(hex_ints(answer, depth) if base_name == "int" else answer).encode()
        if namespace["f"](answer) is not True:
            return status_message("fail")
        return b"A" + encoded
    except BaseException as err:
        return status_message(*failure(err))


def check(f_code, encoded, depth, base_name):
    """The check step, in a clean child: decode the answer, check its type, call f on it."""
    try:
        answer = json.loads(encoded)
        if base_name == "int":
            answer = unhex_ints(answer, depth)
    except BaseException as err:
        return status_message("error", "the answer could not be decoded: " + describe(err))
    if not matches(answer, depth, BASE_TYPES[base_name]):
        return status_message("wrong_type", "the answer does not match f's annotation")
    namespace = fresh_namespace()
    try:
        exec(f_code, namespace)
        result = namespace["f"](answer)
    except BaseException as err:
        return status_message(*failure(err))
    return status_message("pass" if result is True else "fail")


def enter_child(kept_fds, config):
    """Limits and descriptors of a fresh child, set before any candidate code runs."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    start = 3
    for fd in sorted(kept_fds):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 2**31 - 1)
    limits = config["limits"]
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def start_step(remaining, in_lane):
    """Right before a step: a CPU-time backstop (the worker kills on wall-clock time) and the seed.
    A lane leaves the hard limit open so that it can raise the soft one for its next step."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = math.ceil(used.ru_utime + used.ru_stime + remaining) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY if in_lane else cpu + 1))
    random.seed(RESULT_SEED)


def serve(requests, replies):
    """A lane's loop: one (step name, remaining seconds, step arguments) request at a time."""
    steps = {"solve": solve, "check": check}
    while True:
        request = read_frame(requests)
        if request is None:
            return
        name, remaining, *args = marshal.loads(request)
        start_step(remaining, in_lane=True)
        out = steps[name](*args)
        gc.collect()  # what the step left in cycles goes now, not during a later step
        write_all(replies, struct.pack("<Q", len(out)) + out)


def read_frame(fd):
    """A length-prefixed message from a pipe, or None at its end."""
    header = read_exactly(fd, 8)
    return None if header is None else read_exactly(fd, struct.unpack("<Q", header)[0])


def read_exactly(fd, size):
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, min(size - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[_write(fd, view) :]


# --- in the worker: run one step in a child and wait for it ---


def run_step(step, args, deadline, config):
    """Fork a child for `step(*args)`; return (kind, payload): b"A"/b"S" data, or a status from outside."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return "S", {"status": "timeout"}
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            enter_child([write_fd], config)
            start_step(remaining, in_lane=False)
            write_all(write_fd, step(*args))
        finally:
            _exit(0)
    os.close(write_fd)
    try:
        data, exited, over = collect(pid, read_fd, deadline, config["limits"]["output_bytes"])
    finally:
        os.close(read_fd)
        if not exited:
            kill_quietly(pid)
        _, wait_status = os.waitpid(pid, 0)
        clean_up(pid, config)
    if over:
        return "S", {"status": "resource", "detail": "answer over the size cap"}
    if not exited:
        return "S", {"status": "timeout"}
    return outcome(data, wait_status)


def outcome(data, wait_status):
    """(kind, payload) from what a step sent and, when its process ended, how (a wait status)."""
    if wait_status is not None and os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        if number == signal.SIGXCPU:
            return "S", {"status": "timeout", "detail": "CPU time limit"}
        if number in RESOURCE_SIGNALS:
            name = signal.Signals(number).name
            return "S", {"status": "resource", "detail": f"killed by {name} ({RESOURCE_SIGNALS[number]} limit)"}
        return "S", {"status": "error", "detail": f"killed by {signal.Signals(number).name}"}
    if not data or data[:1] not in (b"A", b"S"):
        code = os.WEXITSTATUS(wait_status) if wait_status is not None else "none"
        return "S", {"status": "error", "detail": f"exited without a result (exit code {code})"}
    if data[:1] == b"A":
        return "A", bytes(data[1:])
    try:
        message = json.loads(data[1:])
        status = message["status"]
        detail = str(message.get("detail", ""))[:MAX_DETAIL_CHARS]
    except (ValueError, KeyError, TypeError):
        return "S", {"status": "error", "detail": "an unreadable result"}
    return "S", {"status": status, "detail": detail} if detail else {"status": status}


def collect(pid, read_fd, deadline, cap):
    """Read the child's output until it exits or the deadline passes; (data, exited, over the cap)."""
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    data = bytearray()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return data, False, False
            for fd, _ in poller.poll(math.ceil(remaining * 1000)):
                if fd == read_fd:
                    chunk = os.read(read_fd, 1 << 16)
                    if not chunk:
                        poller.unregister(read_fd)
                    data += chunk
                    if len(data) > cap:
                        return data, False, True
                elif fd == pidfd:
                    os.set_blocking(read_fd, False)
                    try:  # what it wrote before exiting; a grandchild may hold the pipe open
                        while len(data) <= cap and (chunk := os.read(read_fd, 1 << 16)):
                            data += chunk
                    except BlockingIOError:
                        pass
                    return data, True, len(data) > cap
    finally:
        os.close(pidfd)


class Lane:
    """A long-lived child that runs screened steps one after another (see `shareable`): forked from the
    clean worker when first needed, it gets each step as marshalled code over a pipe and answers with
    a length-prefixed result. Stopped (and started afresh later) when a step times out, dies or ends
    in a resource limit, and whenever an unscreened step runs."""

    def __init__(self, config):
        self.config = config
        self.pid = None

    def start(self):
        to_lane, requests = os.pipe()
        replies, from_lane = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(requests)
                os.close(replies)
                enter_child([to_lane, from_lane], self.config)
                serve(to_lane, from_lane)
            finally:
                _exit(0)
        os.close(to_lane)
        os.close(from_lane)
        self.pid, self.requests, self.replies = pid, requests, replies
        self.pidfd = os.pidfd_open(pid)

    def stop(self):
        """End the lane; its wait status (None if it was not running)."""
        if self.pid is None:
            return None
        kill_quietly(self.pid)
        _, wait_status = os.waitpid(self.pid, 0)
        for fd in (self.requests, self.replies, self.pidfd):
            os.close(fd)
        self.pid = None
        return wait_status

    def run(self, step, args, deadline):
        """(kind, payload) as `run_step` gives them, from this lane."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "S", {"status": "timeout"}
        request = marshal.dumps((step.__name__, remaining, *args))
        self.send(struct.pack("<Q", len(request)) + request)
        reply = self.read_reply(deadline)
        if isinstance(reply, bytes):
            return outcome(reply, None)
        wait_status = self.stop()
        if reply == "over":
            return "S", {"status": "resource", "detail": "answer over the size cap"}
        if reply == "late":
            return "S", {"status": "timeout"}
        return outcome(b"", wait_status)

    def send(self, request):
        """Hand a request to the lane, starting it if needed (or again, if it ended between steps)."""
        for attempt in (1, 2):
            if self.pid is None:
                self.start()
            try:
                return write_all(self.requests, request)
            except BrokenPipeError:
                self.stop()
                if attempt == 2:
                    raise

    def read_reply(self, deadline):
        """The step's result, or why there is none: "late", "over" (the size cap) or "ended"."""
        poller = select.poll()
        poller.register(self.replies, select.POLLIN)
        poller.register(self.pidfd, select.POLLIN)
        data, size = bytearray(), None
        while size is None or len(data) < size + 8:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "late"
            events = dict(poller.poll(math.ceil(remaining * 1000)))
            if self.replies in events:
                chunk = os.read(self.replies, 1 << 20)
                if not chunk:
                    return "ended"
                data += chunk
                if size is None and len(data) >= 8:
                    size = struct.unpack_from("<Q", data)[0]
                    if size > self.config["limits"]["output_bytes"]:
                        return "over"
            elif self.pidfd in events:
                return "ended"
        return bytes(data[8:])


def kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def clean_up(pid, config):
    """Leave nothing of a candidate behind: no process, no file for the next candidate to find."""
    if config["sandboxed"]:
        # In the sandbox's own pid namespace, -1 means every process but the init and this worker.
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    wipe(config["scratch"])


def wipe(folder):
    for entry in os.scandir(folder):
        path = entry.path
        try:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(path, 0o700)
                wipe(path)
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            pass


# --- the worker's loop ---


def judge(request, config, lanes):
    """One candidate's verdict: static checks, the solve step, and for a claimed pass the check step."""
    start = time.monotonic()
    try:
        depth, base_name, f_code, f_shareable = analyse_f(request["f"], config["imports"])
        g_code, g_shareable = analyse_g(request["g"], config["imports"])
    except Refused as err:
        return {"status": err.status, "seconds": 0.0, "detail": str(err)[:MAX_DETAIL_CHARS]}
    deadline = start + config["timeout"]
    solve_args = (f_code, g_code, depth, base_name)
    kind, payload = run(solve, solve_args, deadline, config, lanes, f_shareable and g_shareable)
    if kind == "S" and payload["status"] not in SOLVE_FAILURES:  # only the check step can pass
        kind, payload = "S", {"status": "error", "detail": "the solve step claimed a verdict"}
    if kind == "A":
        deadline = time.monotonic() + config["timeout"]
        kind, payload = run(check, (f_code, payload, depth, base_name), deadline, config, lanes, f_shareable)
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


def make_undumpable():
    """Children run as the same user; without this they could open /proc/<worker>/fd or ptrace it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def main():
    config = json.loads(sys.argv[1])
    sys.set_int_max_str_digits(0)
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    make_undumpable()
    os.chdir(config["scratch"])
    gc.freeze()  # children's collections then skip the worker's objects: fewer copy-on-write faults
    lanes = {"solve": Lane(config), "check": Lane(config)}
    send(replies, {"ready": True, "python": sys.version.split()[0]})
    for line in requests:
        send(replies, judge(json.loads(line), config, lanes))


def send(fd, message):
    write_all(fd, json.dumps(message).encode() + b"\n")


if __name__ == "__main__":
    main()
