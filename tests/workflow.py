"""Run the workflow in a folder of its own, the way a user would: the repository's Snakefile, a config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def write_config(workdir: Path, study: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    command = [
        SNAKEMAKE,
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
        *args,
    ]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return result


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Jobs a dry run would run, by rule ({} when there is nothing to do)."""
    return job_counts(dry_run(workdir, *args))


def dry_run(workdir: Path, *args: str) -> str:
    result = run_snakemake(workdir, "--dry-run", *args)
    return result.stdout + result.stderr


def job_counts(output: str) -> dict[str, int]:
    """The job count table of a dry run's output, by rule."""
    counts = {}
    in_table = False
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table:
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] != "total":
                    counts[parts[0]] = int(parts[1])
            elif parts and not set(parts[0]) <= {"-"}:
                in_table = False
    return counts


def job_resources(output: str, rule: str) -> list[dict[str, str]]:
    """The `resources:` of every job of `rule` in a dry run's output (name -> value as printed)."""
    found, in_rule = [], False
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            in_rule = line.split()[1].rstrip(":") == rule
        elif in_rule and line.strip().startswith("resources:"):
            pairs = line.split(":", 1)[1].split(", ")
            found.append(dict(pair.strip().split("=", 1) for pair in pairs))
    return found
