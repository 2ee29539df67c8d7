"""Logging for rule scripts: everything a step says goes to the rule's log file."""

from __future__ import annotations

import logging
import sys


def to_file(path: str, threads: int | None = None) -> None:
    """Send stderr and the `logging` records to `path`; cap torch's threads at the rule's."""
    sys.stderr = open(path, "a", buffering=1)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        force=True,
    )
    if threads:
        import torch

        torch.set_num_threads(threads)
