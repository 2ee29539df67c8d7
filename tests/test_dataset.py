"""The fine-tuning set on handmade samples: shortest 8 distinct, dedup, cap, determinism, provenance."""

import json

import pytest

from selfteach.cli import main
from selfteach.dataset import ShortestDistinct, build_dataset, build_dataset_files, example_text, provenance

F1 = "def f(x: int):\n    return x > 10 ** 9 and x % 7 == 0"
F2 = "def f(s: str, n=4):\n    return len(s) == n and s == s[::-1]"


def g_returning(expression: str, args: str = "") -> str:
    return f"def g({args}):\n    return {expression}"


def samples_and_verdicts():
    """Puzzle 1: twelve correct solutions of different lengths, a cosmetic twin, two wrong ones, one
    unparsable. Puzzle 2: two correct. Puzzle 3: the same f as puzzle 2 under another id, wrong only."""
    rows = []  # (puzzle id, f, g, ok)
    p1 = "gen-a/r1/s3/p0/0"
    for k in range(12, 0, -1):  # longest first, so selection must sort
        rows.append((p1, F1, g_returning("7 * (10 ** 9 // 7 + 1)" + " + 0" * k), True))
    rows.append((p1, F1, "def g():\n    return 7*(10**9//7+1)  # the twin", True))
    rows.append((p1, F1, g_returning("7 * (10 ** 9 // 7 + 1)"), True))
    rows.append((p1, F1, g_returning("1"), False))
    rows.append((p1, F1, g_returning("2"), False))
    rows.append((p1, F1, None, False))
    p2 = "gen-a/r1/s3/p0/1"
    rows.append((p2, F2, g_returning("'abba'", "n=4"), True))
    rows.append((p2, F2, g_returning("'a' * n", "n=4"), True))
    rows.append(("gen-a/r2/s0/p5/2", F2, g_returning("'abba'", "n=4"), False))
    samples, verdicts = [], []
    for j, (pid, f, g, ok) in enumerate(rows):
        samples.append({"id": f"{pid}/{j}", "puzzle_id": pid, "f": f, "g": g, "tokens": 10})
        verdicts.append({"id": f"{pid}/{j}", "ok": ok, "status": "pass" if ok else "fail", "seconds": 0.0})
    return samples, verdicts


def test_verified_set_takes_the_shortest_8_distinct_correct_solutions():
    samples, verdicts = samples_and_verdicts()
    examples, stats = build_dataset(samples, verdicts, seed=0)
    by_puzzle = {}
    for example in examples:
        by_puzzle.setdefault(example["puzzle_id"], []).append(example["g"])
    p1 = sorted(by_puzzle["gen-a/r1/s3/p0/0"], key=len)
    assert len(p1) == 8
    # the commented twin is longer than its class's shortest member, which represents the class
    assert p1 == [g_returning("7 * (10 ** 9 // 7 + 1)" + " + 0" * k) for k in range(8)]
    assert sorted(by_puzzle["gen-a/r1/s3/p0/1"]) == sorted(
        [g_returning("'abba'", "n=4"), g_returning("'a' * n", "n=4")]
    )
    assert "gen-a/r2/s0/p5/2" not in by_puzzle
    assert stats == {
        "verified": True, "samples": 20, "unparsable": 1,
        "statuses": {"pass": 16, "fail": 4}, "puzzles_attempted": 3, "puzzles_solved": 2,
        "selected": 10, "distinct": 10, "examples": 10,
    }  # fmt: skip


def test_the_shortest_member_of_a_duplicate_class_represents_it():
    keeper = ShortestDistinct(limit=2)
    long_twin = {"g": "def g():\n    return 1 + 2  # the longer spelling"}
    short_twin = {"g": "def g():\n    return 1+2"}
    other = {"g": "def g():\n    return 12"}
    for arrival, sample in enumerate([long_twin, other, short_twin]):
        keeper.add(sample, arrival)
    assert [sample for _, sample in keeper.chosen()] == [other, short_twin]


def test_unverified_ablation_uses_the_same_samples_without_verdicts():
    samples, verdicts = samples_and_verdicts()
    examples, stats = build_dataset(samples, verdicts, verified=False, seed=0)
    without, stats_without = build_dataset(samples, None, verified=False, seed=0)
    assert [e["sample_id"] for e in examples] == [e["sample_id"] for e in without]
    assert {e["verified"] for e in without} == {None}
    p1 = sorted((e["g"] for e in examples if e["puzzle_id"] == "gen-a/r1/s3/p0/0"), key=len)
    assert set(p1[:2]) == {g_returning("1"), g_returning("2")}  # wrong but short: kept unverified
    assert len(p1) == 8
    # puzzle 3 repeats puzzle 2's f and its first g: the global dedup drops that example
    assert stats["selected"] == 8 + 2 + 1 and stats["distinct"] == 8 + 2
    assert stats_without["statuses"] is None and stats_without["puzzles_solved"] is None
    assert sum(e["verified"] is False for e in examples) == 2


def test_cap_and_seeded_shuffle():
    samples, verdicts = samples_and_verdicts()
    first, _ = build_dataset(samples, verdicts, seed=5)
    again, _ = build_dataset(samples, verdicts, seed=5)
    other, _ = build_dataset(samples, verdicts, seed=6)
    capped, stats = build_dataset(samples, verdicts, seed=5, max_examples=3)
    assert first == again
    assert [e["sample_id"] for e in first] != [e["sample_id"] for e in other]
    assert sorted(e["sample_id"] for e in first) == sorted(e["sample_id"] for e in other)
    assert capped == first[:3] and stats["distinct"] == 10 and stats["examples"] == 3
    fewer, _ = build_dataset(samples, verdicts, max_per_puzzle=2)
    assert len(fewer) == 4


def test_example_text_and_provenance():
    assert example_text(F2 + "\n", "def g(n=4):\n    return 'abba'\n") == (
        "def f(s: str, n=4):\n    return len(s) == n and s == s[::-1]\n\n"
        "def g(n=4):\n    return 'abba'\n\n"
        "assert f(g())\n\n"
    )
    assert provenance("gpt-neo/125M/r0/s12/p3/4") == {"generator": "gpt-neo/125M", "round": 0, "shard": 12}
    with pytest.raises(ValueError, match="not of the form"):
        provenance("P3Puzzle:0")
    samples, verdicts = samples_and_verdicts()
    examples, _ = build_dataset(samples, verdicts)
    example = next(e for e in examples if e["puzzle_id"] == "gen-a/r1/s3/p0/1")
    assert {k: example[k] for k in ("generator", "round", "shard", "verified")} == {
        "generator": "gen-a",
        "round": 1,
        "shard": 3,
        "verified": True,
    }


def test_verdicts_must_line_up_with_samples():
    samples, verdicts = samples_and_verdicts()
    with pytest.raises(ValueError, match="differ in length"):
        build_dataset(samples, verdicts[:-1])
    with pytest.raises(ValueError, match="record 1: sample id"):
        build_dataset(samples, [verdicts[0], verdicts[2], *verdicts[2:]])
    with pytest.raises(ValueError, match="needs verdicts"):
        build_dataset(samples, None)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_files_and_cli(tmp_path):
    samples, verdicts = samples_and_verdicts()
    write_jsonl(tmp_path / "s1.jsonl", samples[:9])
    write_jsonl(tmp_path / "s2.jsonl", samples[9:])
    write_jsonl(tmp_path / "v1.jsonl", verdicts[:9])
    write_jsonl(tmp_path / "v2.jsonl", verdicts[9:])
    examples, _ = build_dataset_files(
        [tmp_path / "s1.jsonl", tmp_path / "s2.jsonl"], [tmp_path / "v1.jsonl", tmp_path / "v2.jsonl"],
        tmp_path / "train.txt", tmp_path / "examples.jsonl", seed=1,
    )  # fmt: skip
    text = (tmp_path / "train.txt").read_text()
    assert text == "".join(example_text(e["f"], e["g"]) for e in examples)
    assert text.count("assert f(g())\n\n") == 10
    assert [json.loads(line) for line in (tmp_path / "examples.jsonl").read_text().splitlines()] == examples
    argv = ["build-dataset", "--samples", str(tmp_path / "s1.jsonl"), str(tmp_path / "s2.jsonl"),
            "--verdicts", str(tmp_path / "v1.jsonl"), str(tmp_path / "v2.jsonl"),
            "--text", str(tmp_path / "cli.txt"), "--examples", str(tmp_path / "cli.jsonl"), "--seed", "1"]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "cli.txt").read_text() == text
    assert main(argv[:6] + ["--text", str(tmp_path / "x.txt"), "--examples", str(tmp_path / "x.jsonl")]) == 2
