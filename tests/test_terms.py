"""selfteach.terms is the one home of the shared names: every user takes them from it, none keeps a copy."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from selfteach import config, evaluate, gain, p3, report, terms, verify
from selfteach.finetune_config import MIXED_PRECISION, SCHEDULES
from selfteach.sampling.base import BACKENDS
from workflow import REPO

TAGS = ["base", "gpt-neo-125m-unverified-r3-epoch10", "a-verified-r0-epoch1", "x-y-verified-r12-epoch0"]
NOT_TAGS = ["", "based", "m-verified-r1", "m-checked-r0-epoch1", "-verified-r0-epoch1", "m-verified-rx-epoch1"]


@pytest.mark.parametrize("tag", TAGS)
def test_tag_format_parser_and_wildcard_agree(tag):
    assert re.fullmatch(terms.TAG_WILDCARD, tag)
    parsed = terms.parse_tag(tag)
    if tag != terms.BASE:
        assert terms.format_tag(parsed["generator"], parsed["variant"], parsed["round"], parsed["epoch"]) == tag


@pytest.mark.parametrize("tag", NOT_TAGS)
def test_non_tags_are_refused_by_parser_and_wildcard(tag):
    assert not re.fullmatch(terms.TAG_WILDCARD, tag)
    with pytest.raises(ValueError, match="evaluation tag"):
        terms.parse_tag(tag)


def test_parse_tag_splits_the_fields():
    assert terms.parse_tag("gpt-neo-125m-unverified-r3-epoch10") == {
        "generator": "gpt-neo-125m", "variant": "unverified", "round": 3, "epoch": 10,
    }
    assert terms.parse_tag("base") == {"generator": None, "variant": "base", "round": None, "epoch": 0}
    with pytest.raises(ValueError, match="variant"):
        terms.format_tag("m", "checked", 0, 1)


def test_steps_take_the_terms_from_terms():
    assert evaluate.STATUSES is terms.STATUSES
    assert verify.STATUSES is terms.STATUSES
    assert verify.MAX_DETAIL_CHARS is terms.MAX_DETAIL_CHARS
    assert (evaluate.PER_PUZZLE_CSV, evaluate.PASSK_CSV) == (terms.PER_PUZZLE_CSV, terms.PASSK_CSV)
    assert tuple(p3.FILES) == terms.P3_FILES


def test_report_writes_the_named_tables_and_figures():
    assert (report.LONG_TABLE, report.DATA_CARD_TABLE) == (terms.LONG_TABLE, terms.DATA_CARD_TABLE)
    assert tuple(report.TABLE_NAMES) == terms.TABLE_NAMES
    assert tuple(report.FIGURE_NAMES) == terms.FIGURE_NAMES
    assert (report.TABLE_FORMATS, report.FIGURE_FORMATS) == (terms.TABLE_FORMATS, terms.FIGURE_FORMATS)
    assert terms.REPORT_TABLE_FORMAT in terms.TABLE_FORMATS
    assert terms.REPORT_FIGURE_FORMAT in terms.FIGURE_FORMATS
    assert report.evaluation_keys is gain.evaluation_keys is terms.evaluation_keys


# Literal copies of a term that the rules must not hold: they take each from selfteach.terms.
RULE_COPIES = ['"verified"', "[A-Za-z0-9_.]", "verified|unverified", "-epoch{", "per_puzzle.csv", "passk.csv", *terms.P3_FILES]
RULE_COPIES += [f'"{fmt}"' for fmt in (*terms.TABLE_FORMATS, *terms.FIGURE_FORMATS)]


@pytest.mark.parametrize("rule_file", sorted((REPO / "rules").glob("*.smk")), ids=lambda p: p.name)
def test_rules_hold_no_copy_of_a_term(rule_file):
    text = rule_file.read_text()
    copies = [copy for copy in RULE_COPIES if re.search(rf"(?<![\w.]){re.escape(copy)}(?![\w.])", text)]
    assert copies == []


def test_loading_the_workflow_imports_nothing_heavy(tmp_path):
    """A dry run of the workflow (what every snakemake call does first) imports no plotting or model stack."""
    (tmp_path / "config.yaml").write_text("models: {}\ngenerate: {generators: []}\nfinetune: {students: []}\n")
    snakemake = str(REPO / ".venv" / "bin" / "snakemake") if (REPO / ".venv").exists() else "snakemake"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", snakemake, "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--dry-run", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "selfteach" in imported, result.stderr[-3000:]
    assert imported & {"matplotlib", "seaborn", "torch"} == set()  # (snakemake itself imports pandas)


def test_report_has_a_caption_for_every_table_and_figure():
    for name in (terms.LONG_TABLE, *terms.TABLE_NAMES, *terms.FIGURE_NAMES):
        assert (REPO / "report" / f"{name}.rst").is_file(), name


def test_the_schema_spells_the_terms_as_the_code_does():
    schema = config.schema()
    sections = schema["properties"]
    model_name = f"^{terms.MODEL_NAME}$"
    assert schema["definitions"]["model_names"]["items"]["pattern"] == model_name
    assert sections["models"]["propertyNames"]["pattern"] == model_name
    assert tuple(sections["dataset"]["properties"]["variants"]["items"]["enum"]) == terms.VARIANTS
    assert tuple(sections["verify"]["properties"]["imports"]["enum"]) == verify.IMPORT_POLICIES
    finetune = sections["finetune"]["properties"]
    assert tuple(finetune["schedule"]["enum"]) == tuple(SCHEDULES)
    assert tuple(finetune["mixed_precision"]["enum"]) == MIXED_PRECISION
    assert set(sections["sampling"]["properties"]["backend"]["enum"]) <= set(BACKENDS)
