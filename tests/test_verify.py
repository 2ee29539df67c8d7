"""The verifier's semantics, statuses, malformed input and command line."""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys

import pytest

from selfteach import cli, sandbox
from selfteach.p3 import reference_pairs
from selfteach.sandbox_screen import shareable
from selfteach.verify import STATUSES, Verifier, verify_file, verify_records

F_INT = "def f(x: int, n=3):\n    return x == n\n"
F_LIST = "def f(x: List[List[int]]):\n    return x == [[1, 2], [3]]\n"


def candidate(g: str, f: str = F_INT, id_: str = "c") -> dict:
    return {"id": id_, "f": f, "g": g}


def ret(value: str, args: str = "n=3") -> str:
    return f"def g({args}):\n    return {value}\n"


@pytest.fixture(scope="module")
def verifier():
    with Verifier(timeout=1.0, workers=2) as pool:
        yield pool


def statuses(verifier, records):
    return [verdict["status"] for verdict in verifier.run(records)]


def test_semantics(verifier):
    records = [
        candidate(ret("n")),  # g takes f's defaults and is called as g()
        candidate(ret("4")),
        candidate(ret("3.0")),  # float for int
        candidate(ret("True"), f="def f(x: int):\n    return True\n"),  # bool is not int
        candidate(ret("1/0")),
        candidate("def g(n=3):\n    while True:\n        pass\n"),
        candidate(ret("[[1, 2], [3]]", ""), f=F_LIST),
        candidate(ret("[[1, 2], (3,)]", ""), f=F_LIST),
        candidate(ret("1"), f="def f(x: int):\n    return 1\n"),  # truthy, not True
        candidate("def g(n=3):\n    return next(x for x in range(9) if f(x))\n"),  # g may call f
        candidate(ret("10 ** 5000", ""), f="def f(x: int):\n    return len(str(x)) == 5001\n"),
    ]
    verdicts = verifier.run(records)
    assert [v["status"] for v in verdicts] == [
        "pass", "fail", "wrong_type", "wrong_type", "error", "timeout", "pass", "wrong_type", "fail",
        "pass", "pass",
    ]  # fmt: skip
    assert [v["ok"] for v in verdicts] == [v["status"] == "pass" for v in verdicts]
    assert all(set(v) <= {"id", "ok", "status", "seconds", "detail"} for v in verdicts)
    assert "ZeroDivisionError" in verdicts[4]["detail"]
    assert 1.0 <= verdicts[5]["seconds"] < 1.5  # killed at the limit, not later


def test_the_clean_check_decides_a_pass(verifier):
    """f(g()) runs as P3 runs it, with g's state around; a claimed pass is re-checked by a clean child."""
    stateful = "def f(x: int, seen=[]):\n    seen.append(x)\n    return len(seen) == 2\n"
    mutating = "def f(x: List[int]):\n    x.append(1)\n    return x == [1]\n"
    records = [
        candidate("def g():\n    f(0)\n    return 0\n", f=stateful),  # True only after g's own call
        candidate(ret("[]", ""), f=mutating),  # the check gets g's answer, not f's changed copy
    ]
    assert statuses(verifier, records) == ["fail", "pass"]


def test_the_check_has_a_limit_of_its_own():
    slow_f = "def f(x: int):\n    import time\n    time.sleep(0.6)\n    return x == 1\n"
    with Verifier(timeout=1.0, workers=1, imports="any") as pool:
        [verdict] = pool.run([candidate(ret("1", ""), f=slow_f)])
    assert verdict["status"] == "pass" and verdict["seconds"] >= 1.2  # 0.6 s in each step


def test_import_policy():
    record = candidate("import itertools\ndef g(n=3):\n    return n\n")
    allowed = candidate("import math\ndef g(n=3):\n    return n\n")
    sneaky = candidate("def g(n=3):\n    return __import__('os').getpid() * 0 + n\n")
    with Verifier(imports="paper") as paper:
        verdicts = paper.run([record, allowed, sneaky])
    assert [v["status"] for v in verdicts] == ["rejected", "pass", "rejected"]
    assert "itertools" in verdicts[0]["detail"]
    assert [v["status"] for v in verify_records([record, sneaky], imports="any")] == ["pass", "pass"]


def test_refused_before_running(verifier):
    records = [
        candidate("def g(:\n"),
        candidate(ret("1"), f="def f(x: dict):\n    return True\n"),
        candidate(ret("1"), f="def f(x):\n    return True\n"),
        candidate("def h():\n    return 3\n"),
    ]
    verdicts = verifier.run(records)
    assert [v["status"] for v in verdicts] == ["error", "rejected", "rejected", "error"]
    assert all(v["detail"] for v in verdicts)


def test_malformed_records_get_verdicts(verifier):
    records = [{"id": "a", "f": F_INT}, "not a dict", {"id": 3, "f": F_INT, "g": ret("3")}, candidate(ret("3"))]
    verdicts = verifier.run(records)
    assert [v["status"] for v in verdicts] == ["error", "error", "error", "pass"]
    assert "'g'" in verdicts[0]["detail"]


def test_deterministic_across_workers_and_hash_seeds(verifier):
    """Hash values, set order and unseeded random numbers are the same in every worker and run."""
    values = "[str(hash('abc')), str(list({'a', 'b', 'c'})), str(random.random())]"
    expected = subprocess.run(
        [sandbox.SYSTEM_PYTHON, "-S", "-c", f"import random; random.seed(0); print({values})"],
        capture_output=True, text=True, env={"PYTHONHASHSEED": "0"}, check=True,
    ).stdout.strip()
    pinned = candidate(
        f"import random\ndef g():\n    return {values}\n",
        f=f"def f(x: List[str]):\n    return x == {expected}\n",
    )
    assert statuses(verifier, [pinned] * 8) == ["pass"] * 8


def test_files_left_behind_do_not_reach_the_next_candidate():
    writer = candidate("def g(n=3):\n    open('/tmp/left', 'w').write('x')\n    return n\n")
    reader = candidate("import os\ndef g(n=3):\n    return n + os.path.exists('/tmp/left')\n")
    with Verifier(workers=1, imports="any") as one:
        assert [v["status"] for v in one.run([writer, reader])] == ["pass", "pass"]


def test_order_kept_over_many_records(verifier):
    records = [candidate(ret(str(i % 5)), id_=str(i)) for i in range(60)]
    verdicts = verifier.run(records)
    assert [v["id"] for v in verdicts] == [str(i) for i in range(60)]
    assert [v["ok"] for v in verdicts] == [i % 5 == 3 for i in range(60)]


def test_verify_file_and_cli(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    lines = [json.dumps(candidate(ret("3"), id_="a")), "{not json", "", json.dumps(candidate(ret("4"), id_="b"))]
    source.write_text("\n".join(lines) + "\n")
    counts = verify_file(source, tmp_path / "out.jsonl")
    verdicts = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(v["id"], v["status"]) for v in verdicts] == [("a", "pass"), ("line 2", "error"), ("b", "fail")]
    assert counts == {**dict.fromkeys(STATUSES, 0), "pass": 1, "error": 1, "fail": 1}

    assert cli.main(["verify", str(source), str(tmp_path / "cli.jsonl"), "--timeout", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["pass"] == 1
    assert cli.main(["verify", str(tmp_path / "missing.jsonl"), str(tmp_path / "x.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err

    done = subprocess.run(
        [sys.executable, "-m", "selfteach", "verify", str(source), str(tmp_path / "m.jsonl"), "--imports", "any"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.jsonl").read_text().count("\n") == 3


def test_no_sandbox_is_an_explicit_opt_in_with_a_warning(capsys):
    verdicts = verify_records([candidate(ret("3")), candidate(ret("4"))], sandbox=False)
    assert [v["status"] for v in verdicts] == ["pass", "fail"]
    assert "WITHOUT a sandbox" in capsys.readouterr().err


def test_missing_bwrap_says_how_to_fix(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxError, match="bubblewrap"):
        Verifier().start()


def test_unreadable_interpreter_is_a_clear_error(tmp_path):
    with pytest.raises(sandbox.SandboxError, match="cannot run the sandbox interpreter"):
        Verifier(python=str(tmp_path / "no-python")).start()


def test_bad_options():
    for kwargs in ({"timeout": 0}, {"workers": 0}, {"imports": "some"}):
        with pytest.raises(ValueError):
            Verifier(**kwargs)


# Code that may share a lane (a long-lived child) with other candidates' steps...
SCREENED = [
    "def g(n=3):\n    return [i * i for i in range(n)]\n",
    "import math\ndef g():\n    return math.isqrt(10) + int(math.pi)\n",
    "import itertools\nfrom itertools import permutations\ndef g():\n    return list(itertools.chain.from_iterable(permutations('ab')))\n",
    "import random\ndef g():\n    random.seed(5)\n    return random.randint(0, 9)\n",  # reseeded before each step
    "from typing import List\ndef g() -> List[int]:\n    global cache\n    cache = {}\n    return sorted(cache)\n",
    "import re, collections\ndef g():\n    return collections.Counter(re.findall('a', 'banana')).most_common(1)\n",
    "def g(s='ab'):\n    return ''.join(reversed(s)).upper().format(1)\n",
]
# ...and code that may not, with the shared object it could reach.
UNSCREENED = [
    "import os\ndef g():\n    return 1\n",  # a module outside the list
    "import collections.abc\ndef g():\n    return 1\n",  # ABC registries
    "from hashlib import algorithms_available\ndef g():\n    return 1\n",  # a shared set
    "from functools import wraps\ndef g():\n    return 1\n",  # sets attributes on its argument
    "from typing import get_type_hints\ndef g():\n    return 1\n",  # evaluates strings
    "from math import *\ndef g():\n    return 1\n",
    "import math\ndef g():\n    math.pi = 3\n    return 1\n",  # an attribute store
    "import math\ndef g():\n    del math.pi\n",
    "import copy\ndef g():\n    return len(copy.dispatch_table)\n",  # a shared dict
    "def g():\n    return ().__class__\n",  # dunder attributes
    "def g():\n    return __builtins__\n",
    "import math\ndef g():\n    return getattr(math, 'pi')\n",
    "def g():\n    return eval('1')\n",
    "def g():\n    return open('/tmp/x').read()\n",
    "def g():\n    return vars()\n",
    "def g():\n    class A:\n        pass\n    return 1\n",
    "def g():\n    return type(int)('A', (), {})\n",  # a class made without a class statement
    "def g(x=1):\n    match x:\n        case int(real=r):\n            return r\n",
]


@pytest.mark.parametrize("source", SCREENED)
def test_screen_lets_plain_code_share_a_lane(source):
    assert shareable(ast.parse(source))


@pytest.mark.parametrize("source", UNSCREENED)
def test_screen_keeps_code_that_reaches_shared_objects_apart(source):
    assert not shareable(ast.parse(source))


def test_lanes_and_fresh_children_agree(p3_dir):
    """Real puzzles with their own, another puzzle's and a broken solution: the same verdicts whether
    screened steps share lanes or each get a fresh child."""
    pairs = random.Random(0).sample(reference_pairs(p3_dir), 120)
    records = []
    for number, pair in enumerate(pairs):
        other = pairs[number - 1]["g"]
        broken = pair["g"].split("\n", 1)[0] + "\n    return [][0]\n"
        records += [pair, {**pair, "id": f"{number}x", "g": other}, {**pair, "id": f"{number}b", "g": broken}]
    runs = {}
    for lanes in (True, False):
        with Verifier(timeout=5.0, workers=2, imports="any", lanes=lanes) as pool:
            runs[lanes] = [(v["id"], v["status"]) for v in pool.run(records)]
    assert runs[True] == runs[False]
    assert sum(shareable(ast.parse(r["f"])) and shareable(ast.parse(r["g"])) for r in pairs) >= 100
    assert len({status for _, status in runs[True]}) >= 4
