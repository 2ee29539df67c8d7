"""What made an output: the config and the versions of the software, recorded beside results."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("selfteach", "torch", "transformers", "accelerate", "snakemake")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def provenance(config: dict | None = None, **extra) -> dict:
    record = {"versions": versions(), **extra}
    if config is not None:
        record["config"] = config
    return record
