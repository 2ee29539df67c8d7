"""Each rule of the puzzle filter with hand-written puzzles it must reject and puzzles it must keep.

The sandboxed parts run through `TrustedVerifier`, an in-process stand-in with the verifier's
semantics (these puzzles are ours, not a model's); one test repeats the filter with the real sandbox.
"""

import ast
import json
import shutil
import typing

import pytest

from selfteach import puzzle_filter as pf
from selfteach.cli import main

PAPER_IMPORTS = {"collections", "copy", "hashlib", "math", "random", "re", "string", "typing"}


def type_ok(value, annotation) -> bool:
    if annotation in (int, str, float, bool):
        return type(value) is annotation
    if typing.get_origin(annotation) is list:
        (inner,) = typing.get_args(annotation)
        return type(value) is list and all(type_ok(item, inner) for item in value)
    return True


class TrustedVerifier:
    """`Verifier.run` semantics, in process: ok when f(g()) is True and g()'s type matches f's."""

    def __init__(self):
        self.runs = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, candidates):
        self.runs += len(candidates)
        return [{"id": c["id"], **self.verdict(c["f"], c["g"]), "seconds": 0.0} for c in candidates]

    def verdict(self, f, g):
        for node in ast.walk(ast.parse(f + "\n" + g)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                if any(name.split(".")[0] not in PAPER_IMPORTS for name in names):
                    return {"ok": False, "status": "rejected"}
        env = {"List": typing.List}
        try:
            exec(f, env)
            exec(g, env)
            answer = env["g"]()
            first = next(iter(env["f"].__annotations__.values()))
            if not type_ok(answer, first):
                return {"ok": False, "status": "wrong_type"}
            result = env["f"](answer)
        except Exception:
            return {"ok": False, "status": "error"}
        return {"ok": result is True, "status": "pass" if result is True else "fail"}


def rejects(rule, source: str) -> bool:
    return rule(pf.parse(source))


def reason(source: str, **kwargs) -> str | None:
    [record] = pf.filter_puzzles(
        [{"id": "p", "f": source}], verifier=TrustedVerifier(), skip_trivial_rate=0.0, **kwargs
    )
    return record["reason"]


GOOD = "def f(s: str, n=5):\n    return len(s) == n and s.count('z') == 2"


def test_a_good_puzzle_is_kept():
    [record] = pf.filter_puzzles(
        [{"id": "p", "f": GOOD, "tokens": 9}], verifier=TrustedVerifier(), skip_trivial_rate=0.0
    )
    assert record == {"id": "p", "f": GOOD, "tokens": 9, "keep": True, "reason": None}


def test_rejects_unparsable():
    assert rejects(pf.rejects_unparsable, "def f(x: int):\n    return x ==")
    assert rejects(pf.rejects_unparsable, "def f(x: int\n")
    assert rejects(pf.rejects_unparsable, "def f(x: int):\n    return x \0")
    assert not rejects(pf.rejects_unparsable, GOOD)
    assert reason("def f(x: int):\n    return x ==") == "unparsable"


def test_rejects_not_one_def_f():
    assert rejects(pf.rejects_not_one_def_f, "def g(x: int):\n    return x == 3")
    assert rejects(pf.rejects_not_one_def_f, "x = 3")
    assert rejects(pf.rejects_not_one_def_f, "def f(x: int):\n    return x == 3\nprint(f(3))")
    assert rejects(pf.rejects_not_one_def_f, "@cache\ndef f(x: int):\n    return x == 3")
    assert rejects(pf.rejects_not_one_def_f, "async def f(x: int):\n    return x == 3")
    assert not rejects(pf.rejects_not_one_def_f, GOOD)
    assert not rejects(pf.rejects_not_one_def_f, "def f(x: int):  # a comment\n    return x == 3")


def test_rejects_no_return():
    assert rejects(pf.rejects_no_return, "def f(x: int):\n    assert x == 3")
    assert rejects(pf.rejects_no_return, "def f(x: int):\n    'return x'\n    pass")
    assert not rejects(pf.rejects_no_return, GOOD)
    assert not rejects(pf.rejects_no_return, "def f(x: int):\n    if x > 3:\n        return True")


def test_rejects_uncompilable():
    assert rejects(pf.rejects_uncompilable, "def f(x: int):\n    nonlocal y\n    return x")
    assert rejects(pf.rejects_uncompilable, "def f(x: int):\n    continue\n    return x")
    assert not rejects(pf.rejects_uncompilable, GOOD)
    assert reason("def f(x: int):\n    continue\n    return x == 1") == "uncompilable"


def test_rejects_var_args():
    assert rejects(pf.rejects_var_args, "def f(x: int, *rest):\n    return x == 1")
    assert rejects(pf.rejects_var_args, "def f(x: int, **options):\n    return x == 1")
    assert not rejects(pf.rejects_var_args, GOOD)
    assert reason("def f(x: int, *args):\n    return x == len(args)") == "var_args"


def test_rejects_keyword_only_args():
    assert rejects(pf.rejects_keyword_only_args, "def f(x: int, *, n=3):\n    return x == n")
    assert not rejects(pf.rejects_keyword_only_args, GOOD)
    assert reason("def f(x: int, *, n=3):\n    return x == n") == "keyword_only_args"


def test_rejects_not_one_required_arg():
    assert rejects(pf.rejects_not_one_required_arg, "def f():\n    return True")
    assert rejects(pf.rejects_not_one_required_arg, "def f(x: int, y: int):\n    return x == y")
    assert rejects(pf.rejects_not_one_required_arg, "def f(x: int=3):\n    return x == 3")
    assert not rejects(pf.rejects_not_one_required_arg, GOOD)
    assert not rejects(pf.rejects_not_one_required_arg, "def f(x: int, /, n=3):\n    return x == n")
    assert reason("def f(x: int, y: int):\n    return x == y") == "not_one_required_arg"


def test_rejects_unannotated_answer():
    assert rejects(pf.rejects_unannotated_answer, "def f(x, n=3):\n    return x == n")
    assert not rejects(pf.rejects_unannotated_answer, GOOD)
    assert reason("def f(x, n=3):\n    return x == n") == "unannotated_answer"


def test_rejects_bad_signature():
    for bad in [
        "def f(x: int, n=1 // 0):\n    return x == n",  # a default raises
        "def f(x: int, n=undefined_name):\n    return x == n",
        "def f(x: Dict[int, int]):\n    return x == {}",  # the annotation does not evaluate
        "def f(x: int) -> Undefined:\n    return x == 3",
    ]:
        assert reason(bad) == "bad_signature", bad
    # the body is not run: an error there is fine here, and the rest of the rules see it
    assert reason("def f(x: int, n=[1, 2]):\n    return x == n[5] + x") is None
    assert reason("def f(x: List[int], n=len('abc')) -> bool:\n    return sum(x) == n * 11") is None


def test_rejects_refused_code():
    assert reason("def f(x: int):\n    import os\n    return x == os.getpid()") == "refused_code"
    assert reason("def f(x: int):\n    import math\n    return x == math.factorial(5) + x // 2") is None


def test_rejects_unused_answer():
    assert rejects(pf.rejects_unused_answer, "def f(x: int, n=3):\n    return n == 3")
    assert rejects(
        pf.rejects_unused_answer, "def f(x: int, xs=[3]):\n    return xs == [3]"
    )  # whole words only
    assert not rejects(pf.rejects_unused_answer, "def f(x: int):\n    return x == 123")
    assert reason("def f(s: str, n=3):\n    return n == 3") == "unused_answer"


def test_rejects_bool_answer():
    assert rejects(pf.rejects_bool_answer, "def f(b: bool):\n    return b")
    assert not rejects(pf.rejects_bool_answer, "def f(b: List[bool]):\n    return b == [True] * 5")
    assert not rejects(pf.rejects_bool_answer, GOOD)
    assert reason("def f(b: bool, n=7):\n    return b == (n > 8)") == "bool_answer"


def test_rejects_unsupported_answer_type():
    for bad in [
        "Dict[int, int]",
        "list",
        "List",
        "'int'",
        "typing.List[int]",
        "list[int]",
        "Set[int]",
        "Tuple[int]",
        "complex",
    ]:
        assert rejects(pf.rejects_unsupported_answer_type, f"def f(x: {bad}):\n    return x == x"), bad
    for good in [
        "int",
        "str",
        "float",
        "List[int]",
        "List[List[str]]",
        "List[List[List[float]]]",
        "List[bool]",
    ]:
        assert not rejects(pf.rejects_unsupported_answer_type, f"def f(x: {good}):\n    return x == x"), good
    assert reason("def f(x: list):\n    return x == [1, 5, 3]") == "unsupported_answer_type"


def test_rejects_trivial_answer():
    trivial = [
        "def f(x: int):\n    return x > 50",  # 51 is tried
        "def f(x: int):\n    return x * x == 49",
        "def f(s: str):\n    return s.startswith('b')",  # "bar"
        "def f(s: str):\n    return len(s) < 2",  # ""
        "def f(x: float):\n    return abs(x - 0.5) < 1e-9",
        "def f(li: List[int]):\n    return sum(li) == 5",  # [2, 3]
        "def f(li: List[str]):\n    return 'foo' in li",
        "def f(li: List[List[int]]):\n    return len(li) == 1 and li[0] == [3, 3]",
        "def f(li: List[bool]):\n    return li == [True, False]",
        "def f(s: str):\n    return s.count('a')",  # truthy is enough, as with the paper's `assert f(t)`
        "def f(x: int):\n    return helper(x) == 3",  # a NameError counted as solved, as in the paper
    ]
    for source in trivial:
        assert reason(source) == "trivial_answer", source
    hard = [
        "def f(x: int):\n    return x > 1000",
        "def f(x: int):\n    return x * x == 144 * 144",
        "def f(s: str):\n    return s.count('a') == 10 and len(s) == 12",
        "def f(li: List[int]):\n    return len(li) == 3 and sum(li) == 0",
        "def f(li: List[List[int]]):\n    return len(li) == 2",
        "def f(x: float):\n    return abs(x * x - 2) < 1e-6",
        "def f(x: int):\n    return x > 100 and x % 7 == 3",
        "def f(x: int):\n    return 1 // x == 0 and x > 200",  # raises ZeroDivisionError for 0: not trivial
    ]
    for source in hard:
        assert reason(source) is None, source


def test_trivial_answers_are_the_papers():
    assert pf.trivial_answers("int") == list(range(-10, 101))
    assert pf.trivial_answers("str") == ["cat", "dog", "aa", "ab", "foo", "bar", "baz", ""]
    assert len(pf.trivial_answers("float")) == 13
    assert len(pf.trivial_answers("List[int]")) == 1 + 7 + 49
    nested = pf.trivial_answers("List[List[str]]")
    assert len(nested) == 1 + 5 + 25 + 1 and nested[0] == [[]] and nested[-1] == []
    assert pf.trivial_answers("List[List[List[bool]]]")[:2] == [[[[]]], [[[True]]]]


def test_skip_rate_skips_the_answer_rules_for_a_seeded_share():
    unused = [f"def f(x: int, n={i}):\n    return n == {i}" for i in range(400)]
    records = [{"id": str(i), "f": source} for i, source in enumerate(unused)]
    verifier = TrustedVerifier()
    first = pf.filter_puzzles(records, skip_trivial_rate=0.05, seed=3, verifier=verifier)
    again = pf.filter_puzzles(records, skip_trivial_rate=0.05, seed=3, verifier=verifier)
    other = pf.filter_puzzles(records, skip_trivial_rate=0.05, seed=4, verifier=verifier)
    kept = [r["id"] for r in first if r["keep"]]
    assert kept == [r["id"] for r in again if r["keep"]]
    assert kept != [r["id"] for r in other if r["keep"]]
    assert 5 <= len(kept) <= 40  # about 5% of 400 skip the rules that reject all of these
    assert {r["reason"] for r in first if not r["keep"]} == {"unused_answer"}
    assert all(r["keep"] for r in pf.filter_puzzles(records[:20], skip_trivial_rate=1.0, verifier=verifier))
    # the skip never spares a puzzle from the rules before it
    [record] = pf.filter_puzzles(
        [{"id": "v", "f": "def f(*x):\n    return True"}], skip_trivial_rate=1.0, verifier=verifier
    )
    assert record["reason"] == "var_args"


def test_duplicates_keep_the_first_and_keep_order():
    twin = "def f(t: str, m=5):\n    # a comment\n    return len(t) == m   and t.count('z') == 2"
    records = [
        {"id": "a", "f": GOOD},
        {"id": "b", "f": "def f(x: int):\n    return x > 5"},
        {"id": "c", "f": twin},
    ]
    verifier = TrustedVerifier()
    out = pf.filter_puzzles(records, verifier=verifier, skip_trivial_rate=0.0)
    assert [(r["id"], r["keep"], r["reason"]) for r in out] == [
        ("a", True, None),
        ("b", False, "trivial_answer"),
        ("c", False, "duplicate"),
    ]
    runs = verifier.runs
    pf.filter_puzzles([records[0], records[0]], verifier=verifier, skip_trivial_rate=0.0)
    assert verifier.runs - runs == 1 + 8  # identical probes run once: a signature run and 8 strings


def test_bad_records_name_the_record():
    with pytest.raises(ValueError, match="record 1 .*'q'"):
        pf.filter_puzzles([{"id": "p", "f": GOOD}, {"id": "q"}], verifier=TrustedVerifier())
    with pytest.raises(ValueError, match="skip_trivial_rate"):
        pf.filter_puzzles([], skip_trivial_rate=1.5, verifier=TrustedVerifier())


def test_filter_file_gather_and_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(pf, "_default_verifier", TrustedVerifier)
    shard0, shard1 = tmp_path / "s0.jsonl", tmp_path / "s1.jsonl"
    (tmp_path / "none.jsonl").write_text("")  # no held-out puzzles
    shard0.write_text(
        "\n".join(json.dumps(r) for r in [{"id": "a", "f": GOOD}, {"id": "b", "f": "x ="}]) + "\n"
    )
    shard1.write_text(
        json.dumps({"id": "c", "f": "def f(w: str, n=5):\n    return len(w) == n and w.count('z') == 2"})
        + "\n"
    )
    assert (
        main(
            [
                "filter-puzzles",
                str(shard0),
                str(tmp_path / "f0.jsonl"),
                "--held-out",
                str(tmp_path / "none.jsonl"),
                "--skip-trivial-rate",
                "0",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    counts = pf.filter_file(shard1, tmp_path / "f1.jsonl", [tmp_path / "none.jsonl"], skip_trivial_rate=0.0)
    assert counts == {"generated": 1, "kept": 1, "rejected": {}}
    stats = pf.gather_filtered(
        [tmp_path / "f0.jsonl", tmp_path / "f1.jsonl"], tmp_path / "all.jsonl", tmp_path / "stats.json"
    )
    assert stats == {"generated": 3, "kept": 1, "rejected": {"unparsable": 1, "duplicate": 1}}
    assert [json.loads(line)["id"] for line in (tmp_path / "all.jsonl").read_text().splitlines()] == ["a"]
    assert json.loads((tmp_path / "stats.json").read_text()) == stats
    (tmp_path / "broken.jsonl").write_text('{"id": "a", "f": 3}\n')
    broken = ["filter-puzzles", str(tmp_path / "broken.jsonl"), str(tmp_path / "x.jsonl")]
    assert main([*broken, "--held-out", str(tmp_path / "none.jsonl")]) == 2


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_the_real_sandbox_agrees():
    verify = pytest.importorskip("selfteach.verify")
    records = [
        {"id": "good", "f": GOOD},
        {"id": "trivial", "f": "def f(x: int):\n    return x * x == 49"},
        {"id": "name_error", "f": "def f(x: int):\n    return helper(x) == 3"},
        {"id": "bad_default", "f": "def f(x: int, n=1 // 0):\n    return x == n"},
        {"id": "refused", "f": "def f(x: int):\n    import os\n    return x == os.getpid()"},
        {"id": "sneaky", "f": "def f(x: int, n=__import__('os').getpid()):\n    return x == n"},
        {"id": "hard", "f": "def f(li: List[int]):\n    return len(li) == 3 and sum(li) == 0"},
    ]
    with verify.Verifier(timeout=1.0, workers=2, imports="paper") as verifier:
        out = pf.filter_puzzles(records, skip_trivial_rate=0.0, verifier=verifier)
    assert [r["reason"] for r in out] == [
        None,
        "trivial_answer",
        "trivial_answer",
        "bad_signature",
        "refused_code",
        "refused_code",
        None,
    ]


def test_a_test_puzzle_is_never_kept(p3_dir, tmp_path):
    """A model may write back a P3 test puzzle it saw in pre-training; reformatted or not, it is dropped."""
    from selfteach.io import write_jsonl
    from selfteach.p3 import test_puzzles

    tests = test_puzzles(p3_dir)
    write_jsonl(tmp_path / "test.jsonl", tests)
    reformatted = tests[5]["f"].replace("def f(", "def f(  ", 1) + "\n# a comment\n"
    generated = [{"id": "copy", "f": tests[0]["f"]}, {"id": "reformatted", "f": reformatted}, {"id": "own", "f": GOOD}]
    write_jsonl(tmp_path / "generated.jsonl", generated)
    counts = pf.filter_file(
        tmp_path / "generated.jsonl", tmp_path / "out.jsonl", [tmp_path / "test.jsonl"],
        skip_trivial_rate=0.0, verifier=TrustedVerifier(),
    )  # fmt: skip
    assert counts == {"generated": 3, "kept": 1, "rejected": {"test_puzzle": 2}}
