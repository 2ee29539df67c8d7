"""The data card: stage counts, rejection reasons, fraction solved, lengths, config and model."""

import json

from selfteach.card import card_markdown, data_card, length_summary, write_card_from_files
from selfteach.cli import main
from selfteach.dataset import build_dataset

CONFIG = {"models": {"gen-a": {"source": "embedded"}}, "dataset": {"max_solutions_per_puzzle": 8}, "seed": 0}
PUZZLE_COUNTS = {
    "generated": 10,
    "kept": 3,
    "rejected": {"unparsable": 4, "trivial_answer": 2, "duplicate": 1},
}
PUZZLES = [
    {"id": f"gen-a/r0/s0/p0/{i}", "f": "def f(x: int):\n    return x == " + "1" * (i + 1)} for i in range(3)
]


def samples_and_verdicts():
    samples, verdicts = [], []
    for i, puzzle in enumerate(PUZZLES):
        for j in range(2):
            sid = f"{puzzle['id']}/{j}"
            g = f"def g():\n    return {'1' * (i + 1)}" if j == 0 else None
            samples.append({"id": sid, "puzzle_id": puzzle["id"], "f": puzzle["f"], "g": g})
            ok = j == 0 and i < 2
            verdicts.append({"id": sid, "ok": ok, "status": "pass" if ok else "error", "seconds": 0.0})
    return samples, verdicts


def card_for(variant="verified"):
    samples, verdicts = samples_and_verdicts()
    examples, stats = build_dataset(samples, verdicts, verified=variant == "verified")
    return data_card(
        generator="gen-a", model=CONFIG["models"]["gen-a"], variant=variant, config=CONFIG,
        puzzle_counts=PUZZLE_COUNTS, puzzles=PUZZLES, dataset_stats=stats, examples=examples,
    )  # fmt: skip


def test_stages_reasons_and_fraction_solved():
    card = card_for()
    assert [(s["stage"], s["count"]) for s in card["stages"]] == [
        ("puzzles generated", 10),
        ("puzzles passing the filter rules", 4),
        ("distinct puzzles", 3),
        ("puzzles attempted", 3),
        ("solution samples", 6),
        ("samples that parse", 3),
        ("samples verified", 2),
        ("puzzles solved", 2),
        ("examples selected (shortest per puzzle)", 2),
        ("distinct examples", 2),
        ("examples after the cap", 2),
    ]
    assert card["puzzle_rejections"] == PUZZLE_COUNTS["rejected"]
    assert card["sample_statuses"] == {"pass": 2, "error": 4, "unparsable": 3}
    assert card["fraction_solved"] == 2 / 3
    assert card["lengths_chars"]["puzzles"]["count"] == 3
    assert card["lengths_chars"]["solutions"]["max"] == len("def g():\n    return 11")
    assert card["model"] == {"source": "embedded"} and card["config"] == CONFIG


def test_the_unverified_card_lines_up_with_the_verified_one():
    verified, unverified = card_for(), card_for("unverified")
    assert [s["stage"] for s in verified["stages"]] == [s["stage"] for s in unverified["stages"]]
    assert unverified["stages"][-1]["count"] == 3


def test_length_summary():
    assert length_summary([]) == {"count": 0}
    summary = length_summary(range(1, 101))
    assert summary == {
        "count": 100,
        "mean": 50.5,
        "min": 1,
        "p10": 11,
        "p25": 26,
        "p50": 51,
        "p75": 76,
        "p90": 91,
        "max": 100,
    }


def test_markdown_has_every_table():
    text = card_markdown(card_for())
    assert text.startswith("# Data card: gen-a, verified\n")
    assert "Puzzles solved: 66.7%." in text
    assert "| puzzles generated | 10 |" in text and "| examples after the cap | 2 |" in text
    assert "| unparsable | 4 |" in text and "| trivial_answer | 2 |" in text and "| error | 4 |" in text
    assert "| puzzles | 3 |" in text and '"max_solutions_per_puzzle": 8' in text
    no_verdicts = dict(card_for(), fraction_solved=None)
    assert "Puzzles solved: unknown" in card_markdown(no_verdicts)


def test_card_files_and_the_cli(tmp_path):
    samples, verdicts = samples_and_verdicts()
    (tmp_path / "puzzles.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PUZZLES))
    (tmp_path / "stats.json").write_text(json.dumps(PUZZLE_COUNTS))
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (tmp_path / "v.jsonl").write_text("".join(json.dumps(v) + "\n" for v in verdicts))
    examples, stats = build_dataset(samples, verdicts)
    card = write_card_from_files(
        tmp_path / "card.json", tmp_path / "card.md", puzzles_path=tmp_path / "puzzles.jsonl",
        puzzle_stats_path=tmp_path / "stats.json", dataset_stats=stats, examples=examples,
        generator="gen-a", variant="verified", config=CONFIG,
    )  # fmt: skip
    assert json.loads((tmp_path / "card.json").read_text()) == card
    assert (tmp_path / "card.md").read_text() == card_markdown(card)
    argv = [
        "build-dataset", "--samples", str(tmp_path / "s.jsonl"), "--verdicts", str(tmp_path / "v.jsonl"),
        "--text", str(tmp_path / "t.txt"), "--examples", str(tmp_path / "e.jsonl"),
        "--card", str(tmp_path / "c.json"), "--card-md", str(tmp_path / "c.md"),
        "--puzzles", str(tmp_path / "puzzles.jsonl"), "--puzzle-stats", str(tmp_path / "stats.json"),
        "--generator", "gen-a",
    ]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((tmp_path / "c.json").read_text())["stages"] == card["stages"]
    assert main(argv[:-2]) == 2  # a card needs the generator's name
