"""Hugging Face dataset folders: the `datasets` library loads the puzzles, the verdicts and a fine-tuning
set as written, and the Hub's card parser reads their YAML headers."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selfteach import config
from selfteach.card import data_card
from selfteach.dataset import build_dataset, example_text
from selfteach.hf_dataset import (
    DATA_FILE, PUZZLE_COLUMNS, write_examples_dataset, write_hf_dataset, write_puzzles_dataset, write_solutions_dataset,
)  # fmt: skip
from selfteach.io import write_json, write_jsonl

STUDY = config.validate({})
MODEL = {"source": "embedded"}
PUZZLES = [
    {
        "id": "gen/r0/s0/p0/0",
        "f": "def f(x: int):\n    return x * x == 49 and x > 0",
        "prompt_id": "gen/r0/s0/p0",
        "tokens": 14,
    },
    {
        "id": "gen/r0/s0/p0/1",
        "f": "def f(s: str):\n    return s + s == 'abab'",
        "prompt_id": "gen/r0/s0/p0",
        "tokens": 12,
    },
]
SOLUTIONS = [
    {
        "id": "gen/r0/s0/p0/0/0",
        "puzzle_id": "gen/r0/s0/p0/0",
        "sample": 0,
        "f": PUZZLES[0]["f"],
        "g": "def g():\n    return 7",
        "tokens": 5,
        "finished": True,
    },
    {
        "id": "gen/r0/s0/p0/0/1",
        "puzzle_id": "gen/r0/s0/p0/0",
        "sample": 1,
        "f": PUZZLES[0]["f"],
        "g": None,
        "tokens": 9,
        "finished": False,
    },
    {
        "id": "gen/r0/s0/p0/1/0",
        "puzzle_id": "gen/r0/s0/p0/1",
        "sample": 0,
        "f": PUZZLES[1]["f"],
        "g": "def g():\n    return 'ab'",
        "tokens": 6,
        "finished": True,
    },
]
VERDICTS = [
    {"id": "gen/r0/s0/p0/0/0", "ok": True, "status": "pass", "seconds": 0.001},
    {"id": "gen/r0/s0/p0/0/1", "ok": False, "status": "rejected", "seconds": 0.0, "detail": "no g"},
    {"id": "gen/r0/s0/p0/1/0", "ok": True, "status": "pass", "seconds": 0.002},
]
STATS = {"generated": 5, "kept": 2, "rejected": {"unparsable": 2, "duplicate": 1}}


@pytest.fixture
def load(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a local folder needs no network
    return lambda folder: datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache"))


def card_data(folder):
    from huggingface_hub import DatasetCard

    return DatasetCard.load(folder / "README.md").data


def test_the_puzzles_load_with_their_card(tmp_path, load):
    write_jsonl(tmp_path / "puzzles.jsonl", PUZZLES)
    write_json(tmp_path / "stats.json", STATS)
    folder = tmp_path / "hf" / "puzzles"
    assert (
        write_puzzles_dataset(
            folder,
            tmp_path / "puzzles.jsonl",
            tmp_path / "stats.json",
            generator="gen",
            model=MODEL,
            verify=STUDY["verify"],
        )
        == 2
    )
    rows = load(folder)
    assert rows.to_list() == PUZZLES
    data = card_data(folder)
    assert data.license == "mit" and data.size_categories == ["n<1K"] and "programming-puzzles" in data.tags
    readme = (folder / "README.md").read_text()
    assert "| puzzles generated | 5 |" in readme and "| rejected: unparsable | 2 |" in readme
    assert json.dumps(STUDY["verify"], indent=2) in readme and "P3" in readme and '"source": "embedded"' in readme


def test_the_solutions_load_with_their_verdicts(tmp_path, load):
    write_jsonl(tmp_path / "solutions.jsonl", SOLUTIONS)
    write_jsonl(tmp_path / "verdicts.jsonl", VERDICTS)
    folder = tmp_path / "hf" / "solutions"
    write_solutions_dataset(
        folder,
        tmp_path / "solutions.jsonl",
        tmp_path / "verdicts.jsonl",
        generator="gen",
        model=MODEL,
        verify=STUDY["verify"],
    )
    rows = load(folder)
    assert rows["g"] == [SOLUTIONS[0]["g"], None, SOLUTIONS[2]["g"]]
    assert rows["status"] == ["pass", "rejected", "pass"] and rows["ok"] == [True, False, True]
    assert "| status: pass | 2 |" in (folder / "README.md").read_text()


def test_a_fine_tuning_set_loads_with_the_text_it_trains_on(tmp_path, load):
    examples, stats = build_dataset(SOLUTIONS, VERDICTS)
    card = data_card(
        generator="gen", model=MODEL, variant="verified", config=STUDY, puzzle_counts=STATS,
        puzzles=PUZZLES, dataset_stats=stats, examples=examples,
    )  # fmt: skip
    folder = tmp_path / "verified" / "hf"
    assert write_examples_dataset(folder, examples, card) == 2
    rows = load(folder)
    assert sorted(rows["text"]) == sorted(example_text(e["f"], e["g"]) for e in examples)
    assert set(rows["generator"]) == {"gen"} and all(rows["verified"])
    assert "| distinct examples | 2 |" in (folder / "README.md").read_text()


def test_an_empty_set_keeps_its_typed_columns(tmp_path):
    folder = tmp_path / "empty"
    common = dict(title="t", about="a", tags=[], generator="gen", model=MODEL, counts={}, verify=STUDY["verify"])
    assert write_hf_dataset(folder, [], PUZZLE_COLUMNS, **common) == 0
    table = pq.read_table(folder / DATA_FILE)  # `datasets` itself refuses a split of no rows
    assert table.num_rows == 0 and table.schema == pa.schema(list(PUZZLE_COLUMNS.items()))
    assert card_data(folder).size_categories == ["n<1K"]


def test_a_record_of_the_wrong_type_is_named_and_nothing_is_written(tmp_path):
    folder = tmp_path / "bad"
    common = dict(title="t", about="a", tags=[], generator="gen", model=MODEL, counts={}, verify=STUDY["verify"])
    with pytest.raises(ValueError, match=r"bad: a record does not fit the columns"):
        write_hf_dataset(folder, [{**PUZZLES[0], "tokens": "many"}], PUZZLE_COLUMNS, **common)
    assert not folder.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_the_workflow_writes_loadable_folders_of_puzzles_verdicts_and_sets(study_dir, load):
    data = study_dir / "results" / "data" / "tiny" / "r0"
    puzzles = load(data / "hf" / "puzzles") if (data / "puzzles.filtered.jsonl").stat().st_size else None
    assert puzzles is None or puzzles.num_rows == sum(1 for _ in open(data / "puzzles.filtered.jsonl"))
    solutions = sum(1 for _ in open(data / "solutions.jsonl"))
    if solutions:
        assert load(data / "hf" / "solutions").num_rows == solutions
    for variant in ("verified", "unverified"):
        examples = sum(1 for _ in open(data / variant / "examples.jsonl"))
        folder = data / variant / "hf"
        assert pq.read_table(folder / DATA_FILE).num_rows == examples
        assert card_data(folder).license == "mit"


def test_build_dataset_command_writes_the_folder_beside_the_card(tmp_path, load):
    from selfteach.cli import main

    write_jsonl(tmp_path / "s.jsonl", SOLUTIONS)
    write_jsonl(tmp_path / "v.jsonl", VERDICTS)
    write_jsonl(tmp_path / "puzzles.jsonl", PUZZLES)
    write_json(tmp_path / "stats.json", STATS)
    argv = [
        "build-dataset", "--samples", str(tmp_path / "s.jsonl"), "--verdicts", str(tmp_path / "v.jsonl"),
        "--text", str(tmp_path / "t.txt"), "--examples", str(tmp_path / "e.jsonl"), "--hf", str(tmp_path / "hf"),
    ]  # fmt: skip
    assert main(argv) == 2 and not (tmp_path / "hf").exists()  # the dataset card needs the data card's arguments
    card = [
        "--card", str(tmp_path / "c.json"), "--card-md", str(tmp_path / "c.md"),
        "--puzzles", str(tmp_path / "puzzles.jsonl"), "--puzzle-stats", str(tmp_path / "stats.json"),
        "--generator", "gen",
    ]  # fmt: skip
    assert main(argv + card) == 0
    assert "".join(load(tmp_path / "hf")["text"]) == (tmp_path / "t.txt").read_text()  # the rows in training order
