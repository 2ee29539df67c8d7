"""The gain of each fine-tuned model over its base model, paired puzzle by puzzle, in one run or pooled
over replicate runs.

One run's gain covers the choice of test puzzles, not the randomness of its own sampling and training:
a second run of the same config with another `seed` writes other puzzles, samples and batches, and may
gain more or less. Replicate runs (each its own working directory) are pooled by averaging each
model's per-puzzle pass@k over the runs before pairing: the gain is then that of the recipe, and its
interval still resamples puzzles, each carrying all runs' values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from selfteach.evaluate import read_per_puzzle
from selfteach.metrics import DEFAULT_LEVEL, DEFAULT_RESAMPLES, ks_for, paired_gain, pass_at_k
from selfteach.terms import BASE, PER_PUZZLE_CSV, evaluation_keys

KEYS = ("student", "generator", "variant", "round", "epoch")
GAIN_COLUMNS = (
    "benchmark", *KEYS, "k", "runs", "puzzles", "base_pass_at_k", "pass_at_k", "gain", "ci_low", "ci_high", "p_value"
)  # fmt: skip


def paired_counts(base_folder: Path, tuned_folder: Path) -> pd.DataFrame:
    """The two per-puzzle tables side by side, by puzzle; they must hold the same puzzles with the same attempts."""
    where = f"{base_folder} vs {tuned_folder}"
    base, tuned = (read_per_puzzle(folder / PER_PUZZLE_CSV) for folder in (base_folder, tuned_folder))
    pairs = base.merge(tuned, on="puzzle_id", how="outer", suffixes=("_base", "_tuned"), indicator=True)
    unpaired = pairs[pairs["_merge"] != "both"]
    if len(unpaired):
        raise ValueError(f"{where}: puzzle {unpaired['puzzle_id'].iloc[0]!r} is evaluated for one model only")
    unequal = pairs[pairs["attempts_base"] != pairs["attempts_tuned"]]
    if len(unequal):
        row = unequal.iloc[0]
        raise ValueError(
            f"{where}: puzzle {row['puzzle_id']!r} has {row['attempts_base']} attempts for the base model and "
            f"{row['attempts_tuned']} for the fine-tuned one; a paired gain needs the same n (evaluate.attempts)"
        )
    return pairs.sort_values("puzzle_id", ignore_index=True)


def _same_puzzles_and_attempts(runs_pairs: list[pd.DataFrame], where: list[Path]) -> list[int]:
    """The attempts per puzzle, which every run must share with the first (same puzzles, same n)."""
    first = runs_pairs[0]
    for pairs, folder in zip(runs_pairs[1:], where[1:]):
        if list(pairs["puzzle_id"]) != list(first["puzzle_id"]):
            raise ValueError(f"{folder}: evaluated on other puzzles than {where[0]}; pooled runs need the same puzzles")
        if list(pairs["attempts_base"]) != list(first["attempts_base"]):
            raise ValueError(f"{folder}: other attempts per puzzle than {where[0]}; pooled runs need the same n")
    return first["attempts_base"].astype(int).tolist()


def gains(
    runs,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (fine-tuned evaluation, k): its pass@k, its base model's, and the paired gain.

    `runs` holds one list of evaluation folders per run (one list: a single run's gain). Each evaluation
    is paired with its student's base evaluation on the same benchmark; a student without one has no
    gain rows there. With several runs, an evaluation of the first run is pooled with the folder of the
    same benchmark, student and tag in every other run (each must have it), and each model's per-puzzle
    pass@k is its mean over the runs. Every k of ks_for(n) is tabulated, n being the attempts per
    puzzle. The interval and p-value are paired_gain's, drawn from `seed`.
    """
    by_key = [{_key(Path(folder)): Path(folder) for folder in folders} for folders in runs]
    rows = []
    for key, folder in by_key[0].items():
        base_key = (*key[:2], BASE)
        if key[2] == BASE or base_key not in by_key[0]:
            continue
        tuned_folders = [_pooled(run, key) for run in by_key]
        pairs = [paired_counts(_pooled(run, base_key), tuned) for run, tuned in zip(by_key, tuned_folders)]
        n = _same_puzzles_and_attempts(pairs, tuned_folders)
        keys = {k: v for k, v in evaluation_keys(folder).items() if k in ("benchmark", *KEYS)}
        for k in ks_for(max(max(n), 1)):
            base, tuned = (
                np.mean([[pass_at_k(a, c, k) for a, c in zip(n, run[f"successes_{side}"])] for run in pairs], axis=0)
                for side in ("base", "tuned")
            )
            gain = paired_gain(base, tuned, resamples=resamples, level=level, seed=seed)
            rows.append(
                {**keys, "k": k, "runs": len(runs), "puzzles": len(n), "base_pass_at_k": float(base.mean()),
                 "pass_at_k": float(tuned.mean()), **gain}
            )  # fmt: skip
    table = pd.DataFrame(rows, columns=GAIN_COLUMNS)
    return table.astype({"generator": object, "round": "Int64", "epoch": "Int64"})


def _key(folder: Path) -> tuple[str, str, str]:
    """results/<benchmark folder>/<student>/<tag> -> (benchmark folder, student, tag)."""
    return folder.parent.parent.name, folder.parent.name, folder.name


def _pooled(run: dict, key: tuple) -> Path:
    """The run's evaluation folder for `key`; a run without it cannot be pooled."""
    if key not in run:
        some = next(iter(run.values()))
        raise ValueError(
            f"{some.parent.parent}: no evaluation {'/'.join(key[1:])}; pooled runs need the same evaluations"
        )
    return run[key]
