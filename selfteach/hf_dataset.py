"""Hugging Face dataset folders of what the loop generates: the puzzles (step 2), the solution samples with
their verdicts (step 4) and each fine-tuning set (step 5), for people who load and share data with the
`datasets` library.

A folder holds `data/train-00000-of-00001.parquet` (one row per record, typed columns: an empty set
keeps its columns for pyarrow and pandas, though `datasets` refuses to load a split of no rows) and a
`README.md` dataset card: a YAML header as the Hub reads it (license, task, tags, size, the config naming
the parquet file as the train split), then what a row is, where the puzzles came from, the generator,
the counts and the verifier's settings. `datasets.load_dataset(folder)` loads it, and
`huggingface-cli upload <repo> <folder> --repo-type dataset` shares it as it is. Written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from selfteach.dataset import example_text, with_verdicts
from selfteach.io import atomic_path, read_jsonl, write_text

DATA_FILE = "data/train-00000-of-00001.parquet"
LICENSE = "mit"  # P3's puzzles, which prompt the generator, and this code are MIT
P3_SOURCE = (
    "the Python Programming Puzzles (P3) of Schuster et al. (2021), "
    "https://github.com/microsoft/PythonProgrammingPuzzles (MIT)"
)
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))

PUZZLE_COLUMNS = {"id": pa.string(), "f": pa.string(), "prompt_id": pa.string(), "tokens": pa.int64()}
SOLUTION_COLUMNS = {
    "id": pa.string(),
    "puzzle_id": pa.string(),
    "sample": pa.int64(),
    "f": pa.string(),
    "g": pa.string(),  # null when the sample does not parse
    "tokens": pa.int64(),
    "finished": pa.bool_(),
    "ok": pa.bool_(),
    "status": pa.string(),
    "seconds": pa.float64(),
}
EXAMPLE_COLUMNS = {
    "text": pa.string(),  # what fine-tuning reads: f, g and `assert f(g())`
    "puzzle_id": pa.string(),
    "sample_id": pa.string(),
    "generator": pa.string(),
    "round": pa.int64(),
    "shard": pa.int64(),
    "f": pa.string(),
    "g": pa.string(),
    "verified": pa.bool_(),
}


def size_category(rows: int) -> str:
    return next((name for limit, name in _SIZES if rows < limit), "n>1M")


def card_header(title: str, rows: int, tags: list[str]) -> dict:
    """The YAML header the Hub reads: license, task, tags, size, and the parquet file as the train split."""
    return {
        "license": LICENSE,
        "pretty_name": title,
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["code", "python", "programming-puzzles", "synthetic", *tags],
        "size_categories": [size_category(rows)],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": DATA_FILE}]}],
    }


def card_text(header: dict, title: str, about: str, generator: str, model, counts: dict, verify: dict) -> str:
    counts_table = [f"| {name} | {count if count is not None else 'n/a'} |" for name, count in counts.items()]
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {title}",
        "",
        about,
        "",
        f"Source puzzles: the generator was prompted with {P3_SOURCE}. Generated with selfteach, a "
        "reproduction of *Language Models Can Teach Themselves to Program Better* (Haluptzok, Bowers, Kalai; "
        "ICLR 2023). The generated code is the generator's output: check its model license too.",
        "",
        f"Generator: `{generator}` (`{json.dumps(model)}`).",
        "",
        "## Counts",
        "",
        "| | count |",
        "|---|---:|",
        *counts_table,
        "",
        "## Verifier",
        "",
        "A pair passes when `f(g())` returns exactly `True` and the answer has the type f annotates, run in a "
        "bubblewrap sandbox with these settings:",
        "",
        "```json",
        json.dumps(verify, indent=2),
        "```",
        "",
        "## Load",
        "",
        "```python",
        "import datasets",
        'rows = datasets.load_dataset("path/to/this/folder", split="train")',
        "```",
        "",
    ]
    return "\n".join(lines)


def write_hf_dataset(
    folder: str | Path,
    rows: Iterable[dict],
    columns: dict[str, pa.DataType],
    *,
    title: str,
    about: str,
    tags: list[str],
    generator: str,
    model,
    counts: dict,
    verify: dict,
) -> int:
    """Write the dataset folder (parquet of `columns`, taken from each row, and its card); returns the rows."""
    schema = pa.schema(list(columns.items()))
    try:
        table = pa.Table.from_pylist([{name: row.get(name) for name in columns} for row in rows], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ValueError(f"{folder}: a record does not fit the columns {dict(columns)}: {err}") from None
    with atomic_path(Path(folder), folder=True) as tmp:
        (tmp / DATA_FILE).parent.mkdir(parents=True)
        pq.write_table(table, tmp / DATA_FILE)
        header = card_header(title, table.num_rows, tags)
        write_text(tmp / "README.md", card_text(header, title, about, generator, model, counts, verify))
    return table.num_rows


def write_puzzles_dataset(folder, puzzles_path, stats_path, *, generator: str, model, verify: dict) -> int:
    """The puzzles that passed the filter (`puzzles.filtered.jsonl`), counted by the filter's stats."""
    stats = json.loads(Path(stats_path).read_text())
    counts = {"puzzles generated": stats["generated"], "puzzles kept": stats["kept"]}
    counts.update({f"rejected: {rule}": count for rule, count in stats["rejected"].items()})
    return write_hf_dataset(
        folder,
        read_jsonl(puzzles_path),
        PUZZLE_COLUMNS,
        title=f"Programming puzzles written by {generator}",
        about="Each row is a puzzle `f` that passed the filter: one `def f(...)` whose first argument is "
        "the answer, non-trivial and distinct, as the model wrote it after few-shot puzzles (`prompt_id`).",
        tags=["puzzles"],
        generator=generator,
        model=model,
        counts=counts,
        verify=verify,
    )


def write_solutions_dataset(folder, solutions_path, verdicts_path, *, generator: str, model, verify: dict) -> int:
    """Every sampled solution with its verdict (`status`, `ok`, `seconds`); `g` is null when it does not parse."""
    rows, statuses = [], {}
    for sample, verdict in with_verdicts(read_jsonl(solutions_path), read_jsonl(verdicts_path)):
        rows.append({**sample, **{key: verdict[key] for key in ("ok", "status", "seconds")}})
        statuses[verdict["status"]] = statuses.get(verdict["status"], 0) + 1
    counts = {"solution samples": len(rows), **{f"status: {s}": n for s, n in sorted(statuses.items())}}
    return write_hf_dataset(
        folder,
        rows,
        SOLUTION_COLUMNS,
        title=f"Verified solutions to puzzles written by {generator}",
        about="Each row is a sampled solution `g` to a generated puzzle `f` and the sandboxed verifier's "
        "verdict: `ok` is true exactly when `status` is `pass`.",
        tags=["verified-code"],
        generator=generator,
        model=model,
        counts=counts,
        verify=verify,
    )


def write_examples_dataset(folder, examples: list[dict], card: dict) -> int:
    """A fine-tuning set: each example with the text fine-tuning reads; counts from its data card (`card.py`)."""
    variant = card["variant"]
    return write_hf_dataset(
        folder,
        ({"text": example_text(e["f"], e["g"]), **e} for e in examples),
        EXAMPLE_COLUMNS,
        title=f"Fine-tuning set ({variant}) from puzzles written by {card['generator']}",
        about=f"Each row is one fine-tuning example ({variant}: "
        + ("only solutions the verifier passed" if variant == "verified" else "every parsing sample, unverified")
        + "): the shortest distinct solutions per puzzle; `text` is what fine-tuning reads.",
        tags=["fine-tuning", variant],
        generator=card["generator"],
        model=card["model"],
        counts={stage["stage"]: stage["count"] for stage in card["stages"]},
        verify=card["config"].get("verify", {}),
    )
