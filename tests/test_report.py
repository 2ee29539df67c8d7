"""The study's tables and figures, built from a small synthetic result set with hand-checkable numbers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from selfteach.cli import main
from selfteach.evaluate import COUNT_COLUMNS, write_evaluation
from selfteach.gain import gains
from selfteach.report import (
    FIGURE_FORMATS,
    FIGURE_NAMES,
    LONG_TABLE,
    TABLE_FORMATS,
    TABLE_NAMES,
    collect,
    load_card,
    report_main,
    to_latex,
)
from selfteach.terms import parse_tag

ATTEMPTS = 4  # so k = 1, 2, 4, and pass@4 is the share of puzzles with any success
# evaluation folder -> successes of the 4 test puzzles (the first success is the first sample)
RESULTS = {
    "s1/base": [0, 0, 0, 1],  # pass@4 = 25%
    "s1/gen-a-verified-r0-epoch1": [1, 0, 0, 1],  # 50%
    "s1/gen-a-verified-r0-epoch2": [2, 1, 0, 1],  # 75%
    "s1/gen-a-unverified-r0-epoch2": [1, 0, 0, 0],  # 25%
    "s1/s1-verified-r0-epoch2": [1, 0, 0, 1],  # 50%
    "s1/s1-verified-r1-epoch2": [4, 4, 4, 0],  # 75%
    "s1/p3-train-verified-r0-epoch2": [3, 0, 1, 1],  # 75%: the human-data control
    "s2/base": [0, 0, 0, 0],  # 0%
    "s2/gen-a-verified-r0-epoch2": [4, 4, 4, 4],  # 100%
}
CARD = {
    "stages": [
        {"stage": "generated", "count": 64},
        {"stage": "filtered", "count": 20},
        {"stage": "verified", "count": 7},
    ]
}
UNVERIFIED_CARD = {"stages": [{"stage": "generated", "count": 64}, {"stage": "verified", "count": None}]}


def markdown_rows(path) -> list[list[str]]:
    """A Markdown table's rows as lists of stripped cells (the writer pads cells to column width)."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def per_puzzle(successes: list[int]) -> pd.DataFrame:
    table = pd.DataFrame({"puzzle_id": [f"P{i}:0" for i in range(len(successes))], "attempts": ATTEMPTS})
    table["successes"] = successes
    table["first_success"] = pd.array([0 if c else None for c in successes], dtype="Int64")
    for column in COUNT_COLUMNS:
        table[column] = 0
    table["n_pass"], table["n_fail"] = table["successes"], ATTEMPTS - table["successes"]
    return table


def make_evals(root, results) -> list[str]:
    for name, successes in results.items():
        write_evaluation(per_puzzle(successes), root / name)
    return [str(root / name) for name in results]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    cards = [root / "data" / "gen-a" / "r0" / variant / "card.json" for variant in ("verified", "unverified")]
    for path, card in zip(cards, [CARD, UNVERIFIED_CARD]):
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(card))
    long = report_main(make_evals(root / "eval", RESULTS), root / "tables", root / "figures", cards)
    return root, long


def outputs(root) -> list:
    names = (LONG_TABLE, *TABLE_NAMES)
    tables = [root / "tables" / f"{name}.{fmt}" for name in names for fmt in TABLE_FORMATS]
    figures = [root / "figures" / f"{name}.{fmt}" for name in FIGURE_NAMES for fmt in FIGURE_FORMATS]
    return [*tables, *figures]


def assert_images(root) -> None:
    for name in FIGURE_NAMES:
        png = (root / "figures" / f"{name}.png").read_bytes()
        pdf = (root / "figures" / f"{name}.pdf").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000, name
        assert pdf.startswith(b"%PDF") and len(pdf) > 5_000, name


def test_parse_tag():
    assert parse_tag("gpt-neo-125m-unverified-r3-epoch10") == {
        "generator": "gpt-neo-125m", "variant": "unverified", "round": 3, "epoch": 10,
    }  # fmt: skip
    assert parse_tag("base")["variant"] == "base"
    for bad in ["gen-a-verified-r0", "gen-a-checked-r0-epoch1", "verified-r0-epoch1"]:
        with pytest.raises(ValueError, match="evaluation tag"):
            parse_tag(bad)


def test_every_output_exists_and_figures_are_images(study):
    root, _ = study
    for path in outputs(root):
        assert path.stat().st_size > 0, path
    assert_images(root)


def test_long_table_numbers(study):
    _, long = study
    at4 = long[long["k"] == 4].set_index(["student", "tag"])
    assert at4.loc[("s1", "gen-a-verified-r0-epoch2"), "pass_at_k"] == 0.75
    assert at4.loc[("s1", "gen-a-verified-r0-epoch2"), "solved"] == 3
    assert at4.loc[("s2", "gen-a-verified-r0-epoch2"), "pass_at_k"] == 1.0
    # pass@1 of s1's round-1 model: 3 puzzles always solved, one never
    assert (
        long.set_index(["student", "tag", "k"]).loc[("s1", "s1-verified-r1-epoch2", 1), "pass_at_k"] == 0.75
    )
    row = at4.loc[("s1", "s1-verified-r1-epoch2")]
    assert (row["generator"], row["variant"], row["round"], row["epoch"]) == ("s1", "verified", 1, 2)


def test_condition_table_holds_last_epochs_with_intervals(study):
    root, _ = study
    table = pd.read_csv(root / "tables" / "passk_by_condition.csv", dtype=str)
    s1 = table[table["student"] == "s1"]
    assert s1[["generator", "variant", "round"]].values.tolist() == [
        ["-", "base", "-"], ["gen-a", "verified", "0"], ["gen-a", "unverified", "0"],
        ["p3-train", "verified", "0"], ["s1", "verified", "0"], ["s1", "verified", "1"],
    ]  # fmt: skip
    assert s1["data"].tolist() == [
        "-", "another model's puzzles", "another model's puzzles", "human-written (control)", "self-taught",
        "self-taught",
    ]  # fmt: skip
    verified = s1[(s1["generator"] == "gen-a") & (s1["variant"] == "verified")]
    assert verified["epoch"].tolist() == ["2"]  # epoch 1 is not a condition of its own
    assert verified["pass@4"].iloc[0].startswith("75.0 [")
    assert list(table.columns[-3:]) == ["pass@1", "pass@2", "pass@4"]
    rows = markdown_rows(root / "tables" / "passk_by_condition.md")
    assert ["s2", "gen-a", "another model's puzzles", "verified", "0", "2", "100.0 [100.0, 100.0]"] == rows[-1][:7]


def test_grid_and_round_tables(study):
    root, _ = study
    grid = pd.read_csv(root / "tables" / "student_generator.csv").set_index(["student", "variant"])
    assert grid.loc[("s2", "verified"), "gen-a"].startswith("100.0")
    assert grid.loc[("s1", "verified"), "s1"].startswith("50.0")
    assert grid.loc[("s2", "verified"), "s1"] == "-"
    assert grid.loc[("s1", "verified"), "p3-train (human-written)"].startswith("75.0")
    rounds = pd.read_csv(root / "tables" / "rounds.csv").set_index(["student", "generator", "variant"])
    assert rounds.loc[("s1", "s1", "verified"), "round 0"].startswith("50.0")
    assert rounds.loc[("s1", "s1", "verified"), "round 1"].startswith("75.0")
    latex = (root / "tables" / "rounds.tex").read_text()
    assert latex.startswith(r"\begin{tabular}") and r"\bottomrule" in latex


def test_data_card_table(study, tmp_path):
    root, _ = study
    table = pd.read_csv(root / "tables" / "data_card.csv", dtype={"gen-a r0 unverified": "Int64"})
    assert table["stage"].tolist() == ["generated", "filtered", "verified"]
    assert table["gen-a r0 verified"].tolist() == [64, 20, 7]
    assert table["gen-a r0 unverified"].isna().tolist() == [False, True, True]  # no such stage; no verdicts
    assert ["verified", "7", ""] in markdown_rows(root / "tables" / "data_card.md")
    (tmp_path / "card.json").write_text(json.dumps({"stages": [{"stage": "x"}]}))
    with pytest.raises(ValueError, match="card.json"):
        load_card(tmp_path / "card.json")


def test_missing_data_still_gives_every_output(tmp_path):
    """Only a base model evaluated: every table and figure exists, with a note instead of data."""
    evals = make_evals(tmp_path / "eval", {"s1/base": [0, 1, 0, 1]})
    command = ["report", "--evals", *evals, "--out-tables", str(tmp_path / "tables")]
    assert main([*command, "--out-figures", str(tmp_path / "figures")]) == 0
    for path in outputs(tmp_path):
        assert path.exists(), path
    assert_images(tmp_path)
    assert "No fine-tuned model evaluated yet." in (tmp_path / "tables" / "rounds.md").read_text()
    assert "No data card given." in (tmp_path / "tables" / "data_card.md").read_text()


def test_collect_rejects_a_twice_given_evaluation(tmp_path):
    evals = make_evals(tmp_path / "eval", {"s1/base": [0, 1, 0, 1]})
    with pytest.raises(ValueError, match="given twice"):
        collect(evals * 2)


def test_latex_cells_are_escaped():
    latex = to_latex(pd.DataFrame({"a_b": ["x & y", "50% #1"]}))
    assert r"a\_b \\" in latex and r"x \& y \\" in latex and r"50\% \#1 \\" in latex


def test_gain_table_pairs_each_fine_tuned_model_with_its_base(study):
    root, _ = study
    table = pd.read_csv(root / "tables" / "gain.csv")
    row = table.set_index(["student", "generator", "variant", "round", "epoch", "k"])
    # s1 base [0, 0, 0, 1] vs [2, 1, 0, 1] successes of 4: pass@1 per puzzle 0.5, 0.25, 0, 0 more
    assert row.loc[("s1", "gen-a", "verified", 0, 2, 1), "gain (points)"] == 18.75
    assert row.loc[("s1", "gen-a", "verified", 0, 2, 4), "gain (points)"] == 50.0
    # s2 goes from nothing to everything: every puzzle gains 100 points, the interval is that point
    s2 = row.loc[("s2", "gen-a", "verified", 0, 2, 4)]
    assert (s2["gain (points)"], s2["95% CI low"], s2["95% CI high"]) == (100.0, 100.0, 100.0)
    assert s2["p (one-sided)"] < 0.1  # all four differences positive: 1/16 of sign patterns reach it
    assert len(table) == 7 * 3  # seven fine-tuned evaluations with a base, k = 1, 2, 4
    kinds = table.drop_duplicates(["student", "generator"]).set_index(["student", "generator"])["data"]
    assert kinds.to_dict() == {
        ("s1", "gen-a"): "another model's puzzles", ("s1", "s1"): "self-taught",
        ("s1", "p3-train"): "human-written (control)", ("s2", "gen-a"): "another model's puzzles",
    }  # fmt: skip
    assert "paired bootstrap" in (root / "tables" / "gain.md").read_text()
    assert list(table.columns[-3:]) == ["95% CI low", "95% CI high", "p (one-sided)"]


def test_gain_needs_the_same_puzzles_and_attempts(tmp_path):
    evals = make_evals(tmp_path / "eval", {"s1/base": [0, 1, 0, 1], "s1/g-verified-r0-epoch1": [1, 1, 0, 1]})
    table = per_puzzle([1, 1, 0, 1]).assign(attempts=[4, 4, 4, 3])
    write_evaluation(table, tmp_path / "eval" / "s1" / "g-verified-r0-epoch1")
    with pytest.raises(ValueError, match="same n"):
        gains([evals])
    write_evaluation(per_puzzle([1, 1, 0]), tmp_path / "eval" / "s1" / "g-verified-r0-epoch1")
    with pytest.raises(ValueError, match="one model only"):
        gains([evals])


def test_pooled_gain_averages_each_puzzle_over_replicate_runs(tmp_path, capsys):
    """`selfteach pool-gain` over working directories of one config run with other seeds."""
    first = {"s1/base": [0, 0, 0, 1], "s1/g-verified-r0-epoch1": [2, 1, 0, 1]}
    second = {"s1/base": [0, 0, 0, 1], "s1/g-verified-r0-epoch1": [0, 0, 0, 1]}
    make_evals(tmp_path / "seed0" / "results" / "eval", first)
    make_evals(tmp_path / "seed1" / "results" / "eval", second)
    runs = [str(tmp_path / "seed0"), str(tmp_path / "seed1")]
    assert main(["pool-gain", *runs, "--out", str(tmp_path / "pooled")]) == 0
    gain = pd.read_csv(tmp_path / "pooled" / "gain.csv").set_index("k")
    # pass@1 per puzzle: run 1 gains 0.5 and 0.25 on two puzzles, run 2 nothing: (0.25 + 0.125) / 4
    assert gain.loc[1, "gain (points)"] == 9.38 and (gain["runs"] == 2).all()
    assert "Pooled over 2 runs" in (tmp_path / "pooled" / "gain.md").read_text()
    # a run pooled with itself is that run: the same gain, interval and p as its own report
    assert main(["pool-gain", runs[0], runs[0], "--out", str(tmp_path / "itself")]) == 0
    alone = gains([sorted(str(p.parent) for p in (tmp_path / "seed0").glob("results/eval/*/*/per_puzzle.csv"))])
    itself = pd.read_csv(tmp_path / "itself" / "gain.csv")
    assert itself["gain (points)"].tolist() == (100 * alone["gain"]).round(2).tolist()
    assert itself["95% CI high"].tolist() == (100 * alone["ci_high"]).round(2).tolist()
    assert itself["p (one-sided)"].tolist() == alone["p_value"].round(4).tolist()
    # a run without one of the evaluations cannot be pooled: one line naming it
    (tmp_path / "seed1" / "results" / "eval" / "s1" / "g-verified-r0-epoch1" / "per_puzzle.csv").unlink()
    assert main(["pool-gain", *runs, "--out", str(tmp_path / "broken")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"selfteach pool-gain: error: {runs[1]}: evaluations differ") and "\n" not in error


def test_each_benchmark_gets_its_own_rows_paired_with_its_own_base(tmp_path):
    """evaluate.benchmarks: [p3, humaneval]: the long and gain tables hold a row per benchmark, each model
    paired with its base model on the same benchmark; the other tables and the figures stay P3's."""
    p3 = {"s1/base": [0, 0, 0, 1], "s1/gen-a-verified-r0-epoch2": [2, 1, 0, 1]}
    humaneval = {"s1/base": [4, 0, 0, 0], "s1/gen-a-verified-r0-epoch2": [4, 4, 0, 0]}
    alone = make_evals(tmp_path / "alone" / "eval", p3)
    report_main(alone, tmp_path / "alone" / "tables", tmp_path / "alone" / "figures")
    both = make_evals(tmp_path / "both" / "eval", p3) + make_evals(tmp_path / "both" / "humaneval", humaneval)
    long = report_main(both, tmp_path / "both" / "tables", tmp_path / "both" / "figures")

    assert list(long["benchmark"].unique()) == ["p3", "humaneval"]
    at4 = long[long["k"] == 4].set_index(["benchmark", "tag"])["pass_at_k"]
    assert (at4[("p3", "base")], at4[("humaneval", "base")], at4[("humaneval", "gen-a-verified-r0-epoch2")]) == (
        0.25, 0.25, 0.5,
    )  # fmt: skip
    gain = pd.read_csv(tmp_path / "both" / "tables" / "gain.csv")
    assert gain.columns[0] == "benchmark"
    gain = gain.set_index(["benchmark", "k"])
    assert gain.loc[("p3", 4), "gain (points)"] == 50.0
    # humaneval: [4, 0, 0, 0] -> [4, 4, 0, 0] successes of 4: one problem gains 100 points of pass@1
    assert gain.loc[("humaneval", 1), "gain (points)"] == 25.0
    assert gain.loc[("humaneval", 4), "base pass@k (%)"] == 25.0 and gain.loc[("humaneval", 4), "pass@k (%)"] == 50.0
    passk_long = pd.read_csv(tmp_path / "both" / "tables" / f"{LONG_TABLE}.csv")
    assert list(passk_long.columns[:2]) == ["benchmark", "student"] and len(passk_long) == 2 * 2 * 3
    # the P3 tables are those of the P3 evaluations alone
    for name in ("passk_by_condition", "student_generator", "rounds"):
        for fmt in TABLE_FORMATS:
            assert (tmp_path / "both" / "tables" / f"{name}.{fmt}").read_text() == (
                tmp_path / "alone" / "tables" / f"{name}.{fmt}"
            ).read_text(), name
    assert list(pd.read_csv(tmp_path / "alone" / "tables" / "gain.csv")["benchmark"].unique()) == ["p3"]


def test_an_evaluation_outside_a_benchmark_folder_is_refused(tmp_path):
    evals = make_evals(tmp_path / "elsewhere", {"s1/base": [0, 1, 0, 1]})
    with pytest.raises(ValueError, match="no benchmark"):
        collect(evals)
