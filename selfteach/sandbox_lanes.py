"""Children of the sandbox worker: a fresh child per step, or a long-lived lane for screened steps.

Guarantees:
- A fresh child is forked from the worker, which never runs candidate code. Before the step it has
  its limits (address space, CPU seconds, processes, file size, open files) and no descriptor but
  its result pipe. After it no process of the candidate is left (in the sandbox the worker is pid 1:
  it kills every other process there and reaps them all, orphans included), and the scratch folder
  is empty with its first mode again, whatever modes, depth or path lengths the candidate left in it
  (`wipe` walks by descriptors, without recursion).
- A lane serves screened steps (sandbox_screen.shareable) one after another. After each step, and
  before it replies, it empties the standard library's caches (every functools cache, typing's
  subscription caches among them, and re's) and collects garbage, so that whatever the step stored
  runs, if at all, in that step's own time; a lane in which something re-planted itself meanwhile is
  stopped. A lane step that hits a resource limit is run again in a fresh child (by the worker).
- Every outcome is (b"A", encoded answer) or ("S", a message whose status is one of STATUSES).
"""

import collections
import errno
import functools
import gc
import json
import marshal
import math
import os
import random
import re
import resource
import select
import signal
import struct
import sys
import time

from selfteach.sandbox_steps import MAX_DETAIL_CHARS, STATUSES, STEPS

RESULT_SEED = 0  # the random module is reseeded with this before every step: results must not vary
RESOURCE_SIGNALS = {signal.SIGSEGV: "stack or memory", signal.SIGBUS: "memory", signal.SIGXFSZ: "file size"}
FRAME = struct.Struct("<Q")  # the length before every lane request
REPLY = struct.Struct("<QB")  # before every lane reply: its length, and whether the lane is still clean
# Rounds of garbage collection after a lane step; garbage still found after them was made by
# finalizers of the step's own garbage, and the lane is stopped.
COLLECTIONS = 3
LRU_CACHE = type(functools.lru_cache()(int))
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Captured before any candidate runs: a candidate that replaces os._exit must not keep a child alive
# inside the worker's loop.
_exit = os._exit
_write = os.write


# --- inside a child ---


def close_all_but(kept_fds):
    """Close every descriptor from 3 up but `kept_fds`."""
    start = 3
    for fd in sorted(kept_fds):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 2**31 - 1)


def enter_child(kept_fds, config):
    """Limits and descriptors of a fresh child, set before any candidate code runs."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    close_all_but(kept_fds)
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


def loaded_caches():
    """Every functools cache of the modules loaded so far (typing's subscription caches among them).
    Call it before gc.freeze(): frozen objects are hidden from gc.get_objects()."""
    return [found for found in gc.get_objects() if isinstance(found, LRU_CACHE)]


def forget(caches):
    """Empty the standard library's caches and collect garbage, so that nothing a step stored there
    (a suspended generator whose `finally` would run in a later step, say) outlives the step. True
    when the lane is clean after it: the garbage ran out, and if any Python code ran meanwhile (a
    finalizer), it left every cache empty."""
    re.purge()  # re's own cache holds compiled patterns only: nothing of it runs code when freed
    ran = []
    # Python code that runs from here on (a finalizer) shows as a "call" event; ours makes none: it
    # calls cache_clear from C (map) and gc.collect, a builtin.
    sys.setprofile(lambda frame, event, arg: event == "call" and ran.append(True))
    try:
        collections.deque(map(LRU_CACHE.cache_clear, caches), maxlen=0)
        for _ in range(COLLECTIONS):
            if not gc.collect():
                break
        else:
            return False
    finally:
        sys.setprofile(None)
    return not ran or all(cache.cache_info().currsize == 0 for cache in caches)


def serve(requests, replies, caches):
    """A lane's loop: one (step name, remaining seconds, step arguments) request at a time."""
    while True:
        request = read_frame(requests)
        if request is None:
            return
        name, remaining, *args = marshal.loads(request)
        start_step(remaining, in_lane=True)
        out = STEPS[name](*args)
        clean = forget(caches)  # before the reply: what runs now counts against this step's time
        write_all(replies, REPLY.pack(len(out), clean) + out)


def read_frame(fd):
    """A length-prefixed message from a pipe, or None at its end."""
    header = read_exactly(fd, FRAME.size)
    return None if header is None else read_exactly(fd, FRAME.unpack(header)[0])


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
    if status not in STATUSES:
        return "S", {"status": "error", "detail": "a result with an unknown status"}
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
    a length-prefixed result. Stopped (and started afresh later) when a step times out, dies, ends in
    a resource limit or leaves the lane unclean, and whenever an unscreened step runs."""

    def __init__(self, config, caches):
        self.config = config
        self.caches = caches  # the standard library's caches, emptied after every step
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
                serve(to_lane, from_lane, self.caches)
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
        self.send(FRAME.pack(len(request)) + request)
        reply = self.read_reply(deadline)
        if isinstance(reply, tuple):
            data, clean = reply
            if not clean:
                self.stop()
            return outcome(data, None)
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
        """(the step's result, whether the lane is clean), or why there is none: "late", "over" (the
        size cap) or "ended"."""
        poller = select.poll()
        poller.register(self.replies, select.POLLIN)
        poller.register(self.pidfd, select.POLLIN)
        data, size = bytearray(), None
        while size is None or len(data) < REPLY.size + size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "late"
            events = dict(poller.poll(math.ceil(remaining * 1000)))
            if self.replies in events:
                chunk = os.read(self.replies, 1 << 20)
                if not chunk:
                    return "ended"
                data += chunk
                if size is None and len(data) >= REPLY.size:
                    size, clean = REPLY.unpack_from(data)
                    if size > self.config["limits"]["output_bytes"]:
                        return "over"
            elif self.pidfd in events:
                return "ended"
        return bytes(data[REPLY.size :]), bool(clean)


def kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def clean_up(pid, config):
    """Leave nothing of a candidate behind: no process, no file for the next candidate to find."""
    if config["sandboxed"]:
        # The worker is the sandbox's pid 1: -1 is every other process in it, and every process
        # there, orphans included, is the worker's child to reap (no lane runs during a fresh step).
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        reap_all()
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    wipe(config["scratch"], config["scratch_mode"])


def reap_all():
    """Wait for every child until none is left."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def wipe(folder, mode):
    """Empty `folder` and give it `mode` again, whatever a candidate did to it: every folder gets its
    permissions back before it is opened, and the walk goes by descriptors, one folder open at a time,
    so neither paths longer than PATH_MAX nor nesting deeper than the recursion limit stop it. Nothing
    else runs meanwhile (clean_up killed it), so no entry changes under the walk. An error here
    propagates: a worker that cannot clean its scratch must not judge another candidate."""
    os.chmod(folder, 0o700)
    fd = os.open(folder, DIRECTORY_FLAGS)
    depth = 0
    try:
        while True:
            inner = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False):
                        os.unlink(entry.name, dir_fd=fd)
                        continue
                    try:
                        os.rmdir(entry.name, dir_fd=fd)
                    except OSError as err:
                        if err.errno != errno.ENOTEMPTY:
                            raise
                        inner = entry.name  # go down into it
                        break
            if inner is not None:
                os.chmod(inner, 0o700, dir_fd=fd)
                fd, depth = reopen(fd, inner), depth + 1
            elif depth:
                fd, depth = reopen(fd, ".."), depth - 1
            else:
                break
    finally:
        os.close(fd)
    os.chmod(folder, mode)


def reopen(fd, name):
    """The folder `name` relative to `fd` opened, `fd` closed."""
    try:
        return os.open(name, DIRECTORY_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
