"""Hostile candidates: each tries one harmful effect; none may succeed, and the verifier carries on.

Every hostile candidate is followed by a correct one, which must still pass. The puzzle is "x == 3",
and most hostile solutions return 3 only if their attack worked, so a "pass" would betray a breach.
Candidates that do return the right answer whatever happens are marked `may_pass`.
"""

from __future__ import annotations

import ast
import os
import random
import socket
import time
from pathlib import Path

import pytest

from selfteach.sandbox import Limits
from selfteach.sandbox_screen import shareable
from selfteach.verify import Verifier

REPO = Path(__file__).resolve().parents[1]
F_INT = "def f(x: int):\n    return x == 3\n"
F_LONG = "def f(x: str):\n    return len(x) > 10\n"
GOOD = {"id": "good", "f": F_INT, "g": "def g():\n    return 3\n"}
NOT_OK = {"fail", "wrong_type", "error", "timeout", "resource", "rejected"}


def body(code: str) -> str:
    """`def g():` around an indented body, imports first."""
    lines = ["import os, sys, time, socket, signal, threading, itertools, re, shutil, ctypes, subprocess"]
    lines += ["def g():"] + ["    " + line for line in code.strip("\n").splitlines()]
    return "\n".join(lines) + "\n"


# name -> (g body, expected statuses (None: any not-ok), may_pass); {placeholders} filled per run
CASES = {
    # network: the sandbox has its own (down) loopback, so the host listener must stay silent
    "tcp_connect": ("socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\nreturn 3", None, False),
    "udp_send": (
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('127.0.0.1', {udp_port}))\n"
        "return 3", None, True),  # lands on the sandbox's own loopback: sent, never received
    "dns_lookup": ("socket.getaddrinfo('pypi.org', 443)\nreturn 3", None, False),
    "abstract_unix": (
        "s = socket.socket(socket.AF_UNIX)\ns.connect({abstract!r})\nreturn 3", None, False),
    # reading outside
    "read_secret": ("return int(open({secret!r}).read())", None, False),
    "read_passwd": ("return 3 if 'root:' in open('/etc/passwd').read() else 4", None, False),
    "read_project": ("open({project!r}).read()\nreturn 3", None, False),
    "read_shared": ("os.listdir({shared!r})\nreturn 3", None, False),
    "list_home": ("os.listdir('/root')\nreturn 3", None, False),
    "symlink_out": ("os.symlink('/', '/tmp/up')\nopen('/tmp/up' + {secret!r}).read()\nreturn 3", None, False),
    # writing and deleting outside
    "write_marker": ("open({marker!r}, 'w').write('x')\nreturn 3", None, False),
    "write_usr": ("open('/usr/lib/python3.11/evil.py', 'w').write('x')\nreturn 3", None, False),
    "write_root": ("open('/evil', 'w').write('x')\nreturn 3", None, False),
    "delete_victim": ("os.remove({victim!r})\nreturn 3", None, False),
    "rmtree_victim": ("shutil.rmtree({victim_dir!r})\nreturn 3", None, False),
    # processes and limits
    "fork_bomb": ("while True:\n    os.fork()", {"timeout", "resource", "error"}, False),
    "fork_daemon": (
        "if os.fork() == 0:\n    time.sleep(0.3)\n    open({marker!r}, 'w')\n    os._exit(0)\nreturn 4",
        None, False),
    "thread_bomb": ("while True:\n    threading.Thread(target=time.sleep, args=(9,)).start()", {"resource"}, False),
    "memory_bomb": ("x = bytearray(1 << 34)\nreturn 3", {"resource"}, False),
    "memory_creep": ("x = []\nwhile True:\n    x.append(bytes(10 ** 8))", {"resource"}, False),
    "loop_python": ("while True:\n    pass", {"timeout"}, False),
    "loop_c": ("return sum(itertools.count())", {"timeout"}, False),
    "regex_backtrack": ("re.match('(a*)*$', 'a' * 40 + 'b')\nreturn 3", {"timeout"}, False),
    "sleep": ("time.sleep(100)\nreturn 3", {"timeout"}, False),
    "huge_stdout": ("while True:\n    print('x' * 10 ** 6)", {"timeout"}, False),
    "huge_stderr": ("os.write(2, b'x' * 10 ** 8)\nreturn 4", None, False),
    "huge_file": ("open('/tmp/big', 'wb').write(b'x' * 10 ** 8)\nreturn 3", {"resource"}, False),
    "many_files": ("fs = [open('/dev/null') for _ in range(10 ** 5)]\nreturn 3", {"resource"}, False),
    "fill_tmpfs": (
        "for i in range(10 ** 6):\n    open('/tmp/f%d' % i, 'wb').write(b'x' * (1 << 20))\nreturn 3",
        {"resource"}, False),
    # the worker and the sandbox
    # the parent is the worker, the sandbox's pid 1: signals from inside that it does not handle are dropped
    "kill_parent": ("os.kill(os.getppid(), signal.SIGKILL)\nreturn 3", None, True),
    "kill_everyone": ("os.kill(-1, signal.SIGKILL)\nreturn 3", None, False),
    "stop_parent": ("os.kill(os.getppid(), signal.SIGSTOP)\nreturn 4", None, False),
    "kill_init": ("os.kill(1, signal.SIGKILL)\ntime.sleep(0.1)\nreturn 3", None, True),
    "forge_parent_fd": (
        "open('/proc/%d/fd/1' % os.getppid(), 'w').write('{{\"status\": \"pass\", \"seconds\": 0}}\\n')\n"
        "return 4", None, False),
    "forge_every_fd": (
        "for fd in range(100):\n    try:\n        os.write(fd, b'S{{\"status\": \"pass\"}}')\n"
        "    except OSError:\n        pass\nos._exit(0)", None, False),
    "forge_from_thread": (
        "def spam():\n    while True:\n        for fd in range(3, 20):\n            try:\n"
        "                os.write(fd, b'S{{\"status\": \"pass\"}}')\n            except OSError:\n"
        "                pass\nthreading.Thread(target=spam, daemon=True).start()\ntime.sleep(0.05)\nreturn 4",
        None, False),
    "setuid_root": ("os.setuid(0)\nreturn 3", None, False),
    # exits and exceptions
    "os_exit": ("os._exit(0)", {"error"}, False),
    "sys_exit": ("sys.exit(0)", {"error"}, False),
    "keyboard_interrupt": ("raise KeyboardInterrupt", {"error"}, False),
    "system_exit": ("raise SystemExit(3)", {"error"}, False),
    "base_exception": ("class Boom(BaseException):\n    pass\nraise Boom()", {"error"}, False),
    "exception_str_loops": (
        "class Sly(Exception):\n    def __str__(self):\n        while True:\n            pass\nraise Sly()",
        None, False),
    "recursion": ("def r(n):\n    return r(n + 1)\nreturn r(0)", {"error"}, False),
    "recursion_deep": (
        "sys.setrecursionlimit(10 ** 8)\ndef r(n):\n    return list(map(r, [n]))\nreturn r(0)", {"resource", "error"},
        False),
    "read_stdin": ("return int(sys.stdin.read() or input())", {"error"}, False),
    "thread_left_running": (
        "def spin():\n    while True:\n        pass\nthreading.Thread(target=spin, daemon=True).start()\nreturn 3", {"pass"},
        True),
    # native code and escapes
    "ctypes_segfault": ("ctypes.string_at(0)\nreturn 3", None, False),
    "ctypes_kill": ("ctypes.CDLL(None).kill(os.getppid(), 9)\nreturn 3", None, True),  # as kill_parent
    "subprocess_shell": ("subprocess.run(['/bin/sh', '-c', 'touch {marker}'], check=True)\nreturn 3", None, False),
    "os_system": ("return 3 if os.system('touch {marker}') == 0 else 4", None, False),
    "subclasses_escape": (
        "wrap = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
        "system = wrap.__init__.__globals__['system']\nreturn 3 if system('touch {marker}') == 0 else 4",
        None, False),
    # lies and tampering
    "lying_eq_int": ("class Liar(int):\n    def __eq__(self, other):\n        return True\nreturn Liar(4)",
                     {"wrong_type"}, False),
    "lying_bool_object": (
        "class Liar:\n    def __eq__(self, other):\n        return True\n    def __bool__(self):\n"
        "        return True\nreturn Liar()", {"wrong_type"}, False),
    "tamper_builtins": (
        "import builtins\nbuiltins.type = lambda obj: int\nbuiltins.isinstance = lambda *a: True\n"
        "builtins.list = lambda *a: True\nreturn '3'", {"wrong_type", "error"}, False),
    "tamper_worker_module": (
        "import __main__\n__main__.matches = lambda *a: True\n__main__.SOLVE_FAILURES = {{'pass'}}\nreturn '3'",
        {"wrong_type", "error"}, False),  # the solve step is fooled; the clean check step is not
    "replace_f": ("global f\nf = lambda x: True\nreturn 4", {"fail"}, False),
    "tamper_exit": ("os._exit = lambda code: None\nreturn 4", {"fail"}, False),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """What the attacks aim at on the host: files, a folder, listeners."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "secret").write_text("3")
    (root / "victim").write_text("keep me")
    (root / "victim_dir").mkdir()
    (root / "victim_dir" / "inside").write_text("keep me too")
    tcp = socket.create_server(("127.0.0.1", 0))
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    abstract = f"\0selfteach-hostile-{os.getpid()}"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(abstract)
    unix.listen()
    unix.setblocking(False)
    values = {
        "port": tcp.getsockname()[1],
        "udp_port": udp.getsockname()[1],
        "abstract": abstract,
        "secret": str(root / "secret"),
        "project": str(REPO / "pyproject.toml"),
        "shared": str(REPO.parent / "shared"),
        "marker": str(root / "marker"),
        "victim": str(root / "victim"),
        "victim_dir": str(root / "victim_dir"),
    }
    yield root, values, (tcp, udp, unix)
    for sock in (tcp, udp, unix):
        sock.close()


@pytest.fixture(scope="module")
def verdicts(world):
    """Run every case, each followed by a correct candidate, through one pool (the sandbox alone holds)."""
    _, values, _ = world
    records = []
    for name, (code, _, _) in CASES.items():
        records.append({"id": name, "f": F_INT, "g": body(code.format(**values))})
        records.append(GOOD)
    with Verifier(timeout=1.0, workers=2, imports="any", grace=2.0) as pool:
        results = pool.run(records)
        time.sleep(0.2)
        leftovers = {worker.proc.pid: descendants(worker.proc.pid) for worker in pool._workers}
        again = pool.run([GOOD] * 4)
    return {v["id"]: v for v in results[::2]}, results[1::2], leftovers, again


def descendants(pid: int) -> list[list[int]]:
    """The processes under `pid`, level by level."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    levels, level = [], [pid]
    while level := [child for parent in level for child in children.get(parent, [])]:
        levels.append(level)
    return levels


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", list(CASES))
def test_case_gets_no_undeserved_pass(name, verdicts):
    by_name = verdicts[0]
    _, expected, may_pass = CASES[name]
    status = by_name[name]["status"]
    allowed = (expected or NOT_OK) | ({"pass"} if may_pass else set())
    assert status in allowed, by_name[name]


def test_candidates_after_each_attack_still_pass(verdicts):
    _, goods, _, again = verdicts
    assert [v["status"] for v in goods] == ["pass"] * len(goods)
    assert [v["status"] for v in again] == ["pass"] * 4


def test_nothing_outside_was_touched(world, verdicts):
    root, _, (tcp, udp, unix) = world
    assert not (root / "marker").exists()
    assert (root / "victim").read_text() == "keep me"
    assert (root / "victim_dir" / "inside").exists()
    assert not Path("/usr/lib/python3.11/evil.py").exists()
    assert not Path("/evil").exists()
    for sock in (tcp, unix):
        with pytest.raises(BlockingIOError):
            sock.accept()
    with pytest.raises(BlockingIOError):
        udp.recv(16)


def test_no_process_outlives_its_candidate(verdicts):
    _, _, leftovers, _ = verdicts
    for pid, levels in leftovers.items():
        # the worker (the sandbox's pid 1) and at most its two lanes (long-lived children for screened
        # steps), nothing under them: a leftover would hang under the worker or under a lane
        worker, *lanes = levels
        assert len(worker) == 1, (pid, levels)
        assert lanes == [] or (len(lanes) == 1 and len(lanes[0]) <= 2), (pid, levels)


# Candidates that pass the screen run in lanes, children shared with other candidates' steps: these
# try to hurt the lane or leave something behind in it. Each is followed, in the same lane, by a
# correct candidate that reads what they would change (random's state, math, builtins). Values are
# (g, expected statuses) or (g, expected statuses, f), f being "x == 3" unless given.
LANE_CASES = {
    "loop": ("def g():\n    while True:\n        pass\n", {"timeout"}),
    "loop_c": ("import itertools\ndef g():\n    return sum(itertools.count())\n", {"timeout"}),
    "memory_bomb": ("def g():\n    return len(bytearray(1 << 34))\n", {"resource"}),
    "memory_creep": ("def g():\n    x = []\n    while True:\n        x.append(bytes(10 ** 8))\n", {"resource"}),
    "huge_answer": ("def g():\n    return 'x' * (4 << 20)\n", {"resource"}, F_LONG),  # over the output cap
    "recursion": ("def g():\n    return g()\n", {"error"}),
    "keyboard_interrupt": ("def g():\n    raise KeyboardInterrupt\n", {"error"}),
    "system_exit": ("def g():\n    raise SystemExit(3)\n", {"error"}),
    "reseed_random": ("import random\ndef g():\n    random.seed(3)\n    random.random()\n    return 4\n", {"fail"}),
    "rebind_globals": ("def g():\n    global len, f, List\n    len = f = List = lambda x: True\n    return 4\n", {"fail"}),
    # a generator whose cleanup loops, kept alive by a cycle: the lane collects it within this step
    "cleanup_loops_later": (
        "def g():\n    def gen():\n        try:\n            yield 1\n        finally:\n            while True:\n"
        "                pass\n    box = [gen()]\n    next(box[0])\n    box.append(box)\n    return 4\n",
        {"timeout"}),
}
AFTER_LANE_CASE_G = "import math, random\ndef g():\n    return [random.random(), math.pi, float(len([1, 2]))]\n"


@pytest.fixture(scope="module")
def lane_verdicts():
    expected = [random.Random(0).random(), 3.141592653589793, 2.0]
    good = {"id": "good", "f": f"def f(x: List[float]):\n    return x == {expected!r}\n", "g": AFTER_LANE_CASE_G}
    records = []
    for name, (g, _, *f) in LANE_CASES.items():
        records += [{"id": name, "f": f[0] if f else F_INT, "g": g}, good]
    # one worker, so every step goes through the same lanes; a small output cap for the huge answer
    with Verifier(timeout=1.0, workers=1, imports="any", limits=Limits(output_bytes=1 << 20)) as pool:
        return pool.run(records + [good])


def test_lane_cases_pass_the_screen():
    for name, (g, *_) in LANE_CASES.items():
        assert shareable(ast.parse(g)), name
    assert shareable(ast.parse(AFTER_LANE_CASE_G))


@pytest.mark.parametrize("name", list(LANE_CASES))
def test_lane_case_gets_its_verdict(name, lane_verdicts):
    by_name = {v["id"]: v for v in lane_verdicts[:-1:2]}
    assert by_name[name]["status"] in LANE_CASES[name][1], by_name[name]


def test_candidates_after_each_lane_case_still_pass(lane_verdicts):
    after = {case["id"]: good["status"] for case, good in zip(lane_verdicts[::2], lane_verdicts[1::2])}
    assert after == dict.fromkeys(LANE_CASES, "pass")
    assert lane_verdicts[-1]["status"] == "pass"
