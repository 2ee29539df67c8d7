"""The study's tables and figures (docs/design.md section 1: the paper's experiments), rebuilt from evaluations.

Each evaluation folder results/<benchmark folder>/<student>/<tag>/ (results/eval/ for the P3 puzzles,
results/humaneval/ for HumanEval) holds a per_puzzle.csv and the passk.csv the evaluate step computed
from it. The report gathers every passk.csv into one long table, with a `benchmark` column, and draws
each table and figure from it: the long table and the gain table hold every benchmark, the other tables
and the figures the P3 evaluations, as in the paper. The gain table pairs every fine-tuned model with
its base model on the same benchmark, puzzle by puzzle (the per-puzzle files), so its intervals are
those of a paired difference, not of two separate means. An output whose data the run lacks (one
round, one epoch, no fine-tuned model yet) is still written, with a note saying what is missing, so
that the workflow's declared outputs always exist.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: the same figures on a laptop and on a cluster node without a display

import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from selfteach.evaluate import PASSK_COLUMNS, read_per_puzzle  # noqa: E402
from selfteach.gain import GAIN_COLUMNS, KEYS, gains  # noqa: E402
from selfteach.io import atomic_path, write_text  # noqa: E402
from selfteach.metrics import DEFAULT_LEVEL, DEFAULT_RESAMPLES  # noqa: E402
from selfteach.terms import (  # noqa: E402
    BASE,
    BENCHMARK_FOLDERS,
    BENCHMARKS,
    DATA_CARD_TABLE,
    FIGURE_FORMATS,
    GAIN_FIGURE,
    GAIN_TABLE,
    HUMAN_DATA,
    LONG_TABLE,
    P3_BENCHMARK,
    PASSK_CSV,
    PER_PUZZLE_CSV,
    TABLE_FORMATS,
    VARIANTS,
    evaluation_keys,
)

LONG_COLUMNS = ("benchmark", *KEYS, "tag", "puzzles", *PASSK_COLUMNS)

PALETTE = "colorblind"
STYLE = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("paper", font_scale=1.2),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
}
PANEL_SIZE = (4.2, 3.4)  # inches per facet
BAND_ALPHA = 0.2
DODGE = 0.04  # sideways shift between lines, in x units (rounds, epochs)
NOTE_STYLE = {"ha": "center", "va": "center", "fontsize": 10, "color": "0.35"}
HUMAN_LABEL = f"{HUMAN_DATA} (human-written)"


def data_kind(student: str, generator) -> str:
    """What a model was fine-tuned on: its own puzzles (self-taught), another model's, or the human-written
    control; "-" for a base model."""
    if generator is None or pd.isna(generator):
        return "-"
    if generator == HUMAN_DATA:
        return "human-written (control)"
    return "self-taught" if generator == student else "another model's puzzles"


def generator_label(generator: str) -> str:
    """A generator as figures and pivoted tables name it: the human-data control says what it is."""
    return HUMAN_LABEL if generator == HUMAN_DATA else generator


# ---------------------------------------------------------------- collect


def collect(eval_dirs) -> pd.DataFrame:
    """One row per (evaluation, k): the folder's student and tag, parsed, with its pass@k table."""
    frames = []
    for folder in map(Path, eval_dirs):
        table = pd.read_csv(folder / PASSK_CSV)
        missing = set(PASSK_COLUMNS) - set(table.columns)
        if missing:
            raise ValueError(f"{folder / PASSK_CSV}: missing columns {sorted(missing)}")
        puzzles = len(read_per_puzzle(folder / PER_PUZZLE_CSV))
        frames.append(table.assign(**evaluation_keys(folder), puzzles=puzzles))
    if not frames:
        return pd.DataFrame(columns=LONG_COLUMNS)
    long = pd.concat(frames, ignore_index=True)[list(LONG_COLUMNS)]
    duplicated = long.duplicated(["benchmark", "student", "tag", "k"])
    if duplicated.any():
        first = long[duplicated].iloc[0]
        raise ValueError(f"evaluation {first['student']}/{first['tag']} on {first['benchmark']} is given twice")
    long = long.astype({"generator": object, "round": "Int64", "epoch": "Int64"})
    # per benchmark (P3 first) and student: the base model first, then per generator verified before
    # unverified, then rounds, epochs
    order = long["variant"].map({BASE: 0, "verified": 1, "unverified": 2})
    benchmark_order = long["benchmark"].map(BENCHMARKS.index)
    sort = ["_benchmark", "student", "generator", "_order", "round", "epoch", "k"]
    return (
        long.assign(_order=order, _benchmark=benchmark_order)
        .sort_values(sort, na_position="first")
        .drop(columns=["_order", "_benchmark"])
        .reset_index(drop=True)
    )


def on_p3(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the P3 evaluations: what the paper's tables and figures show."""
    return rows[rows["benchmark"] == P3_BENCHMARK]


# ---------------------------------------------------------------- gain over the base model


def gain_table(gain_rows: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """The gain rows for reading: pass@k, gain and its interval in percentage points, p to 4 digits;
    the number of runs when they were pooled."""
    if gain_rows.empty:
        return pd.DataFrame(columns=["benchmark", *KEYS, "k"])
    points = {c: (100 * gain_rows[c].astype(float)).round(2) for c in GAIN_COLUMNS[-6:-1]}
    pooled = ["runs"] if gain_rows["runs"].max() > 1 else []
    return pd.DataFrame(
        {
            **{key: gain_rows[key] for key in ("benchmark", "student", "generator")},
            "data": [data_kind(s, g) for s, g in zip(gain_rows["student"], gain_rows["generator"])],
            **{key: gain_rows[key] for key in (*KEYS[2:], "k", *pooled, "puzzles")},
            "base pass@k (%)": points["base_pass_at_k"],
            "pass@k (%)": points["pass_at_k"],
            "gain (points)": points["gain"],
            f"{level:.0%} CI low": points["ci_low"],
            f"{level:.0%} CI high": points["ci_high"],
            "p (one-sided)": gain_rows["p_value"].round(4),
        }
    )


# ---------------------------------------------------------------- selections


def largest_k(long: pd.DataFrame) -> int | None:
    """The k of the single-number figures and tables (100 at paper scale); None with no evaluation."""
    return int(long["k"].max()) if len(long) else None


def last_epochs(long: pd.DataFrame) -> pd.DataFrame:
    """Fine-tuned rows at the last evaluated epoch of each (student, generator, variant, round)."""
    tuned = long[long["variant"] != BASE]
    last = tuned.groupby(["student", "generator", "variant", "round"])["epoch"].transform("max")
    return tuned[tuned["epoch"] == last]


def strongest_generator(long: pd.DataFrame) -> str | None:
    """The generator whose round-0 verified data gives the best mean pass@(largest k) over students."""
    final = last_epochs(long)
    final = final[(final["variant"] == "verified") & (final["round"] == 0) & (final["k"] == largest_k(long))]
    if final.empty:
        return None
    return final.groupby("generator")["pass_at_k"].mean().idxmax()


def _percent_cell(row) -> str:
    return f"{100 * row['pass_at_k']:.1f} [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"


def _with_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """Printable keys ('-' where a key does not apply) and a 'pass@k % [CI]' cell per row."""
    shown = rows.astype({"generator": object, "round": object}).fillna({"generator": "-", "round": "-"})
    return shown.assign(cell=rows.apply(_percent_cell, axis=1) if len(rows) else [])


# ---------------------------------------------------------------- tables


def passk_by_condition(long: pd.DataFrame) -> pd.DataFrame:
    """pass@k % [CI] per student: the base model, and each (generator, variant, round) at its last epoch."""
    rows = pd.concat([long[long["variant"] == BASE], last_epochs(long)]).sort_index()
    if rows.empty:
        return pd.DataFrame(columns=list(KEYS))
    wide = _pivot(rows, list(KEYS), "k").sort_index(axis=1)
    wide.columns = [f"pass@{k}" for k in wide.columns]
    wide = wide.reset_index()
    kinds = [data_kind(s, None if v == BASE else g) for s, g, v in wide[["student", "generator", "variant"]].values]
    wide.insert(2, "data", kinds)
    return wide


def student_generator(long: pd.DataFrame) -> pd.DataFrame:
    """pass@(largest k) % [CI] per student and variant (rows) and generator (columns), round 0, last epoch."""
    rows = last_epochs(long)
    rows = rows[(rows["round"] == 0) & (rows["k"] == largest_k(long))]
    if rows.empty:
        return pd.DataFrame(columns=["student", "variant"])
    return _pivot(rows, ["student", "variant"], "generator").rename(columns=generator_label).reset_index()


def rounds_table(long: pd.DataFrame) -> pd.DataFrame:
    """pass@(largest k) % [CI] per self-improvement round (columns), last epoch of each round."""
    rows = last_epochs(long)
    rows = rows[rows["k"] == largest_k(long)]
    if rows.empty:
        return pd.DataFrame(columns=["student", "generator", "variant"])
    wide = _pivot(rows, ["student", "generator", "variant"], "round").sort_index(axis=1)
    wide.columns = [f"round {r}" for r in wide.columns]
    return wide.reset_index()


def _pivot(rows: pd.DataFrame, index: list[str], columns: str) -> pd.DataFrame:
    """Cells spread over `columns`, rows and columns kept in the long table's order, '-' where none."""
    wide = _with_cells(rows).pivot_table(
        index=index, columns=columns, values="cell", aggfunc="first", sort=False
    )
    return wide.fillna("-").rename_axis(columns=None)


TABLES = {  # name -> (builder of the long table, note when it has no rows)
    "passk_by_condition": (passk_by_condition, "No evaluation yet."),
    "student_generator": (student_generator, "No fine-tuned model evaluated yet."),
    "rounds": (rounds_table, "No fine-tuned model evaluated yet."),
}
TABLE_NAMES = (GAIN_TABLE, *TABLES, DATA_CARD_TABLE)


def load_card(path: str | Path) -> list[dict]:
    """A data card's stage counts: {"stages": [{"stage": str, "count": int or null}, ...]}.

    A null count is a stage that does not apply (no verdicts for unverified data); it prints empty.
    """
    card = json.loads(Path(path).read_text())
    stages = card.get("stages") if isinstance(card, dict) else None
    if not isinstance(stages, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("stage"), str)
        and "count" in s
        and isinstance(s["count"], (int, type(None)))
        for s in stages
    ):
        raise ValueError(f"{path}: expected {{'stages': [{{'stage': str, 'count': int or null}}, ...]}}")
    return stages


def card_label(path: str | Path) -> str:
    """results/data/<gen>/r<round>/<variant>/card.json -> '<gen> r<round> <variant>' (the control labelled)."""
    generator, round, variant = Path(path).parent.parts[-3:]
    return f"{generator_label(generator)} {round} {variant}"


def data_card_table(card_paths) -> pd.DataFrame:
    """Stage counts (rows, in the cards' order) per data set (columns): how many items each step kept."""
    columns = {card_label(path): {s["stage"]: s["count"] for s in load_card(path)} for path in card_paths}
    if not columns:
        return pd.DataFrame(columns=["stage"])
    table = pd.DataFrame(columns).astype("Int64")  # a stage one card lacks stays empty
    return table.rename_axis("stage").reset_index()


# ---------------------------------------------------------------- table files


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table (pandas' writer, through tabulate); missing cells stay empty."""
    return table.astype(object).fillna("").to_markdown(index=False) + "\n"


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs tabular (pandas' writer; needs \\usepackage{booktabs}); every cell escaped."""
    return table.astype(object).fillna("").to_latex(index=False, escape=True)


def write_table(table: pd.DataFrame, out_dir: str | Path, name: str, note: str | None = None) -> None:
    """name.csv (the data), name.md and name.tex (for reading and for papers); `note` goes under the table."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir / f"{name}.csv") as tmp:
        table.to_csv(tmp, index=False)
    markdown = to_markdown(table) if len(table) else ""
    latex = to_latex(table) if len(table) else ""
    if note:
        markdown += f"\n_{note}_\n"
        latex += f"% {note}\n"
    write_text(out_dir / f"{name}.md", markdown)
    write_text(out_dir / f"{name}.tex", latex)


GAIN_NOTE = (
    "gain: mean over puzzles of the fine-tuned model's pass@k minus its base model's, in percentage points; "
    "CI: paired bootstrap over puzzles; p: one-sided sign-flip test of no gain."
)


def write_tables(
    long: pd.DataFrame, gain_rows: pd.DataFrame, out_dir: str | Path, card_paths=(), level: float = DEFAULT_LEVEL
) -> None:
    write_table(long, out_dir, LONG_TABLE, "No evaluation yet." if long.empty else None)
    no_gain = "No fine-tuned model evaluated beside its base model yet."
    write_table(gain_table(gain_rows, level), out_dir, GAIN_TABLE, no_gain if gain_rows.empty else GAIN_NOTE)
    long = on_p3(long)
    for name, (build, empty_note) in TABLES.items():
        table = build(long)
        note = empty_note if table.empty else None
        if name == "rounds" and last_epochs(long)["round"].nunique() == 1:
            note = "Only one round so far: self-improvement needs rounds > 1."
        write_table(table, out_dir, name, note)
    cards = data_card_table(card_paths)
    write_table(cards, out_dir, DATA_CARD_TABLE, "No data card given." if cards.empty else None)


# ---------------------------------------------------------------- figures


def _facets(count: int) -> tuple[plt.Figure, list[plt.Axes]]:
    count = max(count, 1)
    fig, axes = plt.subplots(
        1,
        count,
        figsize=(PANEL_SIZE[0] * count, PANEL_SIZE[1]),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    return fig, list(axes[0])


def _note(ax: plt.Axes, text: str) -> None:
    """Say in an empty panel what is missing."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, transform=ax.transAxes, **NOTE_STYLE)


def _title(fig: plt.Figure, title: str, note: str | None = None) -> None:
    """The figure's title, and a footnote saying what the data lacks."""
    fig.suptitle(title)
    if note:
        fig.text(0.5, 0.0, note, ha="center", va="top", fontsize=10, color="0.35")


def _keep_last_legend(axes: list[plt.Axes]) -> None:
    """One legend per figure (the facets share their colours), outside the last panel."""
    for ax in axes[:-1]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)


def _percent(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(**{c: 100 * rows[c].astype(float) for c in ("pass_at_k", "ci_low", "ci_high")})


def _k_axis(ax: plt.Axes, ks, title: str, ylabel: str) -> None:
    """A facet over k: log-2 axis ticked at the evaluated k, a title, a legend of training data."""
    ks = sorted(set(ks))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set(title=title, xlabel="k (samples per puzzle)", ylabel=ylabel)
    ax.legend(title="training data")


def plot_passk_curves(long: pd.DataFrame) -> plt.Figure:
    """pass@k against k per student: the base model vs fine-tuned on verified vs unverified data.

    The fine-tuned curves use the strongest generator's round-0 data at the last epoch, as the paper's
    first experiment did; the bands are the bootstrap intervals over puzzles.
    """
    generator = strongest_generator(long)
    final = last_epochs(long)
    tuned = final[(final["generator"] == generator) & (final["round"] == 0)]
    rows = _percent(pd.concat([long[long["variant"] == BASE], tuned]))
    rows = rows.assign(
        condition=["base model" if v == BASE else f"{v} ({generator})" for v in rows["variant"]]
    )
    conditions = list(dict.fromkeys(rows["condition"]))
    palette = dict(zip(conditions, sns.color_palette(PALETTE, len(conditions))))
    students = list(dict.fromkeys(rows["student"]))
    fig, axes = _facets(len(students))
    for ax, student in zip(axes, students):
        mine = rows[rows["student"] == student]
        sns.lineplot(
            mine, x="k", y="pass_at_k", hue="condition", palette=palette, marker="o", ax=ax, errorbar=None
        )
        for condition, line in mine.groupby("condition", sort=False):
            ax.fill_between(
                line["k"], line["ci_low"], line["ci_high"], color=palette[condition], alpha=BAND_ALPHA
            )
        _k_axis(ax, mine["k"], student, "pass@k (%)")
    if not students:
        _note(axes[0], "No evaluation yet.")
    _keep_last_legend(axes)
    note = "No fine-tuned model evaluated yet." if students and generator is None else None
    _title(fig, "pass@k on the P3 test puzzles (bands: 95% bootstrap CI over puzzles)", note)
    return fig


def plot_student_generator_heatmap(long: pd.DataFrame) -> plt.Figure:
    """pass@(largest k) of every student fine-tuned on every generator's verified round-0 data."""
    fig, (ax,) = _facets(1)
    final = last_epochs(long)
    k = largest_k(long)
    rows = final[(final["variant"] == "verified") & (final["round"] == 0) & (final["k"] == k)]
    if rows.empty:
        _note(ax, "No model fine-tuned on verified data evaluated yet.")
    else:
        grid = _percent(rows).pivot(index="student", columns="generator", values="pass_at_k")
        grid = grid.rename(columns=generator_label)
        sns.heatmap(grid, annot=True, fmt=".1f", cmap="viridis", ax=ax, cbar_kws={"label": f"pass@{k} (%)"})
        ax.set(xlabel="generator (wrote the training puzzles)", ylabel="student (fine-tuned)")
        ax.tick_params(axis="y", rotation=0)
    ax.set_title(f"pass@{k} (%), students x generators, verified data" if k else "students x generators")
    return fig


def _lines_with_intervals(ax: plt.Axes, rows: pd.DataFrame, x: str, palette: dict) -> None:
    """pass@k lines over `x`, coloured by generator, dashed for unverified data, with CI error bars.

    Each line is shifted sideways a little so that the error bars of one x do not hide each other.
    """
    line_of = rows["generator"] + "/" + rows["variant"]
    lines = list(dict.fromkeys(line_of))
    shift = {line: DODGE * (i - (len(lines) - 1) / 2) for i, line in enumerate(lines)}
    rows = rows.assign(_x=rows[x].astype(float) + line_of.map(shift))
    sns.lineplot(
        rows,
        x="_x",
        y="pass_at_k",
        hue="generator",
        style="variant",
        palette=palette,
        style_order=[v for v in VARIANTS if v in set(rows["variant"])],
        markers=True,
        ax=ax,
        errorbar=None,
    )
    for (generator, _), line in rows.groupby(["generator", "variant"]):
        ax.errorbar(
            line["_x"],
            line["pass_at_k"],
            fmt="none",
            capsize=3,
            color=palette[generator],
            yerr=[line["pass_at_k"] - line["ci_low"], line["ci_high"] - line["pass_at_k"]],
        )


def _base_line(ax: plt.Axes, long: pd.DataFrame, student: str, k: int) -> None:
    base = long[(long["student"] == student) & (long["variant"] == BASE) & (long["k"] == k)]
    if len(base):
        ax.axhline(100 * base["pass_at_k"].iloc[0], color="0.4", linestyle=":", label="base model")


def _plot_over(long: pd.DataFrame, rows: pd.DataFrame, x: str, xlabel: str, title: str, thin_note: str):
    """Shared body of the per-round and per-epoch figures: one facet per student, base as a dotted line."""
    k = largest_k(long)
    rows = _percent(rows[rows["k"] == k])
    rows = rows.assign(generator=rows["generator"].map(generator_label))
    students = list(dict.fromkeys(rows["student"])) or list(dict.fromkeys(long["student"]))
    generators = list(dict.fromkeys(rows["generator"]))
    palette = dict(zip(generators, sns.color_palette(PALETTE, len(generators))))
    fig, axes = _facets(len(students))
    for ax, student in zip(axes, students):
        mine = rows[rows["student"] == student]
        if len(mine):
            _lines_with_intervals(ax, mine, x, palette)
            ax.set_xticks(sorted(mine[x].unique()))
        _base_line(ax, long, student, k)
        ax.set(title=student, xlabel=xlabel, ylabel=f"pass@{k} (%)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    _keep_last_legend(axes)
    if long.empty:
        _note(axes[0], "No evaluation yet.")
        note = None
    elif rows.empty:
        note = "No fine-tuned model evaluated yet."
    else:
        note = thin_note if rows[x].nunique() < 2 else None
    _title(fig, f"pass@{k or 'k'} (%) {title}", note)
    return fig


def plot_passk_by_round(long: pd.DataFrame) -> plt.Figure:
    """pass@(largest k) after each self-improvement round (last epoch of each), per student and generator."""
    rows = last_epochs(long)
    rounds = rows.groupby(["student", "generator", "variant"])["round"].transform("nunique")
    if (rounds > 1).any():  # draw only the self-improvement loops; the round-0-only runs are in other figures
        rows = rows[rounds > 1]
    return _plot_over(
        long,
        rows,
        "round",
        "self-improvement round",
        "per self-improvement round",
        "Only one round so far: self-improvement needs rounds > 1.",
    )


def plot_passk_by_epoch(long: pd.DataFrame) -> plt.Figure:
    """pass@(largest k) after each fine-tuning epoch on round-0 data, per student and generator."""
    tuned = long[(long["variant"] != BASE) & (long["round"] == 0)]
    return _plot_over(
        long,
        tuned,
        "epoch",
        "fine-tuning epoch",
        "per fine-tuning epoch (round 0)",
        "Only one epoch evaluated (evaluate.epochs: last, or epochs: 1).",
    )


def plot_gain(gain_rows: pd.DataFrame) -> plt.Figure:
    """The gain in pass@k over the base model against k, with its paired CI, per student.

    One line per fine-tuned condition (generator, variant, round) at its last evaluated epoch.
    """
    rows = last_epochs(gain_rows) if len(gain_rows) else gain_rows
    rows = rows.assign(
        condition=[
            f"{generator_label(g)} {v} r{r}" for g, v, r in zip(rows["generator"], rows["variant"], rows["round"])
        ],
        **{c: 100 * rows[c].astype(float) for c in ("gain", "ci_low", "ci_high")},
    )
    conditions = list(dict.fromkeys(rows["condition"]))
    palette = dict(zip(conditions, sns.color_palette(PALETTE, len(conditions))))
    students = list(dict.fromkeys(rows["student"]))
    fig, axes = _facets(len(students))
    for ax, student in zip(axes, students):
        mine = rows[rows["student"] == student]
        ax.axhline(0, color="0.4", linestyle=":")
        for i, (condition, line) in enumerate(mine.groupby("condition", sort=False)):
            x = line["k"] * 2 ** (DODGE * (i - (len(conditions) - 1) / 2))  # side by side on the log axis
            ax.errorbar(
                x,
                line["gain"],
                yerr=[line["gain"] - line["ci_low"], line["ci_high"] - line["gain"]],
                marker="o",
                capsize=3,
                color=palette[condition],
                label=condition,
            )
        _k_axis(ax, mine["k"], student, "gain in pass@k (points)")
    if not students:
        _note(axes[0], "No fine-tuned model evaluated beside its base model yet.")
    else:  # one legend with every condition, also those the last student lacks
        shown = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
        axes[-1].legend(shown.values(), shown.keys(), title="training data")
    _keep_last_legend(axes)
    _title(fig, "Gain over the base model on the P3 test puzzles (bars: paired 95% bootstrap CI)")
    return fig


FIGURES = {
    "passk_curves": plot_passk_curves,
    "student_generator_heatmap": plot_student_generator_heatmap,
    "passk_by_round": plot_passk_by_round,
    "passk_by_epoch": plot_passk_by_epoch,
}
FIGURE_NAMES = (GAIN_FIGURE, *FIGURES)


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str) -> None:
    """name.png and name.pdf, each atomically; the PDF without a creation date, so reruns are identical."""
    for fmt in FIGURE_FORMATS:
        with atomic_path(Path(out_dir) / f"{name}.{fmt}") as tmp:
            metadata = {"CreationDate": None} if fmt == "pdf" else None
            fig.savefig(tmp, format=fmt, metadata=metadata)
    plt.close(fig)


def write_figures(long: pd.DataFrame, gain_rows: pd.DataFrame, out_dir: str | Path) -> None:
    """The figures of the P3 evaluations (HumanEval's numbers are in the long and the gain tables)."""
    long, gain_rows = on_p3(long), on_p3(gain_rows)
    with plt.rc_context(STYLE):
        save_figure(plot_gain(gain_rows), out_dir, GAIN_FIGURE)
        for name, plot in FIGURES.items():
            save_figure(plot(long), out_dir, name)


# ---------------------------------------------------------------- entry point


def report_main(
    eval_dirs,
    tables_dir: str | Path,
    figures_dir: str | Path,
    card_paths=(),
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """Collect the evaluations, write every table and figure; return the long table."""
    long = collect(eval_dirs)
    gain_rows = gains([eval_dirs], resamples=resamples, level=level, seed=seed)
    write_tables(long, gain_rows, tables_dir, card_paths, level)
    write_figures(long, gain_rows, figures_dir)
    return long


def pool_main(
    run_dirs,
    tables_dir: str | Path,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """The gain table pooled over replicate runs (working directories of the same config with other
    seeds), written as tables_dir/gain.{csv,md,tex}; returns the gain rows."""
    runs = [Path(run) for run in run_dirs]
    evaluations = [evaluation_folders(run) for run in runs]
    for run, folders in zip(runs[1:], evaluations[1:]):
        mismatch = {f.relative_to(runs[0]) for f in evaluations[0]} ^ {f.relative_to(run) for f in folders}
        if mismatch:
            raise ValueError(
                f"{run}: evaluations differ from {runs[0]}'s ({sorted(mismatch)[0]}); pooled runs need the same ones"
            )
    gain_rows = gains(evaluations, resamples=resamples, level=level, seed=seed)
    note = GAIN_NOTE
    if len(runs) > 1:
        note = (
            f"Pooled over {len(runs)} runs ({', '.join(map(str, runs))}): each model's per-puzzle pass@k is its "
            f"mean over the runs. {GAIN_NOTE}"
        )
    write_table(gain_table(gain_rows, level), tables_dir, GAIN_TABLE, note)
    return gain_rows


def evaluation_folders(run: Path) -> list[Path]:
    """The evaluation folders of a working directory: results/<benchmark folder>/<student>/<tag>/."""
    if not run.is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist")
    folders = sorted(
        path.parent
        for name in BENCHMARK_FOLDERS.values()
        for path in run.glob(f"results/{name}/*/*/{PER_PUZZLE_CSV}")
    )
    if not folders:
        raise ValueError(f"{run}: no evaluation (results/<benchmark folder>/<student>/<tag>/{PER_PUZZLE_CSV})")
    return folders
