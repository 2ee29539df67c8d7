"""pass@k both ways, the k grid and the bootstrap interval, against values worked out by hand."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pandas as pd
import pytest

from selfteach.evaluate import passk_table
from selfteach.metrics import bootstrap_ci, first_success_pass_at_k, ks_for, paired_gain, pass_at_k


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 1, 0.4),  # c/n
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 3, 4, 1 - 35 / 210),  # 1 - C(7,4)/C(10,4)
        (5, 1, 5, 1.0),  # k = n: all attempts drawn
        (5, 0, 5, 0.0),  # k = n, nothing correct
        (7, 0, 3, 0.0),  # c = 0
        (7, 7, 3, 1.0),  # c = n
        (5, 4, 2, 1.0),  # n - c < k: every draw holds a correct one
        (100, 1, 1, 0.01),
    ],
)
def test_pass_at_k_by_hand(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-15, abs=0)


def test_pass_at_k_large_n_is_exact():
    assert pass_at_k(10_000, 1, 1) == 1e-4
    assert pass_at_k(10_000, 5000, 100) == float(exact(10_000, 5000, 100))
    for n, c, k in [(10_000, 1, 100), (10_000, 3, 10_000), (10_000, 9_999, 1), (10_000, 20, 64)]:
        assert pass_at_k(n, c, k) == float(exact(n, c, k))


def test_pass_at_k_tiny_values_keep_their_digits():
    """The float product form loses relative precision here; the exact form must not."""
    value = pass_at_k(10_000, 1, 2)
    assert value == float(Fraction(2, 10_000))


def test_pass_at_k_clamps_k_above_n():
    assert pass_at_k(3, 1, 10) == pass_at_k(3, 1, 3) == 1.0
    assert pass_at_k(3, 0, 10) == 0.0
    assert pass_at_k(0, 0, 1) == 0.0  # a puzzle without samples is unsolved


def test_pass_at_k_accepts_numpy_integers():
    assert pass_at_k(np.int64(5), np.int64(2), np.int64(2)) == pytest.approx(0.7)


@pytest.mark.parametrize("n, c, k", [(5, 6, 1), (5, -1, 1), (-1, 0, 1), (5, 2, 0), (5.0, 2, 1)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_first_success_pass_at_k():
    assert first_success_pass_at_k(None, 100) == 0.0
    assert first_success_pass_at_k(0, 1) == 1.0
    assert first_success_pass_at_k(3, 4) == 1.0
    assert first_success_pass_at_k(3, 3) == 0.0
    with pytest.raises(ValueError):
        first_success_pass_at_k(-1, 3)
    with pytest.raises(ValueError):
        first_success_pass_at_k(0, 0)


def test_paper_measure_on_a_handmade_table():
    # puzzle A: first success at sample 0; B: at sample 5; C: at 2; D: never. 8 attempts each.
    per_puzzle = pd.DataFrame(
        {
            "puzzle_id": ["A", "B", "C", "D"],
            "attempts": [8, 8, 8, 8],
            "successes": [1, 2, 3, 0],
            "first_success": pd.array([0, 5, 2, None], dtype="Int64"),
        }
    )
    table = passk_table(per_puzzle)
    paper = dict(zip(table["k"], table["paper_pass_at_k"]))
    assert paper == {1: 0.25, 2: 0.25, 4: 0.5, 8: 0.75}  # k=4 counts A, C; k=8 counts A, B, C


def test_ks_for():
    assert ks_for(100) == [1, 2, 4, 8, 16, 32, 64, 100]
    assert ks_for(64) == [1, 2, 4, 8, 16, 32, 64]
    assert ks_for(3) == [1, 2, 3]
    assert ks_for(1) == [1]
    with pytest.raises(ValueError):
        ks_for(0)


def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    values = np.random.default_rng(1).random(200)
    low, high = bootstrap_ci(values, seed=3)
    assert low < values.mean() < high
    assert bootstrap_ci(values, seed=3) == (low, high)
    assert bootstrap_ci(values, seed=4) != (low, high)
    wide_low, wide_high = bootstrap_ci(values, level=0.99, seed=3)
    assert wide_low <= low and high <= wide_high


def test_bootstrap_ci_of_constant_values_is_a_point():
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)


@pytest.mark.parametrize("values, options", [([], {}), ([1.0], {"level": 1.0}), ([1.0], {"resamples": 0})])
def test_bootstrap_ci_rejects_bad_arguments(values, options):
    with pytest.raises(ValueError):
        bootstrap_ci(values, **options)


def test_paired_gain_of_identical_models_is_zero_with_a_ci_around_it():
    values = np.random.default_rng(1).random(228)
    gain = paired_gain(values, values, seed=3)
    assert gain["gain"] == 0 and gain["ci_low"] <= 0 <= gain["ci_high"]
    assert gain["p_value"] == 1.0  # every sign pattern reaches a zero mean


def test_paired_gain_of_a_model_better_on_every_puzzle_lies_above_zero():
    rng = np.random.default_rng(2)
    base = rng.random(228) * 0.5
    gain = paired_gain(base, base + rng.uniform(0.01, 0.2, 228), seed=0)
    assert 0 < gain["ci_low"] < gain["gain"] < gain["ci_high"]
    assert gain["p_value"] == 1 / (1000 + 1)  # no random sign pattern reaches it: the smallest p there is


def test_paired_gain_pairs_puzzles():
    """Large spread between puzzles, a small constant gain: only a paired interval sees it."""
    base = np.linspace(0, 0.9, 100)
    gain = paired_gain(base, base + 0.05, seed=0)
    assert gain["ci_low"] == pytest.approx(0.05) and gain["ci_high"] == pytest.approx(0.05)
    unpaired_low, _ = bootstrap_ci(base + 0.05, seed=0)
    assert unpaired_low < np.mean(base)  # the two models' own intervals overlap


def test_paired_gain_is_seeded():
    rng = np.random.default_rng(4)
    base, tuned = rng.random(50), rng.random(50)
    assert paired_gain(base, tuned, seed=7) == paired_gain(base, tuned, seed=7)
    assert paired_gain(base, tuned, seed=7) != paired_gain(base, tuned, seed=8)
    with pytest.raises(ValueError, match="same puzzles"):
        paired_gain(base, tuned[:-1])
