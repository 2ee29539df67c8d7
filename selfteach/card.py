"""The data card of a generated fine-tuning set (JSON for tools, Markdown for people).

It says how many items each step kept and why the others went (every filter rule, every verifier
status), how many puzzles were solved, how long the puzzles and solutions are, and which model and
config made the set. `stages` is the table the report prints: [{"stage", "count"}, ...].
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Iterable

from selfteach.io import read_jsonl, write_json, write_text
from selfteach.provenance import versions

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def length_summary(values: Iterable[int]) -> dict:
    """count, mean, min, the QUANTILES (nearest rank) and max; only the count when empty."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    summary = {"count": len(ordered), "mean": round(statistics.fmean(ordered), 1), "min": ordered[0]}
    for q in QUANTILES:
        summary[f"p{round(q * 100)}"] = ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    summary["max"] = ordered[-1]
    return summary


def data_card(
    *,
    generator: str,
    model,
    variant: str,
    config: dict,
    puzzle_counts: dict,
    puzzles: Iterable[dict],
    dataset_stats: dict,
    examples: Iterable[dict],
) -> dict:
    """Assemble the card from the filter's counts (`puzzle_filter.filter_counts`), the kept puzzles,
    the builder's stats and examples (`dataset.build_dataset`), and what made them."""
    examples = list(examples)
    rejected = puzzle_counts["rejected"]
    attempted, solved = dataset_stats["puzzles_attempted"], dataset_stats["puzzles_solved"]
    statuses = dataset_stats["statuses"]
    stages = [
        ("puzzles generated", puzzle_counts["generated"]),
        ("puzzles passing the filter rules", puzzle_counts["kept"] + rejected.get("duplicate", 0)),
        ("distinct puzzles", puzzle_counts["kept"]),
        ("puzzles attempted", attempted),
        ("solution samples", dataset_stats["samples"]),
        ("samples that parse", dataset_stats["samples"] - dataset_stats["unparsable"]),
        ("samples verified", None if statuses is None else statuses.get("pass", 0)),
        ("puzzles solved", solved),
        ("examples selected (shortest per puzzle)", dataset_stats["selected"]),
        ("distinct examples", dataset_stats["distinct"]),
        ("examples after the cap", dataset_stats["examples"]),
    ]
    return {
        "generator": generator,
        "model": model,
        "variant": variant,
        "stages": [{"stage": stage, "count": count} for stage, count in stages],
        "puzzle_rejections": rejected,
        "sample_statuses": {**(statuses or {}), "unparsable": dataset_stats["unparsable"]},
        "fraction_solved": None if solved is None or not attempted else solved / attempted,
        "lengths_chars": {
            "puzzles": length_summary(len(p["f"]) for p in puzzles),
            "solutions": length_summary(len(e["g"]) for e in examples),
        },
        "config": config,
    }


def card_markdown(card: dict) -> str:
    solved = card["fraction_solved"]
    lines = [
        f"# Data card: {card['generator']}, {card['variant']}",
        "",
        f"Generator model: `{json.dumps(card['model'])}`. "
        + ("Puzzles solved: unknown (no verdicts)." if solved is None else f"Puzzles solved: {solved:.1%}."),
        "",
        "| stage | count |",
        "|---|---:|",
        *(f"| {s['stage']} | {_count(s['count'])} |" for s in card["stages"]),
        "",
        "## Puzzles rejected, by rule",
        "",
        "| rule | count |",
        "|---|---:|",
        *(f"| {rule} | {count:,} |" for rule, count in card["puzzle_rejections"].items()),
        "",
        "## Solution samples, by verifier status",
        "",
        "| status | count |",
        "|---|---:|",
        *(f"| {status} | {count:,} |" for status, count in card["sample_statuses"].items()),
        "",
        "## Lengths in characters",
        "",
    ]
    keys = ["count", "mean", "min", *(f"p{round(q * 100)}" for q in QUANTILES), "max"]
    lines += ["| | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, summary in card["lengths_chars"].items():
        lines.append(f"| {name} | " + " | ".join(str(summary.get(k, "")) for k in keys) + " |")
    lines += ["", "## Config", "", "```json", json.dumps(card["config"], indent=2), "```", ""]
    return "\n".join(lines)


def _count(count) -> str:
    return "n/a" if count is None else f"{count:,}"


def write_card(card: dict, json_path: str | Path, md_path: str | Path) -> None:
    write_json(json_path, card)
    write_text(md_path, card_markdown(card))


def write_card_from_files(
    json_path: str | Path,
    md_path: str | Path,
    *,
    puzzles_path: str | Path,
    puzzle_stats_path: str | Path,
    dataset_stats: dict,
    examples: Iterable[dict],
    generator: str,
    variant: str,
    config: dict,
    model=None,
) -> dict:
    """The card of one built set, from the gathered puzzles and their counts (`gather_filtered`).

    `model` is what sampled the set (a folder, or an endpoint spec); by default the generator's
    entry under `models` in the config. The card also records the software versions.
    """
    card = data_card(
        generator=generator,
        model=config.get("models", {}).get(generator) if model is None else model,
        variant=variant,
        config=config,
        puzzle_counts=json.loads(Path(puzzle_stats_path).read_text()),
        puzzles=read_jsonl(puzzles_path),
        dataset_stats=dataset_stats,
        examples=examples,
    )
    card["versions"] = versions()
    write_card(card, json_path, md_path)
    return card
