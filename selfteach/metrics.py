"""pass@k, two ways, and a bootstrap interval over puzzles (docs/design.md section 1, step 7).

The unbiased estimator of Chen et al. (2021) says how likely k samples drawn from a puzzle's n
attempts contain one of its c correct ones. The paper's own measure instead asks whether one of the
first k samples of a single run was correct. The paper gave no error bars; the bootstrap over puzzles
lets a reader tell a real improvement from the luck of which puzzles are easy.
"""

from __future__ import annotations

import operator
from math import comb

import numpy as np

from selfteach import config

DEFAULT_RESAMPLES = config.defaults("evaluate")["bootstrap"]  # the schema is the one home of every default
DEFAULT_LEVEL = 0.95


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k): the chance that k of n attempts (c correct), drawn at random, hold a pass.

    Exact: both binomials are Python integers and their quotient is rounded to a float once, so the
    result is the correctly rounded value even for n = 10,000 (where the float product form loses digits
    when the answer is tiny). k > n is clamped to k = n: a puzzle with fewer attempts than k is judged
    on all of them (n = 0 gives 0.0), so evaluations with a missing sample still tabulate.
    """
    try:
        n, c, k = operator.index(n), operator.index(c), operator.index(k)
    except TypeError:
        raise ValueError(f"pass_at_k needs integers, got n={n!r}, c={c!r}, k={k!r}") from None
    if n < 0 or not 0 <= c <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"pass_at_k needs k >= 1, got k={k}")
    k = min(k, n)
    if c == 0:
        return 0.0
    if n - c < k:  # every draw of k must include a correct attempt
        return 1.0
    total = comb(n, k)
    return (total - comb(n - c, k)) / total  # int / int is correctly rounded in Python


def first_success_pass_at_k(first_success_index: int | None, k: int) -> float:
    """The paper's measure for one puzzle: 1.0 when one of its first k samples was correct, else 0.0.

    `first_success_index` is the 0-based index of the first correct sample, None when none was.
    """
    if k < 1:
        raise ValueError(f"first_success_pass_at_k needs k >= 1, got k={k}")
    if first_success_index is None:
        return 0.0
    if first_success_index < 0:
        raise ValueError(f"first success index must be >= 0, got {first_success_index}")
    return float(first_success_index < k)


def ks_for(attempts: int) -> list[int]:
    """Powers of two below `attempts`, then `attempts` itself: 100 -> 1, 2, 4, ..., 64, 100."""
    if attempts < 1:
        raise ValueError(f"ks_for needs at least one attempt, got {attempts}")
    ks = []
    k = 1
    while k < attempts:
        ks.append(k)
        k *= 2
    return ks + [attempts]


def bootstrap_ci(
    per_puzzle_values,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over puzzles: resample puzzles with replacement.

    The same seed and puzzle count draw the same resamples, so the intervals of one table's rows
    (one per k) come from the same resampled puzzle sets and stay ordered like the means.
    """
    values = np.asarray(per_puzzle_values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D sequence of values, got shape {values.shape}")
    if resamples < 1:
        raise ValueError(f"bootstrap_ci needs resamples >= 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_ci needs 0 < level < 1, got {level}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_gain(
    base_values,
    tuned_values,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict:
    """The gain of a fine-tuned model over its base on the same puzzles: mean, paired CI, one-sided p.

    `base_values[i]` and `tuned_values[i]` are the two models' pass@k on puzzle i. The gain is the mean
    of the per-puzzle differences; its interval is a percentile bootstrap that resamples puzzles (each
    draw keeps a puzzle's two values together, which is what makes it paired), drawn from `seed`. The
    p-value tests "no gain" against "a gain" with a sign-flip randomisation test: under no effect each
    puzzle's difference is as likely to have the other sign, so p is the share of random sign patterns
    (from the same seed, with the observed one counted, so p > 0) whose mean reaches the observed mean.
    """
    base = np.asarray(base_values, dtype=float)
    tuned = np.asarray(tuned_values, dtype=float)
    if base.shape != tuned.shape:
        raise ValueError(f"paired_gain needs values for the same puzzles, got {base.shape} and {tuned.shape}")
    differences = tuned - base
    low, high = bootstrap_ci(differences, resamples=resamples, level=level, seed=seed)
    mean = float(differences.mean())
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(resamples, differences.size))
    flipped = (signs * differences).mean(axis=1)
    reached = int(np.count_nonzero(flipped >= mean - 1e-12))  # ties count against the gain
    return {"gain": mean, "ci_low": low, "ci_high": high, "p_value": (reached + 1) / (resamples + 1)}
