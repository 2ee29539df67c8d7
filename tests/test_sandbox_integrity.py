"""Attacks on the verdicts themselves (issue 13): forging the worker's reply, state that outlives a
lane step, defeating the scratch cleanup, memory outside the limits, the open kernel interface.

Every attack runs in a one-worker pool, under `--imports paper` (reaching os and ctypes through
random's own imports, as a model could) and `any`, and is followed in the same worker by known-good
and known-bad candidates, screened (lane) and unscreened (fresh child): a test fails if the attack
passes where it should not or if any later verdict shifts. The same suite runs as an unprivileged
user (setpriv), as the verifier runs on a workstation.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from selfteach import sandbox
from selfteach.sandbox_screen import shareable
from selfteach.verify import Verifier

REPO = Path(__file__).resolve().parents[1]
F_INT = "def f(x: int):\n    return x == 3\n"
EXPECTED_DRAW = random.Random(0).random()  # a step's first draw: every step is seeded with 0
# Subscribes typing's caches (List and Dict share one) as its annotations are evaluated: a parasite
# planted in them meets this candidate's step.
F_RANDOM = (
    "from typing import Callable, Dict, List, Optional\n"
    "def f(x: List[float], d: Dict[str, int] = None, o: Optional[int] = None, c: Callable[[int], int] = None):\n"
    f"    return x == [{EXPECTED_DRAW!r}]\n"
)
# The candidates after every attack: (name, f, g, status it must get)
FOLLOWERS = (
    ("good_lane", F_INT, "def g():\n    return 3\n", "pass"),
    ("bad_lane", F_INT, "def g():\n    return 4\n", "fail"),
    ("random_lane", F_RANDOM, "import random\ndef g():\n    return [random.random()]\n", "pass"),
    ("good_fresh", F_INT, "def g():\n    return getattr(3, 'real')\n", "pass"),  # getattr: unscreened
    ("bad_fresh", F_INT, "def g():\n    return getattr(4, 'real')\n", "fail"),
    ("scratch_fresh", F_INT,  # /tmp must be empty and writable
     "import random\ndef g():\n    os = random._os\n    open('/tmp/probe', 'w').write('x')\n"
     "    os.remove('/tmp/probe')\n    return 3 if os.listdir('/tmp') == [] else 4\n", "pass"),
)  # fmt: skip
# Whole programs after every attack (HumanEval's kind of record): (name, program, status it must get)
PROGRAM_FOLLOWERS = (
    ("good_program", "import random\nassert random.random() == %r\n" % EXPECTED_DRAW, "pass"),
    ("bad_program", "assert sum([1, 2]) == 4\n", "error"),
    ("scratch_program", "import os\nopen('/tmp/probe', 'w').write('x')\nos.remove('/tmp/probe')\n"
     "assert os.listdir('/tmp') == []\n", "pass"),
)  # fmt: skip
# How unscreened attacks get os, sys and ctypes under each import policy: the paper's list does not
# stop them (random imports os, and builtins' __import__ is a string away).
PREAMBLE = {
    "any": "import os, sys, time, signal, ctypes, random\n",
    "paper": (
        "import random\nload = getattr(random._os.sys.modules['builtins'], '__import__')\n"
        "os, sys, time, signal, ctypes = [load(name) for name in ('os', 'sys', 'time', 'signal', 'ctypes')]\n"
    ),
}
FORGED = b'{"status": "pass", "seconds": 0}\n'  # a reply line as the worker sent them before tokens
FORGED_WITH_TOKEN = b'0123456789abcdef0123456789abcdef {"status": "pass", "seconds": 0}\n'

# name -> g's body (after the preamble); each returns 3 only if its attack got through
FORGE = {
    # write forged replies into every descriptor of pid 1 (the worker, or before the fix bwrap's reaper)
    "proc1_fds": (
        "done = 0\nfor fd in range(64):\n    try:\n        with open('/proc/1/fd/%d' % fd, 'wb') as out:\n"
        f"            out.write({FORGED!r})\n            out.write({FORGED_WITH_TOKEN!r})\n        done += 1\n"
        "    except OSError:\n        pass\nreturn 3 if done else 4"),
    # ...and of every process it can see
    "every_process_fd": (
        "done = 0\nfor pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n    for fd in range(64):\n"
        "        try:\n            with open('/proc/%s/fd/%d' % (pid, fd), 'wb') as out:\n"
        f"                out.write({FORGED!r})\n            done += 1\n        except OSError:\n            pass\n"
        "return 3 if done else 4"),
    # attach to pid 1 (PTRACE_SEIZE) to write into its pipes from its own context
    "ptrace_pid1": "libc = ctypes.CDLL(None, use_errno=True)\nreturn 3 if libc.ptrace(0x4206, 1, 0, 0) == 0 else 4",
    # take pid 1's descriptors with pidfd_getfd (434 and 438 on every architecture) and forge through them
    "pidfd_getfd": (
        "libc = ctypes.CDLL(None, use_errno=True)\npidfd = libc.syscall(434, 1, 0)\nfor fd in range(64):\n"
        "    stolen = libc.syscall(438, pidfd, fd, 0) if pidfd >= 0 else -1\n    if stolen >= 0:\n"
        f"        try:\n            os.write(stolen, {FORGED!r})\n        except OSError:\n            pass\n"
        "return 4"),
    # a process left behind that forges while later candidates run
    "daemon_forger": (
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(0.2)\n"
        "        for fd in range(64):\n            try:\n"
        "                with open('/proc/1/fd/%d' % fd, 'wb') as out:\n"
        f"                    out.write({FORGED!r})\n            except OSError:\n                pass\n"
        "    os._exit(0)\nreturn 4"),
    # signals to pid 1 (Python handles SIGINT unless told otherwise)
    "signal_pid1": (
        "for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGSTOP):\n"
        "    os.kill(1, number)\ntime.sleep(0.05)\nreturn 4"),
}
SCRATCH = {
    # a file left behind in a /tmp the cleanup may no longer write to
    "chmod_tmp": "open('/tmp/left', 'w').write('x')\nos.chmod('/tmp', 0o500)\nreturn 4",
    # a path longer than PATH_MAX
    "long_path": (
        "os.chdir('/tmp')\nfor _ in range(24):\n    os.mkdir('d' * 250)\n    os.chdir('d' * 250)\n"
        "open('left', 'w').write('x')\nreturn 4"),
    # nesting deeper than the recursion limit, the innermost folders closed
    "deep": (
        "os.chdir('/tmp')\nfor _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\n"
        "open('left', 'w').write('x')\nos.chdir('..')\nos.chmod('d', 0)\nos.chdir('/tmp')\nreturn 4"),
    # modes that refuse the owner, and entries that are not plain files
    "modes": (
        "os.makedirs('/tmp/a/b/c')\nopen('/tmp/a/b/c/f', 'w').close()\nos.chmod('/tmp/a/b/c/f', 0)\n"
        "os.chmod('/tmp/a/b/c', 0)\nos.chmod('/tmp/a/b', 0o100)\nos.mkfifo('/tmp/fifo')\n"
        "os.symlink('/', '/tmp/root')\nos.symlink('/tmp', '/tmp/a/loop')\nos.chmod('/tmp/a', 0o500)\nreturn 4"),
}
MEMORY = {
    # a tmpfs of its own in nested user and mount namespaces: memory RLIMIT_AS does not count
    "userns_tmpfs": (
        "libc = ctypes.CDLL(None, use_errno=True)\nif libc.unshare(0x10000000 | 0x00020000) != 0:\n    return 4\n"
        "os.mkdir('/tmp/m')\nreturn 3 if libc.mount(b'none', b'/tmp/m', b'tmpfs', 0, b'size=4g') == 0 else 4"),
    "memfd": "fd = os.memfd_create('fill')\nreturn 3",
    "sysv_shm": "libc = ctypes.CDLL(None, use_errno=True)\nreturn 3 if libc.shmget(0, 1 << 30, 0o1600) >= 0 else 4",
}
# Screened code that plants a suspended generator in typing's caches; its `finally` runs when the entry
# is evicted (127 fillers make it the next to go), i.e. in a later candidate's step, after that step
# was seeded. {finally} is the generator's cleanup (which may plant it again, fillers and all, as the
# cache is emptied), {plant} the subscription that keeps it.
PARASITE = """import random
from typing import Callable, Dict, List, Optional
def g():
    def parasite():
        try:
            yield
        finally:
{finally}
    def plant():
        it = parasite()
        next(it)
        {plant}
        for i in range(127):
            {filler}
    plant()
    return 4
"""
PARASITES = {
    "dict_reseeds": ("            random.seed(12345)", "Dict[(lambda: it), int]", "Dict['x%d' % i, int]"),
    "list_replants": ("            random.seed(12345)\n            plant()", "List[(lambda: it)]", "List['x%d' % i]"),
    "optional_loops": (
        "            while True:\n                pass", "Optional[(lambda: it)]", "Optional['x%d' % i]"),
    "callable_reseeds": (
        "            random.seed(12345)", "Callable[[(lambda: it)], int]", "Callable[['x%d' % i], int]"),
}


def parasite(name: str) -> str:
    cleanup, plant, filler = PARASITES[name]
    return PARASITE.format(**{"finally": cleanup, "plant": plant, "filler": filler})


# f plants a parasite in the check lane (it runs there for a claimed pass), whose cleanup loops
F_PARASITE = parasite("optional_loops").replace("def g():", "def f(x: int):").replace("return 4", "return x == 3")


def unscreened(policy: str, body: str) -> str:
    return PREAMBLE[policy] + "def g():\n" + "".join("    " + line + "\n" for line in body.splitlines())


def attacks(policy: str) -> dict[str, dict]:
    """name -> the attack's record, every class; the unscreened ones also as whole programs, which pass
    only if g returns 3 (its attack got through)."""
    found = {}
    for family in (FORGE, SCRATCH, MEMORY):
        for name, body in family.items():
            found[name] = {"f": F_INT, "g": unscreened(policy, body)}
            found[f"{name}_program"] = {"program": unscreened(policy, body) + "assert g() == 3\n"}
    for name in PARASITES:
        found[name] = {"f": F_INT, "g": parasite(name)}
    found["f_parasite"] = {"f": F_PARASITE, "g": "def g():\n    return 3\n"}
    return found


def attack_then_followers(policy: str) -> list[list[dict]]:
    """One job per attack: the attack, then the followers (a fresh pool each, so that one attack's
    success cannot hide another's)."""
    jobs = []
    for name, attack in attacks(policy).items():
        followers = [{"id": f"{name}>{who}", "f": f, "g": g} for who, f, g, _ in FOLLOWERS]
        followers += [{"id": f"{name}>{who}", "program": program} for who, program, _ in PROGRAM_FOLLOWERS]
        jobs.append([{"id": name, **attack}, *followers])
    return jobs


def wrong_verdicts(jobs: list[list[dict]], verdicts: list[list[dict]]) -> dict[str, tuple]:
    """The verdicts that betray a breach: an attack that passed (f_parasite's own pair is correct) or
    was turned away unrun, a follower that did not get its status."""
    statuses = [(who, status) for who, *_, status in FOLLOWERS + PROGRAM_FOLLOWERS]
    expected = {f"{name}>{who}": status for name in attacks("any") for who, status in statuses}
    wrong = {}
    for record, verdict in zip(sum(jobs, []), sum(verdicts, [])):
        assert verdict["id"] == record["id"]
        if record["id"] in expected:
            ok = verdict["status"] == expected[record["id"]]
        else:
            ok = verdict["status"] not in ("pass", "rejected") or record["id"] == "f_parasite"
        if not ok:
            wrong[record["id"]] = (verdict["status"], verdict.get("detail"))
    return wrong


# Runs jobs, each in a pool of its own, in a process that needs only the standard library and the
# package in argv[1]: as this user, or as another one with a copy of the package it can read.
RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from selfteach.verify import Verifier
job = json.load(sys.stdin)
verdicts = []
for records in job["jobs"]:
    with Verifier(timeout=1.0, workers=1, imports=job["imports"]) as pool:
        verdicts.append(pool.run(records))
print(json.dumps(verdicts))
"""


def run_jobs(jobs: list[list[dict]], imports: str, prefix=(), python=sys.executable, package=REPO) -> list[list[dict]]:
    done = subprocess.run(
        [*prefix, python, "-c", RUNNER, str(package)],
        input=json.dumps({"jobs": jobs, "imports": imports}),
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def unprivileged():
    """A command prefix that runs as an unprivileged user, and a folder it can read holding the package."""
    prefix = sandbox.privilege_drop()  # nothing when we are one already
    folder = tempfile.mkdtemp(prefix="selfteach-unprivileged-")
    shutil.copytree(REPO / "selfteach", Path(folder) / "selfteach", ignore=shutil.ignore_patterns("__pycache__"))
    for root, _, files in os.walk(folder):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    yield prefix, folder
    shutil.rmtree(folder)


@pytest.mark.parametrize("policy", ["paper", "any"])
def test_attacks_change_no_verdict(policy):
    jobs = attack_then_followers(policy)
    assert wrong_verdicts(jobs, run_jobs(jobs, policy)) == {}


@pytest.mark.parametrize("policy", ["paper", "any"])
def test_attacks_change_no_verdict_as_an_unprivileged_user(policy, unprivileged):
    """As a user on a workstation runs it: no setpriv inside, bwrap started by that user."""
    prefix, folder = unprivileged
    jobs = attack_then_followers(policy)
    verdicts = run_jobs(jobs, policy, prefix=prefix, python=sandbox.SYSTEM_PYTHON, package=folder)
    assert wrong_verdicts(jobs, verdicts) == {}


def test_parasites_pass_the_screen():
    """They must run in lanes, or they test nothing."""
    for name in PARASITES:
        assert shareable(ast.parse(parasite(name))), name
    assert shareable(ast.parse(F_PARASITE))
    for _, f, g, _ in FOLLOWERS[:3]:
        assert shareable(ast.parse(f)) and shareable(ast.parse(g))
# --- the seccomp filter ---

RESOLVE = (
    "import json, seccomp, sys\n"
    "print(json.dumps({n: seccomp.resolve_syscall(seccomp.Arch.NATIVE, n) for n in json.loads(sys.argv[1])}))"
)


def syscall_numbers(names) -> dict[str, int]:
    """Each syscall's number here, as libseccomp resolves it; those this architecture lacks left out."""
    done = subprocess.run(
        [sandbox.SECCOMP_BUILDER, "-I", "-c", RESOLVE, json.dumps(list(names))],
        capture_output=True,
        text=True,
        check=True,
    )
    return {name: number for name, number in json.loads(done.stdout).items() if number >= 0}


# Calls every denied syscall with zero arguments; returns 3 when each one failed with the errno the
# filter gives (EPERM, ENOSYS for clone3), else names the others.
CALL_ALL = """import ctypes
def g():
    libc = ctypes.CDLL(None, use_errno=True)
    others = []
    for name, number, wanted, flags in {calls!r}:
        ctypes.set_errno(0)
        if libc.syscall(number, flags, 0, 0, 0, 0, 0) != -1 or ctypes.get_errno() != wanted:
            others.append('%s:%d' % (name, ctypes.get_errno()))
    if others:
        raise OSError(' '.join(others))
    return 3
"""


def test_the_filter_denies_every_listed_syscall():
    numbers = syscall_numbers((*sandbox.DENIED_SYSCALLS, *sandbox.ABSENT_SYSCALLS, "clone"))
    calls = [(name, numbers[name], errno.EPERM, 0) for name in sandbox.DENIED_SYSCALLS if name in numbers]
    calls += [(name, numbers[name], errno.ENOSYS, 0) for name in sandbox.ABSENT_SYSCALLS]
    calls += [
        (f"clone {flag}", numbers["clone"], errno.EPERM, value) for flag, value in sandbox.CLONE_NAMESPACE_FLAGS.items()
    ]
    assert len(calls) >= 50
    with Verifier(timeout=5.0, workers=1, imports="any") as pool:
        [verdict] = pool.run([{"id": "calls", "f": F_INT, "g": CALL_ALL.format(calls=calls)}])
    assert verdict["status"] == "pass", verdict


# Calls that work for an ordinary process (memory outside RLIMIT_AS, kernel interfaces, a user
# namespace): the names of those that worked.
PROBES = """import ctypes, os
def g():
    libc = ctypes.CDLL(None, use_errno=True)
    worked = []
    if libc.syscall({memfd_create}, b'x', 0) >= 0:
        worked.append('memfd_create')
    if libc.syscall({keyctl}, 0, -2, 1) >= 0:  # KEYCTL_GET_KEYRING_ID, the process keyring, made anew
        worked.append('keyctl')
    if libc.syscall({io_uring_setup}, 1, ctypes.create_string_buffer(120)) >= 0:
        worked.append('io_uring_setup')
    if libc.syscall({userfaultfd}, 1) >= 0:  # UFFD_USER_MODE_ONLY
        worked.append('userfaultfd')
    pid = os.fork()
    if pid == 0:
        os._exit(0 if libc.unshare(0x10000000) == 0 else 1)
    if os.waitpid(pid, 0)[1] == 0:
        worked.append('unshare')
    raise ValueError('worked: ' + (' '.join(worked) or 'none'))
"""


def test_calls_that_work_outside_fail_in_the_sandbox():
    """The control for the test above: without the filter these calls work here, inside none does."""
    probe = PROBES.format(**syscall_numbers(["memfd_create", "keyctl", "io_uring_setup", "userfaultfd"]))
    record = {"id": "probe", "f": F_INT, "g": probe}
    with Verifier(timeout=5.0, workers=1, imports="any", sandbox=False) as pool:
        [outside] = pool.run([record])
    with Verifier(timeout=5.0, workers=1, imports="any") as pool:
        [inside] = pool.run([record])
    assert outside["detail"].startswith("ValueError: worked: ") and "unshare" in outside["detail"], outside
    assert len(outside["detail"].split()) >= 4, outside  # at least two of them work outside
    assert inside["detail"] == "ValueError: worked: none", inside


def test_no_filter_no_sandbox(monkeypatch):
    """Fail closed: where libseccomp's bindings are missing, the sandbox does not start without them."""
    monkeypatch.setattr(sandbox, "SECCOMP_BUILDER", sys.executable)  # the venv cannot import seccomp
    with pytest.raises(sandbox.SandboxError, match="python3-seccomp"):
        Verifier().start()


# --- the reply channel ---

# Writes every readable 32-hex-digit run in its own memory to {out}: a child holding the token of the
# request it works on would find it there.
SCAN_MEMORY = """import re
def g():
    found = set()
    with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as memory:
        for line in maps:
            span, perms = line.split()[:2]
            if not perms.startswith('r'):
                continue
            start, end = (int(x, 16) for x in span.split('-'))
            try:
                memory.seek(start)
                data = memory.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            found.update(re.findall(rb'(?<![0-9a-f])[0-9a-f]{{32}}(?![0-9a-f])', data))
    with open({out!r}, 'w') as out:
        out.write(' '.join(sorted(token.decode() for token in found)))
    return 3
"""


def test_no_child_holds_its_request_token(tmp_path):
    """Unsandboxed, so that the child can write what it found where we read it; the worker is the same."""
    out = tmp_path / "found.txt"
    with Verifier(timeout=10.0, workers=1, imports="any", sandbox=False) as pool:
        [verdict] = pool.run([{"id": "scan", "f": F_INT, "g": SCAN_MEMORY.format(out=str(out))}])
        token = pool._workers[0].token.decode()
    assert verdict["status"] == "pass", verdict
    assert len(token) == 32 and token not in out.read_text().split()


# Unsandboxed and as root, a candidate can open the worker's reply pipe (the write end of a pipe among
# its parent's descriptors): the stand-in for a breach of the sandbox, to show that the host's side
# holds alone. {delay}: seconds before writing, in a process of its own.
FORGER = """import os, time
def g():
    worker = os.getppid()
    if {delay}:
        ready, say_ready = os.pipe()
        if os.fork() != 0:
            os.read(ready, 1)  # until the forger has left this process group, which the cleanup kills
            return 4
        os.setsid()
        os.write(say_ready, b'x')
        time.sleep({delay})
    for fd in os.listdir('/proc/%d/fd' % worker):
        with open('/proc/%d/fdinfo/%s' % (worker, fd)) as info:
            write_only = int(info.read().split('flags:')[1].split()[0], 8) & 3 == 1
        if write_only and os.readlink('/proc/%d/fd/%s' % (worker, fd)).startswith('pipe:'):
            with open('/proc/%d/fd/%s' % (worker, fd), 'wb') as reply:
                reply.write({payload!r})
    if {delay}:
        os._exit(0)
    return 4
"""
GOOD = {"id": "good", "f": F_INT, "g": "def g():\n    return 3\n"}
BAD = {"id": "bad", "f": F_INT, "g": "def g():\n    return 4\n"}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can reach an undumpable worker's pipes")
@pytest.mark.parametrize("payload", [FORGED, FORGED_WITH_TOKEN, b"x"])
def test_a_forged_reply_is_caught_and_shifts_nothing(payload):
    forger = {"id": "forger", "f": F_INT, "g": FORGER.format(delay=0, payload=payload)}
    with Verifier(timeout=2.0, workers=1, imports="any", sandbox=False) as pool:
        verdicts = pool.run([forger, GOOD, BAD, GOOD, BAD])
    assert [v["status"] for v in verdicts] == ["error", "pass", "fail", "pass", "fail"]
    assert "forged" in verdicts[0]["detail"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can reach an undumpable worker's pipes")
def test_bytes_between_replies_replace_the_worker():
    with Verifier(timeout=2.0, workers=1, imports="any", sandbox=False) as pool:
        worker = pool._workers[0].proc
        code = FORGER.format(delay=0.3, payload=FORGED)
        [verdict] = pool.run([{"id": "late", "f": F_INT, "g": code}])
        assert select.select([pool._workers[0].fd], [], [], 30)[0]  # the forger wrote, no request in hand
        after = pool.run([GOOD, BAD])
        assert pool._workers[0].proc is not worker
    assert verdict["status"] == "fail"
    assert [v["status"] for v in after] == ["pass", "fail"]


# --- the worker's own copies of the shared terms ---


def test_the_worker_copies_are_the_shared_terms():
    from selfteach import sandbox_steps, terms

    assert sandbox_steps.STATUSES == terms.STATUSES
    assert sandbox_steps.MAX_DETAIL_CHARS == terms.MAX_DETAIL_CHARS
